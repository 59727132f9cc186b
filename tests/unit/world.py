"""What the contract and gate tests share: test DIDs, a participant record in the state, and a
consent in its policy form."""

from __future__ import annotations

from typing import Any

from medledger.core.consent.simple import permit_to
from medledger.core.identity.did_key import did_from_public_key
from medledger.core.ledger.contracts.common import Participant, participant_key


def did(n: int) -> str:
    """A fixed, valid did:key per small integer (not a real key: nobody signs with it)."""
    return did_from_public_key(bytes([n]) * 32)


def participant(
    who: str,
    kind: str,
    roles: tuple[str, ...] = (),
    *,
    org: str | None = None,
    active: bool = True,
    registered_by: str | None = None,
) -> dict[str, bytes]:
    """The state entry of a participant, registered by ``did(1)`` unless said."""
    record = Participant(who, kind, roles, org, None, False, active, registered_by or did(1), 1)
    return {participant_key(who): record.to_state()}


def permit_policy(consent_id: str, patient: str, actor: str, **provision: Any) -> dict[str, Any]:
    """``patient`` permits ``actor`` to read for treatment (policy form), with the root
    provision's fields changed as given (JSON form, e.g. ``period={...}``)."""
    body = permit_to(consent_id, patient, actor).to_json()
    root = body["provision"]
    assert isinstance(root, dict)
    root.update(provision)
    return body
