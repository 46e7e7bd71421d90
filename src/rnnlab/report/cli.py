"""``python -m rnnlab.report <sweep dir> [more dirs] [--out DIR] [--wandb] [--min-runs N]``.

Reads every run below the directories, groups seeds of one configuration, evaluates the claims the runs'
configs declare, and writes into the first directory (or ``--out``): ``report.md``, ``verdicts.json``,
``aggregate.json``, ``runs.csv`` (one row per run) and the PNG figures. A problem (an empty directory, an unreadable file) is one line on
stderr and the rest is still reported; the exit code is non-zero only when no run could be read.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from rnnlab.report.aggregate import counts_line, group_runs
from rnnlab.report.claims import collect_claims, evaluate_all
from rnnlab.report.figures import save_figures
from rnnlab.report.literature import literature_section
from rnnlab.report.markdown import report_markdown
from rnnlab.report.runs import load_runs
from rnnlab.report.runs_table import write_runs_csv
from rnnlab.report.solving import save_fraction_solved, solved_section


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m rnnlab.report", description=(
        "Aggregate the runs below one or more directories (seeds grouped: mean ± std, 95 % CI), evaluate "
        "the claims their experiment config declares (HOLDS / FAILS / INCONCLUSIVE / NOT ENOUGH RUNS) and draw the figures."))
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="sweep (multirun) or run directories")
    parser.add_argument("--out", help="where report.md, verdicts.json, aggregate.json and the PNGs go "
                        "(default: the first DIR)")
    parser.add_argument("--wandb", action="store_true", help="also log the table, verdicts and figures to a "
                        "W&B run in the sweep's group (offline without an account)")
    parser.add_argument("--min-runs", type=int, help="override every claim's min_runs (smoke runs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs, problems = load_runs(args.dirs)
    if not runs:
        for line in problems:
            print(f"report: {line}", file=sys.stderr)
        print(f"report: error: no run could be read below {' '.join(args.dirs)}; nothing written", file=sys.stderr)
        return 1
    out_dir = Path(args.out or args.dirs[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    by_data = group_runs(runs)
    if len(by_data) > 1:
        print(f"report: the runs use {len(by_data)} data sets ({', '.join(by_data)}); each is reported on its own",
              file=sys.stderr)
    verdicts = evaluate_all(runs, problems, args.min_runs)
    figures = save_figures(by_data, out_dir)
    for data, paths in save_fraction_solved(by_data, out_dir).items():
        figures.setdefault(data, []).extend(paths)
    write_runs_csv(runs, collect_claims(runs, []), out_dir / "runs.csv")
    beside = literature_section(runs, problems) + solved_section(by_data)
    problems += [line for run in runs for line in run.problems]
    command = "python -m rnnlab.report " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    (out_dir / "report.md").write_text(report_markdown(command, counts_line(runs), by_data, verdicts, figures, problems,
                                                       beside))
    (out_dir / "verdicts.json").write_text(json.dumps(verdicts, indent=2) + "\n")
    aggregate = [g.as_dict() for groups in by_data.values() for g in groups]
    (out_dir / "aggregate.json").write_text(json.dumps(aggregate, indent=2) + "\n")
    for line in problems:
        print(f"report: {line}", file=sys.stderr)
    for verdict in verdicts:
        print(f"{verdict['verdict']:<15} {verdict['id']}: {verdict['text']}")
    print(f"{counts_line(runs)}; report: {out_dir / 'report.md'}")
    if args.wandb:
        from rnnlab.report.wandb_report import log_report

        group = Path(args.dirs[0]).resolve().name
        run_dir = log_report(out_dir, group, runs, by_data, verdicts, [p for ps in figures.values() for p in ps])
        print(f"W&B report run: {run_dir}  (wandb leet {run_dir.parent})")
    return 0
