"""``report.md``: verdicts with the numbers that decided them, the readable table per data set, figure links.

Every sentence here is built from :mod:`rnnlab.report.claims`' numbers; no verdict text is typed by hand.
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.report.aggregate import Group
from rnnlab.report.tables import data_heading, group_table, mean_interval, significant


def _num(value) -> str:
    return "–" if value is None else significant(value) if isinstance(value, float) else str(value)


def _labels(labels: dict) -> str:
    return ", ".join(f"{'' if k == 'model.name' else k + '='}{v}" for k, v in labels.items())


def _bound_text(numbers: dict) -> str:
    if "tolerance" in numbers:
        return f"{numbers['tolerance']} × abs(mean {numbers['pair'][1]})"
    if "margin_of_gap" in numbers:
        return f"{numbers['margin_of_gap']} × the gap {numbers.get('control')} − the better of the pair"
    return f"margin {numbers.get('margin')} in the metric's units"


def decided_by(verdict: dict) -> str:
    """One line: the numbers behind the verdict."""
    numbers = verdict["numbers"]
    if "groups" not in numbers:
        return numbers.get("reason", "")
    if verdict["kind"] == "fraction":
        parts = []
        for g in numbers["groups"]:
            counted = (f"{g['passing']}/{g['tested']} pass (fraction {_num(g['fraction'])}, needs ≥ "
                       f"{numbers['min_fraction']})" if g["tested"] else "no ok run with the metric")
            others = "".join(f", {g[s]} {s}" for s in ("diverged", "failed") if g[s])
            undecided = g.get("undecided", 0)
            others += (f", {undecided} undecided (fraction between {_num(g['fraction_range'][0])} and "
                       f"{_num(g['fraction_range'][1])})" if undecided else "")
            outcome = f" → {g['verdict']}"
            parts.append(f"{_labels(g['group'])}: {counted}{others}{outcome}")
        return f"{numbers['test']}: " + "; ".join(parts)
    parts = [f"{name}: {mean_interval(stats, 'no ok run with the metric')}" for name, stats in numbers["groups"].items()]
    if verdict["kind"] == "order" and "pairs" in numbers:
        parts += [f"{p['lower']} < {p['upper']}: means {'ascend' if p['means_ascend'] else 'do not ascend'}, "
                  f"CIs {'apart' if p['cis_apart'] else 'overlap'}" for p in numbers["pairs"]]
        parts.append(numbers.get("reason", ""))
    if verdict["kind"] == "close" and "difference" in numbers:
        low, high = numbers["difference_ci95"]
        a, b = numbers["pair"]
        parts.append(f"{a} − {b} = {_num(numbers['difference'])}, 95 % CI [{_num(low)}, {_num(high)}], "
                     f"bound ± {_num(numbers['bound'])} ({_bound_text(numbers)}): {numbers['reason']}")
        if control := numbers.get("negative_control"):
            c_low, c_high = control["difference_ci95"]
            parts.append(f"negative control {control['compared']} − {control['reference']} = "
                         f"{_num(control['difference'])}, 95 % CI [{_num(c_low)}, {_num(c_high)}] (the same rule: "
                         f"{control['verdict']})")
    if "too_few_runs" in numbers:
        parts.append(f"fewer than {numbers['min_runs']} measured ok runs: {', '.join(numbers['too_few_runs'])}")
    return "; ".join(parts)


def verdicts_section(verdicts: list[dict]) -> list[str]:
    if not verdicts:
        return ["## Verdicts", "", "No claims: the runs' configs declare none (an experiment's `claims:` list)."]
    lines = ["## Verdicts", "", "| claim | verdict | what decided it |", "|---|---|---|"]
    for v in verdicts:
        lines.append(f"| **{v['id']}**: {v['text']} | **{v['verdict']}** | "
                     f"{decided_by(v).replace('|', '/')} ({v['numbers']['selected']}) |")
    return lines


def report_markdown(command: str, counts: str, by_data: dict[str, list[Group]], verdicts: list[dict],
                    figures: dict[str, list[Path]], problems: list[str], beside: list[str] | None = None) -> str:
    """``beside``: the "Beside the literature" section's lines (rnnlab.report.literature), after the verdicts."""
    lines = ["# Report", "", f"`{command}`: {counts}.", "", *verdicts_section(verdicts), *(beside or [])]
    if len(by_data) > 1:
        lines += ["", f"The runs use {len(by_data)} data sets ({', '.join(by_data)}): each is reported on its own."]
    for data, groups in by_data.items():
        lines += ["", f"## {data_heading(data, groups)}", "", group_table(groups), ""]
        lines += [f"![{p.stem}]({p.name})" for p in figures.get(data, [])]
    if problems:
        lines += ["", "## Problems met (these runs or files are left out)", "", *(f"- {p}" for p in problems)]
    lines += ["", ("Files: `verdicts.json` (every verdict with its numbers), `aggregate.json` (every group: counts, "
              "mean, std and 95 % CI of every quantity), `runs.csv` (one row per run: every verdict can be "
              "recomputed from it with `python -m rnnlab.report.runs_table runs.csv <experiment yaml>`).")]
    return "\n".join(lines) + "\n"
