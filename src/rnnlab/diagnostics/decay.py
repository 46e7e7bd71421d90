"""How fast gradients decay through time: the numbers behind results.json's ``gradients`` block.

A curve is the batch-mean ‖∂L/∂h_t‖ (or ‖∂L/∂x_t‖) over t = 0 … T−1, index t at distance T−1−t from the
loss (see :mod:`rnnlab.diagnostics.probe`). A tanh RNN multiplies the backward signal by
diag(1 − h_t²) W_hᵀ once per step, so log10‖∂L/∂h_t‖ falls on a line against the distance: its slope
is the decay per step, and log10(‖∂L/∂h_first‖/‖∂L/∂h_last‖) the decay over the whole sequence.
"""

from __future__ import annotations

import math

import numpy as np

SUMMARY_KEYS = ("h_norm_first", "h_norm_last", "log10_ratio_first_last", "slope_log10_per_step")


def _finite(value) -> float | None:
    return float(value) if value is not None and math.isfinite(float(value)) else None


def decay_summary(curve: np.ndarray) -> dict[str, float | None]:
    """Decay of a mean-norm curve (T,) whose index t is at distance T−1−t from the loss.

    ``h_norm_first``/``h_norm_last``: the norm at the earliest and latest measured step;
    ``log10_ratio_first_last`` = log10(‖∂L/∂h_first‖ / ‖∂L/∂h_last‖) (None when one underflowed to 0);
    ``slope_log10_per_step``: least-squares slope of log10‖∂L/∂h_t‖ against the distance T−1−t over
    the non-zero steps (−0.2 means the gradient shrinks 10× every 5 steps back from the loss).
    """
    curve = np.asarray(curve, dtype=np.float64)
    idx = np.flatnonzero(np.isfinite(curve))
    if idx.size == 0:
        return dict.fromkeys(SUMMARY_KEYS)
    first, last = curve[idx[0]], curve[idx[-1]]
    positive = idx[curve[idx] > 0]
    slope = None
    if positive.size >= 2:
        slope = np.polyfit(curve.size - 1 - positive, np.log10(curve[positive]), 1)[0]
    ratio = math.log10(first / last) if first > 0 and last > 0 else None
    return {"h_norm_first": _finite(first), "h_norm_last": _finite(last),
            "log10_ratio_first_last": _finite(ratio), "slope_log10_per_step": _finite(slope)}


def summarise(arrays: dict[str, np.ndarray]) -> dict:
    """The results.json ``gradients`` block from :meth:`GradientDiagnostics.arrays`.

    Measured on layer 0 (forward) ‖∂L/∂h_t‖ when unrolled, on ‖∂L/∂x_t‖ when fused (``measured_on``).
    """
    measured_on = str(arrays["measured_on"])
    if f"{measured_on}_norm_mean" not in arrays:  # no gradient reached what we measure
        return {**dict.fromkeys(SUMMARY_KEYS), "measured_on": None}
    curves = arrays["h_norm_mean"][:, 0] if measured_on == "h" else arrays["x_norm_mean"]  # (K, T)
    steps = arrays["step"]
    out = {"measured_on": measured_on, "curve": "l0 (forward)" if measured_on == "h" else "input of l0",
           "seq_len": int(curves.shape[1]), "measured_steps": int(steps.size), "end_step": int(steps[-1])}
    out.update(decay_summary(curves[-1]))
    init = decay_summary(curves[0]) if steps[0] == 0 else dict.fromkeys(SUMMARY_KEYS)
    out.update({f"init_{k}": v for k, v in init.items()})
    out["init_step"] = 0 if steps[0] == 0 else None
    return out
