"""PNG plots of gradient behaviour through time, for one run and for a sweep (matplotlib, Agg, no pyplot).

One run (``gradients.npz`` written by :class:`rnnlab.diagnostics.callback.GradientDiagnostics`):

- ``gradient_curves.png``: ‖∂L/∂h_t‖ (batch mean) against the distance to the loss T−1−t, log scale,
  one curve per measured training step (colour = step), one panel per layer·direction and one for
  ‖∂L/∂x_t‖; the picture of Arjovsky et al. 2016 (at initialisation and after training);
- ``gradient_heatmap.png``: log10 ‖∂L/∂h_t‖, distance to the loss × training step, on the colour scale
  ``diagnostics.heatmap_log10_range`` (default [-20, 0] for every run, so two runs' heatmaps compare by
  eye; null: each run's own range).

Both are titled with the run: model (implementation), data set, T and seed.

A sweep: ``python -m rnnlab.diagnostics <multirun dir>`` overlays every run below the directory
on one log axis, colour = model (RNN vs LSTM vs GRU), at initialisation and at the last measured
step: ``<data>_T<T>_gradients.png`` in that directory, one per data set and sequence length. It answers the
question of the report's figure of the same name (``python -m rnnlab.report``, which draws the mean ± std over
seeds per configuration and replaces this one): one name, one figure per question in a sweep directory.
``python -m rnnlab.diagnostics <run dir>`` redraws one run's two PNGs.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from omegaconf import OmegaConf

NPZ = "gradients.npz"
MODEL_COLOURS = {"rnn": "tab:red", "lstm": "tab:blue", "gru": "tab:green"}
DISTANCE_LABEL = "distance to the loss, T−1−t (steps)"


def load_arrays(run_dir: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a run's ``gradients.npz`` (strings as str)."""
    with np.load(Path(run_dir) / NPZ) as saved:
        return {k: (str(saved[k]) if saved[k].dtype.kind == "U" and saved[k].ndim == 0 else saved[k])
                for k in saved.files}


def series(arrays: dict) -> list[tuple[str, np.ndarray]]:
    """(label, (K, T) batch-mean norms) for each measured curve: every layer·direction of h, then x."""
    out = []
    if "h_norm_mean" in arrays:
        out += [(f"‖∂L/∂h_t‖, {name}", arrays["h_norm_mean"][:, i]) for i, name in enumerate(arrays["layers"])]
    if "x_norm_mean" in arrays:
        out.append(("‖∂L/∂x_t‖ (input of l0)", arrays["x_norm_mean"]))
    return out


def primary_curve(arrays: dict) -> tuple[str, np.ndarray]:
    """The curve the summary uses: layer 0 forward ‖∂L/∂h_t‖ when unrolled, else ‖∂L/∂x_t‖; (K, T)."""
    return series(arrays)[0]


def _log10(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(np.where(values > 0, values, 1.0)), np.nan)


def _panels(n: int, width: float = 5.0, height: float = 3.8) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * n, height), layout="constrained")
    return fig, list(np.atleast_1d(fig.subplots(1, n)))


def run_title(arrays: dict) -> str:
    """"gru (unrolled) on adding, T = 50, seed 0": what a figure of one run shows."""
    seed = str(arrays.get("seed", ""))  # absent from gradients.npz files written before it was recorded
    return (f"{arrays.get('model', '')} ({arrays.get('impl', '')}) on {arrays.get('data', '')}, "
            f"T = {arrays['distance'].size}" + (f", seed {seed}" if seed else ""))


def curves_figure(arrays: dict) -> Figure:
    """One panel per measured curve: norm vs distance, one line per measured step."""
    steps, distance = arrays["step"], arrays["distance"]
    panels = series(arrays)
    fig, axes = _panels(len(panels))
    colours = ScalarMappable(Normalize(steps.min(), max(steps.max(), steps.min() + 1)), "viridis")
    for ax, (label, curves) in zip(axes, panels):
        for step, curve in zip(steps, curves):
            ax.plot(distance, np.where(curve > 0, curve, np.nan), color=colours.to_rgba(step), lw=1.2)
        ax.set(yscale="log", xlabel=DISTANCE_LABEL, ylabel="batch mean", title=label)
        ax.grid(alpha=0.3, which="both")
    fig.colorbar(colours, ax=axes, label="training step")
    fig.suptitle(f"{run_title(arrays)}: gradient norm through time")
    return fig


