"""The report's PNGs (matplotlib Agg, no pyplot), one set per data set:

- ``<data>_final_metric.png``: the task's final metric against the sequence length T, one line per
  configuration (model …), mean over seeds with 95 % CI bars; with a single T (or none) one bar per
  configuration instead;
- ``<data>[_T<T>]_learning_curves.png``: the validation metric against updates and against training
  seconds (``val_curve.csv``), mean over seeds with a ± 1 std band (over the seeds still running at
  that step: a run stopped early when solved drops out);
- ``<data>[_T<T>]_gradients.png``: ‖∂L/∂h_t‖ against the distance to the loss T−1−t (``gradients.npz``),
  one curve per configuration, at initialisation and after training: 10^(mean over seeds of log10 ‖∂L/∂h_t‖)
  with a ± 1 std band in log10.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from rnnlab.diagnostics.plots import DISTANCE_LABEL, MODEL_COLOURS, NPZ, load_arrays, primary_curve
from rnnlab.report.aggregate import Group

SEQ_LEN = "data.seq_len"
# The task's headline metric: (aggregate name, axis label, log axis, val_curve.csv column)
TASK_METRIC = {
    "regression": ("test_loss_over_baseline", "test MSE / baseline MSE (1 = predicting the mean)", True, "val/loss"),
    "classification": ("metrics.test/acc", "test accuracy", False, "val/acc"),
    "language_modeling": ("metrics.test/ppl", "test perplexity", True, "val/ppl"),
    "multilabel": ("metrics.test/loss", "test NLL per step", False, "val/loss"),
}
DEFAULT_METRIC = ("metrics.test/loss", "test loss", False, "val/loss")
LINESTYLES = ("-", "--", ":", "-.")


def task_metric(task: str | None) -> tuple[str, str, bool, str]:
    return TASK_METRIC.get(task, DEFAULT_METRIC)


def seq_len(group: Group):
    value = group.runs[0].value(SEQ_LEN)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def shown_keys(groups: list[Group]) -> list[str]:
    """The label keys that tell apart the groups with ok runs (the model always; T is an axis or the figure)."""
    drawn = [g for g in groups if g.ok_runs]
    keys = [k for k in (groups[0].labels if groups else {}) if k != SEQ_LEN]
    return [k for k in keys if k == "model.name" or len({str(g.labels.get(k)) for g in drawn}) > 1]


def _count(n: float) -> str:
    return f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}K" if n >= 1e3 else f"{n:g}"


# How a legend names a config key's value: what it means, not the key ("H = 64", "12K params")
READABLE = {
    "model.name": lambda v: str(v),
    "model.hidden_size": lambda v: f"H = {v}",
    "model.param_budget": lambda v: f"{_count(v)} params" if v else "no parameter budget",
    "model.num_layers": lambda v: f"{v} layer{'s' if v != 1 else ''}",
    "optimizer.lr": lambda v: f"lr = {v:g}" if isinstance(v, (int, float)) else f"lr = {v}",
    "model.impl": lambda v: str(v),
}


def readable(key: str, value) -> str:
    """A label value as a reader says it; other keys as ``name = value`` with the key's last part."""
    if key in READABLE and value is not None or key == "model.param_budget":
        return READABLE[key](value)
    return f"{key.rsplit('.', 1)[-1]} = {value}"


def series_label(group: Group, keys: list[str]) -> str:
    return ", ".join(readable(k, group.labels.get(k)) for k in keys)


def _style(group: Group, styles: dict, keys: list[str]) -> dict:
    rest = series_label(group, keys)
    styles.setdefault(group.model, {})
    linestyle = styles[group.model].setdefault(rest, LINESTYLES[len(styles[group.model]) % len(LINESTYLES)])
    return {"color": MODEL_COLOURS.get(group.model), "ls": linestyle, "label": rest}


def _finish(fig: Figure, axes, title: str) -> Figure:
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.suptitle(title)
    return fig


