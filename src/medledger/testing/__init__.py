"""First-class in-memory and reference implementations for tests of the core.

Never the thing a feature runs on: the node always runs on the real adapters.
"""
