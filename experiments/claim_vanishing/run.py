"""Claim 1, the whole bundle in one command: RNN vs LSTM vs GRU on the adding problem, the copy task and
Fashion-MNIST rows, at one hidden size and at matched parameter counts, then the report and RUN.md.

    python experiments/claim_vanishing/run.py                 # CPU scale (README: runs, wall time)
    python experiments/claim_vanishing/run.py --scale paper --jobs 2 -- trainer=gpu   # GPU, Arjovsky's T
    python experiments/claim_vanishing/run.py --scale smoke --out /tmp/x --publish none --only adding  # tests

All runs go into one sweep directory (--out), each multirun with skip_completed=true: the same command
resumes. The report (python -m rnnlab.report) writes report.md, verdicts.json and figures there; they are
copied to --publish (default: this folder) with RUN.md (command, commit, wall time, machine).
Arguments after ``--`` are passed to every run (Hydra overrides).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rnnlab.training.bundle import git_commit, multirun, publish, report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXPERIMENT = "claim_vanishing"
FASHION = "data.root=/usr/share/datasets/fashion-mnist"
SYNTHETIC = ["data.n_val=500", "data.n_test=1000"]

# T per task; the matched-parameter sweep (model.param_budget) runs at the "matched" lengths
SCALES = {
    # ≤ 60 min on 2 CPU cores, 2 jobs × 1 thread (README): 500 updates of batch 64, hidden size 64
    "cpu": {"seeds": 5, "adding": [50, 100, 200, 400], "copy": [50, 100, 200], "matched_adding": [200],
            "matched_copy": [], "pixels_per_step": 28, "extra": []},
    # Arjovsky et al. 2016's lengths, long training, pixel-by-pixel Fashion-MNIST: a GPU (add trainer=gpu)
    "paper": {"seeds": 5, "adding": [100, 200, 400, 750], "copy": [100, 200, 300, 500],
              "matched_adding": [100, 200, 400, 750], "matched_copy": [100, 200, 300, 500], "pixels_per_step": 1,
              "extra": ["model.hidden_size=128", "trainer.max_steps=20000", "trainer.val_check_interval=500",
                        "optimizer.lr=0.001"]},
    # seconds: the test suite runs it so the bundle never rots (verdicts computed with min_runs=2)
    "smoke": {"seeds": 2, "adding": [100, 200], "copy": [100], "matched_adding": [200], "matched_copy": [],
              "pixels_per_step": 28,
              "extra": ["trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.limit_val_batches=2",
                        "trainer.limit_test_batches=2", "diagnostics.every_n_steps=2"]},
}
BUDGETS = {"adding": 12000, "copy": 20000}  # parameters, stated: ≈ the GRU's at hidden size 64


def joined(values) -> str:
    return ",".join(str(v) for v in values)


def sweeps(scale: str, extra: list[str]) -> dict[str, list[str]]:
    """{label: the overrides of one multirun}."""
    s = SCALES[scale]
    common = [f"experiment={EXPERIMENT}", f"seed={joined(range(s['seeds']))}", *s["extra"], *extra]
    if scale == "smoke":  # tiny data (the report judges every claim on the two seeds: --min-runs 2)
        synthetic = ["data.n_train=256", "data.n_val=64", "data.n_test=64"]
    else:
        synthetic = SYNTHETIC
    runs = {}
    for task in ("adding", "copy"):
        if s[task]:
            runs[task] = [*common, f"data={task}", *synthetic, f"data.seq_len={joined(s[task])}"]
        if s[f"matched_{task}"]:
            runs[f"{task}_budget{BUDGETS[task]}"] = [*common, f"data={task}", *synthetic,
                                                     f"data.seq_len={joined(s[f'matched_{task}'])}",
                                                     f"model.param_budget={BUDGETS[task]}"]
    # classification: nothing to "solve" against a baseline, so no early stopping; 20 validation batches
    runs["fashion_mnist"] = [*common, "data=fashion_mnist", FASHION, f"data.pixels_per_step={s['pixels_per_step']}",
                             "early_stopping.threshold_fraction_of_baseline=null", "trainer.limit_val_batches=20"]
    return runs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--out", type=Path, default=None, help="sweep directory (default multirun/<bundle>_<scale>)")
    parser.add_argument("--publish", default=str(HERE), help="where report and RUN.md go; 'none' to skip")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (packed launcher, 1 thread each)")
    parser.add_argument("--only", help="comma-separated multirun labels (adding, adding_budget12000, copy, ...)")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    out = (args.out or ROOT / "multirun" / f"{EXPERIMENT}_{args.scale}").resolve()
    commit, started = git_commit(ROOT), time.perf_counter()
    plan = sweeps(args.scale, extra)
    if args.only:
        if unknown := sorted(set(args.only.split(",")) - set(plan)):
            parser.error(f"--only: {unknown[0]!r} is not a multirun here; they are {', '.join(plan)}")
        plan = {label: plan[label] for label in args.only.split(",")}
    for label, overrides in plan.items():
        multirun(ROOT, out, label, overrides, args.jobs)
    code = report(ROOT, out, min_runs=2 if args.scale == "smoke" else None)
    if args.publish != "none":
        publish(out, Path(args.publish), ["python", *sys.argv], time.perf_counter() - started, list(plan.values()),
                commit, args.scale)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
