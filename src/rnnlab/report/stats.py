"""Mean, standard deviation and 95 % confidence intervals over seeds (Student's t; no scipy needed).

For n values with mean x̄ and sample standard deviation s (ddof = 1), the 95 % interval of the mean is
x̄ ± t₀.₉₇₅(n − 1) · s / √n. The difference of two means uses Welch's interval: standard error
√(s_a²/n_a + s_b²/n_b) and the Welch–Satterthwaite degrees of freedom, rounded down (conservative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# t₀.₉₇₅(df): the two-sided 95 % quantile of Student's t, df = 1 … 30, then 40, 60, 120 and 1000.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
_T975_TAIL = ((40, 2.021), (60, 2.000), (120, 1.980))


def t975(df: float) -> float:
    """t₀.₉₇₅ for ``df`` degrees of freedom (rounded down; beyond the table, the next tabulated df below)."""
    df = math.floor(df)
    if df < 1:
        raise ValueError(f"a t interval needs at least 1 degree of freedom, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    if df >= 1000:
        return 1.962  # t at df = 1000; the normal's 1.960 would be narrower than t for any finite df
    below = [t for d, t in _T975_TAIL if d <= df]
    return below[-1] if below else _T975[-1]


@dataclass(frozen=True)
class Summary:
    """n values: mean, sample std (ddof 1; 0 for one value) and the 95 % CI of the mean (None for n < 2)."""

    n: int
    mean: float
    std: float
    ci_low: float | None
    ci_high: float | None

    def as_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "std": self.std, "ci95": [self.ci_low, self.ci_high]}


def summarise(values) -> Summary | None:
    """The summary of the finite values (None when there are none)."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    mean = float(x.mean())
    if x.size == 1:
        return Summary(1, mean, 0.0, None, None)
    std = float(x.std(ddof=1))
    half = t975(x.size - 1) * std / math.sqrt(x.size)
    return Summary(int(x.size), mean, std, mean - half, mean + half)


def welch_difference(a: Summary, b: Summary) -> tuple[float, float, float]:
    """mean(a) − mean(b) and its 95 % Welch interval (both need n ≥ 2)."""
    va, vb = a.std ** 2 / a.n, b.std ** 2 / b.n
    diff = a.mean - b.mean
    if va + vb == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    half = t975(df) * math.sqrt(va + vb)
    return diff, diff - half, diff + half
