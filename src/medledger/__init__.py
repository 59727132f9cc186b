"""medledger: a permissioned, FHIR-native ledger for medical records.

The package layout follows the path a request takes:

    entrypoints (HTTP API, CLI)
      -> services (use cases: append, checkpoint, prove)
        -> core (pure: Merkle log, signed notes, checkpoints, receipts, tiles)
      -> adapters (the only I/O: SQLite, files, clocks), wired by ``bootstrap``
"""

__version__ = "0.1.0"
