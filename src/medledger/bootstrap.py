"""Composition root: reads a node's home directory and wires adapters into services.

A home directory holds::

    node.toml            origin, listen address, checkpoint interval
    genesis.json         the network's genesis: its id and its authority organizations
    keys/node.key        this node's organization key (did:key), passphrase-encrypted
    keys/log-signer.key  the transparency log's signed-note key (owner-only)
    keys/passphrase      demo homes only: the node key's passphrase (owner-only)
    data/log.db          the SQLite transparency log
    data/ledger.db       blocks, transactions and contract state
    data/keys.db         off-chain key vault: salts and data-key wraps (secure_delete)
    data/audit.db        sealed access-event batches and their anchors (ADR 0014)
    data/audit-events/   the events' bytes, in append-only segments
    data/audit-index.db  lookups by event id and patient (derived; rebuilt if lost)
    data/requests.db     signed requests' nonces, until they expire (replay refused)
    data/review-notes.db privacy officers' review notes (free text, off the ledger, ADR 0022)
    data/fhir.db         the FHIR API's search index (PHI, node-local, ADR 0018)
    data/blobs/          encrypted record versions, by CID

The node key's passphrase comes from ``$MEDLEDGER_PASSPHRASE`` or, for demo homes only, from
``keys/passphrase``.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medledger.adapters.blob_fs import FilesystemBlobStore
from medledger.adapters.files import atomic_write, read_owner_only
from medledger.adapters.keystore import generate_key, read_key_file, write_key_file
from medledger.adapters.sqlite_audit import SqliteAuditStore
from medledger.adapters.sqlite_fhir_index import SqliteFhirIndex
from medledger.adapters.sqlite_keys import SqliteKeyVault
from medledger.adapters.sqlite_ledger import SqliteLedger
from medledger.adapters.sqlite_log import SqliteLog
from medledger.adapters.sqlite_nonces import SqliteSeenRequests
from medledger.adapters.sqlite_review_notes import SqliteReviewNotes
from medledger.config import LogConfig
from medledger.core.identity.keys import ParticipantKey, encryption_keypair
from medledger.core.ledger.contracts import default_contracts
from medledger.core.ledger.genesis import Authority, Genesis, parse_genesis
from medledger.core.ledger.runtime import Contract, Runtime
from medledger.core.note import Signer, format_signer_key, parse_signer_key
from medledger.errors import ConfigurationError, MedledgerError
from medledger.services.access import AccessService
from medledger.services.audit import AuditService
from medledger.services.fhir import FhirService
from medledger.services.ledger import LedgerNode
from medledger.services.log import TransparencyLog
from medledger.services.ordering import SoloOrdering
from medledger.services.records import RecordService
from medledger.services.review_notes import ReviewNoteService

SETTINGS_FILE = "node.toml"
GENESIS_FILE = "genesis.json"
NODE_KEY_FILE = Path("keys") / "node.key"
SIGNER_KEY_FILE = Path("keys") / "log-signer.key"
PASSPHRASE_FILE = Path("keys") / "passphrase"
LOG_DB_FILE = Path("data") / "log.db"
LEDGER_DB_FILE = Path("data") / "ledger.db"
KEYS_DB_FILE = Path("data") / "keys.db"
AUDIT_DB_FILE = Path("data") / "audit.db"
REQUESTS_DB_FILE = Path("data") / "requests.db"
FHIR_DB_FILE = Path("data") / "fhir.db"
REVIEW_NOTES_DB_FILE = Path("data") / "review-notes.db"
BLOBS_DIR = Path("data") / "blobs"
PASSPHRASE_ENV = "MEDLEDGER_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
log = logging.getLogger("medledger.node")
_ORIGIN = re.compile(r"^[A-Za-z0-9.\-]+(/[A-Za-z0-9._\-]+)*$")
MAX_GENESIS_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """What ``node.toml`` says; every field checked on load."""

    origin: str
    host: str = "127.0.0.1"
    port: int = 8000
    checkpoint_interval_s: float = 1.0

    def __post_init__(self) -> None:
        if not _ORIGIN.match(self.origin) or len(self.origin) > 200:
            raise ConfigurationError(
                "origin must look like a schema-less URL, e.g. hospital.example/log"
            )
        if not 0 < self.port < 65536:
            raise ConfigurationError("port must be in 1..65535")
        LogConfig(origin=self.origin, checkpoint_interval_s=self.checkpoint_interval_s)

    def to_toml(self) -> str:
        return (
            "# medledger node settings\n"
            f'origin = "{self.origin}"\n'
            f'host = "{self.host}"\n'
            f"port = {self.port}\n"
            f"checkpoint_interval_s = {self.checkpoint_interval_s}\n"
        )


def default_origin() -> str:
    return f"medledger.local/log/{secrets.token_hex(4)}"


def init_home(
    home: Path,
    *,
    passphrase: str,
    origin: str | None = None,
    port: int = 8000,
    network: str = "medledger-dev",
    organization: str = "Local Hospital",
    genesis: Genesis | None = None,
    node_key: ParticipantKey | None = None,
    store_passphrase: bool = False,
) -> NodeSettings:
    """Create a node home. Without ``genesis``, a one-authority network led by this node."""
    if (home / SETTINGS_FILE).exists():
        raise ConfigurationError(f"{home} is already initialised")
    settings = NodeSettings(origin=origin or default_origin(), port=port)
    key = node_key or generate_key()
    if genesis is None:
        genesis = Genesis(
            network=network,
            time_ms=int(time.time() * 1000),
            authorities=(Authority(did=key.did, name=organization, roles=("hospital",)),),
        )
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_key_file(home / NODE_KEY_FILE, key, passphrase)
    if store_passphrase:
        atomic_write(home / PASSPHRASE_FILE, passphrase.encode())
    signer = Signer(settings.origin, secrets.token_bytes(32))
    atomic_write(home / SIGNER_KEY_FILE, format_signer_key(signer).encode() + b"\n")
    atomic_write(home / GENESIS_FILE, genesis.to_json(), mode=0o644)
    SqliteLog(_data_path(home, LOG_DB_FILE)).close()
    SqliteLedger(_data_path(home, LEDGER_DB_FILE)).close()
    # Written last: a home with node.toml is complete.
    atomic_write(home / SETTINGS_FILE, settings.to_toml().encode(), mode=0o644)
    return settings


def load_settings(home: Path) -> NodeSettings:
    path = home / SETTINGS_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigurationError(f"{home} is not a node home: run `medledger init`") from e
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigurationError(f"{path.name} is not valid TOML: {e}") from e
    try:
        return NodeSettings(
            origin=str(raw["origin"]),
            host=str(raw.get("host", "127.0.0.1")),
            port=int(raw.get("port", 8000)),
            checkpoint_interval_s=float(raw.get("checkpoint_interval_s", 1.0)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigurationError(f"{path.name}: missing or invalid setting {e}") from e


def load_signer(home: Path) -> Signer:
    raw = read_owner_only(home / SIGNER_KEY_FILE)
    try:
        return parse_signer_key(raw.decode("ascii").strip())
    except (UnicodeDecodeError, MedledgerError) as e:
        raise ConfigurationError("the log signer key file is malformed") from e


def load_genesis(home: Path) -> Genesis:
    path = home / GENESIS_FILE
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_GENESIS_BYTES + 1)
    except OSError as e:
        raise ConfigurationError(f"{home} has no readable {GENESIS_FILE}") from e
    try:
        return parse_genesis(raw)
    except MedledgerError as e:
        raise ConfigurationError(f"{GENESIS_FILE} is invalid: {e}") from e


def load_passphrase(home: Path) -> str:
    """A demo home's own passphrase file, else ``$MEDLEDGER_PASSPHRASE``."""
    if (home / PASSPHRASE_FILE).exists():
        return read_owner_only(home / PASSPHRASE_FILE).decode("utf-8")
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    raise ConfigurationError(f"set {PASSPHRASE_ENV} to the node key's passphrase")


