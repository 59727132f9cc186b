"""FHIR answers are rendered exactly as ``json.dumps(..., ensure_ascii=False, separators=(",",
":"))`` renders them, byte for byte (the encoder is made once, without the cycle check)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from medledger.entrypoints.fhir.routes import fhir_response

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_an_answer_renders_as_json_dumps_does(value: Any) -> None:
    try:
        expected = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate: neither renders
        return
    assert fhir_response(value).body == expected


def test_a_shared_resource_is_rendered_twice_not_refused() -> None:
    resource = {"resourceType": "Observation", "id": "a", "valueQuantity": {"value": 1e-05}}
    bundle = {"entry": [{"resource": resource}, {"resource": resource}]}
    body = fhir_response(bundle).body
    assert body == json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode()
    assert b'"value":1e-05' in body
