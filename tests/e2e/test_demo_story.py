"""What a newcomer sees after `make run`: the demo plays the consent story (issue 5) and
serves its data through the FHIR API (issue 6); the commands `make run` prints work."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from .cli import ok, run
from .conftest import free_port, start, stop


def test_the_demo_story_is_in_the_audit_trail_and_the_data_in_fhir(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    home = tmp_path / "demo"
    process = start(["demo", "--home", str(home), "--port", str(port)], url)
    try:
        keys = home / "demo-keys"
        receipts = tmp_path / "receipts"
        deadline = time.monotonic() + 90
        table = ""
        while "BREAK-GLASS" not in table and time.monotonic() < deadline:
            result = run("audit", "list", "--node", url, "--key", str(keys / "patient-1.key"),
                         "--receipts", str(receipts))  # fmt: skip
            table = result.stdout
            time.sleep(0.5)
        assert "BREAK-GLASS" in table and "denied" in table and "permitted" in table
        log_key = httpx.get(url + "log/verifier-key", timeout=5).text.strip()
        for receipt in sorted(receipts.glob("*.json"))[:3]:
            assert "OK" in ok(run("receipt", "verify", str(receipt), "--key", log_key))
        token = ok(run("token", "mint", "--node", url, "--key", str(keys / "dr-house.key"),
                       "--scope", "user/*.cruds")).strip()  # fmt: skip
        bundle = httpx.get(
            url + "fhir/Patient", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ).json()
        # patients 2-5 consented to the hospital; patient-1 revoked Dr House: withheld
        assert bundle["resourceType"] == "Bundle" and bundle["total"] == 4
        outcomes = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
        assert json.dumps(outcomes).count("suppressed") == 1
    finally:
        output = stop(process)
    assert "fhir/metadata" in output and "token mint" in output
