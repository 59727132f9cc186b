"""C2SP tlog-tiles: paths, tile math and byte formats (medledger.core.tiles).

Examples marked "spec" are quoted from c2sp.org/tlog-tiles ("Merkle Tree", "Partial Tiles").
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medledger.config import Limits
from medledger.core.merkle import CompactRange, leaf_hash
from medledger.core.tiles import (
    MAX_TILE_LEVEL,
    MAX_TREE_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    NodeLocation,
    TileId,
    decode_entry_bundle,
    decode_hash_tile,
    encode_entry_bundle,
    encode_hash_tile,
    format_tile_index,
    format_tile_path,
    max_tile_index,
    new_tiles,
    node_location,
    parse_tile_path,
    partial_tiles,
    subtree_hash_from_tile_row,
    tile_width,
)
from medledger.errors import InvalidInputError, TooLargeError
from medledger.testing.reference_merkle import mth


def test_constants() -> None:
    assert (TILE_HEIGHT, TILE_WIDTH) == (8, 256)
    assert TILE_WIDTH == 2**TILE_HEIGHT


# --- index and path encoding -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "000"),
        (7, "007"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),  # spec
        (123456789, "x123/x456/789"),
        (10**18, "x001/x000/x000/x000/x000/x000/000"),
    ],
)
def test_format_tile_index(n: int, text: str) -> None:
    assert format_tile_index(n) == text


def test_format_tile_index_refuses_negative() -> None:
    with pytest.raises(InvalidInputError) as e:
        format_tile_index(-1)
    assert e.value.parameter == "index"


@pytest.mark.parametrize(
    ("path", "tile"),
    [
        ("tile/0/x001/x234/067", TileId(0, 1234067)),  # spec
        ("tile/0/000", TileId(0, 0)),
        ("tile/0/000.p/1", TileId(0, 0, 1)),
        ("tile/1/000.p/17", TileId(1, 0, 17)),
        ("tile/2/000.p/1", TileId(2, 0, 1)),
        ("tile/0/273", TileId(0, 273)),
        ("tile/0/274.p/112", TileId(0, 274, 112)),
        ("tile/0/x001/x234/067.p/255", TileId(0, 1234067, 255)),
        ("tile/63/000", TileId(63, 0)),
        ("tile/entries/x001/x234/067", TileId(0, 1234067, kind="entries")),
        ("tile/entries/000.p/8", TileId(0, 0, 8, "entries")),
        ("tile/0/x072/x057/x594/x037/x927/935", TileId(0, max_tile_index(0))),
        ("tile/7/000.p/255", TileId(7, 0, 255)),
    ],
)
def test_path_examples(path: str, tile: TileId) -> None:
    assert parse_tile_path(path) == tile
    assert format_tile_path(tile) == path


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("", id="empty"),
        pytest.param("tile", id="only-tile"),
        pytest.param("tile/0", id="no-index"),
        pytest.param("tile/0/", id="empty-index"),
        pytest.param("/tile/0/000", id="leading-slash"),
        pytest.param("tile/0/000/", id="trailing-slash"),
        pytest.param("tiles/0/000", id="wrong-root"),
        pytest.param("Tile/0/000", id="uppercase-root"),
        pytest.param("tile//000", id="empty-level"),
        pytest.param("tile/00/000", id="level-leading-zero"),
        pytest.param("tile/01/000", id="level-leading-zero-2"),
        pytest.param("tile/64/000", id="level-64"),
        pytest.param("tile/100/000", id="level-three-digits"),
        pytest.param("tile/-1/000", id="level-negative"),
        pytest.param("tile/+1/000", id="level-plus"),
        pytest.param("tile/a/000", id="level-letter"),
        pytest.param("tile/ 1/000", id="level-space"),
        pytest.param("tile/\u0661/000", id="level-arabic-digit"),
        pytest.param("tile/entry/000", id="entry-singular"),
        pytest.param("tile/data/000", id="sumdb-data"),
        pytest.param("tile/0/0", id="index-one-digit"),
        pytest.param("tile/0/00", id="index-two-digits"),
        pytest.param("tile/0/0000", id="index-four-digits"),
        pytest.param("tile/0/1234067", id="index-ungrouped"),
        pytest.param("tile/0/001/234", id="group-without-x"),
        pytest.param("tile/0/x001", id="last-group-with-x"),
        pytest.param("tile/0/x000/001", id="leading-zero-group"),
        pytest.param("tile/0/x0001/000", id="group-four-digits"),
        pytest.param("tile/0/x01/000", id="group-two-digits"),
        pytest.param("tile/0/X001/000", id="uppercase-x"),
        pytest.param("tile/0/x00a/000", id="group-letter"),
        pytest.param("tile/0/1_0", id="underscore"),
        pytest.param("tile/0/\u0661\u0662\u0663", id="arabic-digits"),
        pytest.param("tile/0/000.p", id="partial-no-width"),
        pytest.param("tile/0/000.p/", id="partial-empty-width"),
        pytest.param("tile/0/000.p/0", id="width-0"),
        pytest.param("tile/0/000.p/256", id="width-256"),
        pytest.param("tile/0/000.p/300", id="width-300"),
        pytest.param("tile/0/000.p/1000", id="width-four-digits"),
        pytest.param("tile/0/000.p/08", id="width-leading-zero"),
        pytest.param("tile/0/000.p/+8", id="width-plus"),
        pytest.param("tile/0/000.p/-8", id="width-negative"),
        pytest.param("tile/0/000.p/8/9", id="extra-after-width"),
        pytest.param("tile/0/000/.p/8", id="partial-own-segment"),
        pytest.param("tile/0/000.q/8", id="wrong-infix"),
        pytest.param("tile/0/000.p.p/8", id="double-infix"),
        pytest.param("tile/0/x001.p/000", id="infix-mid-index"),
        pytest.param("tile/entries", id="entries-no-index"),
        pytest.param("tile/entries/000.p/256", id="entries-width-256"),
        pytest.param("tile/entries/00", id="entries-short-group"),
        pytest.param("tile/0/x072/x057/x594/x037/x927/936", id="index-past-uint64"),
        pytest.param("tile/7/001", id="level-7-index-1"),
        pytest.param("tile/0/" + "x999/" * 20 + "999", id="too-long"),
        pytest.param("tile/0/000\n", id="trailing-newline"),
        pytest.param("tile/0/000 ", id="trailing-space"),
    ],
)
def test_malformed_paths_are_rejected(path: str) -> None:
    with pytest.raises(InvalidInputError, match="malformed tile path") as e:
        parse_tile_path(path)
    assert e.value.parameter == "path"


def _tiles() -> st.SearchStrategy[TileId]:
    hashes = st.integers(0, MAX_TILE_LEVEL).flatmap(
        lambda level: st.builds(
            TileId,
            st.just(level),
            st.integers(0, max_tile_index(level)),
            st.integers(1, TILE_WIDTH),
        )
    )
    entries = st.builds(
        TileId,
        st.just(0),
        st.integers(0, max_tile_index(0)),
        st.integers(1, TILE_WIDTH),
        st.just("entries"),
    )
    return hashes | entries


@given(st.integers(0, 10**30))
def test_tile_index_round_trip(n: int) -> None:
    text = format_tile_index(n)
    groups = text.split("/")
    assert all(len(g) == 4 and g[0] == "x" for g in groups[:-1])
    assert len(groups[-1]) == 3
    assert int("".join(g.removeprefix("x") for g in groups)) == n


@given(_tiles())
def test_tile_path_round_trip(tile: TileId) -> None:
    path = format_tile_path(tile)
    assert parse_tile_path(path) == tile
    assert path.endswith(f".p/{tile.width}") == tile.is_partial


@given(st.text(alphabet="tile/entrs0123456789xp.", max_size=40))
def test_parse_accepts_only_canonical_paths(path: str) -> None:
    try:
        tile = parse_tile_path(path)
    except InvalidInputError as e:
        assert e.parameter == "path"
    else:
        assert format_tile_path(tile) == path


# --- TileId ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "parameter"),
    [
        ((-1, 0, 256), "level"),
        ((64, 0, 256), "level"),
        ((0, -1, 256), "index"),
        ((0, max_tile_index(0) + 1, 256), "index"),
        ((8, 1, 256), "index"),
        ((0, 0, 0), "width"),
        ((0, 0, 257), "width"),
        ((1, 0, 256, "entries"), "level"),
        ((0, 0, 256, "data"), "kind"),
    ],
)
def test_invalid_tile_ids_cannot_exist(args: tuple[object, ...], parameter: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        TileId(*args)  # type: ignore[arg-type]
    assert e.value.parameter == parameter


def test_tile_id_spans() -> None:
    assert not TileId(0, 0).is_partial
    assert TileId(0, 0, 255).is_partial
    assert TileId(0, 0, kind="entries").is_entries
    # spec: start index n * 256**(l+1), end index (n + 1) * 256**(l+1)
    assert (TileId(1, 2).start_index, TileId(1, 2).end_index) == (2 * 65536, 3 * 65536)
    assert (TileId(0, 3, 5).start_index, TileId(0, 3, 5).end_index) == (768, 773)
    assert TileId(1, 1, 17).end_index == 65536 + 17 * 256


# --- tile widths -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "widths"),
    [
        # {(level, index): width} for every tile that exists (any other tile has width 0)
        (0, {}),
        (1, {(0, 0): 1}),
        (255, {(0, 0): 255}),
        (256, {(0, 0): 256, (1, 0): 1}),  # spec
        (257, {(0, 0): 256, (0, 1): 1, (1, 0): 1}),
        (65535, {**{(0, i): 256 for i in range(255)}, (0, 255): 255, (1, 0): 255}),
        (65536, {**{(0, i): 256 for i in range(256)}, (1, 0): 256, (2, 0): 1}),
        (65537, {**{(0, i): 256 for i in range(256)}, (0, 256): 1, (1, 0): 256, (2, 0): 1}),
    ],
)
def test_tile_widths_around_boundaries(size: int, widths: dict[tuple[int, int], int]) -> None:
    for level in range(4):
        for index in range(260):
            assert tile_width(level, index, size) == widths.get((level, index), 0)
    assert set(new_tiles(0, size)) == {TileId(lv, i, w) for (lv, i), w in widths.items()}


def test_spec_example_tree_of_70000() -> None:
    tiles = list(new_tiles(0, 70_000))
    level0 = [t for t in tiles if t.level == 0]
    # spec: 273 full level 0 tiles, one partial level 0 tile of width 112, one full level 1
    # tile, one partial level 1 tile of width 17, and one partial level 2 tile of width 1.
    assert [t for t in level0 if not t.is_partial] == [TileId(0, i) for i in range(273)]
    assert [t for t in level0 if t.is_partial] == [TileId(0, 273, 112)]
    assert [t for t in tiles if t.level == 1] == [TileId(1, 0), TileId(1, 1, 17)]
    assert [t for t in tiles if t.level >= 2] == [TileId(2, 0, 1)]
    assert partial_tiles(70_000) == [TileId(0, 273, 112), TileId(1, 1, 17), TileId(2, 0, 1)]


def test_largest_tree_has_tiles_up_to_level_7() -> None:
    assert partial_tiles(MAX_TREE_SIZE) == [
        TileId(level, max_tile_index(level), 255) for level in range(8)
    ]
    assert tile_width(8, 0, MAX_TREE_SIZE) == 0


def _all_tiles(size: int) -> set[TileId]:
    tiles = set()
    for level in range(3):
        for index in range(size // TILE_WIDTH + 1):
            if width := tile_width(level, index, size):
                tiles.add(TileId(level, index, width))
    return tiles


@given(st.integers(0, 70_000), st.integers(0, 70_000))
def test_new_tiles_is_the_difference_of_tile_sets(a: int, b: int) -> None:
    old, new = min(a, b), max(a, b)
    got = list(new_tiles(old, new))
    assert len(got) == len(set(got))
    assert set(got) == _all_tiles(new) - _all_tiles(old)
    assert set(partial_tiles(new)) == {t for t in _all_tiles(new) if t.is_partial}


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda: tile_width(0, 0, -1), "size"),
        (lambda: tile_width(0, 0, MAX_TREE_SIZE + 1), "size"),
        (lambda: tile_width(64, 0, 1), "tile"),
        (lambda: tile_width(0, -1, 1), "tile"),
        (lambda: partial_tiles(-1), "size"),
        (lambda: new_tiles(5, 4), "old_size"),
        (lambda: new_tiles(0, MAX_TREE_SIZE + 1), "new_size"),
    ],
)
def test_tile_math_refuses_bad_sizes(call: Callable[[], object], parameter: str) -> None:
    with pytest.raises(InvalidInputError) as e:
        call()
    assert e.value.parameter == parameter


# --- locating and computing subtree hashes ---------------------------------------------------
@pytest.mark.parametrize(
    ("level", "index", "location"),
    [
        (0, 0, (0, 0, 0, 0)),
        (0, 255, (0, 0, 0, 255)),
        (0, 256, (0, 1, 0, 0)),
        (1, 127, (0, 0, 1, 127)),
        (1, 128, (0, 1, 1, 0)),
        (7, 0, (0, 0, 7, 0)),
        (7, 3, (0, 1, 7, 1)),
        (8, 0, (1, 0, 0, 0)),
        (8, 257, (1, 1, 0, 1)),
        (9, 5, (1, 0, 1, 5)),
        (16, 1, (2, 0, 0, 1)),
        (63, 0, (7, 0, 7, 0)),
    ],
)
def test_node_location(level: int, index: int, location: tuple[int, int, int, int]) -> None:
    loc = node_location(level, index)
    assert loc == NodeLocation(*location)
    # the node covers row hashes [index_in_tile << k, (index_in_tile + 1) << k) of its tile
    assert loc.min_width == (loc.index_in_tile + 1) << loc.level_in_tile <= TILE_WIDTH
    row_first = loc.tile_index * TILE_WIDTH + (loc.index_in_tile << loc.level_in_tile)
    assert row_first == index << loc.level_in_tile


@pytest.mark.parametrize(("level", "index"), [(-1, 0), (64, 0), (0, -1), (63, 1), (0, 2**64 - 1)])
def test_node_location_refuses_nodes_outside_uint64_trees(level: int, index: int) -> None:
    with pytest.raises(InvalidInputError):
        node_location(level, index)


LEAVES = [f"entry {i}".encode() for i in range(1100)]


def _tile_rows(leaves: list[bytes]) -> dict[tuple[int, int], list[bytes]]:
    """Tile rows collected the way a log writer would: from the compact range's visitor."""
    rows: dict[tuple[int, int], list[bytes]] = {}

    def visit(level: int, index: int, h: bytes) -> None:
        if level % TILE_HEIGHT == 0:
            row = rows.setdefault((level // TILE_HEIGHT, index // TILE_WIDTH), [])
            assert len(row) == index % TILE_WIDTH
            row.append(h)

    CompactRange().extend((leaf_hash(e) for e in leaves), visit)
    return rows


def test_subtree_hash_from_level_0_row_matches_reference() -> None:
    leaves = LEAVES[:256]
    row = [leaf_hash(e) for e in leaves]
    for k in range(TILE_HEIGHT):
        for i in range(TILE_WIDTH >> k):
            expected = mth(leaves[i << k : (i + 1) << k])
            assert subtree_hash_from_tile_row(row, k, i) == expected


def test_subtree_hash_from_level_1_row_matches_reference() -> None:
    leaves = LEAVES[:1024]
    row = [mth(leaves[j * 256 : (j + 1) * 256]) for j in range(4)]
    for k in range(3):
        for i in range(4 >> k):
            span = 256 << k
            assert subtree_hash_from_tile_row(row, k, i) == mth(leaves[i * span : (i + 1) * span])


def test_every_perfect_node_of_a_tree_resolves_from_its_tile() -> None:
    size = len(LEAVES)
    rows = _tile_rows(LEAVES)
    for level in range(size.bit_length()):
        for index in range(size >> level):
            loc = node_location(level, index)
            width = tile_width(loc.tile_level, loc.tile_index, size)
            assert width >= loc.min_width
            row = rows[loc.tile_level, loc.tile_index][:width]
            got = subtree_hash_from_tile_row(row, loc.level_in_tile, loc.index_in_tile)
            assert got == mth(LEAVES[index << level : (index + 1) << level])


@pytest.mark.parametrize(
    ("row_len", "level_in_tile", "index_in_tile", "parameter"),
    [
        (256, 8, 0, "level_in_tile"),
        (256, -1, 0, "level_in_tile"),
        (256, 0, -1, "index_in_tile"),
        (256, 0, 256, "index_in_tile"),
        (3, 2, 0, "index_in_tile"),  # a partial row cannot yield a node it does not cover
        (257, 0, 256, "index_in_tile"),
    ],
)
def test_subtree_hash_refuses_out_of_range(
    row_len: int, level_in_tile: int, index_in_tile: int, parameter: str
) -> None:
    row = [bytes(32)] * row_len
    with pytest.raises(InvalidInputError) as e:
        subtree_hash_from_tile_row(row, level_in_tile, index_in_tile)
    assert e.value.parameter == parameter


def test_subtree_hash_refuses_short_hashes() -> None:
    with pytest.raises(InvalidInputError) as e:
        subtree_hash_from_tile_row([bytes(32), bytes(31)], 1, 0)
    assert e.value.parameter == "row_hashes"


# --- hash tiles ------------------------------------------------------------------------------
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=256))
def test_hash_tile_round_trip(hashes: list[bytes]) -> None:
    data = encode_hash_tile(hashes)
    assert len(data) == 32 * len(hashes)
    assert decode_hash_tile(data, len(hashes)) == hashes


