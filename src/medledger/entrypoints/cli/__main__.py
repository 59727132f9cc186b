"""`python -m medledger.entrypoints.cli` runs the CLI (what the `medledger` script calls)."""

from medledger.entrypoints.cli.main import app

app()
