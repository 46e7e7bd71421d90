"""``close`` claims ("a matches b"): the equivalence rule, its bound, and the negative control that lets it fail.

Rule: with d = mean(a) − mean(b) and its 95 % Welch interval [lo, hi], the claim HOLDS when
−bound ≤ lo and hi ≤ bound, FAILS when hi < −bound or lo > bound, and is INCONCLUSIVE otherwise (the
interval straddles the bound: more seeds would narrow it).

The bound, in the metric's own units (exactly one of):
- ``tolerance: f``: f × |mean(b)| (a fraction of the reference's value);
- ``margin: m``: m itself (e.g. a fraction of a gap the paper reports, stated in the claim's text);
- ``margin_of_gap: f``: f × |mean(control) − mean(best of the pair)|, the tanh-to-gated gap measured in the
  same bundle (Chung et al. 2014's JSB: tanh 9.10, GRU 8.54, LSTM 8.67: the GRU–LSTM difference 0.13 is
  0.23 of that gap).

Negative control (``control: rnn``): a rule that would call the tanh RNN a match for the better gated cell
cannot tell cells apart. With ``tolerance`` or ``margin``, the same rule is applied to control against the
better of the pair (``better: lower`` for losses, ``higher`` for accuracies); if it HOLDS too, a holding
claim becomes INCONCLUSIVE. With ``margin_of_gap`` the control cannot match by construction, so the gap
itself must be real: the control worse than the best cell with the 95 % interval of their difference
excluding 0; otherwise there is no margin to measure by and the claim is INCONCLUSIVE.
"""

from __future__ import annotations

from rnnlab.report.stats import Summary, welch_difference

BOUND_KEYS = ("tolerance", "margin", "margin_of_gap")


def rule(a: Summary, b: Summary, bound: float) -> tuple[str, dict]:
    """The equivalence rule for mean(a) − mean(b) within ± bound."""
    diff, low, high = welch_difference(a, b)
    numbers = {"difference": diff, "difference_ci95": [low, high], "bound": bound}
    if -bound <= low and high <= bound:
        return "HOLDS", {**numbers, "reason": "the 95 % CI of the difference lies within ± bound"}
    if high < -bound or low > bound:
        return "FAILS", {**numbers, "reason": "the 95 % CI of the difference lies outside ± bound"}
    return "INCONCLUSIVE", {**numbers, "reason": "the 95 % CI of the difference straddles ± bound: not "
                                                 "conclusive; more seeds would narrow it"}


def best_of(pair: list, summaries: dict, better: str) -> object:
    a, b = pair
    lower_wins = summaries[a].mean <= summaries[b].mean
    return (a if lower_wins else b) if better == "lower" else (b if lower_wins else a)


def bound_of(claim: dict, summaries: dict) -> float:
    if "margin" in claim:
        return float(claim["margin"])
    if "tolerance" in claim:
        return float(claim["tolerance"]) * abs(summaries[claim["pair"][1]].mean)
    best = best_of(claim["pair"], summaries, claim.get("better", "lower"))
    return float(claim["margin_of_gap"]) * abs(summaries[claim["control"]].mean - summaries[best].mean)


def control_check(claim: dict, summaries: dict, bound: float) -> dict:
    """The negative control's numbers, with ``spoils``: True when it makes a holding claim INCONCLUSIVE."""
    control, better = claim["control"], claim.get("better", "lower")
    best = best_of(claim["pair"], summaries, better)
    verdict, numbers = rule(summaries[control], summaries[best], bound)
    out = {"compared": control, "reference": best, **numbers, "verdict": verdict}
    if "margin_of_gap" in claim:
        low, high = numbers["difference_ci95"]
        real = low > 0 if better == "lower" else high < 0
        out.update(gap_is_real=real, spoils=not real,
                   reason=(f"the gap {control} − {best} is real (95 % CI excludes 0): the margin is measured"
                           if real else f"the gap {control} − {best} is not resolved (95 % CI "
                           f"[{low:.4g}, {high:.4g}] reaches 0 or the wrong side): no margin to measure by"))
    else:
        out.update(spoils=verdict == "HOLDS",
                   reason=(f"the same rule calls {control} a match for {best}: it cannot tell cells apart"
                           if verdict == "HOLDS" else f"the same rule does not call {control} a match for {best}"))
    return out


def close_verdict(claim: dict, summaries: dict) -> tuple[str, dict]:
    """The verdict of a ``close`` claim from the compared groups' summaries (each n ≥ 2)."""
    compared, reference = claim["pair"]
    bound = bound_of(claim, summaries)
    verdict, numbers = rule(summaries[compared], summaries[reference], bound)
    if not claim.get("control"):
        return verdict, numbers
    control = control_check(claim, summaries, bound)
    numbers["negative_control"] = control
    if control["spoils"] and (verdict == "HOLDS" or "margin_of_gap" in claim):
        return "INCONCLUSIVE", {**numbers, "reason": f"negative control: {control['reason']} (the pair alone: "
                                                     f"{verdict})"}
    return verdict, numbers