def final_metric_figure(data: str, groups: list[Group]) -> Figure | None:
    """Final metric against T per configuration, 95 % CI bars (or per configuration when T is fixed)."""
    name, label, log, _ = task_metric(groups[0].task)
    points = defaultdict(list)  # series label -> [(T, summary)]
    styles: dict = {}
    keys = shown_keys(groups)
    for group in groups:
        summary = group.stats.get(name)
        if summary is not None:
            style = _style(group, styles, keys)
            points[style["label"]].append((seq_len(group), summary, style))
    if not points:
        return None
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    lengths = {row[0] for rows in points.values() for row in rows}
    by_length = len(lengths - {None}) > 1  # a line over T needs two lengths; else one bar per configuration
    for i, rows in enumerate(points.values()):
        rows.sort(key=lambda row: (row[0] is None, row[0] or 0))
        means = np.array([row[1].mean for row in rows])
        low = np.array([row[1].mean - (row[1].ci_low if row[1].ci_low is not None else row[1].mean) for row in rows])
        high = np.array([(row[1].ci_high if row[1].ci_high is not None else row[1].mean) - row[1].mean for row in rows])
        if by_length:
            ax.errorbar([row[0] for row in rows], means, yerr=[low, high], marker="o", capsize=3, **rows[0][2])
        else:
            style = rows[0][2]
            ax.bar(i, means[0], yerr=[low[:1], high[:1]], capsize=4, color=style["color"], alpha=0.8,
                   label=style["label"], hatch="//" if style["ls"] != "-" else None)
    if groups[0].task == "regression":
        ax.axhline(1.0, color="grey", lw=0.8, ls="--", label="baseline")
    if not by_length:
        ax.set_xticks(range(len(points)), list(points), rotation=20 if len(points) > 3 else 0,
                      ha="right" if len(points) > 3 else "center")
    ax.set(xlabel="sequence length T" if by_length else "configuration", ylabel=label,
           yscale="log" if log else "linear")
    n = sum(len(g.runs) for g in groups)
    seeds = max(len(g.ok_runs) for g in groups)
    (only,) = lengths if len(lengths) == 1 else (None,)
    against = " against T" if by_length else (f", T = {only}" if only is not None else "")
    return _finish(fig, [ax], f"{data}: final {label.split(' (')[0]}{against}\n"
                              f"{n} runs; mean and 95 % CI over up to {seeds} seeds")


def _by_seq_len(groups: list[Group]) -> dict:
    out = defaultdict(list)
    for group in groups:
        out[seq_len(group)].append(group)
    return out


def _curve_column(curves: list[dict], preferred: str) -> str | None:
    columns = [c for c in curves[0] if c not in ("step", "seconds")]
    return preferred if preferred in columns else (columns[0] if columns else None)


def learning_curves_figure(data: str, T, groups: list[Group]) -> Figure | None:
    """Validation metric vs updates and vs seconds, mean over seeds ± 1 std, one curve per configuration."""
    _, _, log, preferred = task_metric(groups[0].task)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    by_step, by_seconds = fig.subplots(1, 2)
    styles: dict = {}
    keys = shown_keys(groups)
    drawn, column = 0, None
    for group in groups:
        curves = [c for c in (r.val_curve() for r in group.ok_runs) if c is not None and len(c["step"])]
        column = _curve_column(curves, preferred) if curves else None
        if column is None:
            continue
        # every validated step; a seed that stopped early (solved) counts only while it ran
        steps = sorted(set().union(*(c["step"].tolist() for c in curves)))
        rows = [{s: (sec, v) for s, sec, v in zip(c["step"], c["seconds"], c[column])} for c in curves]
        values = np.array([[row.get(s, (np.nan, np.nan))[1] for s in steps] for row in rows])  # (seeds, steps)
        seconds = np.nanmean([[row.get(s, (np.nan, np.nan))[0] for s in steps] for row in rows], axis=0)
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        style = _style(group, styles, keys)
        style["label"] += f" ({len(curves)} seeds)"
        for ax, x in ((by_step, steps), (by_seconds, seconds)):
            ax.plot(x, mean, marker=".", **style)
            ax.fill_between(x, mean - std, mean + std, color=style["color"], alpha=0.2, lw=0)
        drawn += 1
    if not drawn:
        return None
    for ax, xlabel in ((by_step, "updates (training steps)"), (by_seconds, "training seconds (validation excluded)")):
        ax.set(xlabel=xlabel, ylabel=f"{column} (mean ± 1 std over seeds)", yscale="log" if log else "linear")
    where = f"{data}, T = {T}" if T is not None else data
    return _finish(fig, [by_step, by_seconds], f"{where}: {column} on the validation set during training")


