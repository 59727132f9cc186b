"""The participants contract: who is on the network, as what, and who vouched for them.

Transaction types and their steps (each step raises ``ContractError`` with the reason shown):

``participant.register`` ``{"did", "kind", "roles"?, "organization"?, "name"?}``
  1. parse: a did:key, a kind, roles from the kind's closed vocabulary, an organization for a
     practitioner only, a name for an organization only (people never carry one)
     (``invalid_payload``);
  2. the sender is an active participant (``sender_not_registered``);
  3. organizations and practitioners are registered by an authority (``not_authority``);
     patients (pseudonymous did:keys) by any active organization, authorities included
     (``not_organization``);
  4. a practitioner's organization is a registered, active organization
     (``unknown_organization``);
  5. the did is not registered yet, not even deactivated (``already_registered``).

``participant.update_roles`` ``{"did", "roles"}`` and ``participant.deactivate`` ``{"did"}``
  1. parse (``invalid_payload``); 2. active sender (``sender_not_registered``);
  3. the participant is registered (``unknown_participant``);
  4. the sender is an authority, or, for a patient, the organization that registered it
     (``not_authority``);
  5. deactivate only: an authority cannot be deactivated here (``not_allowed``): the authorities
     are exactly the genesis list, changed only by governance (a later issue);
  6. the participant is still active (``participant_inactive``); new roles must fit its kind
     (``invalid_payload``).

``participant.set_encryption_key`` ``{"enc_key"}``: the sender publishes (or replaces) the X25519
public key that data keys are wrapped to for it (``medledger.core.crypto.key_wrap``)
  1. parse: 64 lowercase hex, the canonical encoding of an X25519 point of more than low order
     (``common.parse_enc_key``; ``invalid_payload``); the payload names no participant, so a
     participant only ever sets its own key;
  2. the sender is an active participant (``sender_not_registered``).

Registration never makes an authority, and starts with no encryption key (``enc_key`` null), as
do the genesis authorities. State: ``participant/<did>`` (``common.Participant``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Final

from medledger.core.ledger.contracts.common import (
    INVALID_PAYLOAD,
    KINDS,
    ORGANIZATION,
    PARTICIPANT_PREFIX,
    PATIENT,
    PRACTITIONER,
    Fields,
    Participant,
    parse_enc_key,
    participant_key,
    read_participant,
    require_sender,
)
from medledger.core.ledger.runtime import BlockContext, ContractError, StateReader, Writes
from medledger.core.ledger.tx import Transaction
from medledger.errors import InvalidInputError

REGISTER: Final = "participant.register"
UPDATE_ROLES: Final = "participant.update_roles"
DEACTIVATE: Final = "participant.deactivate"
SET_ENCRYPTION_KEY: Final = "participant.set_encryption_key"

NOT_AUTHORITY: Final = "not_authority"
NOT_ORGANIZATION: Final = "not_organization"
NOT_ALLOWED: Final = "not_allowed"
UNKNOWN_ORGANIZATION: Final = "unknown_organization"
UNKNOWN_PARTICIPANT: Final = "unknown_participant"
ALREADY_REGISTERED: Final = "already_registered"
PARTICIPANT_INACTIVE: Final = "participant_inactive"

#: More roles than any vocabulary holds is malformed before it is checked against one.
_MAX_ROLES = 16


class ParticipantsContract:
    """Registers participants, changes roles, deactivates; each publishes its encryption key."""

    name: Final = "participants"
    namespace: Final = PARTICIPANT_PREFIX
    tx_types: Final = frozenset({REGISTER, UPDATE_ROLES, DEACTIVATE, SET_ENCRYPTION_KEY})

    def apply(self, tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
        if tx.type == REGISTER:
            return _register(tx, state, ctx)
        if tx.type == UPDATE_ROLES:
            return _update_roles(tx, state)
        if tx.type == DEACTIVATE:
            return _deactivate(tx, state)
        if tx.type == SET_ENCRYPTION_KEY:
            return _set_encryption_key(tx, state)
        raise ContractError("unknown_type", f"the participants contract has no {tx.type}")


def _register(tx: Transaction, state: StateReader, ctx: BlockContext) -> Writes:
    new = _parse_registration(tx, ctx)
    sender = require_sender(state, tx.sender)
    if new.kind in (ORGANIZATION, PRACTITIONER) and not sender.is_authority:
        raise ContractError(NOT_AUTHORITY, f"only an authority registers a {new.kind}")
    if new.kind == PATIENT and sender.kind != ORGANIZATION:
        raise ContractError(NOT_ORGANIZATION, "only an organization registers a patient")
    if new.organization is not None:
        organization = read_participant(state, new.organization)
        if organization is None or organization.kind != ORGANIZATION or not organization.active:
            raise ContractError(
                UNKNOWN_ORGANIZATION, "organization: not a registered, active organization"
            )
    if read_participant(state, new.did) is not None:
        raise ContractError(ALREADY_REGISTERED, "did: already registered")
    return {participant_key(new.did): new.to_state()}


def _parse_registration(tx: Transaction, ctx: BlockContext) -> Participant:
    fields = Fields(
        tx.payload, required=("did", "kind"), optional=("roles", "organization", "name")
    )
    did = fields.did("did")
    kind = fields.choice("kind", KINDS)
    roles = tuple(fields.strings("roles", max_items=_MAX_ROLES))
    organization = fields.optional_did("organization")
    name = fields.optional_string("name")
    return _checked(
        lambda: Participant(
            did=did,
            kind=kind,
            roles=roles,
            organization=organization,
            name=name,
            authority=False,
            active=True,
            registered_by=tx.sender,
            registered_at=ctx.height,
        )
    )


def _update_roles(tx: Transaction, state: StateReader) -> Writes:
    fields = Fields(tx.payload, required=("did", "roles"))
    did = fields.did("did")
    roles = fields.strings("roles", max_items=_MAX_ROLES)
    target = _managed_participant(tx, state, did)
    _require_active(target)
    updated = _checked(lambda: dataclasses.replace(target, roles=tuple(roles)))
    return {participant_key(did): updated.to_state()}


def _deactivate(tx: Transaction, state: StateReader) -> Writes:
    did = Fields(tx.payload, required=("did",)).did("did")
    target = _managed_participant(tx, state, did)
    if target.authority:
        raise ContractError(NOT_ALLOWED, "an authority is removed by governance, not here")
    _require_active(target)
    return {participant_key(did): dataclasses.replace(target, active=False).to_state()}


def _set_encryption_key(tx: Transaction, state: StateReader) -> Writes:
    Fields(tx.payload, required=("enc_key",))
    try:
        enc_key = parse_enc_key(tx.payload["enc_key"])
    except InvalidInputError as e:
        raise ContractError(INVALID_PAYLOAD, str(e)) from e
    sender = require_sender(state, tx.sender)
    updated = dataclasses.replace(sender, enc_key=enc_key)
    return {participant_key(sender.did): updated.to_state()}


def _managed_participant(tx: Transaction, state: StateReader, did: str) -> Participant:
    """Steps 2-4 of update_roles and deactivate: the target, if the sender may manage it."""
    sender = require_sender(state, tx.sender)
    target = read_participant(state, did)
    if target is None:
        raise ContractError(UNKNOWN_PARTICIPANT, "did: not registered")
    registrar = (
        target.kind == PATIENT
        and sender.kind == ORGANIZATION
        and target.registered_by == sender.did
    )
    if not (sender.is_authority or registrar):
        raise ContractError(
            NOT_AUTHORITY,
            "only an authority, or for a patient the organization that registered it, may",
        )
    return target


def _require_active(target: Participant) -> None:
    if not target.active:
        raise ContractError(PARTICIPANT_INACTIVE, "did: the participant is deactivated")


def _checked(make: Callable[[], Participant]) -> Participant:
    """A ``Participant`` built from payload values; a broken invariant is ``invalid_payload``."""
    try:
        return make()
    except InvalidInputError as e:
        raise ContractError(INVALID_PAYLOAD, str(e)) from e
