"""Runs per hour of one 12-run sweep, sequential vs packed: ``python benchmarks/sweep_packing.py``.

The sweep is ``model=rnn,lstm,gru seed=0,1,2,3`` with small but real runs (200 steps, H=64, T=50 on
the adding problem), timed end to end (``python run.py -m ...``: start-up, training, evaluation):
  sequential, torch's default threads  hydra's basic launcher, one run after another
  sequential, 1 thread                 the same with threads=1
  packed                               hydra/launcher=packed: n_jobs processes at once,
                                       cores // n_jobs threads each
Add ``--trainer gpu`` on a GPU machine (packed then puts 2 jobs on each GPU, round-robin).
Other work on the machine changes the numbers: the load average is printed with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ["model=rnn,lstm,gru", "seed=0,1,2,3"]


def run_sweep(overrides: list[str], sweep_dir: Path, env: dict) -> tuple[float, list[dict]]:
    cmd = [sys.executable, str(ROOT / "run.py"), "-m", *SWEEP, *overrides, f"hydra.sweep.dir={sweep_dir}"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"sweep failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return seconds, [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/results.json"))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=None, help="packed jobs at once (default: launcher's)")
    parser.add_argument("--trainer", default="cpu", help="cpu or gpu")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", choices=("default", "one", "packed"), nargs="*", default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    common = [f"trainer={args.trainer}", f"trainer.max_steps={args.steps}",
              f"model.hidden_size={args.hidden}", f"data.seq_len={args.seq_len}",
              "logger=csv", "progress_bar=false"]
    if args.trainer == "gpu":
        common.append("trainer.devices=${rnnlab.job_device:}")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.setdefault("WANDB_MODE", "offline")
    packed = ["hydra/launcher=packed"] + ([f"hydra.launcher.n_jobs={args.jobs}"] if args.jobs else [])
    setups = {"default": ("sequential, default threads", []),
              "one": ("sequential, threads=1", ["threads=1"]),
              "packed": (f"packed, {args.jobs or 'default'} jobs", packed)}
    rows = []
    print("| setup | runs | ok | wall s | runs/hour | load before | load after |")
    print("|---|---|---|---|---|---|---|")
    for repeat in range(args.repeat):
        for key in args.only or list(setups):
            name, overrides = setups[key]
            load_before = os.getloadavg()[0]
            with tempfile.TemporaryDirectory(prefix="sweep_packing_") as tmp:
                seconds, results = run_sweep(common + overrides, Path(tmp), env)
            row = {"setup": name, "repeat": repeat, "runs": len(results),
                   "ok": sum(r["status"] == "ok" for r in results), "wall_seconds": round(seconds, 1),
                   "runs_per_hour": round(len(results) / seconds * 3600, 1),
                   "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}
            rows.append(row)
            print(f"| {name} | {row['runs']} | {row['ok']} | {row['wall_seconds']} | {row['runs_per_hour']} "
                  f"| {row['load_before']} | {row['load_after']} |", flush=True)
    if args.out:
        report = {"args": vars(args) | {"out": str(args.out)}, "cores": os.cpu_count(), "rows": rows}
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
