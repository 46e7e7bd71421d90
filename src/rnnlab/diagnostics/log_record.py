"""How one measured step of :class:`~rnnlab.diagnostics.callback.GradientDiagnostics` reaches the loggers:
scalars under ``grad/`` and ``gates/`` for every logger, and for W&B a line plot of log10 ‖∂L/∂h_t‖ against
the distance to the loss and images (only on the global-zero rank)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rnnlab.diagnostics.decay import decay_summary


def record_scalars(record: dict, layers: list[str], param_names: list[str]) -> dict[str, float]:
    """The finite scalars of one measured step: global norm, clipping, per-gate gradient norms, the decay of
    ‖∂L/∂h_t‖ (layer 0) and ‖∂L/∂x_t‖, gate means and spectral radii per layer."""
    scalars = {f"grad/{k}": record[k] for k in ("global_norm", "clipped", "clip_fraction")}
    scalars.update({f"grad/{n}": v for n, v in zip(param_names, record["param_grad_norm"])})
    for q in ("h", "x"):
        if f"{q}_norm_mean" in record:
            curve = record[f"{q}_norm_mean"]
            decay = decay_summary(curve[0] if q == "h" else curve)
            scalars.update({f"grad/{q}_{k.removeprefix('h_')}": v for k, v in decay.items() if v is not None})
    for key, value in record.items():
        if key.startswith("gate_"):
            for name, row in zip(layers, value):
                scalars[f"gates/{name}/{key.removeprefix('gate_')}"] = float(np.nanmean(row))
        elif key.startswith("rho_"):
            scalars.update({f"gates/{name}/{key}": float(v) for name, v in zip(layers, value)})
    return {k: float(v) for k, v in scalars.items() if math.isfinite(float(v))}


def norm_by_distance_plot(record: dict, layers: list[str]):
    """W&B's line plot of log10 ‖∂L/∂h_t‖ per layer (and ‖∂L/∂x_t‖) against the distance to the loss."""
    import wandb

    curves = [(f"h {n}", row) for n, row in zip(layers, record.get("h_norm_mean", []))]
    if "x_norm_mean" in record:
        curves.append(("x (input)", record["x_norm_mean"]))
    T = len(curves[0][1])
    ys = [[float(np.log10(v)) if v > 0 and math.isfinite(v) else None for v in row] for _, row in curves]
    return wandb.plot.line_series(xs=list(range(T - 1, -1, -1)), ys=ys, keys=[c[0] for c in curves],
                                  title=f"log10 ‖∂L/∂h_t‖ vs distance to the loss (step {record['step']})",
                                  xname="distance to the loss (T−1−t)")


def wandb_loggers(trainer) -> list:
    from lightning.pytorch.loggers import WandbLogger

    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)] if trainer.is_global_zero else []


def log_images(trainer, images: dict, step: int) -> None:
    """Images (arrays or PNG paths) to the trainer's W&B loggers, if any."""
    loggers = wandb_loggers(trainer)
    if loggers:
        import wandb

        for logger in loggers:
            logger.log_metrics({k: wandb.Image(v if not isinstance(v, Path) else str(v))
                                for k, v in images.items()}, step=step)
