"""Claims declared in an experiment's YAML (top-level ``claims:``), evaluated against the runs.

Each run's resolved config.yaml carries the claims, so the report collects them from the runs (one per
``id``). Every kind ends in one of four verdicts, with the numbers that decided it: HOLDS, FAILS,
INCONCLUSIVE (enough runs, but the interval straddles the bound) or NOT ENOUGH RUNS (fewer than
``min_runs`` measured runs in a compared group).

- ``fraction``: every selected run is tested (``metric`` [÷ ``relative_to``] ``op`` ``value``), per group
  (configuration minus seed) of n runs of which k pass and u are undecided (failed, or no metric): the
  fraction passing lies in [k/n, (k+u)/n]. A group holds when k/n ≥ ``min_fraction``, fails when
  (k+u)/n < ``min_fraction``, else is inconclusive (its undecided runs would decide). The claim fails when a
  group fails, then lacks runs, then is inconclusive, else holds.
- ``order``: the selected runs split by ``by``; the means of ``metric`` must ascend in ``order`` (an
  entry may be a list: a tier, each member below each member of the next). Holds when every pair ascends
  with 95 % CIs apart; fails only when a pair is reversed with CIs apart; otherwise (overlap) inconclusive.
- ``close``: ``pair: [a, b]``: the 95 % Welch CI of mean(a) − mean(b) lies within ± bound (holds), entirely
  outside (fails), or straddles it (inconclusive); rule and negative control in :mod:`rnnlab.report.equivalence`.

``metric`` is a dotted path of results.json / config.yaml, or one the report computes from val_curve.csv:
``solved`` (1 / 0) and ``updates_to_solve`` (censored at the budget; :mod:`rnnlab.report.solving`).

``select`` maps dotted paths (results.json first, then config.yaml) to a scalar (equals), a list (one
of) or {ge|gt|le|lt|eq|ne: x}. Statistics use the ok runs only; diverged and failed runs are counted.
"""

from __future__ import annotations

import itertools
import json
import operator

from rnnlab.report.aggregate import counts_line, group_runs
from rnnlab.report.equivalence import BOUND_KEYS, close_verdict
from rnnlab.report.runs import MISSING, Run
from rnnlab.report.solving import DERIVED, derived_value
from rnnlab.report.stats import summarise

HOLDS, FAILS, INCONCLUSIVE, NOT_ENOUGH = "HOLDS", "FAILS", "INCONCLUSIVE", "NOT ENOUGH RUNS"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_ENOUGH)
SYMBOLS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "eq": "=", "ne": "≠"}
OPS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt, "eq": operator.eq,
       "ne": operator.ne}
REQUIRED = {"fraction": ("metric", "op", "value"), "order": ("by", "metric", "order"),
            "close": ("by", "metric", "pair")}
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
    if kind == "close" and sum(k in claim for k in BOUND_KEYS) != 1:
        return f"{where}: a 'close' claim needs one bound of {', '.join(BOUND_KEYS)}; got " \
               f"{[k for k in BOUND_KEYS if k in claim] or 'none'}"
    if kind == "close" and "margin_of_gap" in claim and "control" not in claim:
        return f"{where}: margin_of_gap is a fraction of the gap to the control: give control (e.g. rnn)"
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
    """The tested number of one run: ``metric``, divided by ``relative_to`` when given. A computed metric
    (``solved``, ``updates_to_solve``) is known for a diverged run too; a stored one for an ok run only."""
    if claim["metric"] in DERIVED:
        return derived_value(run, claim["metric"])
    if run.status != "ok":
        return None
    value = run.number(claim["metric"])
    if value is None or not claim.get("relative_to"):
        return value
    reference = run.number(claim["relative_to"])
    return value / reference if reference else None


def _fraction_group(claim: dict, runs: list[Run], min_runs: int) -> dict:
    """One group's test: passing k of n runs, u undecided; the verdict from [k/n, (k+u)/n]."""
    test = OPS[claim["op"]]
    tested = [v for v in (claim_value(r, claim) for r in runs) if v is not None]
    passing, undecided = sum(bool(test(v, claim["value"])) for v in tested), len(runs) - len(tested)
    low, high = passing / len(runs), (passing + undecided) / len(runs)
    if len(tested) < min_runs:
        verdict = NOT_ENOUGH
    elif low >= claim["min_fraction"]:
        verdict = HOLDS
    elif high < claim["min_fraction"]:
        verdict = FAILS
    else:
        verdict = INCONCLUSIVE
    return {"tested": len(tested), "undecided": undecided, "passing": passing,
            "fraction": passing / len(tested) if tested else None, "fraction_range": [low, high], "values": tested,
            "verdict": verdict}


