"""A record writer that the records crash test kills with SIGKILL at a random moment.

Run as ``python records_put_writer.py HOME SEED PATIENT_DID...`` on a demo home (its node key's
passphrase is in the home). It opens the node and starts it (genesis check, block builder,
``reconcile``), then puts record versions forever. A version's content is a function of its
record id and version number (``record_content``), so the parent can check every version the
ledger holds. The protocol on stdout, one line per event, each flushed only after the call it
reports has returned:

- ``START``: ``open_node`` and ``Node.start`` returned;
- ``PUT <record_id> <version>``: ``RecordService.put`` returned: the version is anchored.

Record ids are ``crash-<patient index>-<n>``, so the parent knows whose record each one is. Any
failure is printed to stderr and exits non-zero, so the parent can tell a crash it caused from
one the writer had by itself.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from pathlib import Path

RECORDS_PER_PATIENT = 3


def record_content(record_id: str, version: int) -> bytes:
    """The one valid content of a version: a FHIR Observation naming it, 0..48 KiB of filler."""
    digest = hashlib.sha256(f"{record_id}/{version}".encode()).digest()
    filler = digest.hex() * (int.from_bytes(digest[:2], "big") % 768)
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": f"{record_id} version {version}"},
        "valueQuantity": {"value": version + 0.5, "unit": "mmol/L"},
        "note": [{"text": filler}],
    }
    return json.dumps(resource, sort_keys=True, separators=(",", ":")).encode()


def run(home: Path, seed: int, patients: list[str]) -> None:
    from medledger.bootstrap import open_node

    rng = random.Random(seed)
    node = open_node(home)
    node.start()
    print("START", flush=True)
    while True:
        index = rng.randrange(len(patients))
        record_id = f"crash-{index}-{rng.randrange(RECORDS_PER_PATIENT)}"
        raw = node.ledger.state_get(f"record/{patients[index]}/{record_id}")
        version = 1 if raw is None else int(json.loads(raw)["version"]) + 1
        result = node.records.put(
            patient=patients[index],
            record_id=record_id,
            resource_type="Observation",
            content=record_content(record_id, version),
            now_s=int(time.time()),
        )
        if result.version != version:
            raise SystemExit(f"put returned version {result.version}, expected {version}")
        print(f"PUT {record_id} {version}", flush=True)


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:])
