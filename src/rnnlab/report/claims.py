"""Claims declared in an experiment's YAML (top-level ``claims:``), evaluated against the runs.

Each run's resolved config.yaml carries the claims, so the report collects them from the runs (one per
``id``). Three kinds, each ending in HOLDS, FAILS or NOT ENOUGH RUNS with the numbers that decided it:

- ``fraction``: every selected ok run is tested (``metric`` [÷ ``relative_to``] ``op`` ``value``); a
  group (configuration minus seed) holds when ≥ ``min_fraction`` of its runs pass; the claim holds when
  every group holds, fails when a group with ≥ ``min_runs`` runs fails.
- ``order``: the selected runs split by ``by``; the means of ``metric`` must ascend in ``order`` (an
  entry may be a list: a tier, each member below each member of the next) with 95 % CIs apart.
- ``close``: ``pair: [a, b]``: the 95 % Welch CI of mean(a) − mean(b) lies within ± ``tolerance`` ×
  |mean(b)| (holds), entirely outside it (fails), or straddles it (not enough runs to tell).

``select`` maps dotted paths (results.json first, then config.yaml) to a scalar (equals), a list (one
of) or {ge|gt|le|lt|eq|ne: x}. Statistics use the ok runs only; diverged and failed runs are counted.
"""

from __future__ import annotations

import itertools
import json
import operator

from rnnlab.report.aggregate import counts_line, group_runs
from rnnlab.report.runs import MISSING, Run
from rnnlab.report.stats import summarise, welch_difference

HOLDS, FAILS, NOT_ENOUGH = "HOLDS", "FAILS", "NOT ENOUGH RUNS"
SYMBOLS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "eq": "=", "ne": "≠"}
OPS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt, "eq": operator.eq,
       "ne": operator.ne}
REQUIRED = {"fraction": ("metric", "op", "value"), "order": ("by", "metric", "order"),
            "close": ("by", "metric", "pair", "tolerance")}
DEFAULTS = {"select": {}, "min_runs": 5, "min_fraction": 0.8, "relative_to": None}


def check(claim, where: str) -> str | None:
    """None when the claim is well formed, else the one line that says what to fix."""
    if not isinstance(claim, dict) or not isinstance(claim.get("id"), str):
        return f"{where}: a claim needs an 'id' (a string) and the keys of its kind; got {claim!r}"
    where = f"{where} (id {claim['id']})"
    kind = claim.get("kind")
    if kind not in REQUIRED:
        return f"{where}: kind is {kind!r}; use one of {', '.join(REQUIRED)}"
    missing = [k for k in REQUIRED[kind] if k not in claim]
    if missing:
        return f"{where}: a '{kind}' claim needs {', '.join(missing)}"
    if kind == "fraction" and claim["op"] not in OPS:
        return f"{where}: op is {claim['op']!r}; use one of {', '.join(OPS)}"
    if kind == "order" and not (isinstance(claim["order"], list) and len(claim["order"]) >= 2):
        return f"{where}: order is {claim['order']!r}; give at least two values of '{claim['by']}', lowest first"
    if kind == "close" and not (isinstance(claim["pair"], list) and len(claim["pair"]) == 2):
        return f"{where}: pair is {claim['pair']!r}; give two values of '{claim['by']}': [compared, reference]"
    if not isinstance(claim.get("select", {}), dict):
        return f"{where}: select is {claim['select']!r}; give a mapping of dotted paths to values"
    return None


def collect_claims(runs: list[Run], problems: list[str]) -> list[dict]:
    """The claims of the runs' configs, once per id (first seen wins; a differing copy is reported)."""
    claims: dict[str, tuple[dict, str]] = {}
    for run in runs:
        for i, claim in enumerate((run.config or {}).get("claims") or []):
            where = f"{run.path / 'config.yaml'}: claims[{i}]"
            error = check(claim, where)
            if error:
                if error not in problems:
                    problems.append(error)
                continue
            first = claims.setdefault(claim["id"], (claim, where))
            if json.dumps(first[0], sort_keys=True) != json.dumps(claim, sort_keys=True):
                line = (f"{where}: claim '{claim['id']}' differs from the one in {first[1]}; evaluating that one "
                        "(give the runs of one report the same experiment config)")
                if line not in problems:
                    problems.append(line)
    return [{**DEFAULTS, **claim} for claim, _ in claims.values()]


def matches(value, condition) -> bool:
    """Does one looked-up value meet a ``select`` condition (scalar, list, or {op: x})?"""
    if value is MISSING:
        return False
    if isinstance(condition, dict):
        try:
            return all(OPS[op](value, x) for op, x in condition.items())
        except (KeyError, TypeError):
            return False
    if isinstance(condition, list):
        return value in condition
    return value == condition


def select(runs: list[Run], conditions: dict) -> list[Run]:
    return [r for r in runs if all(matches(r.value(path), c) for path, c in conditions.items())]


def claim_value(run: Run, claim: dict) -> float | None:
    """The tested number of one run: ``metric``, divided by ``relative_to`` when given."""
    value = run.number(claim["metric"])
    if value is None or not claim.get("relative_to"):
        return value
    reference = run.number(claim["relative_to"])
    return value / reference if reference else None


