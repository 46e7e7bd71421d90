"""Readable Markdown tables of grouped runs: the columns that matter for the task, in words, seeds as mean ± std.

One table per data set. Columns: the config keys that tell the groups apart (the model first), the number
of runs and their status, the task's final metric (regression: test MSE and MSE ÷ baseline;
classification: accuracy; language modelling: perplexity; multi-label: NLL), parameters, speed, and the
gradient-decay summary at initialisation and after training. A column that is empty for every group is left out.
Headers are short, so that a table fits a terminal; a legend under the table says what the short ones mean.
``terminal=True`` keeps the columns marked for the terminal (the sweep's end prints that; summary.md has all).
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


def mean_interval(stats: dict, empty: str) -> str:
    """A summary as JSON holds it ({n, mean, std, ci95}): "mean ± sd, 95 % CI [low, high] (n = …)";
    ``empty`` when it has no run."""
    if not stats.get("n"):
        return empty
    low, high = stats["ci95"]
    ci = f", 95 % CI [{significant(low)}, {significant(high)}]" if low is not None else ""
    return f"{significant(stats['mean'])} ± {significant(stats['std'], 2)}{ci} (n = {stats['n']})"


@dataclass(frozen=True)
class Column:
    """A column: its header, and the text of one group's cell."""

    header: str
    cell: Callable[[Group], str]
    tasks: tuple[str, ...] | None = None  # None: every task
    legend: str | None = None  # what a short header means, under the table
    terminal: bool = True  # also in the table printed at a sweep's end

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
    Column("MSE/base", _stat("test_loss_over_baseline"), ("regression",), "test MSE ÷ the baseline's (predicting the mean)"),
    Column("test acc", _stat("metrics.test/acc"), ("classification",), "test accuracy"),
    Column("test ppl", _stat("metrics.test/ppl"), ("language_modeling",), "test perplexity"),
    Column("test NLL", _stat("metrics.test/loss"), ("multilabel",), "test negative log-likelihood per step"),
    Column("test loss", _stat("metrics.test/loss"), (None,)),
    Column("params", _stat("params", exact_int=True)),
    Column("ms/upd", _stat("seconds_per_update", 1000.0), legend="milliseconds per update"),
    Column("tokens/s", _stat("tokens_per_second"), terminal=False),
    Column("updates", _stat("steps", exact_int=True), terminal=False),
    Column("stopped", _stopped, legend="runs stopped early (solved, or no better validation for `patience` checks), and the mean step", terminal=False),
    Column("slope₀", _stat("gradients.init_slope_log10_per_step"), legend=f"{GRADIENT_DECAY}, at initialisation"),
    Column("slope", _stat("gradients.slope_log10_per_step"), legend=f"{GRADIENT_DECAY}, after training"),
    Column("ratio₀", _stat("gradients.init_log10_ratio_first_last"), legend=f"{GRADIENT_RATIO}, at initialisation",
           terminal=False),
    Column("ratio", _stat("gradients.log10_ratio_first_last"), legend=f"{GRADIENT_RATIO}, after training",
           terminal=False),
)


def _label_header(key: str) -> str:
    return "model" if key == "model.name" else key.rsplit(".", 1)[-1]  # model.hidden_size -> hidden_size


def _label_cell(value) -> str:
    return DASH if value is None else (significant(value) if isinstance(value, float) else str(value))


def group_table(groups: list[Group], terminal: bool = False) -> str:
    """The Markdown table of one data set's groups, and the legend of its short headers."""
    task = groups[0].task if groups else None
    label_keys = list(groups[0].labels) if groups else []
    columns = [c for c in COLUMNS if c.applies(task) and (c.terminal or not terminal)]
    cells = [[c.cell(g) for c in columns] for g in groups]
    keep = [i for i, c in enumerate(columns) if any(row[i] != DASH for row in cells)]
    header = [_label_header(k) for k in label_keys] + [columns[i].header for i in keep]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group, row in zip(groups, cells):
        labels = [_label_cell(group.labels.get(k)) for k in label_keys]
        lines.append("| " + " | ".join(labels + [row[i] for i in keep]) + " |")
    legend = [f"{columns[i].header}: {columns[i].legend}" for i in keep if columns[i].legend]
    return "\n".join(lines) + ("\n\n" + "; ".join(legend) + "." if legend else "")


def data_heading(data: str, groups: list[Group]) -> str:
    task = next((g.task for g in groups if g.task), None)
    n = sum(len(g.runs) for g in groups)
    seeds = max(len(g.runs) for g in groups)
    grouped = f"; seeds grouped, mean ± std over up to {seeds}" if seeds > 1 else ""
    runs = f"{n} run" + ("s" if n != 1 else "")
    configurations = f"{len(groups)} configuration" + ("s" if len(groups) != 1 else "")
    return f"{data}" + (f" ({task})" if task else "") + f": {runs} in {configurations}{grouped}"
