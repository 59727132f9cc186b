"""C2SP tlog-tiles: tile names and paths, tile math, and the byte formats of tiles and bundles.

A tiled log serves its RFC 9162 tree as static resources (c2sp.org/tlog-tiles, "Merkle Tree"):
the hash tile at level ``L``, index ``N`` holds up to 256 consecutive hashes of tree level
``8 * L``, namely nodes ``[N * 256, N * 256 + W)``; the entry bundle ``N`` holds the entries
whose leaf hashes make up the level-0 tile ``N``. This module handles:

- naming: ``TileId`` and the strict path codec ``tile/<L>/<N>[.p/<W>]``,
  ``tile/entries/<N>[.p/<W>]`` ("Merkle Tree", "Log entries");
- tile math: which tiles a tree of a given size has and how wide they are ("Partial Tiles"),
  and in which tile row a perfect subtree hash lives and how to compute it from that row;
- bytes: hash tiles (concatenated 32-byte hashes) and entry bundles (big-endian uint16
  length-prefixed entries).

Reading or writing tiles, and deciding which tree size to trust, is not handled here: a store
resolves the ``TileId``s this module names, and a verifier checks the result against a
checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from medledger.config import Limits
from medledger.core.merkle.hashing import HASH_SIZE, node_hash
from medledger.errors import InvalidInputError, TooLargeError

#: A tile is a subtree of height 8 ...
TILE_HEIGHT = 8
#: ... so a full tile holds 2**8 hashes (8,192 bytes) or 256 entries.
TILE_WIDTH = 256
#: The spec's range of ``<L>``. Levels 0..7 already cover every tree of up to 2**64 - 1 leaves.
MAX_TILE_LEVEL = 63
#: RFC 9162 tree sizes are uint64.
MAX_TREE_SIZE = 2**64 - 1
#: Longer than any canonical tile path (the longest is 48 characters); refused before parsing.
MAX_TILE_PATH_LENGTH = 64

_MAX_ENTRY_BYTES = 0xFFFF  # a uint16 length prefix
_PATH_BASE = 1000  # <N> is written three decimal digits at a time
_PARTIAL = ".p"

TileKind = Literal["hash", "entries"]


def max_tile_index(level: int) -> int:
    """The highest tile index at ``level`` whose first hash a tree of uint64 size can have.

    Above level 7 no tree of uint64 size has a tile; index 0 stays nameable there because the
    spec's level range is 0..63.
    """
    return MAX_TREE_SIZE >> (TILE_HEIGHT * (level + 1))


@dataclass(frozen=True, slots=True, order=True)
class TileId:
    """One tile resource: a hash tile (``kind="hash"``) or an entry bundle (``kind="entries"``).

    An entry bundle mirrors the level-0 hash tile of the same index and width, so its level is
    always 0. ``width`` is 1..256; a tile narrower than 256 is partial and is named with the
    ``.p/<W>`` suffix.
    """

    level: int
    index: int
    width: int = TILE_WIDTH
    kind: TileKind = "hash"

    def __post_init__(self) -> None:
        if self.kind not in ("hash", "entries"):
            raise InvalidInputError("tile kind must be 'hash' or 'entries'", parameter="kind")
        top = 0 if self.kind == "entries" else MAX_TILE_LEVEL
        if not 0 <= self.level <= top:
            raise InvalidInputError(
                f"{self.kind} tile level must be in 0..{top}, got {self.level}", parameter="level"
            )
        if not 1 <= self.width <= TILE_WIDTH:
            raise InvalidInputError(
                f"tile width must be in 1..{TILE_WIDTH}, got {self.width}", parameter="width"
            )
        if not 0 <= self.index <= max_tile_index(self.level):
            raise InvalidInputError(
                f"tile index must be in 0..{max_tile_index(self.level)} at level {self.level}",
                parameter="index",
            )

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def is_entries(self) -> bool:
        return self.kind == "entries"

    @property
    def start_index(self) -> int:
        """The first entry the tile spans: ``N * 256**(L+1)`` (the spec's *start index*)."""
        return (self.index * TILE_WIDTH) << (TILE_HEIGHT * self.level)

    @property
    def end_index(self) -> int:
        """One past the last entry the tile spans (the spec's *end index* when full)."""
        return (self.index * TILE_WIDTH + self.width) << (TILE_HEIGHT * self.level)


# --- paths ----------------------------------------------------------------------------------
def format_tile_index(n: int) -> str:
    """``<N>``: zero-padded groups of three digits, all but the last prefixed with ``x``."""
    if n < 0:
        raise InvalidInputError(f"tile index must be >= 0, got {n}", parameter="index")
    groups = [f"{n % _PATH_BASE:03d}"]
    while n >= _PATH_BASE:
        n //= _PATH_BASE
        groups.append(f"x{n % _PATH_BASE:03d}")
    return "/".join(reversed(groups))


def format_tile_path(tile: TileId) -> str:
    """The path of ``tile`` relative to the log prefix; the inverse of ``parse_tile_path``."""
    level = "entries" if tile.is_entries else str(tile.level)
    suffix = f"{_PARTIAL}/{tile.width}" if tile.is_partial else ""
    return f"tile/{level}/{format_tile_index(tile.index)}{suffix}"


_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_GROUP = re.compile(r"x[0-9]{3}")
_LAST_GROUP = re.compile(r"[0-9]{3}")


def _bad_path(problem: str) -> InvalidInputError:
    return InvalidInputError(f"malformed tile path: {problem}", parameter="path")


def _parse_level(segment: str) -> tuple[int, TileKind]:
    if segment == "entries":
        return 0, "entries"
    if not _LEVEL.fullmatch(segment):
        raise _bad_path(f"level {segment!r} is not a decimal 0..63 without leading zeros")
    level = int(segment)
    if level > MAX_TILE_LEVEL:
        raise _bad_path(f"level {level} is above {MAX_TILE_LEVEL}")
    return level, "hash"


def _split_width(segments: list[str]) -> tuple[list[str], int]:
    """Strip a ``.p/<W>`` suffix off the index segments; width 256 when there is none."""
    if len(segments) >= 2 and segments[-2].endswith(_PARTIAL):
        width_text = segments[-1]
        if not _WIDTH.fullmatch(width_text):
            raise _bad_path(f"width {width_text!r} is not a decimal without leading zeros")
        width = int(width_text)
        if width >= TILE_WIDTH:
            raise _bad_path(f"partial width must be 1..{TILE_WIDTH - 1}, got {width}")
        return [*segments[:-2], segments[-2].removesuffix(_PARTIAL)], width
    if segments[-1].endswith(_PARTIAL):
        raise _bad_path("'.p' suffix without a width")
    return segments, TILE_WIDTH


def _parse_index(groups: list[str]) -> int:
    *head, last = groups
    for group in head:
        if not _GROUP.fullmatch(group):
            raise _bad_path(f"index group {group!r} is not 'x' and three digits")
    if not _LAST_GROUP.fullmatch(last):
        raise _bad_path(f"last index group {last!r} is not three digits")
    if head and head[0] == "x000":
        raise _bad_path("index has a leading zero group")
    index = 0
    for group in groups:
        index = index * _PATH_BASE + int(group.removeprefix("x"))
    return index


def parse_tile_path(path: str) -> TileId:
    """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]`` (relative to the prefix).

    Strict: only the one canonical spelling of a tile is accepted (c2sp.org/tlog-tiles,
    "Merkle Tree": no leading zeros in ``<L>`` or ``<W>``, ``<W>`` in 1..255, ``<L>`` in
    0..63, ``<N>`` in three-digit groups). Raises ``InvalidInputError(parameter="path")``.
    """
    if len(path) > MAX_TILE_PATH_LENGTH:
        raise _bad_path(f"longer than {MAX_TILE_PATH_LENGTH} characters")
    segments = path.split("/")
    if segments[0] != "tile":
        raise _bad_path("does not start with 'tile/'")
    if len(segments) < 3:
        raise _bad_path("missing the level or the index")
    level, kind = _parse_level(segments[1])
    groups, width = _split_width(segments[2:])
    index = _parse_index(groups)
    if index > max_tile_index(level):
        raise _bad_path(f"index is above {max_tile_index(level)}, the last at level {level}")
    tile = TileId(level, index, width, kind)
    if format_tile_path(tile) != path:  # defence in depth: exactly one spelling per tile
        raise _bad_path("not in canonical form")
    return tile


# --- tile math ------------------------------------------------------------------------------
def _check_size(size: int, parameter: str = "size") -> None:
    if not 0 <= size <= MAX_TREE_SIZE:
        raise InvalidInputError(f"tree size must be in 0..2**64-1, got {size}", parameter=parameter)


def tile_width(level: int, index: int, size: int) -> int:
    """Width of hash tile ``(level, index)`` in a tree of ``size`` leaves; 0 if it has none yet.

    Tree level ``8 * level`` has ``size >> (8 * level)`` complete nodes, of which the tile holds
    those in ``[index * 256, index * 256 + 256)`` ("Partial Tiles": the rightmost tile of a level
    has ``floor(size / 256**level) mod 256`` hashes). Entry bundle ``N`` has the width of the
    level-0 tile ``N``.
    """
    _check_size(size)
    if not 0 <= level <= MAX_TILE_LEVEL or index < 0:
        raise InvalidInputError(f"invalid tile ({level}, {index})", parameter="tile")
    nodes = size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, nodes - index * TILE_WIDTH))


