"""Runs grouped by configuration minus seed, per data set, with mean ± std and 95 % CI of every quantity.

A group is the seeds of one configuration (:meth:`Run.configuration`). Its counts say how many runs were
ok, diverged or failed: none is dropped silently, and the statistics are over the ok runs only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

from rnnlab.report.runs import Run
from rnnlab.report.stats import Summary, summarise

STATUSES = ("ok", "diverged", "failed")
MODEL_ORDER = ("rnn", "lstm", "gru")
GRADIENT_KEYS = ("init_slope_log10_per_step", "slope_log10_per_step",
                 "init_log10_ratio_first_last", "log10_ratio_first_last")


def seconds_per_update(run: Run) -> float | None:
    """The median step time when the run measured it (validation excluded), else train seconds / steps."""
    median = run.number("step_seconds_median")
    if median is not None:
        return median
    seconds, steps = run.number("train_seconds"), run.number("steps")
    return seconds / steps if seconds is not None and steps else None


def loss_over_baseline(run: Run) -> float | None:
    """test/loss ÷ the data's trivial baseline (regression: the MSE of always predicting the mean)."""
    loss, baseline = run.number("metrics.test/loss"), run.number("baseline_loss")
    return loss / baseline if loss is not None and baseline else None


def quantities(run: Run) -> dict[str, float | None]:
    """Every number the report aggregates, for one run, under its aggregate.json name."""
    values = {f"metrics.{k}": run.number(f"metrics.{k}") for k in (run.results.get("metrics") or {})}
    values["test_loss_over_baseline"] = loss_over_baseline(run)
    for key in ("params", "steps", "train_seconds", "tokens_per_second"):
        values[key] = run.number(key)
    values["seconds_per_update"] = seconds_per_update(run)
    values.update({f"gradients.{k}": run.number(f"gradients.{k}") for k in GRADIENT_KEYS})
    stopped = run.value("early_stopping.stopped") is True
    values["early_stopping.step"] = run.number("early_stopping.step") if stopped else None
    return values


@dataclass
class Group:
    """The runs of one configuration (every seed) on one data set."""

    runs: list[Run]
    data: str
    labels: dict[str, object]  # the config keys that tell this group from the others of its data set

    @property
    def task(self) -> str | None:
        return next((r.results["task"] for r in self.runs if r.results.get("task")), None)

    @property
    def model(self) -> str:
        return self.runs[0].model

    @property
    def ok_runs(self) -> list[Run]:
        return [r for r in self.runs if r.status == "ok"]

    @property
    def counts(self) -> dict[str, int]:
        counts = {s: sum(r.status == s for r in self.runs) for s in STATUSES}
        counts["failed"] += sum(r.status not in STATUSES for r in self.runs)  # an unknown status is no success
        return counts

    @cached_property
    def stats(self) -> dict[str, Summary]:
        """name -> summary over the ok runs, for every quantity measured in at least one of them."""
        per_run = [quantities(r) for r in self.ok_runs]
        names = sorted({k for q in per_run for k in q})
        out = {name: summarise(q.get(name) for q in per_run) for name in names}
        return {k: v for k, v in out.items() if v is not None}

    @property
    def early_stopped(self) -> int:
        return sum(r.value("early_stopping.stopped") is True for r in self.runs)

    def label(self) -> str:
        return ", ".join(f"{'model' if k == 'model.name' else k}={v}" for k, v in self.labels.items())

    def as_dict(self) -> dict:
        return {"data": self.data, "task": self.task, "labels": self.labels, "n": len(self.runs),
                "counts": self.counts, "early_stopped": self.early_stopped,
                "stats": {k: v.as_dict() for k, v in self.stats.items()},
                "runs": [str(r.path) for r in self.runs]}


def _varying_keys(configs: list[dict]) -> list[str]:
    """Config keys whose values differ between configurations. Left out: class paths (``_target_``), and a
    key only some configurations have with one value wherever it is (a cell's own option, e.g. the LSTM's
    ``model.cell.forget_bias`` beside a GRU): ``model.name`` already says it."""
    keys = sorted({k for c in configs for k in c} - {"model.name"})
    varying = ["model.name"]
    for key in keys:
        if key.rsplit(".", 1)[-1] in ("_target_", "_partial_"):
            continue
        present = {json.dumps(c[key], sort_keys=True, default=str) for c in configs if key in c}
        if len(present) > 1 or (len(present) == 1 and any(key not in c for c in configs) and not
                                key.startswith("model.")):
            varying.append(key)
    return sorted(varying, key=lambda k: (k != "model.name", not k.startswith("data."), k))


def _sort_key(group: Group) -> tuple:
    model = group.model
    rank = MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)
    rest = tuple((0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v)) for v in group.labels.values())
    return (rank, model, rest)


def group_runs(runs: list[Run]) -> dict[str, list[Group]]:
    """data set name -> its groups (seeds of one configuration), models in the order RNN, LSTM, GRU."""
    by_data: dict[str, dict[tuple, list[Run]]] = {}
    for run in runs:
        data = run.data_name or "unknown data set (the run failed before its data was set up)"
        by_data.setdefault(data, {}).setdefault(run.group_key(), []).append(run)
    out = {}
    for data, by_key in sorted(by_data.items()):
        configs = [members[0].configuration() for members in by_key.values()]
        keys = _varying_keys(configs)
        groups = []
        for members, config in zip(by_key.values(), configs):
            labels = {"model.name": members[0].model, **{k: config.get(k) for k in keys if k != "model.name"}}
            groups.append(Group(members, data, labels))
        out[data] = sorted(groups, key=_sort_key)
    return out


def counts_line(runs: list[Run]) -> str:
    """'N runs: a ok, b diverged, c failed' (what tests and users grep for)."""
    counts = {s: sum(r.status == s for r in runs) for s in STATUSES}
    counts["failed"] += sum(r.status not in STATUSES for r in runs)
    return f"{len(runs)} runs: {counts['ok']} ok, {counts['diverged']} diverged, {counts['failed']} failed"
