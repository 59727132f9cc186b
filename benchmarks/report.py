"""Writing a run to ``results/log.json`` (every figure) and ``results/log.md`` (the summary)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.markdown import render
from benchmarks.results import SuiteResult
from benchmarks.targets import evaluate


def to_json(result: SuiteResult) -> dict[str, Any]:
    return {
        "date": result.date,
        "mode": result.mode,
        "wall_seconds": round(result.wall_seconds, 1),
        "machine": result.machine,
        "config": asdict(result.config),
        "settings": result.settings,
        "medledger": [row.as_json() for row in result.ours],
        "peers": [peer.as_json() for peer in result.peers],
        "batch_sizes": [row.as_json() for row in result.sweep],
        "targets": [asdict(t) for t in evaluate(result)],
        "notes": result.notes,
    }


def write(result: SuiteResult, out_dir: Path) -> tuple[Path, Path]:
    """Write both files into ``out_dir``; return their paths (JSON, Markdown)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "log.json", out_dir / "log.md"
    json_path.write_text(json.dumps(to_json(result), indent=2) + "\n")
    md_path.write_text(render(result, evaluate(result)))
    return json_path, md_path
