"""Off-chain records as users meet them: `medledger serve` over real HTTP, and the real
`medledger records put/get/erase` in subprocesses.

The custodian puts a record; a practitioner of the author organization gets it (key release,
local decryption, commitment checked against the ledger) and sees the content; a practitioner
of another organization gets a one-line refusal. Signed requests are refused when replayed,
expired, too long-lived, forged, or sent to the wrong endpoint; a bad CID, a malformed or
oversize body is a 4xx. A practitioner deactivated on the ledger is refused from then on, and
an erased record cannot be read by anyone.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from medledger.bootstrap import BLOBS_DIR
from medledger.client import new_transaction
from medledger.core.consent.simple import permit_to
from medledger.core.crypto.record_cipher import MAX_RECORD_PLAINTEXT
from medledger.core.identity.keys import ParticipantKey
from medledger.core.ledger.tx import SignedTransaction
from medledger.entrypoints.cli.demo import (
    DEMO_KEYS,
    DEMO_PASSPHRASE,
    create_demo_home,
    load_demo_keys,
)

from .conftest import MEDLEDGER, free_port, start, stop

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
    "valueQuantity": {"value": 36.6, "unit": "Cel"},
    "component": [{"valueQuantity": {"value": 0.1}}, {"valueQuantity": {"value": -3.25e-7}}],
}


@dataclass
class RecordsNode:
    """A served demo network with the hospital's and the clinic's people registered."""

    home: Path
    url: str
    process: subprocess.Popen[bytes]
    keys: dict[str, ParticipantKey]
    network: str
    http: httpx.Client

    def did(self, name: str) -> str:
        return self.keys[name].did

    def blob_files(self) -> set[str]:
        """Every file in the node's blob store (ciphertexts and any temp files)."""
        return {p.name for p in (self.home / BLOBS_DIR).rglob("*") if p.is_file()}

    def key_file(self, name: str) -> Path:
        return self.home / DEMO_KEYS / f"{name}.key"

    def sign(
        self, signer: str, tx_type: str, payload: dict[str, Any], **kw: Any
    ) -> SignedTransaction:
        kw.setdefault("now_s", int(time.time()))
        return new_transaction(
            self.keys[signer], network=self.network, tx_type=tx_type, payload=payload, **kw
        )

    def submit(self, signer: str, tx_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(
            "/ledger/transactions",
            content=self.sign(signer, tx_type, payload).wire,
            params={"wait": "commit"},
        )
        assert response.status_code < 300, response.text
        result: dict[str, Any] = response.json()
        assert result.get("ok") is True, result
        return result


@pytest.fixture(scope="module")
def records_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordsNode]:
    home = tmp_path_factory.mktemp("records-api")
    port = free_port()
    create_demo_home(home, port=port)
    url = f"http://127.0.0.1:{port}/"
    process = start(["serve", "--home", str(home), "--port", str(port)], url)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            network = str(http.get("/healthz").json()["network"])
            node = RecordsNode(home, url, process, load_demo_keys(home), network, http)
            for org, name, role in (
                ("hospital", "dr-house", "physician"),
                ("hospital", "nurse-joy", "nurse"),
                ("clinic", "dr-clinic", "physician"),
            ):
                payload = {
                    "did": node.did(name),
                    "kind": "practitioner",
                    "roles": [role],
                    "organization": node.did(org),
                }
                node.submit(org, "participant.register", payload)
            for name in ("patient-1", "patient-2"):
                payload = {"did": node.did(name), "kind": "patient", "roles": []}
                node.submit("hospital", "participant.register", payload)
            # patient-1 lets the hospital's practitioners read (ADR 0015: consent decides)
            consent = permit_to("c-hospital", node.did("patient-1"), node.did("hospital"))
            node.submit("patient-1", "consent.grant", {"consent": consent.to_json()})
            yield node
    finally:
        stop(process)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MEDLEDGER, *args],
        env={**os.environ, "MEDLEDGER_PASSPHRASE": DEMO_PASSPHRASE},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def assert_clean_failure(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def cli_put(node: RecordsNode, patient: str, record_id: str, content: Any, tmp: Path) -> Any:
    file = tmp / f"{record_id}.json"
    file.write_text(json.dumps(content))
    result = run(
        "records", "put", "--patient", node.did(patient), "--record-id", record_id,
        "--type", "Observation", "--file", str(file), "--node", node.url,
    )  # fmt: skip
    assert_ok(result)
    return json.loads(result.stdout)


def cli_get(node: RecordsNode, who: str, patient: str, record_id: str, *extra: str) -> Any:
    return run(
        "records", "get", "--patient", node.did(patient), "--record-id", record_id,
        "--key", str(node.key_file(who)), "--node", node.url, *extra,
    )  # fmt: skip


def read_request(node: RecordsNode, who: str, record_id: str, **kw: Any) -> SignedTransaction:
    payload = {"patient": node.did("patient-1"), "record_id": record_id, "purpose": "TREAT"}
    kw.setdefault("ttl_s", 60)
    return node.sign(who, kw.pop("tx_type", "request.read"), payload, **kw)


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


@pytest.fixture(scope="module")
def obs_cli(records_node: RecordsNode, tmp_path_factory: pytest.TempPathFactory) -> str:
    """patient-1's record, put through the CLI."""
    put = cli_put(records_node, "patient-1", "obs-cli", OBSERVATION, tmp_path_factory.mktemp("f"))
    assert put["version"] == 1
    return "obs-cli"


# --- who may read, through the CLI ---------------------------------------------------------------
@pytest.mark.parametrize("who", ["dr-house", "patient-1"])
def test_a_permitted_requester_gets_the_verified_content(
    records_node: RecordsNode, obs_cli: str, who: str
):
    result = cli_get(records_node, who, "patient-1", obs_cli)
    assert_ok(result)
    assert json.loads(result.stdout) == OBSERVATION


def test_get_writes_the_record_to_a_file(records_node: RecordsNode, obs_cli: str, tmp_path: Path):
    out = tmp_path / "record.json"
    result = cli_get(records_node, "dr-house", "patient-1", obs_cli, "--out", str(out))
    assert_ok(result)
    assert "verified against the ledger" in result.stdout
    assert json.loads(out.read_bytes()) == OBSERVATION


def test_a_practitioner_of_another_organization_gets_a_one_line_refusal(
    records_node: RecordsNode, obs_cli: str
):
    result = cli_get(records_node, "dr-clinic", "patient-1", obs_cli)
    assert_clean_failure(result, "record not read", "access denied", "no-matching-provision")


def test_an_unregistered_key_gets_a_one_line_refusal(records_node: RecordsNode, obs_cli: str):
    result = cli_get(records_node, "lab-tech", "patient-1", obs_cli)
    assert_clean_failure(result, "record not read", "requester-not-registered")


def test_a_missing_record_is_a_one_line_error(records_node: RecordsNode):
    result = cli_get(records_node, "patient-1", "patient-1", "obs-never-written")
    assert_clean_failure(result, "record not read")


def test_a_new_version_is_read_by_default_and_the_old_one_on_request(
    records_node: RecordsNode, tmp_path: Path
):
    first, second = dict(OBSERVATION, status="preliminary"), dict(OBSERVATION, status="amended")
    cli_put(records_node, "patient-1", "obs-versions", first, tmp_path)
    assert cli_put(records_node, "patient-1", "obs-versions", second, tmp_path)["version"] == 2
    latest = cli_get(records_node, "dr-house", "patient-1", "obs-versions")
    assert_ok(latest)
    assert json.loads(latest.stdout) == second
    old = cli_get(records_node, "dr-house", "patient-1", "obs-versions", "--version", "1")
    assert_ok(old)
    assert json.loads(old.stdout) == first


# --- signed requests over HTTP -------------------------------------------------------------------
def test_a_signed_read_returns_the_content(records_node: RecordsNode, obs_cli: str):
    request = read_request(records_node, "dr-house", obs_cli)
    response = records_node.http.post("/records/read", content=request.wire)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["version"], body["resource_type"]) == (1, "Observation")
    assert body["content"] == OBSERVATION


