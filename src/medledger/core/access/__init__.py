"""Access decisions and access events (pure)."""
