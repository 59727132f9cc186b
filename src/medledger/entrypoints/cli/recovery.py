"""`medledger keys split` / `keys recover`: a participant key split k-of-n among guardians.

The imperative shell around ``medledger.core.recovery.shamir``. What this module handles:

- ``keys split``: decrypt a key file, split its 32-byte Ed25519 seed k-of-n (randomness from
  ``secrets.token_bytes``), check that the shares recombine, and write one owner-only (0600)
  text file per guardian, ``<label>-share-<x>-of-<n>.txt``::

      # medledger key share 2 of 5, threshold 3, for did:key:z6Mk...
      medledger-share-v1:3:2:<y>:<tag>

- ``keys recover``: read share files (at most ``MAX_SHARE_FILE_BYTES`` each; ``#`` comment lines
  and all whitespace ignored, so a share retyped from paper across lines still reads), combine
  them -- the split's integrity tag turns too few, corrupted or mixed shares into one error --
  rebuild the key, check it against ``--expect-did`` when given (the only check that
  authenticates a recovery, see the shamir module) and write a new key file under a passphrase.

Neither command overwrites a file, and every failure is one line on stderr with a non-zero
exit. Not handled here: choosing guardians, handing shares over, recording who holds which.
The ``did`` in a share's comment line is public and is never trusted: recovery checks the key
it rebuilds, not what a file says about it.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from medledger.core.recovery.shamir import (
    MAX_SHARES,
    MIN_THRESHOLD,
    SHARE_TEXT_VERSION,
    Share,
    combine,
    format_share,
    parse_share,
    split,
)
from medledger.errors import ConflictError, InvalidInputError, MedledgerError, VerificationError

#: A share line is under 1.5 KB; the rest of a share file is comments. Anything larger is refused.
MAX_SHARE_FILE_BYTES = 16 * 1024
#: What ``--name`` may be: it becomes part of file names, so no separators and no leading dot.
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RECOVERY_FAILED = "the shares do not recover a key"
SHARE_FILE_MODE = 0o600


# --- pure helpers ------------------------------------------------------------------------------
def threshold_problem(k: int, n: int) -> str | None:
    """Why ``k``-of-``n`` cannot be split, as a message naming the options, or None."""
    if n > MAX_SHARES:
        return f"--shares must be at most {MAX_SHARES} (one share per non-zero byte value)"
    if k < MIN_THRESHOLD:
        return f"--threshold must be at least {MIN_THRESHOLD}: one share alone would be the key"
    if k > n:
        return f"--threshold ({k}) cannot be larger than --shares ({n})"
    return None


def share_file_name(label: str, x: int, n: int) -> str:
    return f"{label}-share-{x}-of-{n}.txt"


def share_file_text(share: Share, n: int, did: str) -> bytes:
    """A share file: a comment line saying what it is, then the share line."""
    header = f"# medledger key share {share.x} of {n}, threshold {share.k}, for {did}"
    return f"{header}\n{format_share(share)}\n".encode("ascii")


def share_line(text: str) -> str:
    """The share in a share file's text: every non-comment line, all whitespace removed.

    ``InvalidInputError`` if there is none, or more than one share in the file.
    """
    body = "".join(
        "".join(line.split()) for line in text.splitlines() if not line.lstrip().startswith("#")
    )
    if not body:
        raise InvalidInputError("no share line in the file", parameter="share")
    if body.count(SHARE_TEXT_VERSION) > 1:
        raise InvalidInputError("more than one share in the file", parameter="share")
    return body


def split_seed(seed: bytes, k: int, n: int) -> list[Share]:
    """Split ``seed`` k-of-n and check that the first and last k shares give it back."""
    shares = split(seed, k, n, secrets.token_bytes)
    if combine(shares[:k], k) != seed or combine(shares[-k:], k) != seed:
        raise VerificationError("the new shares do not recombine: nothing written")
    return shares


# --- files -----------------------------------------------------------------------------------
def _write_new_files(directory: Path, files: Sequence[tuple[Path, bytes]]) -> None:
    """Write every file owner-only and atomically, or none: on a failure, remove those written."""
    from medledger.adapters.files import atomic_write
    from medledger.errors import StorageError

    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise StorageError(f"cannot create {directory}: {e.strerror}") from e
    written: list[Path] = []
    try:
        for path, data in files:
            if path.exists():
                raise ConflictError(f"{path} exists: refusing to overwrite a share")
            atomic_write(path, data, mode=SHARE_FILE_MODE)
            written.append(path)
    except MedledgerError:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise


def _read_share_text(path: Path) -> str:
    from medledger.entrypoints.cli.main import fail

    try:
        with path.open("rb") as f:
            data = f.read(MAX_SHARE_FILE_BYTES + 1)
    except OSError as e:
        fail(f"cannot read share file {path}: {e.strerror}")
    if len(data) > MAX_SHARE_FILE_BYTES:
        fail(f"{RECOVERY_FAILED}: {path} is larger than {MAX_SHARE_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{RECOVERY_FAILED}: {path} is not a text file")


def _parse_share_file(path: Path, text: str) -> Share:
    try:
        return parse_share(share_line(text))
    except InvalidInputError as e:
        raise InvalidInputError(f"{path}: {e}", parameter="share") from e


# --- commands --------------------------------------------------------------------------------
def keys_split(
    key: Annotated[Path, typer.Option("--key", help="The key file to split.")],
    threshold: Annotated[
        int, typer.Option("--threshold", help="K: how many shares recover the key (2..N).")
    ],
    shares: Annotated[
        int, typer.Option("--shares", help="N: how many shares to write, one per guardian.")
    ],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Directory for the share files.")],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Label for the file names (default: the key file's stem)."),
    ] = None,
) -> None:
    """Split a key k-of-n among guardians: N share files (0600), any K of which recover it."""
    from medledger.adapters.keystore import read_key_file
    from medledger.entrypoints.cli.main import _passphrase, fail, out

    # 1. Everything that can be refused without the passphrase is refused first.
    problem = threshold_problem(threshold, shares)
    if problem is not None:
        fail(problem)
    label = key.stem if name is None else name
    if not LABEL_PATTERN.fullmatch(label):
        fail(f"--name {label!r} must be 1-64 letters, digits, '.', '_' or '-' (not first)")
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"--out-dir {out_dir} is not a directory")
    paths = [out_dir / share_file_name(label, x, shares) for x in range(1, shares + 1)]
    for path in paths:
        if path.exists():
            fail(f"{path} exists: refusing to overwrite a share")
    # 2. Decrypt, split, check the split, then write all the files or none.
    try:
        participant = read_key_file(key, _passphrase(confirm=False))
        new_shares = split_seed(participant.export_seed(), threshold, shares)
        _write_new_files(
            out_dir,
            [
                (path, share_file_text(share, shares, participant.did))
                for path, share in zip(paths, new_shares, strict=True)
            ],
        )
    except MedledgerError as e:
        fail(str(e))
    out.print(participant.did, highlight=False)
    out.print(
        f"split {threshold}-of-{shares}: any {threshold} of these files recover the key",
        highlight=False,
    )
    for path in paths:
        out.print(f"  {path}", highlight=False)


def keys_recover(
    share_files: Annotated[
        list[Path],
        typer.Argument(
            help="Share files: at least the split's threshold of them.", metavar="SHARE_FILE"
        ),
    ],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the new key file.")],
    expect_did: Annotated[
        str | None,
        typer.Option("--expect-did", help="Refuse unless the recovered key has this did:key."),
    ] = None,
) -> None:
    """Recover a key from K share files and write it to a new passphrase-encrypted key file."""
    from medledger.adapters.keystore import write_key_file
    from medledger.core.identity.did_key import public_key_from_did
    from medledger.core.identity.keys import ED25519_SEED_SIZE, ParticipantKey
    from medledger.entrypoints.cli.main import _passphrase, err, fail, out

    # 1. Refuse what needs no share: an existing target, a malformed did, too many files.
    if out_file.exists():
        fail(f"{out_file} exists: refusing to overwrite a key")
    if expect_did is not None:
        try:
            public_key_from_did(expect_did)
        except MedledgerError as e:
            fail(f"--expect-did is not an Ed25519 did:key: {e}")
    if len(share_files) > MAX_SHARES:
        fail(f"{RECOVERY_FAILED}: a split has at most {MAX_SHARES} shares")
    # 2. Read and parse every file, then combine: the tag catches short, bad or mixed sets.
    texts = [(path, _read_share_text(path)) for path in share_files]
    try:
        seed = combine([_parse_share_file(path, text) for path, text in texts])
        if len(seed) != ED25519_SEED_SIZE:
            raise InvalidInputError(
                f"they hold a {len(seed)}-byte secret, not a {ED25519_SEED_SIZE}-byte key seed"
            )
        key = ParticipantKey.from_seed(seed)
    except MedledgerError as e:
        fail(f"{RECOVERY_FAILED}: {e}")
    # 3. The did check authenticates the recovery; a share file's own header is not trusted.
    if expect_did is not None and key.did != expect_did:
        fail(f"{RECOVERY_FAILED}: they give {key.did}, not the expected {expect_did}")
    out.print(key.did, highlight=False)
    if expect_did is None:
        err.print(
            "check this did:key against the one you know for the key (--expect-did does it)",
            highlight=False,
        )
    # 4. A new key file under a passphrase asked for twice.
    try:
        passphrase = _passphrase(confirm=True)
        if out_file.exists():
            fail(f"{out_file} exists: refusing to overwrite a key")
        write_key_file(out_file, key, passphrase)
    except MedledgerError as e:
        fail(str(e))
    out.print(f"wrote {out_file}", highlight=False)


def register(keys_app: typer.Typer) -> None:
    """Add ``split`` and ``recover`` to the ``medledger keys`` group."""
    keys_app.command("split")(keys_split)
    keys_app.command("recover")(keys_recover)