def partial_tiles(size: int) -> list[TileId]:
    """The partial hash tiles at the right edge of a tree of ``size``, lowest level first."""
    _check_size(size)
    tiles: list[TileId] = []
    level = 0
    while nodes := size >> (TILE_HEIGHT * level):
        if nodes % TILE_WIDTH:
            tiles.append(TileId(level, nodes // TILE_WIDTH, nodes % TILE_WIDTH))
        level += 1
    return tiles


def new_tiles(old_size: int, new_size: int) -> Iterator[TileId]:
    """Hash tiles a tree of ``new_size`` has that a tree of ``old_size`` lacks in that width.

    That is the full tiles completed between the two sizes and the partial tiles on the right
    edge of ``new_size`` -- what a log writes when it grows, level by level, left to right.
    """
    _check_size(old_size, "old_size")
    _check_size(new_size, "new_size")
    if old_size > new_size:
        raise InvalidInputError("old_size must be <= new_size", parameter="old_size")
    return _new_tiles(old_size, new_size)  # checked now, not at the first next()


def _new_tiles(old_size: int, new_size: int) -> Iterator[TileId]:
    level = 0
    while new_nodes := new_size >> (TILE_HEIGHT * level):
        first = (old_size >> (TILE_HEIGHT * level)) // TILE_WIDTH
        for index in range(first, -(-new_nodes // TILE_WIDTH)):
            width = tile_width(level, index, new_size)
            if width != tile_width(level, index, old_size):
                yield TileId(level, index, width)
        level += 1


class NodeLocation(NamedTuple):
    """Where the hash of a perfect subtree lives: in hash tile ``(tile_level, tile_index)``.

    The node is the one at height ``level_in_tile`` within that tile, at position
    ``index_in_tile`` among the tile's nodes of that height: the root of the tile row's hashes
    ``[index_in_tile << level_in_tile, (index_in_tile + 1) << level_in_tile)``.
    """

    tile_level: int
    tile_index: int
    level_in_tile: int
    index_in_tile: int

    @property
    def min_width(self) -> int:
        """The tile width needed to compute the node: one past its last row hash."""
        return (self.index_in_tile + 1) << self.level_in_tile


def node_location(level: int, index: int) -> NodeLocation:
    """Locate node ``index`` at tree ``level`` (leaves ``[index << level, (index+1) << level)``).

    At ``level % 8 == 0`` the node is stored in the tile row at ``level // 8``; otherwise it is
    computed from ``2**(level % 8)`` consecutive hashes of that row.
    """
    if not 0 <= level <= MAX_TILE_LEVEL or index < 0 or (index + 1) << level > MAX_TREE_SIZE:
        raise InvalidInputError(f"invalid node ({level}, {index})", parameter="node")
    tile_level, level_in_tile = divmod(level, TILE_HEIGHT)
    per_tile = TILE_WIDTH >> level_in_tile  # nodes of this height in one tile
    tile_index, index_in_tile = divmod(index, per_tile)
    return NodeLocation(tile_level, tile_index, level_in_tile, index_in_tile)


def subtree_hash_from_tile_row(
    row_hashes: Sequence[bytes], level_in_tile: int, index_in_tile: int
) -> bytes:
    """The root of the perfect subtree over ``2**level_in_tile`` hashes of one tile row.

    The hashes are ``row_hashes[index_in_tile << level_in_tile : ...]``, folded pairwise with
    ``node_hash`` (RFC 9162 §2.1.1; the range is perfect, so the split is always in the middle).
    """
    if not 0 <= level_in_tile < TILE_HEIGHT:
        raise InvalidInputError(
            f"level_in_tile must be in 0..{TILE_HEIGHT - 1}", parameter="level_in_tile"
        )
    span = 1 << level_in_tile
    begin = index_in_tile * span
    if index_in_tile < 0 or begin + span > min(len(row_hashes), TILE_WIDTH):
        raise InvalidInputError(
            f"node {index_in_tile} at height {level_in_tile} needs {begin + span} row hashes, "
            f"got {len(row_hashes)}",
            parameter="index_in_tile",
        )
    layer = list(row_hashes[begin : begin + span])
    if any(len(h) != HASH_SIZE for h in layer):
        raise InvalidInputError("every row hash must be 32 bytes", parameter="row_hashes")
    while len(layer) > 1:
        layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]


# --- bytes ----------------------------------------------------------------------------------
def encode_hash_tile(hashes: Sequence[bytes]) -> bytes:
    """A hash tile's bytes: 1..256 concatenated 32-byte hashes."""
    if not 1 <= len(hashes) <= TILE_WIDTH:
        raise InvalidInputError(f"a tile holds 1..{TILE_WIDTH} hashes", parameter="hashes")
    if any(len(h) != HASH_SIZE for h in hashes):
        raise InvalidInputError("every tile hash must be 32 bytes", parameter="hashes")
    return b"".join(hashes)


def decode_hash_tile(data: bytes, width: int) -> list[bytes]:
    """Split a hash tile of ``width`` hashes; its length must be exactly ``width * 32``."""
    if not 1 <= width <= TILE_WIDTH:
        raise InvalidInputError(f"tile width must be in 1..{TILE_WIDTH}", parameter="width")
    if len(data) != width * HASH_SIZE:
        raise InvalidInputError(
            f"a tile of width {width} is {width * HASH_SIZE} bytes, got {len(data)}",
            parameter="data",
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_entry_bundle(entries: Sequence[bytes], *, limits: Limits | None = None) -> bytes:
    """An entry bundle: each of 1..256 entries as a big-endian uint16 length, then its bytes."""
    max_entry = min(_MAX_ENTRY_BYTES, (limits or Limits()).max_entry_bytes)
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise InvalidInputError(f"a bundle holds 1..{TILE_WIDTH} entries", parameter="entries")
    out = bytearray()
    for entry in entries:
        if len(entry) > max_entry:
            raise TooLargeError(
                f"entry of {len(entry)} bytes exceeds {max_entry}", parameter="entries"
            )
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def decode_entry_bundle(
    data: bytes, *, width: int | None = None, limits: Limits | None = None
) -> list[bytes]:
    """Split an entry bundle into its entries, strictly.

    Refuses an empty bundle, a truncated length or entry, more than 256 entries, an entry above
    ``limits.max_entry_bytes`` (``TooLargeError``) and, if ``width`` is given, any other count.
    """
    max_entry = (limits or Limits()).max_entry_bytes
    if len(data) > TILE_WIDTH * (2 + max_entry):
        raise TooLargeError(f"bundle of {len(data)} bytes is too large", parameter="data")
    if not data:
        raise InvalidInputError("empty entry bundle", parameter="data")
    entries: list[bytes] = []
    at = 0
    while at < len(data):
        if len(entries) == TILE_WIDTH:
            raise InvalidInputError(f"bundle has more than {TILE_WIDTH} entries", parameter="data")
        if at + 2 > len(data):
            raise InvalidInputError("bundle truncated inside a length prefix", parameter="data")
        n = int.from_bytes(data[at : at + 2], "big")
        at += 2
        if n > max_entry:
            raise TooLargeError(f"entry of {n} bytes exceeds {max_entry}", parameter="data")
        if at + n > len(data):
            raise InvalidInputError("bundle truncated inside an entry", parameter="data")
        entries.append(data[at : at + n])
        at += n
    if width is not None and len(entries) != width:
        raise InvalidInputError(
            f"bundle has {len(entries)} entries, its tile width is {width}", parameter="data"
        )
    return entries