@pytest.mark.parametrize(
    ("data", "width"),
    [(b"", 1), (bytes(31), 1), (bytes(33), 1), (bytes(64), 1), (bytes(32), 2), (bytes(32), 0)],
)
def test_hash_tile_of_wrong_length_is_rejected(data: bytes, width: int) -> None:
    with pytest.raises(InvalidInputError):
        decode_hash_tile(data, width)


@pytest.mark.parametrize("hashes", [[], [bytes(32)] * 257, [bytes(31)]])
def test_encode_hash_tile_refuses_bad_input(hashes: list[bytes]) -> None:
    with pytest.raises(InvalidInputError) as e:
        encode_hash_tile(hashes)
    assert e.value.parameter == "hashes"


# --- entry bundles ---------------------------------------------------------------------------
def test_entry_bundle_known_bytes() -> None:
    assert encode_entry_bundle([b"", b"ab", b"\x00" * 258]) == (
        b"\x00\x00" + b"\x00\x02ab" + b"\x01\x02" + b"\x00" * 258
    )


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=256))
def test_entry_bundle_round_trip(entries: list[bytes]) -> None:
    data = encode_entry_bundle(entries)
    assert decode_entry_bundle(data) == entries
    assert decode_entry_bundle(data, width=len(entries)) == entries