def heatmap_figure(arrays: dict, log10_range: tuple[float, float] | None = None) -> Figure:
    """One panel per measured curve: log10 norm, distance to the loss (y) × training step (x); colours
    span ``log10_range`` (values beyond it take the end colours), or each panel's own range when None."""
    vmin, vmax = log10_range if log10_range is not None else (None, None)
    steps, distance = arrays["step"], arrays["distance"]
    panels = series(arrays)
    fig, axes = _panels(len(panels))
    for ax, (label, curves) in zip(axes, panels):
        values = _log10(curves).T[::-1]  # (T, K), distance increasing
        x = steps if steps.size > 1 else np.array([steps[0] - 0.5, steps[0] + 0.5])
        values = values if steps.size > 1 else np.repeat(values, 2, axis=1)
        mesh = ax.pcolormesh(x, distance[::-1], np.ma.masked_invalid(values), shading="nearest", cmap="magma",
                             vmin=vmin, vmax=vmax)
        fig.colorbar(mesh, ax=ax, label="log10 batch-mean norm" + (" (fixed scale)" if log10_range else ""),
                     extend="both" if log10_range else "neither")
        ax.set(xlabel="training step", ylabel=DISTANCE_LABEL, title=label)
    fig.suptitle(f"{run_title(arrays)}: log10 gradient norm through time")
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """(height, width, 4) uint8 RGBA pixels of a figure (what wandb.Image takes)."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def save_run_plots(arrays: dict, out_dir: str | Path, heatmap_log10_range: tuple[float, float] | None = None
                   ) -> list[Path]:
    """Write ``gradient_curves.png`` and ``gradient_heatmap.png`` into ``out_dir``."""
    paths = [Path(out_dir) / "gradient_curves.png", Path(out_dir) / "gradient_heatmap.png"]
    for path, fig in zip(paths, (curves_figure(arrays), heatmap_figure(arrays, heatmap_log10_range))):
        fig.savefig(path, dpi=110)
    return paths


def _runs(root: Path) -> list[tuple[dict, dict]]:
    """(results.json, gradients.npz arrays) of every run below ``root`` that has both."""
    runs = []
    for npz in sorted(root.rglob(NPZ)):
        results_path = npz.parent / "results.json"
        results = json.loads(results_path.read_text()) if results_path.exists() else {}
        runs.append((results, load_arrays(npz.parent)))
    return runs


def overlay(root: str | Path) -> list[Path]:
    """Overlay the runs below ``root``: one PNG per (data set, T), models on one log axis."""
    root = Path(root)
    groups: dict[tuple[str, int], list] = defaultdict(list)
    for results, arrays in _runs(root):
        data = results.get("data") or str(arrays.get("data", "data"))
        groups[(data, arrays["distance"].size)].append((results, arrays))
    paths = []
    for (data, T), runs in sorted(groups.items()):
        fig, axes = _panels(2, width=6.0, height=4.5)
        seen: set[str] = set()
        for results, arrays in runs:
            model = results.get("model") or str(arrays.get("model", "?"))
            label, curves = primary_curve(arrays)
            on_x = label.startswith("‖∂L/∂x_t‖")
            name = f"{model}" + (" (‖∂L/∂x_t‖, fused)" if on_x else "")
            for ax, row in zip(axes, (0 if arrays["step"][0] == 0 else None, -1)):
                if row is None:
                    continue
                curve = curves[row]
                ax.plot(arrays["distance"], np.where(curve > 0, curve, np.nan), lw=1.4, ls="--" if on_x else "-",
                        color=MODEL_COLOURS.get(model, None), label=None if name in seen else name, alpha=0.85)
            seen.add(name)
        ends = sorted({int(arrays["step"][-1]) for _, arrays in runs})
        end = f"step {ends[0]}" if len(ends) == 1 else f"steps {ends[0]}–{ends[-1]}"
        for ax, when in zip(axes, ("at initialisation (step 0)", f"at the last measured step ({end})")):
            ax.set(yscale="log", xlabel=DISTANCE_LABEL, title=when,
                   ylabel="batch-mean ‖∂L/∂h_t‖, layer 0" + (" (dashed: ‖∂L/∂x_t‖)" if "fused" in "".join(seen) else ""))
            ax.grid(alpha=0.3, which="both")
            ax.legend()
        fig.suptitle(f"{data}, T = {T}: gradient norm against distance to the loss ({len(runs)} runs)")
        path = root / f"{data}_T{T}_gradients.png"  # the report's name for the same question
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Plot gradient norms through time: a run directory (its two "
                                     "PNGs) or a sweep directory (models overlaid, one PNG per data set and T).")
    parser.add_argument("path", help="a run directory holding gradients.npz, or a multirun directory")
    args = parser.parse_args(argv)
    root = Path(args.path)
    if not root.is_dir():
        parser.error(f"{root} is not a directory")
    if (root / NPZ).exists():
        log10_range = None  # the run's own colour-scale setting, from its resolved config
        if (root / "config.yaml").exists():
            log10_range = OmegaConf.select(OmegaConf.load(root / "config.yaml"), "diagnostics.heatmap_log10_range")
        paths = save_run_plots(load_arrays(root), root, log10_range)
    else:
        paths = overlay(root)
        if not paths:
            parser.error(f"no {NPZ} below {root}: run with diagnostics.every_n_steps > 0")
    for path in paths:
        print(path)

