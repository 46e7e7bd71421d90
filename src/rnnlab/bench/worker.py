"""What the benchmarks that need a fresh process per run share: run a worker, read its result, save the tables.

A setting that is process-wide (OpenMP's wait policy, glibc's malloc thresholds) can only be compared run
against run in new processes; the worker prints ``RESULT <json>`` as its result line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def worker_result(code: str, args: list[str], env: dict[str, str]) -> dict:
    """``python -c code *args`` in ``env``; the JSON of its ``RESULT`` line."""
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, check=True, capture_output=True,
                         text=True).stdout
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def save_tables(out: Path, meta: dict, rows: list[dict], runs: list[dict],
                markdown: Callable[[list[dict], list[dict], dict], str]) -> str:
    """``<out>.json`` (meta, rows, every run) and ``<out>.md``; returns the Markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows, "runs": runs}, indent=2) + "\n")
    text = markdown(rows, runs, meta)
    out.with_suffix(".md").write_text(text)
    return text