def _data_path(home: Path, relative: Path) -> Path:
    path = home / relative
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@dataclass
class Node:
    """A wired node: stores, the log and the ledger, and the block builder's thread."""

    home: Path
    settings: NodeSettings
    genesis: Genesis
    key: ParticipantKey
    store: SqliteLog
    log: TransparencyLog
    ledger_store: SqliteLedger
    ledger: LedgerNode
    ordering: SoloOrdering
    vault: SqliteKeyVault
    blobs: FilesystemBlobStore
    records: RecordService
    audit_store: SqliteAuditStore
    audit: AuditService
    access: AccessService
    seen_requests: SqliteSeenRequests
    fhir_index: SqliteFhirIndex
    fhir: FhirService
    review_notes_store: SqliteReviewNotes
    review_notes: ReviewNoteService
    _builder: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        """Genesis block / crash repair, the block builder on its own thread, then settle
        record versions a crash left half-anchored. (The node publishes its encryption key
        with its first record, not here: a node that stores nothing writes nothing.)"""
        self.ledger.start(_now_ms())
        self._builder = threading.Thread(
            target=self.ledger.run_builder, args=(_now_ms,), name="block-builder", daemon=True
        )
        self._builder.start()
        self.audit.start()
        self.records.reconcile()

    def close(self) -> None:
        # The access-event log first: it stores every recorded event and has its anchors
        # committed while the block builder still runs.
        self.audit.close()
        self.ledger.stop()
        self.ordering.close()
        if self._builder is not None:
            self._builder.join(timeout=10)
        self.vault.close()
        self.fhir_index.close()
        self.audit_store.close()
        self.seen_requests.close()
        self.review_notes_store.close()
        self.ledger_store.close()
        self.store.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