def _fraction(claim: dict, chosen: list[Run], min_runs: int) -> tuple[str, dict]:
    groups = []
    for data, data_groups in group_runs(chosen).items():
        for group in data_groups:
            groups.append({"data": data, "group": group.labels, **group.counts,
                           **_fraction_group(claim, group.runs, min_runs)})
    verdicts = {g["verdict"] for g in groups}
    verdict = next((v for v in (FAILS, NOT_ENOUGH, INCONCLUSIVE) if v in verdicts), HOLDS if groups else NOT_ENOUGH)
    return verdict, {"test": f"{claim['metric']}" + (f" / {claim['relative_to']}" if claim["relative_to"] else "")
                     + f" {SYMBOLS[claim['op']]} {claim['value']}", "min_fraction": claim["min_fraction"], "groups": groups}


def by_value(claim: dict, chosen: list[Run], names: list) -> dict:
    """by-value -> (summary of the runs' tested values or None, counts, configurations pooled)."""
    out = {}
    for name in names:
        members = [r for r in chosen if r.value(claim["by"]) == name]
        summary = summarise(claim_value(r, claim) for r in members)
        out[name] = {"summary": summary, "runs": counts_line(members),
                     "configurations": len({r.group_key() for r in members})}
    return out


def short_of_runs(stats: dict, min_runs: int) -> list[str]:
    """The by-values with fewer than max(min_runs, 2) measured runs (too few to compare)."""
    return [str(name) for name, s in stats.items() if s["summary"] is None or s["summary"].n < max(min_runs, 2)]


def numbers_of(stats: dict) -> dict:
    return {str(name): {**(s["summary"].as_dict() if s["summary"] else {"n": 0}), "runs": s["runs"],
                        "configurations": s["configurations"]} for name, s in stats.items()}


def _order(claim: dict, chosen: list[Run], min_runs: int) -> tuple[str, dict]:
    tiers = [t if isinstance(t, list) else [t] for t in claim["order"]]
    stats = by_value(claim, chosen, [name for tier in tiers for name in tier])
    numbers = {"by": claim["by"], "order": claim["order"], "groups": numbers_of(stats)}
    if short := short_of_runs(stats, min_runs):
        return NOT_ENOUGH, {**numbers, "too_few_runs": short, "min_runs": min_runs}
    pairs = []
    for low_tier, high_tier in itertools.pairwise(tiers):
        for low in low_tier:
            for high in high_tier:
                a, b = stats[low]["summary"], stats[high]["summary"]
                pairs.append({"lower": low, "upper": high, "means_ascend": a.mean < b.mean,
                              "cis_apart": a.ci_high < b.ci_low or b.ci_high < a.ci_low})
    if all(p["means_ascend"] and p["cis_apart"] for p in pairs):
        return HOLDS, {**numbers, "pairs": pairs, "reason": "every pair ascends, 95 % CIs apart"}
    if any(not p["means_ascend"] and p["cis_apart"] for p in pairs):
        return FAILS, {**numbers, "pairs": pairs, "reason": "a pair is reversed with its 95 % CIs apart"}
    return INCONCLUSIVE, {**numbers, "pairs": pairs, "reason": "95 % CIs overlap: the order is not resolved"}


def _close(claim: dict, chosen: list[Run], min_runs: int) -> tuple[str, dict]:
    names = [*claim["pair"], *([claim["control"]] if claim.get("control") else [])]
    stats = by_value(claim, chosen, names)
    numbers = {"by": claim["by"], "pair": claim["pair"], "groups": numbers_of(stats),
               **{k: claim[k] for k in (*BOUND_KEYS, "control", "better") if k in claim}}
    if short := short_of_runs(stats, min_runs):
        return NOT_ENOUGH, {**numbers, "too_few_runs": short, "min_runs": min_runs}
    verdict, decided = close_verdict(claim, {name: s["summary"] for name, s in stats.items()})
    return verdict, {**numbers, **decided}


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
