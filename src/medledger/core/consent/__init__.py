"""Patient consent as deterministic rules (FHIR R4 Consent), and the access decision (issue 5).

The path of a consent through this package:

- ``model``: the policy form held on the ledger -- frozen values that cannot be invalid, parsed
  strictly from JSON (``parse_consent``) and written back (``Consent.to_json``); no PHI;
- ``fhir``: import from / export to a FHIR R4 Consent resource;
- ``decision``: ``evaluate_consents``, the small reference evaluator (ADR 0013);
- ``index``: ``ConsentIndex``, the same decision compiled once per consent set, for speed.

Pure: no I/O, no clock (``now_ms`` is a parameter), no randomness.
"""
