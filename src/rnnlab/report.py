"""Turns run directories into tables: ``python -m rnnlab.report <sweep dir>``.

Every run writes ``results.json`` (see shared/DESIGN.md); a sweep is a directory of runs.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from hydra.experimental.callback import Callback

log = logging.getLogger(__name__)

COLUMNS = ("model", "impl", "data", "seed", "status", "params", "steps", "train_seconds", "tokens_per_second",
           "val/loss", "test/loss", "test/acc", "test/ppl", "baseline_loss")


def collect(root: str | Path) -> list[dict]:
    """Every results.json below ``root``, sorted by path, with its ``run_dir`` added."""
    rows = []
    for path in sorted(Path(root).rglob("results.json")):
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            log.warning("skipping unreadable %s: %s", path, error)
            continue
        result["run_dir"] = str(path.parent)
        rows.append(result)
    return rows


def _cell(result: dict, column: str) -> str:
    value = result.get("metrics", {}).get(column) if "/" in column else result.get(column)
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(results: list[dict], columns: tuple[str, ...] = COLUMNS) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r, c) for c in columns) + " |" for r in results]
    counts = {s: sum(r.get("status") == s for r in results) for s in ("ok", "diverged", "failed")}
    lines.append("")
    lines.append(f"{len(results)} runs: {counts['ok']} ok, {counts['diverged']} diverged, {counts['failed']} failed")
    return "\n".join(lines)


def write_table(root: str | Path) -> str:
    """Write ``summary.md`` into ``root`` and return its text."""
    text = markdown_table(collect(root))
    Path(root, "summary.md").write_text(text + "\n")
    return text


class SweepTableCallback(Callback):
    """Hydra callback: at the end of a multirun, print and save the table of its runs."""

    def on_multirun_end(self, config, **kwargs) -> None:
        root = Path(config.hydra.sweep.dir)
        if root.exists():
            print(f"\nSweep results ({root}/summary.md):\n{write_table(root)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Summarise the runs below a directory as a Markdown table.")
    parser.add_argument("root", help="a sweep (multirun) or run directory")
    args = parser.parse_args(argv)
    if not Path(args.root).is_dir():
        parser.error(f"{args.root} is not a directory")
    print(write_table(args.root))


if __name__ == "__main__":
    main()