def _log_profiles(runs, row: int | None):
    """(distance, (seeds, T) log10 ‖∂L/∂h_t‖) at measured row ``row`` (0: init, −1: the end), or None."""
    profiles, distance = [], None
    for run in runs:
        if not (run.path / NPZ).exists():
            continue
        arrays = load_arrays(run.path)
        if row == 0 and arrays["step"][0] != 0:
            continue  # not measured at initialisation
        curve = primary_curve(arrays)[1][row]
        with np.errstate(divide="ignore"):
            profiles.append(np.where(curve > 0, np.log10(np.where(curve > 0, curve, 1.0)), np.nan))
        distance = arrays["distance"]
    return (distance, np.array(profiles)) if profiles else None


def gradient_figure(data: str, T, groups: list[Group]) -> Figure | None:
    """‖∂L/∂h_t‖ against the distance to the loss, one curve per configuration, at init and after training."""
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    styles: dict = {}
    keys = shown_keys(groups)
    drawn = 0
    for group in groups:
        style = _style(group, styles, keys)
        for ax, row in zip(axes, (0, -1)):
            found = _log_profiles(group.ok_runs, row)
            if found is None:
                continue
            distance, logs = found
            mean, std = np.nanmean(logs, axis=0), np.nanstd(logs, axis=0)
            on_x = group.runs[0].value("gradients.measured_on") == "x"  # fused layers expose only ‖∂L/∂x_t‖
            label = f"{style['label']}{' (‖∂L/∂x_t‖, fused)' if on_x else ''} ({len(logs)} seeds)"
            ax.plot(distance, 10 ** mean, **{**style, "label": label})
            ax.fill_between(distance, 10 ** (mean - std), 10 ** (mean + std), color=style["color"], alpha=0.2, lw=0)
            drawn += 1
    if not drawn:
        return None
    for ax, when in zip(axes, ("at initialisation", "after training")):
        ax.set(yscale="log", xlabel=DISTANCE_LABEL, title=when,
               ylabel="‖∂L/∂h_t‖, layer 0 (10^mean log10 over seeds, ± 1 std)")
    where = f"{data}, T = {T}" if T is not None else data
    return _finish(fig, axes, f"{where}: gradient norm against distance to the loss")


def _name(data: str, T, what: str) -> str:
    return f"{data}{f'_T{T}' if T is not None else ''}_{what}.png"


def save_figures(by_data: dict[str, list[Group]], out_dir: str | Path) -> dict[str, list[Path]]:
    """Every figure the groups support, as PNGs in ``out_dir``: data set -> the paths written."""
    out_dir = Path(out_dir)
    paths: dict[str, list[Path]] = {}
    for data, groups in by_data.items():
        figures = [(f"{data}_final_metric.png", final_metric_figure(data, groups))]
        for T, same_length in sorted(_by_seq_len(groups).items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
            figures.append((_name(data, T, "learning_curves"), learning_curves_figure(data, T, same_length)))
            figures.append((_name(data, T, "gradients"), gradient_figure(data, T, same_length)))
        for name, fig in figures:
            if fig is not None:
                fig.savefig(out_dir / name, dpi=110)
                paths.setdefault(data, []).append(out_dir / name)
    return paths
