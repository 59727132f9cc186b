"""The governance contract: adding or removing an authority, approved by a majority of the
current authorities (issue 7, ADR 0016).

``authority.propose`` ``{"proposal_id", "action": "add"|"remove", "did", "name", "roles"}``
  1. parse: ``proposal_id`` 8-64 of [A-Za-z0-9_-]; ``did`` a did:key; for ``add``, ``name``
     and organization ``roles`` as in the genesis (``invalid_payload``);
  2. the sender is a current authority (``not_authority``);
  3. the proposal id is new (``duplicate_proposal``); ``add`` of a current authority or
     ``remove`` of a non-authority or of the last one is refused (``no_change``);
  4. the proposer's approval counts: the proposal is recorded with it.
``authority.approve`` ``{"proposal_id"}``
  1. parse; 2. current authority (``not_authority``); 3. the proposal exists
  (``unknown_proposal``), is still open (``already_decided``) and the sender has not approved
  it (``already_approved``).
When a proposal holds approvals from more than half of the current authorities (counted when
the approval is applied, block order makes this deterministic) it is executed in the same
transaction: ``add`` writes the organization as an active authority participant, ``remove``
clears its authority flag; ``governance/authorities`` (the sorted did list) is rewritten.

The set in force for the batch at position n is the committed state after the block before it,
so every node uses the same set at the same position. Before any change the set is the
genesis authorities (this contract is built with them). Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

from medledger.core.ledger.canonical import canonical
from medledger.core.ledger.contracts.common import (
    ORGANIZATION,
    Fields,
    Participant,
    check_name,
    invalid,
    parse_roles,
    participant_key,
    read_participant,
)
from medledger.core.ledger.runtime import BlockContext, ContractError, StateReader, Writes
from medledger.core.ledger.tx import Transaction
from medledger.errors import InvalidInputError, TamperError

PROPOSE: Final = "authority.propose"
APPROVE: Final = "authority.approve"
AUTHORITIES_KEY: Final = "governance/authorities"
PROPOSAL_PREFIX: Final = "governance/proposal/"
_ID: Final = re.compile(r"[A-Za-z0-9_\-]{8,64}")


def current_authorities(state: StateReader, genesis_authorities: Sequence[str]) -> tuple[str, ...]:
    """The authority dids in force: the last governance change, else the genesis list."""
    raw = state.get(AUTHORITIES_KEY)
    if raw is None:
        return tuple(sorted(genesis_authorities))
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise TamperError("governance/authorities is not JSON") from e
    if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
        raise TamperError("governance/authorities is not a list of dids")
    return tuple(value)


class GovernanceContract:
    name: Final = "governance"
    namespace: Final = "governance/"
    tx_types: Final = frozenset({PROPOSE, APPROVE})

    def __init__(self, genesis_authorities: Sequence[str]) -> None:
        self._genesis = tuple(genesis_authorities)

    def apply(self, tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
        authorities = current_authorities(state, self._genesis)
        if tx.type == PROPOSE:
            return self._propose(tx, state, ctx, authorities)
        if tx.type == APPROVE:
            return self._approve(tx, state, ctx, authorities)
        raise ContractError("unknown_type", f"the governance contract has no {tx.type}")

    def _propose(
        self, tx: Transaction, state: StateReader, ctx: BlockContext, authorities: tuple[str, ...]
    ) -> Writes:
        f = Fields(
            tx.payload, required=("proposal_id", "action", "did"), optional=("name", "roles")
        )
        proposal_id = f.text("proposal_id", _ID, "8-64 of [A-Za-z0-9_-]")
        action = f.choice("action", ("add", "remove"))
        did = f.did("did")
        name: str | None = None
        roles: tuple[str, ...] = ()
        if action == "add":
            name = f.optional_string("name")
            roles = tuple(f.strings("roles", max_items=8))
            try:
                check_name(name or "")
                roles = parse_roles(ORGANIZATION, roles)
            except InvalidInputError as e:
                raise invalid("name/roles", str(e)) from e
        if tx.sender not in authorities:
            raise ContractError("not_authority", "only a current authority proposes")
        if state.get(PROPOSAL_PREFIX + proposal_id) is not None:
            raise ContractError("duplicate_proposal", "this proposal id is taken")
        if (action == "add") == (did in authorities) or (
            action == "remove" and len(authorities) == 1
        ):
            raise ContractError("no_change", f"cannot {action} {did[:24]}...")
        proposal: dict[str, Any] = {
            "proposal_id": proposal_id, "action": action, "did": did, "name": name,
            "roles": list(roles), "proposer": tx.sender, "approvals": [tx.sender],
            "status": "open", "decided_at": None,
        }  # fmt: skip
        return _maybe_execute(proposal, state, ctx, authorities)

    def _approve(
        self, tx: Transaction, state: StateReader, ctx: BlockContext, authorities: tuple[str, ...]
    ) -> Writes:
        f = Fields(tx.payload, required=("proposal_id",))
        proposal_id = f.text("proposal_id", _ID, "8-64 of [A-Za-z0-9_-]")
        if tx.sender not in authorities:
            raise ContractError("not_authority", "only a current authority approves")
        raw = state.get(PROPOSAL_PREFIX + proposal_id)
        if raw is None:
            raise ContractError("unknown_proposal", "no such proposal")
        proposal = json.loads(raw)
        if proposal["status"] != "open":
            raise ContractError("already_decided", "the proposal was already executed")
        if tx.sender in proposal["approvals"]:
            raise ContractError("already_approved", "this authority approved already")
        proposal["approvals"] = [*proposal["approvals"], tx.sender]
        return _maybe_execute(proposal, state, ctx, authorities)


def _maybe_execute(
    proposal: dict[str, Any], state: StateReader, ctx: BlockContext, authorities: tuple[str, ...]
) -> Writes:
    writes: dict[str, bytes | None] = {}
    approvals = [a for a in proposal["approvals"] if a in authorities]
    did = str(proposal["did"])
    if 2 * len(approvals) > len(authorities):  # a majority of the current authorities
        proposal["status"] = "executed"
        proposal["decided_at"] = ctx.height
        if proposal["action"] == "add":
            existing = read_participant(state, did)
            record = Participant(
                did=did,
                kind=ORGANIZATION,
                roles=tuple(proposal["roles"]),
                organization=None,
                name=str(proposal["name"]),
                authority=True,
                active=True,
                registered_by=str(proposal["proposer"]),
                registered_at=ctx.height,
                enc_key=None if existing is None else existing.enc_key,
            )
            writes[participant_key(did)] = record.to_state()
            new_set = sorted({*authorities, did})
        else:
            existing = read_participant(state, did)
            if existing is not None:
                fields = {**existing.to_json(), "authority": False}
                fields["roles"] = tuple(existing.roles)
                writes[participant_key(did)] = Participant(**fields).to_state()
            new_set = sorted(set(authorities) - {did})
        writes[AUTHORITIES_KEY] = canonical(new_set)
    writes[PROPOSAL_PREFIX + str(proposal["proposal_id"])] = canonical(proposal)
    return writes
