"""The `medledger` command line (Typer + rich)."""
