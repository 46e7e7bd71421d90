"""Updates-to-solve per run, read from its ``val_curve.csv``: what the literature reports for solvable tasks.

A run is *solved* at the first validation whose ``val/loss`` ≤ the run's own "solved" threshold: its
``early_stopping.threshold_fraction_of_baseline`` × the data's baseline loss (adding: MSE; copy: cross-
entropy), or ``early_stopping.stopping_threshold``. A run that never gets there is *censored* at its budget
(``trainer.max_steps``, also when it diverged or stopped earlier): it counts in the denominator of the
fraction solved and is never dropped. A run without a threshold (a task with nothing to solve) has no updates-to-solve.

The figure ``<data>_fraction_solved.png`` draws, per T and per configuration, the fraction of its runs
solved by n updates against n (Kaplan–Meier without censoring before the end: every run is followed to its
budget, so the curve is the plain empirical fraction).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from rnnlab.diagnostics.plots import MODEL_COLOURS
from rnnlab.report.runs import Run

MONITOR = "val/loss"
DERIVED = ("solved", "updates_to_solve")  # claim metrics the report computes (claims.claim_value)


def solve_threshold(run: Run) -> float | None:
    """The val/loss at which this run counts as solved, or None when its task has no such threshold."""
    for path in ("early_stopping.threshold", "early_stopping.stopping_threshold"):  # results.json's, the config's
        if (fixed := run.number(path)) is not None:
            return fixed
    fraction, baseline = run.number("early_stopping.threshold_fraction_of_baseline"), run.number("baseline_loss")
    return fraction * baseline if fraction is not None and baseline else None


def budget_updates(run: Run) -> float | None:
    """Where an unsolved run is censored: its budget (``trainer.max_steps``), whether it trained to it, stopped
    on patience or diverged before; else (a run bounded by epochs) the updates it trained."""
    budget = run.number("trainer.max_steps")
    if budget is not None and budget > 0:
        return budget
    steps = run.number("steps")
    if steps is not None:
        return steps
    curve = run.val_curve()
    return float(curve["step"][-1]) if curve is not None and len(curve["step"]) else None


def updates_to_solve(run: Run) -> tuple[float | None, bool | None]:
    """(updates, solved): the first validation step at or below the threshold and True, or the budget
    (censored) and False; (None, None) for a failed run, or one with no threshold or no curve."""
    threshold = solve_threshold(run)
    if threshold is None or run.status not in ("ok", "diverged"):
        return None, None
    curve = run.val_curve()
    if curve is None or MONITOR not in curve:
        return None, None
    reached = np.flatnonzero(curve[MONITOR] <= threshold)  # NaN compares False: a diverged value never solves
    if reached.size:
        return float(curve["step"][reached[0]]), True
    return budget_updates(run), False


def derived_value(run: Run, name: str) -> float | None:
    """``solved`` (1.0 / 0.0) or ``updates_to_solve`` (censored at the budget) of one run, or None. A run read
    back from runs.csv carries the value itself."""
    if (stored := run.number(name)) is not None:
        return stored
    updates, solved = updates_to_solve(run)
    if solved is None:
        return None
    return float(solved) if name == "solved" else updates


def fraction_solved_curve(runs: list[Run]) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(updates, fraction of ``runs`` solved by then, runs counted) as a step curve; None when none is judged."""
    judged = [updates_to_solve(r) for r in runs]
    judged = [(u, s) for u, s in judged if s is not None]
    if not judged:
        return None
    budget = max(u for u, _ in judged)
    events = sorted(u for u, s in judged if s)
    x = np.array([0.0, *events, budget])
    y = np.array([0.0, *(np.arange(1, len(events) + 1) / len(judged)), len(events) / len(judged)])
    return x, y, len(judged)