def test_entry_bundle_holds_the_largest_entry() -> None:
    entry = b"\xff" * 65_535
    data = encode_entry_bundle([entry])
    assert data[:2] == b"\xff\xff"
    assert decode_entry_bundle(data) == [entry]


def test_entry_of_65536_bytes_is_too_large() -> None:
    with pytest.raises(TooLargeError) as e:
        encode_entry_bundle([b"x" * 65_536])
    assert e.value.parameter == "entries"


def test_entry_bundle_limits_are_enforced() -> None:
    limits = Limits(max_entry_bytes=4)
    assert decode_entry_bundle(b"\x00\x04abcd", limits=limits) == [b"abcd"]
    with pytest.raises(TooLargeError):
        decode_entry_bundle(b"\x00\x05abcde", limits=limits)
    with pytest.raises(TooLargeError):
        encode_entry_bundle([b"abcde"], limits=limits)
    with pytest.raises(TooLargeError):
        decode_entry_bundle(b"\x00\x00" * 256 + bytes(4 * 256 + 1), limits=limits)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00", id="half-length"),
        pytest.param(b"\x00\x01", id="missing-entry"),
        pytest.param(b"\x00\x05abc", id="short-entry"),
        pytest.param(b"\x00\x01a\x00", id="trailing-half-length"),
        pytest.param(b"\x00\x01a\x00\x02b", id="second-entry-short"),
        pytest.param(b"\xff\xffabc", id="huge-length-prefix"),
        pytest.param(b"\x00\x00" * 257, id="257-entries"),
    ],
)
def test_malformed_bundles_are_rejected(data: bytes) -> None:
    with pytest.raises(InvalidInputError) as e:
        decode_entry_bundle(data)
    assert e.value.parameter == "data"


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=20), st.data())
def test_truncated_bundle_is_rejected(entries: list[bytes], data: st.DataObject) -> None:
    encoded = encode_entry_bundle(entries)
    cut = data.draw(st.integers(1, len(encoded) - 1))
    # a cut between two entries yields a shorter valid bundle; anywhere else it is malformed
    try:
        shorter = decode_entry_bundle(encoded[:cut])
    except InvalidInputError:
        return
    assert shorter == entries[: len(shorter)]
    assert len(shorter) < len(entries)


def test_bundle_width_mismatch_is_rejected() -> None:
    data = encode_entry_bundle([b"a", b"b"])
    with pytest.raises(InvalidInputError, match="tile width"):
        decode_entry_bundle(data, width=3)


@pytest.mark.parametrize("entries", [[], [b""] * 257])
def test_encode_bundle_refuses_bad_counts(entries: list[bytes]) -> None:
    with pytest.raises(InvalidInputError) as e:
        encode_entry_bundle(entries)
    assert e.value.parameter == "entries"
