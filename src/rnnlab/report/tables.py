"""Readable Markdown tables of grouped runs: the columns that matter for the task, in words, seeds as mean ± std.

One table per data set. Columns: the config keys that tell the groups apart (the model first), the number
of runs and their status, the task's final metric (regression: test MSE and MSE ÷ baseline;
classification: accuracy; language modelling: perplexity; multi-label: NLL), parameters, speed, and the
gradient-decay summary at initialisation and after training. A column that is empty for every group is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rnnlab.report.aggregate import Group
from rnnlab.report.stats import Summary

DASH = "–"


def significant(value: float, digits: int = 3) -> str:
    """``digits`` significant digits; from 10^(digits−1) up in plain digits with thousands separators
    (93,000 and 570, never 9.3e+04 or 5.7e+02)."""
    if abs(value) >= 10 ** (digits - 1):
        return f"{float(f'{value:.{digits}g}'):,.0f}"
    return f"{value:.{digits}g}"


def mean_std(summary: Summary | None, scale: float = 1.0, exact_int: bool = False) -> str:
    if summary is None:
        return DASH
    mean = summary.mean * scale
    text = f"{round(mean):,}" if exact_int and summary.std == 0 else significant(mean, 4 if summary.n == 1 else 3)
    return text if summary.std == 0 else f"{text} ± {significant(summary.std * scale, 2)}"


@dataclass(frozen=True)
class Column:
    """A column: its header, and the text of one group's cell."""

    header: str
    cell: Callable[[Group], str]
    tasks: tuple[str, ...] | None = None  # None: every task

    def applies(self, task: str | None) -> bool:
        return self.tasks is None or task in self.tasks


def _stat(name: str, scale: float = 1.0, exact_int: bool = False) -> Callable[[Group], str]:
    return lambda group: mean_std(group.stats.get(name), scale, exact_int)


def status(group: Group) -> str:
    counts = group.counts
    if counts["ok"] == len(group.runs):
        return "ok"
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def _stopped(group: Group) -> str:
    if not group.early_stopped:
        return DASH
    steps = group.stats.get("early_stopping.step")
    return f"{group.early_stopped}/{len(group.runs)}" + (f" (step {mean_std(steps)})" if steps else "")


GRADIENT_DECAY = "slope of log10 ‖∂L/∂h_t‖ per step back"
GRADIENT_RATIO = "log10 ‖∂L/∂h_first‖/‖∂L/∂h_last‖"
COLUMNS = (
    Column("runs", lambda g: str(len(g.runs))),
    Column("status", status),
    Column("test MSE", _stat("metrics.test/loss"), ("regression",)),
    Column("test MSE / baseline", _stat("test_loss_over_baseline"), ("regression",)),
    Column("test accuracy", _stat("metrics.test/acc"), ("classification",)),
    Column("test perplexity", _stat("metrics.test/ppl"), ("language_modeling",)),
    Column("test NLL (per step)", _stat("metrics.test/loss"), ("multilabel",)),
    Column("test loss", _stat("metrics.test/loss"), (None,)),
    Column("params", _stat("params", exact_int=True)),
    Column("ms / update", _stat("seconds_per_update", 1000.0)),
    Column("tokens/s", _stat("tokens_per_second")),
    Column("updates", _stat("steps", exact_int=True)),
    Column("stopped early", _stopped),
    Column(f"{GRADIENT_DECAY}, at init", _stat("gradients.init_slope_log10_per_step")),
    Column(f"{GRADIENT_DECAY}, after training", _stat("gradients.slope_log10_per_step")),
    Column(f"{GRADIENT_RATIO} at init", _stat("gradients.init_log10_ratio_first_last")),
    Column(f"{GRADIENT_RATIO} after training", _stat("gradients.log10_ratio_first_last")),
)


def _label_header(key: str) -> str:
    return "model" if key == "model.name" else key


def _label_cell(value) -> str:
    return DASH if value is None else (significant(value) if isinstance(value, float) else str(value))


def group_table(groups: list[Group]) -> str:
    """The Markdown table of one data set's groups."""
    task = groups[0].task if groups else None
    label_keys = list(groups[0].labels) if groups else []
    columns = [c for c in COLUMNS if c.applies(task)]
    cells = [[c.cell(g) for c in columns] for g in groups]
    keep = [i for i, c in enumerate(columns) if any(row[i] != DASH for row in cells)]
    header = [_label_header(k) for k in label_keys] + [columns[i].header for i in keep]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group, row in zip(groups, cells):
        labels = [_label_cell(group.labels.get(k)) for k in label_keys]
        lines.append("| " + " | ".join(labels + [row[i] for i in keep]) + " |")
    return "\n".join(lines)


def data_heading(data: str, groups: list[Group]) -> str:
    task = next((g.task for g in groups if g.task), None)
    n = sum(len(g.runs) for g in groups)
    seeds = max(len(g.runs) for g in groups)
    grouped = f"; seeds grouped, mean ± std over up to {seeds}" if seeds > 1 else ""
    runs = f"{n} run" + ("s" if n != 1 else "")
    configurations = f"{len(groups)} configuration" + ("s" if len(groups) != 1 else "")
    return f"{data}" + (f" ({task})" if task else "") + f": {runs} in {configurations}{grouped}"
