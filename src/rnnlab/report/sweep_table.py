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
           "val/loss", "test/loss", "test/acc", "test/ppl", "baseline_loss",
           "gradients.init_log10_ratio_first_last", "gradients.log10_ratio_first_last")


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
    if column.startswith("gradients."):  # the decay summary: log10(‖∂L/∂h_first‖ / ‖∂L/∂h_last‖)
        value = (result.get("gradients") or {}).get(column.removeprefix("gradients."))
    else:
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


def link_wandb_runs(root: str | Path) -> list[Path]:
    """``<root>/wandb/<run>`` -> each run's own ``<run dir>/wandb/<run>`` (relative links), so that
    ``wandb leet <root>/wandb`` browses every run of a sweep and ``wandb sync <root>/wandb/offline-run-*``
    uploads them all; ``<root>/wandb/latest-run`` -> the last run started, which is the one W&B's tools
    (``wandb leet inspect <root>/wandb``) read from a wandb folder, as in a run's own. Returns the run links."""
    root = Path(root)
    runs = [p for p in sorted(root.glob("*/wandb/*-run-*")) if p.is_dir() and not p.is_symlink()]
    if not runs:
        return []
    (root / "wandb").mkdir(exist_ok=True)
    links = []
    for run in runs:
        link = root / "wandb" / run.name
        if not link.is_symlink():
            link.symlink_to(Path("..") / run.relative_to(root))
        links.append(link)
    latest = root / "wandb" / "latest-run"
    latest.unlink(missing_ok=True)
    latest.symlink_to(max(links, key=lambda p: p.name.split("-")[-2]).name)  # <mode>-run-<YYYYmmdd_HHMMSS>-<id>
    return links


class SweepTableCallback(Callback):
    """Hydra callback: at the end of a multirun, print and save the table of its runs, and gather their
    W&B runs under ``<sweep dir>/wandb``."""

    def on_multirun_end(self, config, **kwargs) -> None:
        root = Path(config.hydra.sweep.dir)
        if root.exists():
            print(f"\nSweep results ({root}/summary.md):\n{write_table(root)}")
            if link_wandb_runs(root):
                print(f"W&B runs of the sweep: wandb leet {root}/wandb  (upload: wandb sync {root}/wandb/offline-run-*)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Summarise the runs below a directory as a Markdown table.")
    parser.add_argument("root", help="a sweep (multirun) or run directory")
    args = parser.parse_args(argv)
    if not Path(args.root).is_dir():
        parser.error(f"{args.root} is not a directory")
    print(write_table(args.root))

