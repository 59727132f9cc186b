"""Composition root: reads a node's home directory and wires adapters into services.

A home directory holds::

    node.toml            origin, listen address, checkpoint interval
    keys/log-signer.key  the log's Ed25519 signed-note key (owner-only, written atomically)
    data/log.db          the SQLite transparency log (+ -wal, -shm)
"""

from __future__ import annotations

import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from medledger.adapters.files import atomic_write, read_owner_only
from medledger.adapters.sqlite_log import SqliteLog
from medledger.config import LogConfig
from medledger.core.note import Signer, format_signer_key, parse_signer_key
from medledger.errors import ConfigurationError, MedledgerError
from medledger.services.log import TransparencyLog

SETTINGS_FILE = "node.toml"
SIGNER_KEY_FILE = Path("keys") / "log-signer.key"
LOG_DB_FILE = Path("data") / "log.db"
_ORIGIN = re.compile(r"^[A-Za-z0-9.\-]+(/[A-Za-z0-9._\-]+)*$")


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


def init_home(home: Path, *, origin: str | None = None, port: int = 8000) -> NodeSettings:
    """Create a node home: settings, a fresh log signing key and an empty log."""
    if (home / SETTINGS_FILE).exists():
        raise ConfigurationError(f"{home} is already initialised")
    settings = NodeSettings(origin=origin or default_origin(), port=port)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    signer = Signer(settings.origin, secrets.token_bytes(32))
    atomic_write(home / SIGNER_KEY_FILE, format_signer_key(signer).encode() + b"\n")
    SqliteLog(_db_path(home)).close()
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


def _db_path(home: Path) -> Path:
    path = home / LOG_DB_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


@dataclass
class Node:
    """A wired node: its settings, store and log service."""

    home: Path
    settings: NodeSettings
    store: SqliteLog
    log: TransparencyLog

    def close(self) -> None:
        self.store.close()


def open_node(home: Path) -> Node:
    settings = load_settings(home)
    signer = load_signer(home)
    if signer.name != settings.origin:
        raise ConfigurationError("the log signer key is not named after the log's origin")
    config = LogConfig(origin=settings.origin, checkpoint_interval_s=settings.checkpoint_interval_s)
    db = home / LOG_DB_FILE
    if not db.exists():
        raise ConfigurationError(f"{home} has no log database: run `medledger init`")
    store = SqliteLog(db, config.limits)
    return Node(
        home=home, settings=settings, store=store, log=TransparencyLog(store, signer, config)
    )
