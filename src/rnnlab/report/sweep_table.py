"""The table at a multirun's end: ``summary.md`` in the sweep directory, and its W&B runs gathered.

Every run writes ``results.json`` (see docs/results.md); a sweep is a directory of runs. The full
report (figures, verdicts) is ``python -m rnnlab.report`` (:mod:`rnnlab.report.cli`).
"""

from __future__ import annotations

from pathlib import Path

from hydra.experimental.callback import Callback

from rnnlab.report.aggregate import counts_line, group_runs
from rnnlab.report.runs import Run, load_runs
from rnnlab.report.tables import data_heading, group_table


def markdown_summary(runs: list[Run], problems: list[str] | None = None, terminal: bool = False) -> str:
    """The readable table of :mod:`rnnlab.report.tables`, one per data set, and the ok/diverged/failed line;
    ``terminal``: the columns that fit a terminal (summary.md has all)."""
    sections = []
    for data, groups in group_runs(runs).items():
        sections.append(f"{data_heading(data, groups)}\n\n{group_table(groups, terminal)}")
    lines = [*(f"- {p}" for p in problems or [])]
    return "\n\n".join([*sections, *(["\n".join(lines)] if lines else []), counts_line(runs)])


def write_table(root: str | Path, terminal: bool = False) -> str:
    """Write ``summary.md`` (the readable table of the runs below ``root``, every column) into ``root``; return
    its text, or with ``terminal`` the same table with the columns that fit a 120-column terminal."""
    runs, problems = load_runs([root])
    text = markdown_summary(runs, problems)
    Path(root, "summary.md").write_text(text + "\n")
    return markdown_summary(runs, problems, terminal=True) if terminal else text


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
            print(f"\nSweep results (every column: {root}/summary.md):\n{write_table(root, terminal=True)}")
            if link_wandb_runs(root):
                print(f"W&B runs of the sweep: wandb leet {root}/wandb  (upload: wandb sync {root}/wandb/offline-run-*)")