def test_a_replayed_request_is_refused(records_node: RecordsNode, obs_cli: str):
    request = read_request(records_node, "dr-house", obs_cli)
    first = records_node.http.post("/records/read", content=request.wire)
    assert first.status_code == 200, first.text
    again = records_node.http.post("/records/read", content=request.wire)
    assert again.status_code == 400
    assert error_of(again)["code"] == "replayed_nonce"


def test_a_replayed_denied_request_is_still_a_replay(records_node: RecordsNode, obs_cli: str):
    request = read_request(records_node, "dr-clinic", obs_cli)
    first = records_node.http.post("/records/read", content=request.wire)
    assert first.status_code == 403
    again = records_node.http.post("/records/read", content=request.wire)
    assert (again.status_code, error_of(again)["code"]) == (400, "replayed_nonce")


def test_an_expired_request_is_refused(records_node: RecordsNode, obs_cli: str):
    request = read_request(records_node, "dr-house", obs_cli, now_s=int(time.time()) - 120)
    response = records_node.http.post("/records/read", content=request.wire)
    assert response.status_code == 400
    assert error_of(response)["code"] == "expired"


def test_a_request_valid_for_too_long_is_refused(records_node: RecordsNode, obs_cli: str):
    request = read_request(records_node, "dr-house", obs_cli, ttl_s=3600)
    response = records_node.http.post("/records/read", content=request.wire)
    assert response.status_code == 400
    assert error_of(response)["parameter"] == "expires"


