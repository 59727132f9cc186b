"""`medledger audit review --note`: the officer's note through the real CLI (ADR 0022).

Against a served demo-network node (``demo_ledger_node``): the ER physician breaks the glass;
the privacy officer rules with a note from the CLI. The ledger gets the ruling and a commitment;
the note reaches the node, and both the officer (``audit reviews --reviewed``) and the patient
(``audit list``) see it, checked by the CLI against that commitment. A note the node would
refuse is refused before anything is signed, so no ruling is left without its note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from medledger.entrypoints.cli.demo import DEMO_KEYS

from .cli import ok, refused, run
from .conftest import DemoLedgerNode
from .test_review_notes_api import OFFICER, break_glass, seed

NOTE = "Referred to the DPO: the chart shows no emergency that morning."


def key(node: DemoLedgerNode, name: str) -> str:
    return str(Path(node.home) / DEMO_KEYS / f"{name}.key")


@pytest.fixture(scope="module")
def served(demo_ledger_node: DemoLedgerNode) -> DemoLedgerNode:
    """Setup, not under test: the staff and patient-1 registered, one record stored."""
    return seed(demo_ledger_node)


def review(node: DemoLedgerNode, event_id: str, batch_id: str, *extra: str) -> Any:
    return run("audit", "review", "--node", node.url, "--key", key(node, OFFICER),
               "--event-id", event_id, "--batch-id", batch_id, "--outcome", "referred",
               *extra)  # fmt: skip


def test_the_officer_rules_with_a_note_and_the_patient_reads_it(served: DemoLedgerNode) -> None:
    event_id, batch_id = break_glass(served)
    said = ok(review(served, event_id, batch_id, "--note", NOTE))
    assert "reviewed" in said and "matches the review's commitment" in said
    on_ledger = served.http.get(f"/ledger/reviews/{event_id}").json()
    assert on_ledger["outcome"] == "referred" and "note_commitment" in on_ledger
    assert "DPO" not in str(on_ledger)

    rulings = ok(run("audit", "reviews", "--reviewed", "--node", served.url,
                     "--key", key(served, OFFICER)))  # fmt: skip
    assert event_id in rulings and NOTE in rulings and "matches the ledger's commitment" in rulings

    table = ok(run("audit", "list", "--node", served.url, "--key", key(served, "patient-1"),
                   "--decision", "break-glass"))  # fmt: skip
    assert "reviewed: referred" in table
    assert f"note on {event_id} (referred, matches the ledger's commitment): {NOTE}" in table


def test_a_note_the_node_would_refuse_is_refused_before_anything_is_signed(
    served: DemoLedgerNode,
) -> None:
    event_id, batch_id = break_glass(served)
    refused(review(served, event_id, batch_id, "--note", "x" * 2001), "--note: note must be")
    refused(review(served, event_id, batch_id, "--note", "bell\a"), "control characters")
    assert served.http.get(f"/ledger/reviews/{event_id}").status_code == 404  # no ruling


def test_a_note_sent_again_with_the_wrong_salt_is_refused(served: DemoLedgerNode) -> None:
    event_id, batch_id = break_glass(served)
    ok(review(served, event_id, batch_id, "--note", NOTE))
    refused(run("audit", "note", "--node", served.url, "--key", key(served, OFFICER),
                "--event-id", event_id, "--salt", "00" * 32, "--note", NOTE),
            "do not match the review's note_commitment")  # fmt: skip
    refused(run("audit", "note", "--node", served.url, "--key", key(served, "dr-er"),
                "--event-id", event_id, "--salt", "00" * 32, "--note", NOTE),
            "only the officer who signed the review")  # fmt: skip