def open_node(
    home: Path,
    *,
    passphrase: str | None = None,
    extra_contracts: Sequence[Contract] = (),
    genesis_authority: bool = True,
) -> Node:
    """Wire a node from its home. A consortium node (issue 7) adds the governance contract
    and may hold a key that becomes an authority only later (``genesis_authority=False``)."""
    settings = load_settings(home)
    signer = load_signer(home)
    if signer.name != settings.origin:
        raise ConfigurationError("the log signer key is not named after the log's origin")
    genesis = load_genesis(home)
    key = read_key_file(home / NODE_KEY_FILE, passphrase or load_passphrase(home))
    if genesis_authority and key.did not in {a.did for a in genesis.authorities}:
        raise ConfigurationError("this node's key is not a genesis authority (solo proposer)")
    config = LogConfig(origin=settings.origin, checkpoint_interval_s=settings.checkpoint_interval_s)
    for db in (LOG_DB_FILE, LEDGER_DB_FILE):
        if not (home / db).exists():
            raise ConfigurationError(f"{home} has no {db}: run `medledger init`")
    store = SqliteLog(home / LOG_DB_FILE, config.limits)
    log = TransparencyLog(store, signer, config)
    ledger_store = SqliteLedger(home / LEDGER_DB_FILE)
    ordering = SoloOrdering()
    ledger = LedgerNode(
        genesis=genesis,
        store=ledger_store,
        log=log,
        proposer=key,
        ordering=ordering,
        runtime=Runtime([*default_contracts(), *extra_contracts]),
    )
    vault = SqliteKeyVault(_data_path(home, KEYS_DB_FILE))
    blobs = FilesystemBlobStore(_data_path(home, BLOBS_DIR))
    audit_store = SqliteAuditStore(_data_path(home, AUDIT_DB_FILE))
    audit = AuditService(
        store=audit_store,
        ledger=ledger,
        log=log,
        node_key=key,
        random_bytes=secrets.token_bytes,
        clock_ms=_now_ms,
    )
    access = AccessService(ledger=ledger, audit=audit, node_did=key.did)
    fhir_index = SqliteFhirIndex(_data_path(home, FHIR_DB_FILE))
    records = RecordService(
        ledger=ledger,
        access=access,
        vault=vault,
        blobs=blobs,
        node_key=key,
        node_encryption=encryption_keypair(key),
        random_bytes=secrets.token_bytes,
        on_erase=fhir_index.forget,
    )
    fhir = FhirService(
        records=records, index=fhir_index, ledger=ledger, audit=audit, node_did=key.did
    )
    notes_store = SqliteReviewNotes(_data_path(home, REVIEW_NOTES_DB_FILE))
    review_notes = ReviewNoteService(
        store=notes_store, state_get=ledger_store.state_get, event=audit.event
    )
    return Node(
        home,
        settings,
        genesis,
        key,
        store,
        log,
        ledger_store,
        ledger,
        ordering,
        vault,
        blobs,
        records,
        audit_store,
        audit,
        access,
        SqliteSeenRequests(_data_path(home, REQUESTS_DB_FILE)),
        fhir_index,
        fhir,
        notes_store,
        review_notes,
    )