def solved_row(runs: list[Run]) -> dict | None:
    """{judged, solved, fraction, median (None when fewer than half solved: it lies beyond the budget),
    budget, solved_updates}: one configuration's seeds, or None when none has a solved threshold."""
    judged = [j for j in (updates_to_solve(r) for r in runs) if j[1] is not None]
    if not judged:
        return None
    solved = sorted(u for u, s in judged if s)
    ordered = sorted(u if s else float("inf") for u, s in judged)  # censored at the end: beyond every event
    median = float(np.median(ordered)) if len(solved) * 2 > len(judged) else None
    return {"judged": len(judged), "solved": len(solved), "fraction": len(solved) / len(judged), "median": median,
            "budget": max(u for u, _ in judged), "solved_updates": solved}


def solved_section(by_data: dict) -> list[str]:
    """report.md's "Solved" section: per data set and configuration, seeds solved and updates-to-solve."""
    lines = []
    for data, groups in by_data.items():
        rows = [(g, row) for g in groups if (row := solved_row(g.runs)) is not None]
        if not rows:
            continue
        lines += ["", f"### {data}", "", "| configuration | solved | median updates-to-solve | solved runs' updates |",
                  "|---|---|---|---|"]
        for group, row in rows:
            median = f"{row['median']:,.0f}" if row["median"] is not None else f"> {row['budget']:,.0f} (budget)"
            solved = ", ".join(f"{u:,.0f}" for u in row["solved_updates"]) or "–"
            lines.append(f"| {group.label()} | {row['solved']}/{row['judged']} | {median} | {solved} |")
    if not lines:
        return []
    return ["", "## Solved (fraction of seeds, updates-to-solve)", "",
            ("A run is solved at its first validation at or below its threshold (`early_stopping`); an unsolved "
             "run counts at its budget (censored), so the median is beyond the budget when fewer than half solved."),
            *lines]


def _short_label(group) -> str:
    """The model and what else tells its configuration apart (unset keys and the bundle's task name left out)."""
    rest = [f"{k.rsplit('.', 1)[-1].replace('_', ' ')} {v}" for k, v in group.labels.items()
            if k not in ("model.name", "data.seq_len", "bundle_task") and v is not None]
    return group.model + (f" ({', '.join(rest)})" if rest else "")


def _linestyle(group) -> str:
    return "--" if group.labels.get("bundle_task") not in (None, "main") else "-"


def fraction_solved_figure(data: str, groups) -> Figure | None:
    """One panel per T: fraction of seeds solved against updates, one step curve per configuration."""
    by_length: dict = defaultdict(list)
    for group in groups:
        curve = fraction_solved_curve(group.runs)
        if curve is not None:
            by_length[group.runs[0].value("data.seq_len")].append((group, curve))
    if not by_length:
        return None
    lengths = sorted(by_length, key=lambda t: (not isinstance(t, (int, float)), t if isinstance(t, (int, float)) else 0))
    fig = Figure(figsize=(max(6.4, 4.6 * len(lengths)), 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(lengths), sharey=True))
    for ax, length in zip(axes, lengths):
        for group, (x, y, n) in by_length[length]:
            ax.step(x, y, where="post", color=MODEL_COLOURS.get(group.model), ls=_linestyle(group),
                    label=f"{_short_label(group)}: {round(y[-1] * n)}/{n} solved")
        ax.set(title=f"T = {length}", xlabel="updates", ylim=(-0.03, 1.03))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="upper left")
    axes[0].set_ylabel("fraction of seeds solved")
    fig.suptitle(f"{data}: fraction of seeds solved against updates\n(an unsolved run counts until its budget)")
    return fig


def save_fraction_solved(by_data: dict, out_dir: Path) -> dict[str, list[Path]]:
    """``<data>_fraction_solved.png`` for each data set with a solved threshold; {data: [path]}."""
    saved = {}
    for data, groups in by_data.items():
        fig = fraction_solved_figure(data, groups)
        if fig is not None:
            path = out_dir / f"{data}_fraction_solved.png"
            fig.savefig(path, dpi=110)
            saved[data] = [path]
    return saved
