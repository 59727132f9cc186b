"""The FHIR R4 REST API at ``/fhir`` (issue 6): routes, content negotiation, and the one
table mapping the exception tree to HTTP statuses and ``OperationOutcome``s."""
