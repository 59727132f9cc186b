"""The ledger workload: a cast of participants and a realistic mix of signed transactions.

The cast (deterministic keys from the run's seed): the genesis authority (the node's own
hospital key), organizations registered by it, practitioners of each organization, and a pool
of patients per organization. ``Workload.setup`` registers them all, in dependency order, before
any clock starts; ``Workload.mix`` then signs, one by one with the sender's own key:

- ``participant.register`` of a new patient, by an organization;
- ``record.anchor`` of version 1 of a new record, by a practitioner, for a patient of its
  organization registered earlier (from the pool, or by this workload at least
  ``REGISTERED_BEFORE`` transactions earlier, so concurrent HTTP clients cannot overtake it);
- ``access.batch`` of a new access-event batch root, by an organization.

Only version-1 anchors: a later version's ``prev`` is the hash of a version record that holds
the block height and time of its commit, unknowable when transactions are signed in advance.
Every transaction is expected to commit with ``ok``; the phases count the ones that do not.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import random
import time
from dataclasses import dataclass, field

from medledger.client import new_transaction
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.canonical import JSON
from medledger.core.ledger.genesis import Authority, Genesis
from medledger.core.ledger.tx import SignedTransaction

NETWORK = "bench-ledger"
REGISTERED_BEFORE = 1_000
_POOL = -(10**12)  # the position of a pool patient: registered before everything
_ORG_ROLES = ("hospital", "clinic", "lab")
_PRACTITIONER_ROLES = ("physician", "nurse", "lab-technician", "pharmacist")
_RESOURCE_TYPES = ("Observation", "Condition", "Encounter", "DiagnosticReport", "Procedure")


def _key(seed: int, label: str) -> ParticipantKey:
    return ParticipantKey.from_seed(hashlib.sha256(f"{seed}/{label}".encode()).digest())


def _hex64(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def _cid(*parts: object) -> str:
    """A CIDv1-shaped name (raw, sha2-256, base32 lowercase) as the blob store gives one."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return "bafkrei" + base64.b32encode(digest).decode("ascii").lower().rstrip("=")


@dataclass(frozen=True, slots=True)
class Organization:
    key: ParticipantKey
    practitioners: tuple[ParticipantKey, ...]
    pool_patients: tuple[str, ...]  # did:keys


@dataclass(frozen=True, slots=True)
class Cast:
    authority: ParticipantKey
    organizations: tuple[Organization, ...]

    @classmethod
    def create(cls, seed: int, organizations: int, practitioners: int, patients: int) -> Cast:
        orgs = tuple(
            Organization(
                key=_key(seed, f"org/{o}"),
                practitioners=tuple(_key(seed, f"org/{o}/pr/{p}") for p in range(practitioners)),
                pool_patients=tuple(_key(seed, f"org/{o}/pt/{p}").did for p in range(patients)),
            )
            for o in range(organizations)
        )
        return cls(authority=_key(seed, "authority"), organizations=orgs)

    def genesis(self, block_max_txs: int, block_interval_ms: int) -> Genesis:
        hospital = Authority(did=self.authority.did, name="Bench Hospital", roles=("hospital",))
        return Genesis(
            network=NETWORK,
            time_ms=1,
            authorities=(hospital,),
            block_max_txs=block_max_txs,
            block_interval_ms=block_interval_ms,
        )

    @property
    def senders(self) -> int:
        return 1 + sum(1 + len(o.practitioners) for o in self.organizations)


