"""The portal's ``state.js`` in real Chromium against Python's answers (ADR 0024, ADR 0007).

The same inputs go to ``medledger.core.state.smt`` and to the browser: key and value hashes;
state proofs made by ``smt.prove`` over a state of a few hundred keys (present keys, absent
keys whose path ends in an empty slot or at another key's leaf, the empty state, a one-key
state) and their mutations: a wrong value, a flipped sibling, a sibling missing or added, a
leaf of another key, a claim of absence for a present key. Each must get the same verdict
(and the same message) in both. Then block headers signed by a Python key under a Python
genesis: the genesis hash is ``genesis_hash``, a genuine header verifies, and a header with one
character changed, a proposer or signer outside the genesis, another network, or a
non-canonical genesis are refused with the step that names them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from medledger.adapters.keystore import generate_key
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.block import BlockHeader
from medledger.core.ledger.genesis import Authority, Genesis, genesis_hash
from medledger.core.state.smt import Leaf, StateProof, hash_key, hash_value, verify_proof
from medledger.errors import ProofError
from medledger.testing.memory_state import MemoryState
from tests.e2e.browser.crypto_server import serve_static

MODULES = ("encoding", "state")


@pytest.fixture(scope="module")
def static_url() -> Iterator[str]:
    with serve_static() as url:
        yield url


@pytest.fixture
def page(module_browser: BrowserContext, static_url: str) -> Iterator[Page]:
    page = module_browser.new_page()
    page.goto(f"{static_url}/__test__.html")
    yield page
    page.close()


def run(page: Page, script: str, arg: Any = None) -> Any:
    imports = ", ".join(f"{m}: await import('/js/lib/{m}.js')" for m in MODULES)
    return page.evaluate(f"async (arg) => {{ const lib = {{ {imports} }}; {script} }}", arg)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- hashes -----------------------------------------------------------------------------------
def test_hash_key_and_hash_value_agree_with_python(page: Page) -> None:
    keys = ["", "record/a/b", "participant/did:key:z6Mk", "récord/ü/€/𝄞", "x" * 512]
    values = [b"", b"\x00", b'{"version":1}', bytes(range(256))]
    got = run(
        page,
        """
        const { hexEncode, b64decode } = lib.encoding;
        return {
          keys: await Promise.all(arg.keys.map(async (k) => hexEncode(await lib.state.hashKey(k)))),
          values: await Promise.all(
            arg.values.map(async (v) => hexEncode(await lib.state.hashValue(b64decode(v))))),
        };
        """,
        {"keys": keys, "values": [b64(v) for v in values]},
    )
    assert got["keys"] == [hash_key(k).hex() for k in keys]
    assert got["values"] == [hash_value(v).hex() for v in values]


# --- proofs -----------------------------------------------------------------------------------
def _state(n: int) -> MemoryState:
    state = MemoryState()
    state.stage({f"record/p/{i}": f'{{"version":{i}}}'.encode() for i in range(n)})
    state.write_staged()
    return state


def _proof_json(proof: StateProof) -> dict[str, Any]:
    leaf = proof.leaf
    return {
        "siblings": [b64(s) for s in proof.siblings],
        "leaf": None
        if leaf is None
        else {"key_hash": b64(leaf.key_hash), "value_hash": b64(leaf.value_hash)},
    }


def _case(
    name: str, root: bytes, key: str, value: bytes | None, proof: StateProof
) -> dict[str, Any]:
    """One input for both sides, with Python's verdict (None: verified, else the message)."""
    value_hash = None if value is None else hash_value(value)
    try:
        verify_proof(root, hash_key(key), value_hash, proof)
        verdict = None
    except ProofError as e:
        verdict = str(e)
    return {
        "name": name,
        "root": b64(root),
        "key": key,
        "value": None if value is None else b64(value),
        "proof": _proof_json(proof),
        "python": verdict,
    }


def _flip(data: bytes) -> bytes:
    return bytes([data[0] ^ 0x01]) + data[1:]


