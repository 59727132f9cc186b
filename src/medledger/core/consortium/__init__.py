"""The consortium's pure core: ordered batches, finality votes and the quorum rule (ADR 0016)."""