@dataclass(slots=True)
class Workload:
    """Signed transactions for one ledger (one node home); counters keep every id unique."""

    cast: Cast
    seed: int
    ttl_s: int
    mix: tuple[int, int]  # patient registrations, record anchors (per 100)
    _rng: random.Random = field(init=False)
    _signed: int = 0
    # Per organization, its patients' dids and the positions of their registrations.
    _patients: list[list[str]] = field(init=False)
    _positions: list[list[int]] = field(init=False)
    _counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._patients = [list(o.pool_patients) for o in self.cast.organizations]
        self._positions = [[_POOL] * len(o.pool_patients) for o in self.cast.organizations]

    def _sign(
        self, key: ParticipantKey, tx_type: str, payload: dict[str, JSON]
    ) -> SignedTransaction:
        self._signed += 1
        self._counts[tx_type] = self._counts.get(tx_type, 0) + 1
        return new_transaction(
            key, network=NETWORK, tx_type=tx_type, payload=payload, now_s=int(time.time()),
            ttl_s=self.ttl_s, nonce=f"s{self.seed}-n{self._signed:010d}",
        )  # fmt: skip

    def setup(self) -> list[SignedTransaction]:
        """Organizations, their practitioners and pool patients, in dependency order."""
        out: list[SignedTransaction] = []
        authority = self.cast.authority
        for o, org in enumerate(self.cast.organizations):
            out.append(self._sign(authority, "participant.register", {
                "did": org.key.did, "kind": "organization",
                "roles": [_ORG_ROLES[o % len(_ORG_ROLES)]], "name": f"Bench Organization {o}",
            }))  # fmt: skip
            for p, practitioner in enumerate(org.practitioners):
                out.append(self._sign(authority, "participant.register", {
                    "did": practitioner.did, "kind": "practitioner",
                    "roles": [_PRACTITIONER_ROLES[p % len(_PRACTITIONER_ROLES)]],
                    "organization": org.key.did,
                }))  # fmt: skip
            out.extend(
                self._sign(org.key, "participant.register", {"did": did, "kind": "patient"})
                for did in org.pool_patients
            )
        return out

    def next(self, n: int) -> list[SignedTransaction]:
        """``n`` transactions of the mix, each signed by its own sender."""
        registrations, anchors = self.mix
        out: list[SignedTransaction] = []
        for _ in range(n):
            roll = self._rng.randrange(100)
            o = self._rng.randrange(len(self.cast.organizations))
            if roll < registrations:
                out.append(self._register_patient(o))
            elif roll < registrations + anchors:
                out.append(self._anchor(o))
            else:
                out.append(self._access_batch(o))
        return out

    def _register_patient(self, o: int) -> SignedTransaction:
        org = self.cast.organizations[o]
        did = _key(self.seed, f"org/{o}/new-pt/{self._signed}").did
        self._patients[o].append(did)
        self._positions[o].append(self._signed)
        return self._sign(org.key, "participant.register", {"did": did, "kind": "patient"})

    def _anchor(self, o: int) -> SignedTransaction:
        org = self.cast.organizations[o]
        practitioner = self._rng.choice(org.practitioners)
        # Only patients whose registration is far enough ahead in the submission order.
        eligible = bisect.bisect_right(self._positions[o], self._signed - REGISTERED_BEFORE)
        patient = self._patients[o][self._rng.randrange(eligible)]
        n = self._signed
        return self._sign(practitioner, "record.anchor", {
            "patient": patient, "record_id": f"rec-{self.seed}-{n:010d}",
            "resource_type": self._rng.choice(_RESOURCE_TYPES), "version": 1,
            "commitment": _hex64("commitment", self.seed, n), "cid": _cid("blob", self.seed, n),
            "prev": None,
        })  # fmt: skip

    def _access_batch(self, o: int) -> SignedTransaction:
        org = self.cast.organizations[o]
        n = self._signed
        first = 1_700_000_000_000 + n * 1_000
        return self._sign(org.key, "access.batch", {
            "batch_id": f"ab-{self.seed}-{n:010d}", "root": _hex64("access", self.seed, n),
            "count": 1 + self._rng.randrange(2_000), "first_time_ms": first,
            "last_time_ms": first + self._rng.randrange(60_000),
        })  # fmt: skip

    def counts(self) -> dict[str, int]:
        """Transactions signed so far, by type (setup included)."""
        return dict(self._counts)