def _cases() -> list[dict[str, Any]]:
    state = _state(300)
    root = state.root()
    cases: list[dict[str, Any]] = []
    present = "record/p/7"
    value, proof = state.prove(present)
    assert value is not None and proof.siblings and proof.leaf is not None
    cases += [
        _case("present", root, present, value, proof),
        _case("wrong value", root, present, value + b" ", proof),
        _case("absent claimed for a present key", root, present, None, proof),
        _case(
            "wrong sibling",
            root,
            present,
            value,
            StateProof((_flip(proof.siblings[0]), *proof.siblings[1:]), proof.leaf),
        ),
        _case(
            "top sibling wrong",
            root,
            present,
            value,
            StateProof((*proof.siblings[:-1], _flip(proof.siblings[-1])), proof.leaf),
        ),
        _case(
            "a sibling missing", root, present, value, StateProof(proof.siblings[1:], proof.leaf)
        ),
        _case(
            "a sibling added",
            root,
            present,
            value,
            StateProof((*proof.siblings, bytes(32)), proof.leaf),
        ),
        _case("another root", root[::-1], present, value, proof),
    ]
    other = "record/p/8"
    other_value, other_proof = state.prove(other)
    assert other_value is not None
    cases.append(_case("another key's proof and value", root, present, other_value, other_proof))
    assert other_proof.leaf is not None
    cases.append(
        _case(
            "another key's leaf as a present proof",
            root,
            present,
            other_value,
            StateProof(
                proof.siblings, Leaf(other_proof.leaf.key_hash, other_proof.leaf.value_hash)
            ),
        )
    )
    empty_slot = other_leaf = None
    for i in range(2000):
        key = f"record/absent/{i}"
        _, absent = state.prove(key)
        if absent.leaf is None and empty_slot is None:
            empty_slot = (key, absent)
        if absent.leaf is not None and other_leaf is None:
            other_leaf = (key, absent)
        if empty_slot and other_leaf:
            break
    assert empty_slot is not None and other_leaf is not None
    for label, (key, absent) in (("empty slot", empty_slot), ("another key's leaf", other_leaf)):
        cases += [
            _case(f"absent at an {label}", root, key, None, absent),
            _case(f"absent at an {label}, claimed present", root, key, b"x", absent),
        ]
        if absent.siblings:
            flipped = StateProof((_flip(absent.siblings[0]), *absent.siblings[1:]), absent.leaf)
            cases.append(_case(f"absent at an {label}, wrong sibling", root, key, None, flipped))
    assert other_leaf[1].leaf is not None
    moved = StateProof(other_leaf[1].siblings[1:], other_leaf[1].leaf)
    cases.append(_case("another key's leaf one level up", root, other_leaf[0], None, moved))
    empty = MemoryState()
    cases += [
        _case("the empty state", empty.root(), present, None, StateProof((), None)),
        _case(
            "the empty state, claimed present", empty.root(), present, b"x", StateProof((), None)
        ),
    ]
    one = MemoryState()
    one.stage({present: b"only"})
    one.write_staged()
    _, alone = one.prove(present)
    cases += [
        _case("a one-key state", one.root(), present, b"only", alone),
        _case(
            "a one-key state, absent key", one.root(), "record/q", None, one.prove("record/q")[1]
        ),
    ]
    return cases


def test_state_proofs_get_pythons_verdict_in_the_browser(page: Page) -> None:
    cases = _cases()
    got = run(
        page,
        """
        const { b64decode } = lib.encoding;
        const out = [];
        for (const c of arg) {
          const proof = lib.state.parseStateProof(c.proof);
          const value = c.value === null ? null : await lib.state.hashValue(b64decode(c.value));
          try {
            const keyHash = await lib.state.hashKey(c.key);
            await lib.state.verifyStateProof(b64decode(c.root), keyHash, value, proof);
            out.push({ name: c.name, verdict: null });
          } catch (e) {
            if (!(e instanceof lib.state.StateProofFailed)) throw e;
            out.push({ name: c.name, verdict: e.message, reason: e.reason });
          }
        }
        return out;
        """,
        cases,
    )
    assert [g["name"] for g in got] == [c["name"] for c in cases]
    for case, answer in zip(cases, got, strict=True):
        assert answer["verdict"] == case["python"], case["name"]
        if case["python"] is not None:
            assert answer["reason"] == "proof", case["name"]
    verified = {c["name"] for c in cases if c["python"] is None}
    assert verified == {
        "present",
        "absent at an empty slot",
        "absent at an another key's leaf",
        "the empty state",
        "a one-key state",
        "a one-key state, absent key",
    }


def test_malformed_proofs_are_refused_before_hashing(page: Page) -> None:
    good = _proof_json(StateProof((bytes(32),), None))
    malformed = [
        {**good, "extra": 1},
        {"siblings": "x", "leaf": None},
        {"siblings": [b64(bytes(31))], "leaf": None},
        {"siblings": ["not base64!"], "leaf": None},
        {"siblings": [b64(bytes(32))] * 257, "leaf": None},
        {"siblings": [], "leaf": {"key_hash": b64(bytes(32))}},
        None,
    ]
    got = run(
        page,
        """
        return arg.map((p) => {
          try { lib.state.parseStateProof(p); return "parsed"; }
          catch (e) { return e instanceof lib.state.StateProofFailed ? e.reason : String(e); }
        });
        """,
        malformed,
    )
    assert got == ["proof"] * len(malformed)


# --- blocks and genesis -------------------------------------------------------------------------
def _genesis(*keys: ParticipantKey, network: str = "medledger-test") -> Genesis:
    authorities = [Authority(k.did, f"Authority {i}", ("hospital",)) for i, k in enumerate(keys)]
    return Genesis(network=network, time_ms=1, authorities=tuple(authorities))


def _header(proposer: str, network: str = "medledger-test") -> BlockHeader:
    return BlockHeader(
        network=network, height=7, prev=bytes(range(32)), time_ms=1_700_000_000_000, tx_count=2,
        tx_root=bytes(32), results_root=b"\x01" * 32, state_root=b"\x02" * 32, log_size=42,
        log_root=b"\x03" * 32, proposer=proposer,
    )  # fmt: skip