def test_a_request_for_another_network_is_refused(records_node: RecordsNode, obs_cli: str):
    payload = {"patient": records_node.did("patient-1"), "record_id": obs_cli, "purpose": "TREAT"}
    request = new_transaction(
        records_node.keys["dr-house"],
        network="another-network",
        tx_type="request.read",
        payload=payload,
        now_s=int(time.time()),
        ttl_s=60,
    )
    response = records_node.http.post("/records/read", content=request.wire)
    assert (response.status_code, error_of(response)["code"]) == (400, "wrong_network")


def test_a_forged_request_is_refused(records_node: RecordsNode, obs_cli: str):
    """Attack: dr-clinic rewrites dr-house's signed request as its own sender."""
    wire = read_request(records_node, "dr-house", obs_cli).wire
    forged = wire.replace(
        records_node.did("dr-house").encode(), records_node.did("dr-clinic").encode()
    )
    response = records_node.http.post("/records/read", content=forged)
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_signature"


@pytest.mark.parametrize(
    ("endpoint", "tx_type"),
    [
        ("/records/read", "request.erase"),
        ("/records/read", "request.key_release"),
        ("/records/key-release", "request.read"),
        ("/records/erase", "request.read"),
        ("/records/read", "record.anchor"),
    ],
)
def test_a_request_of_the_wrong_type_is_refused(
    records_node: RecordsNode, obs_cli: str, endpoint: str, tx_type: str
):
    request = read_request(records_node, "patient-1", obs_cli, tx_type=tx_type)
    response = records_node.http.post(endpoint, content=request.wire)
    assert response.status_code == 400, response.text
    assert error_of(response)["parameter"] == "type"
    assert_ok(cli_get(records_node, "patient-1", "patient-1", obs_cli))  # nothing was erased


@pytest.mark.parametrize(
    "payload",
    [
        {"record_id": "obs-cli", "purpose": "TREAT"},
        {"patient": "did:key:nope", "record_id": "obs-cli", "purpose": "TREAT"},
        {"patient": "PATIENT", "record_id": "../../etc/passwd", "purpose": "TREAT"},
        {"patient": "PATIENT", "record_id": "obs-cli", "purpose": "treat"},
        {"patient": "PATIENT", "record_id": "obs-cli", "purpose": "TREAT", "version": 0},
        {"patient": "PATIENT", "record_id": "obs-cli", "purpose": "TREAT", "version": "1"},
        {"patient": "PATIENT", "record_id": "obs-cli", "purpose": "TREAT", "session_key": "ab"},
    ],
)
def test_a_malformed_request_payload_is_refused(
    records_node: RecordsNode, obs_cli: str, payload: dict[str, Any]
):
    payload = {
        k: records_node.did("patient-1") if v == "PATIENT" else v for k, v in payload.items()
    }
    endpoint = "/records/key-release" if "session_key" in payload else "/records/read"
    tx_type = "request.key_release" if "session_key" in payload else "request.read"
    request = records_node.sign("patient-1", tx_type, payload, ttl_s=60)
    response = records_node.http.post(endpoint, content=request.wire)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b"{}", b'{"v":1}', b"\xff" * 64])
@pytest.mark.parametrize("endpoint", ["/records/read", "/records/key-release", "/records/erase"])
def test_a_malformed_signed_request_body_is_refused(
    records_node: RecordsNode, endpoint: str, body: bytes
):
    response = records_node.http.post(endpoint, content=body)
    assert response.status_code == 400, response.text
    assert "Traceback" not in response.text


