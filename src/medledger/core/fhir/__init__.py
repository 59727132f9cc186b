"""The FHIR R4 API's pure core (issue 6): resource validation and identity, search-parameter
extraction, search-query parsing with a limit on every size, and the Provenance of a write."""