def _block(header: BlockHeader, signer: ParticipantKey) -> dict[str, Any]:
    return {
        "height": header.height,
        "hash": header.hash().hex(),
        "header": header.to_json(),
        "signature": signer.sign(header.signing_bytes()).hex(),
    }


def _verify_blocks(page: Page, genesis: bytes, blocks: list[dict[str, Any]]) -> Any:
    return run(
        page,
        """
        const { b64decode, hexEncode } = lib.encoding;
        const genesis = await lib.state.parseGenesis(b64decode(arg.genesis));
        const out = { genesis: { ...genesis }, blocks: [] };
        for (const block of arg.blocks) {
          try {
            const ok = await lib.state.verifyBlock(block, genesis);
            out.blocks.push({ ...ok, stateRoot: hexEncode(ok.stateRoot) });
          } catch (e) {
            if (!(e instanceof lib.state.StateProofFailed)) throw e;
            out.blocks.push({ failed: e.reason, message: e.message });
          }
        }
        return out;
        """,
        {"genesis": b64(genesis), "blocks": blocks},
    )


def test_a_signed_header_verifies_and_each_tampering_fails_its_step(page: Page) -> None:
    a, b, outsider = generate_key(), generate_key(), generate_key()
    genesis = _genesis(a, b)
    header = _header(a.did)
    genuine = _block(header, a)
    one_char = json.loads(json.dumps(genuine))
    root = one_char["header"]["state_root"]
    one_char["header"]["state_root"] = ("3" if root[0] != "3" else "4") + root[1:]
    rehashed = {**one_char, "hash": BlockHeader.from_json(one_char["header"]).hash().hex()}
    flipped_sig = {
        **genuine,
        "signature": ("1" if genuine["signature"][0] != "1" else "2") + genuine["signature"][1:],
    }
    by_other_authority = _block(header, b)  # a consortium node's own signature (ADR 0016)
    by_outsider = _block(header, outsider)
    outsider_proposer = _block(_header(outsider.did), outsider)
    other_network = _block(_header(a.did, network="medledger-other"), a)
    extra_field = {**genuine, "header": {**genuine["header"], "extra": 1}}
    other_height = {**genuine, "height": 8}
    got = _verify_blocks(
        page,
        genesis.to_json(),
        [genuine, one_char, rehashed, flipped_sig, by_other_authority, by_outsider,
         outsider_proposer, other_network, extra_field, other_height],
    )  # fmt: skip
    assert got["genesis"] == {
        "network": "medledger-test",
        "authorities": [a.did, b.did],
        "hash": genesis_hash(genesis).hex(),
    }
    ok, *bad = got["blocks"]
    assert ok == {
        "height": 7, "hash": header.hash().hex(), "stateRoot": header.state_root.hex(),
        "logSize": 42, "timeMs": header.time_ms, "proposer": a.did, "signer": a.did,
    }  # fmt: skip
    assert got["blocks"][4]["signer"] == b.did and got["blocks"][4]["proposer"] == a.did
    steps = [x.get("failed") for x in bad]
    assert steps == ["header", "signature", "signature", None, "signature", "signature",
                     "header", "header", "header"]  # fmt: skip
    assert "hash" in bad[0]["message"]  # one character changed: not the header signed
    assert "does not verify" in bad[1]["message"]
    assert "not a genesis authority" in bad[5]["message"]


def test_a_genesis_that_is_not_canonical_or_has_no_authorities_is_refused(page: Page) -> None:
    a = generate_key()
    canonical = _genesis(a).to_json()
    spaced = canonical.replace(b",", b", ", 1)
    twice = json.loads(canonical)
    twice["authorities"] *= 2
    got = run(
        page,
        """
        const out = [];
        for (const g of arg) {
          try { await lib.state.parseGenesis(lib.encoding.b64decode(g)); out.push("parsed"); }
          catch (e) { out.push(e instanceof lib.state.StateProofFailed ? e.reason : String(e)); }
        }
        return out;
        """,
        [
            b64(spaced),
            b64(b"[]"),
            b64(b"{"),
            b64(json.dumps(twice, separators=(",", ":"), sort_keys=True).encode()),
        ],
    )
    assert got == ["genesis"] * 4


# --- the genesis pin (keyring.js) -------------------------------------------------------------
def test_the_genesis_is_pinned_per_network_on_first_use_and_another_is_refused(page: Page) -> None:
    got = run(
        page,
        """
        const keyring = await import("/js/lib/keyring.js");
        const [one, two] = ["1".repeat(64), "2".repeat(64)];
        const out = [await keyring.pinGenesis("net-a", one)];
        out.push(await keyring.pinGenesis("net-a", one));
        try {
          await keyring.pinGenesis("net-a", two);
          out.push("accepted");
        } catch (e) {
          out.push(e instanceof keyring.PinMismatch ? e.message : String(e));
        }
        out.push(await keyring.pinGenesis("net-b", two));
        try {
          await keyring.pinGenesis("net-a", "not hex");
          out.push("accepted");
        } catch (e) {
          out.push(e.name);
        }
        return out;
        """,
    )
    assert got[:2] == ["pinned", "known"]
    assert "another genesis for network net-a" in got[2]
    assert got[3:] == ["pinned", "TypeError"]