# --- blobs ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cid",
    [
        "not-a-cid",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk",  # one character short
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",  # CIDv0
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykU",
    ],
)
def test_a_bad_cid_is_refused(records_node: RecordsNode, cid: str):
    response = records_node.http.get(f"/blobs/{cid}")
    assert response.status_code == 400, response.text
    assert error_of(response)["parameter"] == "cid"


def test_a_path_for_a_cid_reaches_no_file(records_node: RecordsNode):
    """Attack: an encoded ``../`` to read the key vault through the blob endpoint."""
    response = records_node.http.get("/blobs/%2e%2e%2f%2e%2e%2fkeys.db")
    assert response.status_code in (400, 404), response.text
    assert "error" in response.json()


def test_an_unknown_cid_is_not_found_and_a_known_one_is_its_ciphertext(
    records_node: RecordsNode, obs_cli: str
):
    unknown = records_node.http.get(
        "/blobs/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    )
    assert unknown.status_code == 404
    record = records_node.http.get(f"/ledger/records/{records_node.did('patient-1')}/{obs_cli}")
    cid = record.json()["versions"][0]["cid"]
    blob = records_node.http.get(f"/blobs/{cid}")
    assert blob.status_code == 200
    assert b"Observation" not in blob.content  # ciphertext only
    assert blob.content[0] == 0x01


def test_a_tampered_ciphertext_on_the_nodes_disk_is_refused_never_served(
    records_node: RecordsNode, tmp_path: Path
):
    """Attack: someone with the node's disk flips a byte of a stored ciphertext."""
    put = cli_put(records_node, "patient-1", "obs-tamper", OBSERVATION, tmp_path)
    cid = put["cid"]
    (path,) = (records_node.home / BLOBS_DIR).rglob(cid)
    original = path.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    path.write_bytes(bytes(flipped))
    try:
        blob = records_node.http.get(f"/blobs/{cid}")
        assert (blob.status_code, error_of(blob)["code"]) == (422, "verification_failed")
        result = cli_get(records_node, "dr-house", "patient-1", "obs-tamper")
        assert_clean_failure(result, "record not read")
        assert "Observation" not in result.stdout
    finally:
        path.write_bytes(original)
    assert_ok(cli_get(records_node, "dr-house", "patient-1", "obs-tamper"))


# --- the custodian's write ----------------------------------------------------------------------
def put_body(
    node: RecordsNode, record_id: str, content: Any, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = {
        "patient": node.did("patient-2"),
        "record_id": record_id,
        "resource_type": "Observation",
        "content": content,
    }
    return {**body, **(extra or {})}


def test_a_fhir_body_with_decimals_is_stored_and_read_back(records_node: RecordsNode):
    content = {**OBSERVATION, "valueQuantity": {"value": 98.6, "unit": "[degF]"}, "x": 1e21}
    response = records_node.http.post("/records", json=put_body(records_node, "obs-float", content))
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 1
    payload = {"patient": records_node.did("patient-2"), "record_id": "obs-float"}
    request = records_node.sign(
        "patient-2", "request.read", {**payload, "purpose": "PATRQT"}, ttl_s=60
    )
    read = records_node.http.post("/records/read", content=request.wire)
    assert read.status_code == 200, read.text
    assert read.json()["content"] == content


DEEP = b'{"patient":"P","record_id":"obs-deep","resource_type":"Observation","content":{"x":%s1%s}}'


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"patient": 1}', 400),
        (json.dumps({"content": "a string"}).encode(), 400),
        (
            b'{"patient":"P","record_id":"obs-nan","resource_type":"Observation",'
            b'"content":{"v":NaN}}',
            400,
        ),
        (DEEP % (b"[" * 1000, b"]" * 1000), 400),  # past Python's recursion limit
        (DEEP % (b"[" * 100_000, b"]" * 100_000), 400),
    ],
)
def test_a_malformed_put_body_is_refused(records_node: RecordsNode, body: bytes, status: int):
    body = body.replace(b'"P"', json.dumps(records_node.did("patient-2")).encode())
    response = records_node.http.post("/records", content=body)
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text


def test_a_record_file_nested_too_deep_is_a_one_line_error(
    records_node: RecordsNode, tmp_path: Path
):
    file = tmp_path / "deep.json"
    file.write_text('{"x":' + "[" * 100_000 + "]" * 100_000 + "}")
    result = run(
        "records", "put", "--patient", records_node.did("patient-2"), "--record-id", "obs-deep",
        "--type", "Observation", "--file", str(file), "--node", records_node.url,
    )  # fmt: skip
    assert_clean_failure(result, "is not JSON")


