"""``runs.csv``: one row per run, enough to recompute every verdict without the sweep directory.

Columns are the dotted paths the claims use (``select`` keys, ``by``, ``metric``, ``relative_to``) beside a
fixed set: the run's directory, its group (a 10-hex id of the configuration minus seed), cell, data, T, seed, the hyper-
parameters, final metrics, updates trained, updates-to-solve (censored at the budget when unsolved),
solved and status. Empty cell: not measured.

    python -m rnnlab.report.runs_table experiments/claim_vanishing/runs.csv conf/experiment/claim_vanishing.yaml

re-evaluates the experiment's claims from the file alone and prints the verdicts (the report's, when the
file and the claims are the published ones); ``--json`` prints them with their numbers.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path

import yaml

from rnnlab.report.runs import MISSING, Run
from rnnlab.report.solving import updates_to_solve

FIXED = ("run", "group", "model", "data", "task", "data.seq_len", "seed", "status", "optimizer._target_",
         "optimizer.lr", "model.hidden_size", "model.param_budget", "model.cell.forget_bias", "model.cell.chrono_t_max",
         "weight_noise.sigma",
         "trainer.max_steps", "trainer.gradient_clip_val", "bundle_task", "params", "baseline_loss", "steps",
         "updates_to_solve", "solved", "metrics.val/loss", "metrics.test/loss", "metrics.test/acc",
         "metrics.test/ppl", "gradients.init_slope_log10_per_step", "gradients.slope_log10_per_step",
         "early_stopping.stopped", "early_stopping.reason", "error")


def claim_paths(claims: list[dict]) -> list[str]:
    """Every dotted path a claim reads, in order of first use."""
    paths = []
    for claim in claims:
        paths += [*(claim.get("select") or {}), claim.get("by"), claim.get("metric"), claim.get("relative_to")]
    return [p for p in dict.fromkeys(paths) if p]


def row_of(run: Run, columns: list[str]) -> dict:
    updates, solved = updates_to_solve(run)
    row = {}
    for column in columns:
        if column == "run":
            value = run.path.name
        elif column == "group":  # the seeds of one configuration share it
            value = hashlib.sha1(json.dumps(run.group_key()).encode()).hexdigest()[:10]
        elif column == "status":
            value = run.status
        elif column == "updates_to_solve":
            value = updates
        elif column == "solved":
            value = None if solved is None else int(solved)
        else:
            value = run.value(column)
        row[column] = "" if value is MISSING or value is None else value
    return row


def write_runs_csv(runs: list[Run], claims: list[dict], path: Path) -> Path:
    columns = list(dict.fromkeys([*FIXED, *claim_paths(claims)]))
    rows = sorted((row_of(r, columns) for r in runs), key=lambda r: (str(r["data"]), str(r["model"]), r["run"]))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _parse(text: str):
    """A cell's value: a number, true/false, or the text; '' is not measured."""
    if text == "":
        return None
    try:
        return yaml.safe_load(text) if text not in ("inf", "-inf", "nan") else float(text)
    except yaml.YAMLError:
        return text


class RowRun(Run):
    """A run read back from one row of runs.csv: looked up by its column names."""

    def value(self, dotted: str):
        value = self.results.get(dotted, MISSING)
        return MISSING if value is None else value

    def configuration(self) -> dict:
        return {"group": self.results["group"]}

    def val_curve(self):
        return None


def read_runs_csv(path: Path) -> list[RowRun]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    runs = []
    for row in rows:
        values = {k: _parse(v) for k, v in row.items()}
        values["group"] = row["group"]
        run = RowRun(path.parent / row["run"], values, config={})
        run.data_name = values.get("data")
        runs.append(run)
    return runs


def main(argv: list[str] | None = None) -> int:
    from rnnlab.report.claims import collect_claims, evaluate

    parser = argparse.ArgumentParser(prog="python -m rnnlab.report.runs_table", description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path)
    parser.add_argument("experiment", type=Path, help="the experiment's YAML (its claims: list)")
    parser.add_argument("--min-runs", type=int, help="override every claim's min_runs (smoke runs)")
    parser.add_argument("--json", action="store_true",
                        help="print each verdict with its numbers as JSON (the report's verdicts.json entries)")
    args = parser.parse_args(argv)
    runs = read_runs_csv(args.csv)
    claims = (yaml.safe_load(args.experiment.read_text()) or {}).get("claims") or []
    holder = Run(args.csv, {}, {"claims": claims})
    problems: list[str] = []
    verdicts = [evaluate(claim, runs, args.min_runs) for claim in collect_claims([holder], problems)]
    if args.json:
        print(json.dumps(verdicts, indent=2, default=str))
    else:
        for verdict in verdicts:
            print(f"{verdict['verdict']:<15} {verdict['id']}: {verdict['text']}")
    for line in problems:
        print(f"runs_table: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
