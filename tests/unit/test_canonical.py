"""Our fast RFC 8785 path must equal the reference implementation on the restricted model."""

from __future__ import annotations

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.core.ledger.canonical import MAX_SAFE_INTEGER, canonical

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text()
    | st.sampled_from(["\U0001f600", "\ufb01", "\ud7ff", "\ue000", "\x00\x1f\x7f", '"\\/']),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text() | st.sampled_from(["\U0001f600", "\ufb01", "a"]), children, max_size=4
        )
    ),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_fast_canonical_equals_rfc8785(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except Exception:  # noqa: BLE001 - lone surrogates: the reference refuses, so must we
        try:
            canonical(value)
        except Exception:  # noqa: BLE001
            return
        raise AssertionError("canonical accepted what RFC 8785 refuses") from None
    assert canonical(value) == expected


def test_utf16_key_order_of_rfc8785_section_3_2_3() -> None:
    """RFC 8785 sorts keys by UTF-16 code units: U+1F600 (D83D DE00) before U+FB01."""
    value = {"\ufb01": 1, "\U0001f600": 2}
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical(value).index("\U0001f600".encode()) < canonical(value).index("\ufb01".encode())