@pytest.mark.parametrize(
    "extra",
    [
        {"patient": "did:key:nope"},
        {"record_id": "a/b"},
        {"record_id": ""},
        {"resource_type": "observation"},
        {"resource_type": None},
    ],
)
def test_a_put_with_a_bad_field_is_refused(records_node: RecordsNode, extra: dict[str, Any]):
    body = put_body(records_node, "obs-bad", OBSERVATION, extra)
    response = records_node.http.post("/records", json=body)
    assert response.status_code == 400, response.text
    assert error_of(response)["parameter"] == next(iter(extra))


def test_a_put_for_an_unregistered_patient_is_a_conflict(records_node: RecordsNode):
    blobs = records_node.blob_files()
    patient = {"patient": records_node.did("patient-5")}
    body = put_body(records_node, "obs-nobody", OBSERVATION, patient)
    response = records_node.http.post("/records", json=body)
    assert response.status_code == 409, response.text
    assert "patient_not_registered" in error_of(response)["message"]
    assert records_node.blob_files() == blobs


def test_an_oversize_put_is_refused(records_node: RecordsNode):
    blobs = records_node.blob_files()
    content = {"resourceType": "Binary", "data": "A" * (MAX_RECORD_PLAINTEXT + 10)}
    response = records_node.http.post("/records", json=put_body(records_node, "obs-big", content))
    assert response.status_code == 413, response.text
    assert records_node.blob_files() == blobs
    record = records_node.http.get(f"/ledger/records/{records_node.did('patient-2')}/obs-big")
    assert record.status_code == 404


def test_a_put_just_under_the_limit_but_too_large_once_sealed_is_refused(
    records_node: RecordsNode,
):
    """The body limit leaves room for the envelope; the plaintext limit still applies."""
    content = {"data": "A" * (MAX_RECORD_PLAINTEXT - 5)}
    response = records_node.http.post("/records", json=put_body(records_node, "obs-big2", content))
    assert response.status_code == 413, response.text


# --- only while the ledger allows; erasure ------------------------------------------------------
def test_a_deactivated_practitioner_is_refused_from_then_on(
    records_node: RecordsNode, obs_cli: str
):
    assert_ok(cli_get(records_node, "nurse-joy", "patient-1", obs_cli))
    records_node.submit(
        "hospital", "participant.deactivate", {"did": records_node.did("nurse-joy")}
    )
    result = cli_get(records_node, "nurse-joy", "patient-1", obs_cli)
    assert_clean_failure(result, "requester-not-registered")


def test_erasure_is_refused_to_others_and_done_for_the_patient(
    records_node: RecordsNode, obs_cli: str
):
    def erase(who: str) -> subprocess.CompletedProcess[str]:
        return run(
            "records", "erase", "--patient", records_node.did("patient-1"), "--record-id",
            obs_cli, "--key", str(records_node.key_file(who)), "--node", records_node.url, "--yes",
        )  # fmt: skip

    for who in ("dr-clinic", "dr-house"):
        assert_clean_failure(erase(who), "record not erased")
    assert_ok(cli_get(records_node, "patient-1", "patient-1", obs_cli))

    erased = erase("patient-1")
    assert_ok(erased)
    assert json.loads(erased.stdout)["erased_versions"] == 1
    for who in ("patient-1", "dr-house"):
        assert_clean_failure(cli_get(records_node, who, "patient-1", obs_cli), "record not read")
    record = records_node.http.get(f"/ledger/records/{records_node.did('patient-1')}/{obs_cli}")
    assert record.json()["head"]["tombstoned"] is True
    cid = record.json()["versions"][0]["cid"]
    assert records_node.http.get(f"/blobs/{cid}").status_code == 404


def test_erase_without_yes_asks_and_does_nothing_on_no(records_node: RecordsNode, tmp_path: Path):
    cli_put(records_node, "patient-1", "obs-keep", OBSERVATION, tmp_path)
    result = run(
        "records", "erase", "--patient", records_node.did("patient-1"), "--record-id", "obs-keep",
        "--key", str(records_node.key_file("patient-1")), "--node", records_node.url,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    assert_ok(cli_get(records_node, "patient-1", "patient-1", "obs-keep"))
