"""Entrypoints: the HTTP app and the CLI. They parse, call services, and map errors."""
