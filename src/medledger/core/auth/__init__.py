"""Who is calling, with what permissions: SMART on FHIR scopes and the principal a request
acts as (issue 6). Pure: no I/O."""
