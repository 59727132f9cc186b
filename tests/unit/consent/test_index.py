"""The oracle test: ``ConsentIndex.evaluate`` returns exactly what the reference
``evaluate_consents`` returns, on random consent sets and requests."""

from __future__ import annotations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from medledger.core.consent.decision import ConsentRequest, evaluate_consents
from medledger.core.consent.index import ConsentIndex
from medledger.core.consent.model import Consent
from tests.unit.consent.strategies import NOWS, consent_sets, requests


@settings(max_examples=300, deadline=None)
@given(consent_sets(max_size=6), st.lists(requests(), min_size=1, max_size=20), NOWS)
def test_index_equals_the_reference(
    consents: list[Consent], batch: list[ConsentRequest], now: int
) -> None:
    index = ConsentIndex.build(consents)
    for request in batch:
        expected = evaluate_consents(request, consents, now)
        assert index.evaluate(request, now) == expected
        event(f"{expected.permit} {expected.reasons[0]}")


@settings(max_examples=50, deadline=None)
@given(consent_sets(max_size=5), requests(), NOWS, st.randoms(use_true_random=False))
def test_the_order_of_consents_does_not_matter(
    consents: list[Consent], request: ConsentRequest, now: int, rng: object
) -> None:
    shuffled = list(consents)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert evaluate_consents(request, shuffled, now) == evaluate_consents(request, consents, now)
    assert ConsentIndex.build(shuffled).evaluate(request, now) == evaluate_consents(
        request, consents, now
    )