def _fraction(claim: dict, chosen: list[Run], min_runs: int) -> tuple[str, dict]:
    test = OPS[claim["op"]]
    groups, verdicts = [], []
    for data, data_groups in group_runs(chosen).items():
        for group in data_groups:
            values = [claim_value(r, claim) for r in group.ok_runs]
            tested = [v for v in values if v is not None]
            passing = sum(bool(test(v, claim["value"])) for v in tested)
            fraction = passing / len(tested) if tested else None
            if len(tested) < min_runs:
                verdict = NOT_ENOUGH
            else:
                verdict = HOLDS if fraction >= claim["min_fraction"] else FAILS
            verdicts.append(verdict)
            groups.append({"data": data, "group": group.labels, **group.counts, "tested": len(tested),
                           "no_metric": len(values) - len(tested), "passing": passing, "fraction": fraction,
                           "values": tested, "verdict": verdict})
    verdict = FAILS if FAILS in verdicts else NOT_ENOUGH if NOT_ENOUGH in verdicts or not verdicts else HOLDS
    return verdict, {"test": f"{claim['metric']}" + (f" / {claim['relative_to']}" if claim["relative_to"] else "")
                     + f" {SYMBOLS[claim['op']]} {claim['value']}", "min_fraction": claim["min_fraction"], "groups": groups}


def _by_value(claim: dict, chosen: list[Run], names: list) -> dict:
    """by-value -> (summary of the ok runs' values or None, counts, configurations pooled)."""
    out = {}
    for name in names:
        members = [r for r in chosen if r.value(claim["by"]) == name]
        values = [claim_value(r, claim) for r in members if r.status == "ok"]
        summary = summarise(values)
        out[name] = {"summary": summary, "runs": counts_line(members),
                     "configurations": len({r.group_key() for r in members})}
    return out


def _enough(stats: dict, min_runs: int) -> list[str]:
    """The by-values with fewer than max(min_runs, 2) measured ok runs."""
    return [name for name, s in stats.items() if s["summary"] is None or s["summary"].n < max(min_runs, 2)]


def _numbers(stats: dict) -> dict:
    return {str(name): {**(s["summary"].as_dict() if s["summary"] else {"n": 0}), "runs": s["runs"],
                        "configurations": s["configurations"]} for name, s in stats.items()}


def _order(claim: dict, chosen: list[Run], min_runs: int) -> tuple[str, dict]:
    tiers = [t if isinstance(t, list) else [t] for t in claim["order"]]
    stats = _by_value(claim, chosen, [name for tier in tiers for name in tier])
    numbers = {"by": claim["by"], "order": claim["order"], "groups": _numbers(stats)}
    short = _enough(stats, min_runs)
    if short:
        return NOT_ENOUGH, {**numbers, "too_few_runs": [str(s) for s in short], "min_runs": min_runs}
    pairs = []
    for low_tier, high_tier in itertools.pairwise(tiers):
        for low in low_tier:
            for high in high_tier:
                a, b = stats[low]["summary"], stats[high]["summary"]
                pairs.append({"lower": low, "upper": high, "means_ascend": a.mean < b.mean,
                              "cis_apart": a.ci_high < b.ci_low})
    holds = all(p["means_ascend"] and p["cis_apart"] for p in pairs)
    return (HOLDS if holds else FAILS), {**numbers, "pairs": pairs}


def _close(claim: dict, chosen: list[Run], min_runs: int) -> tuple[str, dict]:
    compared, reference = claim["pair"]
    stats = _by_value(claim, chosen, [compared, reference])
    numbers = {"by": claim["by"], "pair": claim["pair"], "tolerance": claim["tolerance"], "groups": _numbers(stats)}
    short = _enough(stats, min_runs)
    if short:
        return NOT_ENOUGH, {**numbers, "too_few_runs": [str(s) for s in short], "min_runs": min_runs}
    a, b = stats[compared]["summary"], stats[reference]["summary"]
    diff, low, high = welch_difference(a, b)
    bound = claim["tolerance"] * abs(b.mean)
    numbers.update(difference=diff, difference_ci95=[low, high], bound=bound)
    if -bound <= low and high <= bound:
        return HOLDS, {**numbers, "reason": "the 95 % CI of the difference lies within ± bound"}
    if high < -bound or low > bound:
        return FAILS, {**numbers, "reason": "the 95 % CI of the difference lies outside ± bound"}
    return NOT_ENOUGH, {**numbers, "reason": "the 95 % CI of the difference straddles ± bound: not conclusive; "
                                             "more seeds would narrow it"}


EVALUATORS = {"fraction": _fraction, "order": _order, "close": _close}


def evaluate(claim: dict, runs: list[Run], min_runs: int | None = None) -> dict:
    """{id, text, kind, verdict, numbers} for one claim; ``min_runs`` overrides the claim's (smoke runs)."""
    chosen = select(runs, claim["select"])
    needed = int(min_runs if min_runs is not None else claim["min_runs"])
    if not chosen:
        verdict, numbers = NOT_ENOUGH, {"reason": f"no run matches select {claim['select']}"}
    else:
        verdict, numbers = EVALUATORS[claim["kind"]](claim, chosen, needed)
    numbers = {"selected": counts_line(chosen), "min_runs": needed, **numbers}
    return {"id": claim["id"], "text": claim.get("text", ""), "kind": claim["kind"], "verdict": verdict,
            "numbers": numbers}


def evaluate_all(runs: list[Run], problems: list[str], min_runs: int | None = None) -> list[dict]:
    """Every claim declared in the runs' configs, evaluated; ``claims_min_runs`` in a config overrides too."""
    if min_runs is None:
        declared = {r.config.get("claims_min_runs") for r in runs if r.config} - {None}
        min_runs = min(declared) if declared else None
    return [evaluate(claim, runs, min_runs) for claim in collect_claims(runs, problems)]
