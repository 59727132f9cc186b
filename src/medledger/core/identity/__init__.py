"""Participant identities: did:key (Ed25519)."""
