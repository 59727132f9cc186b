"""Passphrase-encrypted key files on a real filesystem (medledger.adapters.keystore).

Real scrypt, real AES-GCM, real files. scrypt runs at its floor (n = 2**14) so the many tamper
cases stay fast; the default (2**15) is exercised once. Each attack test is named after what it
stops: a flipped byte, a swapped did, weakened or inflated scrypt parameters, a file that others
can read, an oversized or malformed file, and a crash in the middle of a write.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medledger.adapters import files, keystore
from medledger.adapters.keystore import (
    DECRYPTION_FAILED,
    DEFAULT_SCRYPT_N,
    KEY_FILE_FORMAT,
    MAX_KEY_FILE_BYTES,
    KeyFile,
    ScryptParams,
    generate_key,
    read_key_file,
    seal_key,
    write_key_file,
)
from medledger.core.identity.did_key import did_from_public_key, public_key_from_did
from medledger.core.identity.keys import ParticipantKey
from medledger.errors import (
    InvalidInputError,
    MedledgerError,
    StorageError,
    TamperError,
    VerificationError,
)

N = 2**14  # the floor: fast, and still accepted on read
PASSPHRASE = "correct horse battery staple"
KEY = ParticipantKey.from_seed(bytes(range(32)))
OTHER = ParticipantKey.from_seed(bytes(32))


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """One real key file, written once: scrypt runs per read in each test, not per setup."""
    path = tmp_path_factory.mktemp("sealed") / "participant.key"
    write_key_file(path, KEY, PASSPHRASE, n=N)
    return path.read_bytes()


@pytest.fixture
def key_path(tmp_path: Path, sealed: bytes) -> Path:
    path = tmp_path / "keys" / "participant.key"
    files.atomic_write(path, sealed)
    return path


def _document(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data


def _store(path: Path, document: dict[str, Any]) -> None:
    files.atomic_write(path, json.dumps(document, indent=2).encode() + b"\n")


def _refused_opaquely(path: Path, passphrase: str = PASSPHRASE) -> None:
    with pytest.raises(VerificationError) as info:
        read_key_file(path, passphrase)
    assert type(info.value) is VerificationError
    assert str(info.value) == DECRYPTION_FAILED


def _flip(raw: bytes, index: int) -> bytes:
    flipped = bytearray(raw)
    flipped[index] ^= 0x01
    return bytes(flipped)


# --- round trips --------------------------------------------------------------------------
def test_round_trip(key_path: Path) -> None:
    key = read_key_file(key_path, PASSPHRASE)
    assert key == KEY
    assert key.export_seed() == KEY.export_seed()


def test_round_trip_with_default_cost(tmp_path: Path) -> None:
    path = tmp_path / "default.key"
    key = generate_key()
    write_key_file(path, key, PASSPHRASE)
    assert _document(path)["kdf"]["n"] == DEFAULT_SCRYPT_N == 2**15
    assert read_key_file(path, PASSPHRASE) == key


def test_file_format(key_path: Path) -> None:
    document = _document(key_path)
    assert list(document) == ["format", "did", "kdf", "cipher", "nonce", "ciphertext"]
    assert document["format"] == KEY_FILE_FORMAT == "medledger-key/v1"
    assert document["did"] == KEY.did
    assert document["kdf"] == {
        "name": "scrypt",
        "salt": document["kdf"]["salt"],
        "n": N,
        "r": 8,
        "p": 1,
    }
    assert document["cipher"] == "aes-256-gcm"
    assert len(base64.b64decode(document["kdf"]["salt"])) == 16
    assert len(base64.b64decode(document["nonce"])) == 12
    assert len(base64.b64decode(document["ciphertext"])) == 32 + 16
    assert KEY.export_seed() not in key_path.read_bytes()
    assert KEY.export_seed().hex().encode() not in key_path.read_bytes()


def test_file_is_owner_only(key_path: Path) -> None:
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_every_write_uses_fresh_salt_and_nonce(tmp_path: Path) -> None:
    a, b = tmp_path / "a.key", tmp_path / "b.key"
    write_key_file(a, KEY, PASSPHRASE, n=N)
    write_key_file(b, KEY, PASSPHRASE, n=N)
    da, db = _document(a), _document(b)
    assert da["kdf"]["salt"] != db["kdf"]["salt"]
    assert da["nonce"] != db["nonce"]
    assert da["ciphertext"] != db["ciphertext"]


def test_generated_keys_differ() -> None:
    assert len({generate_key().did for _ in range(8)}) == 8


def test_unicode_passphrase_in_either_normal_form(tmp_path: Path) -> None:
    path = tmp_path / "unicode.key"
    write_key_file(path, KEY, "m\u00e9decin-passe", n=N)  # precomposed é
    assert read_key_file(path, "me\u0301decin-passe") == KEY  # e + combining acute


def test_key_file_parses_and_reserializes_to_the_same_bytes(key_path: Path) -> None:
    data = key_path.read_bytes()
    assert KeyFile.from_bytes(data).to_bytes() == data


def test_seal_is_deterministic_given_salt_and_nonce() -> None:
    salt, nonce = b"s" * 16, b"n" * 12
    a = seal_key(KEY, PASSPHRASE, salt=salt, nonce=nonce, n=N)
    b = seal_key(KEY, PASSPHRASE, salt=salt, nonce=nonce, n=N)
    assert a == b


# --- wrong passphrase -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "passphrase",
    ["wrong passphrase", PASSPHRASE.upper(), PASSPHRASE + " ", PASSPHRASE[:-1], ""],
    ids=["other", "case", "trailing space", "truncated", "empty"],
)
def test_wrong_passphrase(key_path: Path, passphrase: str) -> None:
    _refused_opaquely(key_path, passphrase)


# --- tampering: every byte of every secret-bearing field ------------------------------------
def _decoded_field_cases() -> Iterator[tuple[str, int]]:
    for field, size in (("ciphertext", 48), ("nonce", 12), ("salt", 16), ("did", 32)):
        for index in range(size):
            yield field, index


@pytest.mark.parametrize(("field", "index"), list(_decoded_field_cases()), ids=str)
def test_single_byte_flip_fails_opaquely(key_path: Path, field: str, index: int) -> None:
    document = _document(key_path)
    if field == "did":  # another valid did:key: its public key with one byte flipped
        document["did"] = did_from_public_key(_flip(public_key_from_did(document["did"]), index))
    elif field == "salt":
        salt = base64.b64decode(document["kdf"]["salt"])
        document["kdf"]["salt"] = base64.b64encode(_flip(salt, index)).decode()
    else:
        raw = base64.b64decode(document[field])
        document[field] = base64.b64encode(_flip(raw, index)).decode()
    _store(key_path, document)
    _refused_opaquely(key_path)


def test_any_byte_flip_anywhere_in_the_file_is_refused(
    key_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real scrypt, memoised: most flips keep (salt, n, r, p, passphrase), so derive once each.
    derived: dict[tuple[bytes, int, int, int, str], bytes] = {}
    real_derive = ScryptParams.derive

    def memo_derive(params: ScryptParams, passphrase: str) -> bytes:
        cache_key = (params.salt, params.n, params.r, params.p, passphrase)
        if cache_key not in derived:
            derived[cache_key] = real_derive(params, passphrase)
        return derived[cache_key]

    monkeypatch.setattr(ScryptParams, "derive", memo_derive)
    original = key_path.read_bytes()
    outcomes: set[type[MedledgerError]] = set()
    for index in range(len(original)):
        files.atomic_write(key_path, _flip(original, index))
        with pytest.raises(MedledgerError) as info:
            read_key_file(key_path, PASSPHRASE)
        outcomes.add(type(info.value))
    # Structural damage is reported as malformed input, the rest only as the opaque failure.
    assert outcomes == {InvalidInputError, VerificationError}


def test_swapped_did_fails_opaquely(key_path: Path) -> None:
    # An attacker relabels the file as someone else's identity.
    document = _document(key_path)
    document["did"] = OTHER.did
    _store(key_path, document)
    _refused_opaquely(key_path)


def test_file_of_another_key_with_its_did_swapped(tmp_path: Path) -> None:
    # Two valid files; the second is given the first's did to impersonate it.
    a, b = tmp_path / "a.key", tmp_path / "b.key"
    write_key_file(a, KEY, PASSPHRASE, n=N)
    write_key_file(b, OTHER, PASSPHRASE, n=N)
    document = _document(b)
    document["did"] = KEY.did
    _store(b, document)
    _refused_opaquely(b)


def test_ciphertext_from_another_file_fails_opaquely(tmp_path: Path) -> None:
    a, b = tmp_path / "a.key", tmp_path / "b.key"
    write_key_file(a, KEY, PASSPHRASE, n=N)
    write_key_file(b, OTHER, PASSPHRASE, n=N)
    document = _document(a)
    document["ciphertext"] = _document(b)["ciphertext"]
    _store(a, document)
    _refused_opaquely(a)


def test_sealed_seed_of_another_key_is_tamper(tmp_path: Path) -> None:
    # Defence in depth: a tag-valid file whose seed is not its did's key (a broken writer).
    params = ScryptParams(salt=b"s" * 16, n=N)
    nonce = b"n" * 12
    ciphertext = AESGCM(params.derive(PASSPHRASE)).encrypt(
        nonce, OTHER.export_seed(), keystore.key_file_aad(KEY.did, params)
    )
    path = tmp_path / "mismatch.key"
    files.atomic_write(path, KeyFile(KEY.did, params, nonce, ciphertext).to_bytes())
    with pytest.raises(TamperError):
        read_key_file(path, PASSPHRASE)


# --- scrypt parameters: weakened or inflated ------------------------------------------------
@pytest.mark.parametrize("n", [2**15, 2**16])
def test_raised_n_fails_opaquely(key_path: Path, n: int) -> None:
    # In bounds, so scrypt runs -- but the AAD binds n, and the key differs anyway.
    document = _document(key_path)
    document["kdf"]["n"] = n
    _store(key_path, document)
    _refused_opaquely(key_path)


def test_changed_p_fails_opaquely(key_path: Path) -> None:
    document = _document(key_path)
    document["kdf"]["p"] = 2
    _store(key_path, document)
    _refused_opaquely(key_path)


@pytest.mark.parametrize(("n", "r"), [(2**15, 4), (2**16, 2)])
def test_same_memory_cost_with_lower_r_fails_opaquely(key_path: Path, n: int, r: int) -> None:
    document = _document(key_path)
    document["kdf"].update(n=n, r=r)
    _store(key_path, document)
    _refused_opaquely(key_path)


def test_parameter_weakening_attack_is_refused_before_scrypt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file re-sealed (by someone holding the passphrase) with cheap scrypt is refused, and
    # so is a bare edit of n; neither reaches the KDF.
    path = tmp_path / "weak.key"
    write_key_file(path, KEY, PASSPHRASE, n=N)
    monkeypatch.setattr(ScryptParams, "derive", _must_not_run)
    for n in (2**13, 2**10, 2, 1, 0, -(2**14)):
        document = _document(path)
        document["kdf"]["n"] = n
        _store(path, document)
        with pytest.raises(InvalidInputError) as info:
            read_key_file(path, PASSPHRASE)
        assert info.value.parameter == "kdf.n"


def _must_not_run(*_args: object) -> bytes:
    raise AssertionError("scrypt must not run on a file with out-of-bounds parameters")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 2**21),  # 2 GiB at r = 8: the memory-burning file
        ("n", 2**40),
        ("n", 2**14 + 1),  # not a power of two
        ("n", 3 * 2**14),
        ("n", 16384.0),
        ("n", "16384"),
        ("n", True),
        ("n", None),
        ("n", 2**62),
        ("r", 0),
        ("r", 1),  # n * r = 2**14: below the 16 MiB floor
        ("r", 7),
        ("r", 9),
        ("r", 2**30),
        ("r", "8"),
        ("p", 0),
        ("p", 5),
        ("p", 2**30),
        ("p", False),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_out_of_bounds_scrypt_parameters_are_refused_before_scrypt(
    key_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, value: object
) -> None:
    monkeypatch.setattr(ScryptParams, "derive", _must_not_run)
    document = _document(key_path)
    document["kdf"][field] = value
    _store(key_path, document)
    with pytest.raises(InvalidInputError) as info:
        read_key_file(key_path, PASSPHRASE)
    assert info.value.parameter == f"kdf.{field}"


def test_write_refuses_out_of_bounds_cost(tmp_path: Path) -> None:
    for n in (2**13, 2**21, 3 * 2**14):
        with pytest.raises(InvalidInputError):
            write_key_file(tmp_path / "x.key", KEY, PASSPHRASE, n=n)
    assert not (tmp_path / "x.key").exists()


# --- malformed files --------------------------------------------------------------------------
def _edit(document: dict[str, Any], edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    edit(document)
    return document


MALFORMED: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "unknown format": (lambda d: d.update(format="medledger-key/v2"), "format"),
    "format missing": (lambda d: d.pop("format"), "format"),
    "other cipher": (lambda d: d.update(cipher="aes-128-gcm"), "cipher"),
    "other kdf": (lambda d: d["kdf"].update(name="pbkdf2"), "kdf.name"),
    "kdf not an object": (lambda d: d.update(kdf="scrypt"), "kdf"),
    "kdf field missing": (lambda d: d["kdf"].pop("p"), "kdf"),
    "kdf extra field": (lambda d: d["kdf"].update(maxmem=1), "kdf"),
    "field missing": (lambda d: d.pop("nonce"), "key file"),
    "extra field": (lambda d: d.update(comment="hi"), "key file"),
    "did not a did:key": (lambda d: d.update(did="did:web:example.org"), "did"),
    "did of an X25519 key": (
        lambda d: d.update(did="did:key:z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW"),
        "did",
    ),
    "did not a string": (lambda d: d.update(did=None), "did"),
    "nonce too short": (lambda d: d.update(nonce=base64.b64encode(bytes(11)).decode()), "nonce"),
    "nonce too long": (lambda d: d.update(nonce=base64.b64encode(bytes(16)).decode()), "nonce"),
    "ciphertext truncated": (
        lambda d: d.update(ciphertext=base64.b64encode(bytes(47)).decode()),
        "ciphertext",
    ),
    "ciphertext extended": (
        lambda d: d.update(ciphertext=base64.b64encode(bytes(49)).decode()),
        "ciphertext",
    ),
    "ciphertext without tag": (
        lambda d: d.update(ciphertext=base64.b64encode(bytes(32)).decode()),
        "ciphertext",
    ),
    "salt too short": (
        lambda d: d["kdf"].update(salt=base64.b64encode(bytes(15)).decode()),
        "kdf.salt",
    ),
    "salt too long": (
        lambda d: d["kdf"].update(salt=base64.b64encode(bytes(65)).decode()),
        "kdf.salt",
    ),
    "nonce not base64": (lambda d: d.update(nonce="!!!!!!!!!!!!!!!!"), "nonce"),
    "nonce with an extra character": (lambda d: d.update(nonce=d["nonce"] + "A"), "nonce"),
    "nonce url-safe alphabet": (lambda d: d.update(nonce="-_" + d["nonce"][2:]), "nonce"),
    "salt with whitespace": (lambda d: d["kdf"].update(salt=" " + d["kdf"]["salt"]), "kdf.salt"),
    "salt non-canonical padding bits": (
        lambda d: d["kdf"].update(salt=d["kdf"]["salt"][:-3] + "B=="),
        "kdf.salt",
    ),
    "ciphertext a number": (lambda d: d.update(ciphertext=0), "ciphertext"),
}


@pytest.mark.parametrize("case", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_documents_are_refused(
    key_path: Path, case: tuple[Callable[[dict[str, Any]], object], str]
) -> None:
    edit, parameter = case
    _store(key_path, _edit(_document(key_path), edit))
    with pytest.raises(InvalidInputError) as info:
        read_key_file(key_path, PASSPHRASE)
    assert info.value.parameter == parameter


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n",
        b"null",
        b"[]",
        b'"medledger-key/v1"',
        b"\xff\xfe{}",
        b"[" * 2000 + b"]" * 2000,  # deep nesting, under the size limit
        b'{"format": "medledger-key/v1", "format": "medledger-key/v1"}',
        b'{"format": "medledger-key/v1", "n": NaN}',
    ],
    ids=["empty", "newline", "null", "array", "string", "utf-16", "deep", "dup key", "NaN"],
)
def test_non_documents_are_refused(key_path: Path, content: bytes) -> None:
    files.atomic_write(key_path, content)
    with pytest.raises(InvalidInputError):
        read_key_file(key_path, PASSPHRASE)


def test_duplicate_field_cannot_smuggle_a_second_did(key_path: Path) -> None:
    text = key_path.read_text()
    smuggled = text.replace('"did": ', f'"did": "{OTHER.did}",\n  "did": ', 1)
    files.atomic_write(key_path, smuggled.encode())
    with pytest.raises(InvalidInputError):
        read_key_file(key_path, PASSPHRASE)


@pytest.mark.parametrize("keep", [0, 1, 10, 100, 200, 300, -2, -3], ids=lambda k: f"[:{k}]")
def test_truncated_file_is_refused(key_path: Path, keep: int) -> None:
    data = key_path.read_bytes()
    files.atomic_write(key_path, data[:keep])
    with pytest.raises(InvalidInputError):
        read_key_file(key_path, PASSPHRASE)


def test_trailing_whitespace_truncated_still_reads(key_path: Path) -> None:
    # Only the final newline is lost: the document is intact, and the file still opens.
    files.atomic_write(key_path, key_path.read_bytes().rstrip(b"\n"))
    assert read_key_file(key_path, PASSPHRASE) == KEY


# --- the file on disk --------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666, 0o700 | 0o020])
def test_group_or_other_accessible_file_is_refused(key_path: Path, mode: int) -> None:
    key_path.chmod(mode)
    with pytest.raises(StorageError, match="readable by others"):
        read_key_file(key_path, PASSPHRASE)


def test_oversize_file_is_refused(key_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ScryptParams, "derive", _must_not_run)
    document = _document(key_path)
    padded = json.dumps(document, indent=2) + " " * MAX_KEY_FILE_BYTES
    files.atomic_write(key_path, padded.encode())
    with pytest.raises(StorageError, match="larger than"):
        read_key_file(key_path, PASSPHRASE)


def test_missing_file_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        read_key_file(tmp_path / "absent.key", PASSPHRASE)


def test_directory_is_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "p.key"
    write_key_file(path, KEY, PASSPHRASE, n=N)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


# --- passphrase rules on write ------------------------------------------------------------------
@pytest.mark.parametrize(
    "passphrase",
    ["", "short", "7 chars", "x" * 1025, "lone \ud800 surrogate", b"bytes passphrase", None],
    ids=["empty", "5 chars", "7 chars", "too long", "lone surrogate", "bytes", "None"],
)
def test_weak_or_invalid_passphrase_is_refused_on_write(tmp_path: Path, passphrase: Any) -> None:
    path = tmp_path / "p.key"
    with pytest.raises(InvalidInputError) as info:
        write_key_file(path, KEY, passphrase, n=N)
    assert info.value.parameter == "passphrase"
    assert not path.exists()


def test_undecodable_passphrase_on_read_is_invalid_input(key_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        read_key_file(key_path, "lone \ud800 surrogate")


def test_eight_character_passphrase_is_enough(tmp_path: Path) -> None:
    path = tmp_path / "p.key"
    write_key_file(path, KEY, "8 chars!", n=N)
    assert read_key_file(path, "8 chars!") == KEY


# --- atomicity -------------------------------------------------------------------------------
def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def test_rewrite_replaces_the_file_and_leaves_no_temp_files(key_path: Path) -> None:
    write_key_file(key_path, OTHER, "a new passphrase", n=N)
    assert read_key_file(key_path, "a new passphrase") == OTHER
    _refused_opaquely(key_path, PASSPHRASE)
    assert _siblings(key_path) == [key_path.name]
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


@pytest.mark.parametrize("failing", ["fsync", "rename"])
def test_failed_write_keeps_the_old_file(
    key_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    before = key_path.read_bytes()

    def fail(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    if failing == "fsync":
        monkeypatch.setattr(os, "fsync", fail)
    else:
        monkeypatch.setattr(Path, "replace", fail)
    with pytest.raises(StorageError):
        write_key_file(key_path, OTHER, PASSPHRASE, n=N)
    monkeypatch.undo()
    assert key_path.read_bytes() == before
    assert read_key_file(key_path, PASSPHRASE) == KEY
    assert _siblings(key_path) == [key_path.name]


def test_write_into_unwritable_directory_keeps_the_old_file(key_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    before = key_path.read_bytes()
    key_path.parent.chmod(0o500)
    try:
        with pytest.raises(StorageError):
            write_key_file(key_path, OTHER, PASSPHRASE, n=N)
    finally:
        key_path.parent.chmod(0o700)
    assert key_path.read_bytes() == before
    assert _siblings(key_path) == [key_path.name]


CRASHING_WRITER = """
import os, sys
from pathlib import Path
from medledger.adapters.keystore import write_key_file
from medledger.core.identity.keys import ParticipantKey

real_fsync = os.fsync
def crash(fd):
    real_fsync(fd)          # the new bytes are durable in the temp file ...
    os.kill(os.getpid(), 9) # ... and the process dies before the rename
os.fsync = crash
write_key_file(Path(sys.argv[1]), ParticipantKey.from_seed(bytes(32)), "a new passphrase", n=2**14)
"""


def test_crash_mid_write_leaves_the_old_file_whole(key_path: Path) -> None:
    before = key_path.read_bytes()
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(key_path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == -9, result.stderr
    assert key_path.read_bytes() == before
    assert read_key_file(key_path, PASSPHRASE) == KEY
    # The dead writer's temp file may remain; it is hidden, owner-only and never read.
    for name in _siblings(key_path):
        if name != key_path.name:
            assert name.startswith(f".{key_path.name}.")
            assert stat.S_IMODE((key_path.parent / name).stat().st_mode) == 0o600
    # The next write succeeds over it.
    write_key_file(key_path, OTHER, PASSPHRASE, n=N)
    assert read_key_file(key_path, PASSPHRASE) == OTHER
