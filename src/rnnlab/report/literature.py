"""Our numbers beside a paper's table: an experiment's top-level ``literature:`` list, in report.md.

Each entry: ``source`` (the paper and table), ``select`` (as a claim's), ``by`` (e.g. model), ``metric``
(a dotted path of results.json) and ``values`` ({by-value: the paper's number}). The report prints, per
by-value, our mean ± std with its 95 % CI over the selected ok runs, the paper's number and the difference.
"""

from __future__ import annotations

import json

from rnnlab.report.claims import select  # the same selection as the claims'
from rnnlab.report.runs import Run
from rnnlab.report.stats import summarise
from rnnlab.report.tables import mean_interval

REQUIRED = ("source", "by", "metric", "values")


def collect_literature(runs: list[Run], problems: list[str]) -> list[dict]:
    """The ``literature`` entries of the runs' configs, once each."""
    seen: dict[str, dict] = {}
    for run in runs:
        for i, entry in enumerate((run.config or {}).get("literature") or []):
            if not isinstance(entry, dict) or any(k not in entry for k in REQUIRED):
                line = (f"{run.path / 'config.yaml'}: literature[{i}] needs {', '.join(REQUIRED)}; got {entry!r}")
                if line not in problems:
                    problems.append(line)
                continue
            seen.setdefault(json.dumps(entry, sort_keys=True), entry)
    return list(seen.values())


def compare(entry: dict, runs: list[Run]) -> list[dict]:
    """One row per by-value of the paper's table: ours (summary) beside theirs."""


    chosen = [r for r in select(runs, entry.get("select") or {}) if r.status == "ok"]
    rows = []
    for name, theirs in entry["values"].items():
        summary = summarise(r.number(entry["metric"]) for r in chosen if r.value(entry["by"]) == name)
        rows.append({"by": name, "theirs": theirs, "ours": summary.as_dict() if summary else {"n": 0},
                     "difference": summary.mean - theirs if summary else None})
    return rows


def literature_section(runs: list[Run], problems: list[str]) -> list[str]:
    """report.md's "Beside the literature" section (empty when the experiment declares no entry)."""
    lines = []
    for entry in collect_literature(runs, problems):
        lines += ["", f"### {entry['source']}", "", (f"`{entry['metric']}` of the runs selected by "
                                                     f"`{entry.get('select') or {}}`, per {entry['by']}:"), "",
                  f"| {entry['by']} | ours | theirs | ours − theirs |", "|---|---|---|---|"]
        for row in compare(entry, runs):
            diff = "–" if row["difference"] is None else f"{row['difference']:+.3g}"
            lines.append(f"| {row['by']} | {mean_interval(row['ours'], 'no ok run')} | {row['theirs']} | {diff} |")
    return ["", "## Beside the literature", *lines] if lines else []
