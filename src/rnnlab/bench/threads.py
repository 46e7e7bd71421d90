"""Which CPU thread setting survives a shared machine: a default run, quiet and next to one busy process.

``python -m rnnlab.bench.threads`` trains the default run (GRU, adding problem T = 50, H = 128, batch 64,
diagnostics every 50 steps; ``logger=none``, tiny validation/test) for ``--steps`` steps in a fresh
process per setting, and reports the median training-step time:

- ``torch default``: torch's threads (one per core) with OpenMP's wait policy unset, i.e. worker threads
  spin a while before sleeping. That process imports torch before rnnlab, so rnnlab's
  ``OMP_WAIT_POLICY`` default cannot reach OpenMP: it is read once, when torch loads libgomp.
- ``threads=1``: one torch thread.
- ``threads=<cores>, PASSIVE``: torch's threads, ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at once).

Each setting runs *quiet* and *busy* (next to ``python -c "while True: pass"``, started by this script),
alternated (quiet A, B, C, busy A, B, C, repeated), so the busy/quiet ratio is measured within one
script under the same background load. ``uptime``'s load is recorded beside each run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rnnlab.bench.worker import save_tables, worker_result

RESULTS = Path("benchmarks") / "threads"
# the worker imports torch first, so the settings' environment alone decides OpenMP's wait policy
WORKER = ("import sys, torch, json; from rnnlab.bench.threads import timed_run; "
          "print('RESULT ' + json.dumps(timed_run(int(sys.argv[1]), sys.argv[2])))")


def settings(cores: int) -> dict[str, tuple[str, str | None]]:
    """label -> (``threads`` override value, OMP_WAIT_POLICY or None for unset)."""
    return {"torch default": ("null", None), "threads=1": ("1", None),
            f"threads={cores}, PASSIVE": (str(cores), "PASSIVE")}


def timed_run(steps: int, threads: str) -> dict:
    """Train the default config for ``steps`` steps in this process; its median step time and the run's."""
    import torch
    from hydra import compose, initialize_config_dir

    from rnnlab.training.train import train

    conf = Path(__file__).resolve().parents[3] / "conf"
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"trainer.max_steps={steps}", "trainer.limit_val_batches=2", "trainer.limit_test_batches=2",
                     "logger=none", "progress_bar=false", f"threads={threads}", f"output_dir={tmp}"]
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        started = time.perf_counter()
        results = train(cfg)
    return {"status": results["status"], "step_median_s": results["step_seconds_median"],
            "fit_s": results["train_seconds"], "run_s": time.perf_counter() - started,
            "torch_threads": torch.get_num_threads()}


def _load() -> float:
    return os.getloadavg()[0]


def measure(label: str, threads: str, policy: str | None, steps: int, busy: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    load = _load()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        result = worker_result(WORKER, [str(steps), threads], env)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return {"setting": label, "busy": busy, "load_1min_before": load, **result}


def summarise(runs: list[dict]) -> list[dict]:
    """One row per setting: median step time quiet and busy, and busy / quiet within each repeat (the busy
    run follows its quiet one by a few seconds, so both saw nearly the same background load)."""
    rows = []
    for label in dict.fromkeys(r["setting"] for r in runs):
        quiet = [r["step_median_s"] for r in runs if r["setting"] == label and not r["busy"]]
        busy = [r["step_median_s"] for r in runs if r["setting"] == label and r["busy"]]
        ratios = [b / q for q, b in zip(quiet, busy)]
        rows.append({"setting": label, "quiet_step_ms": 1e3 * statistics.median(quiet),
                     "busy_step_ms": 1e3 * statistics.median(busy), "busy_over_quiet": statistics.median(ratios),
                     "busy_over_quiet_max": max(ratios)})
    return rows


def markdown(rows: list[dict], runs: list[dict], meta: dict) -> str:
    lines = [f"# Thread settings on a shared machine ({meta['date']})", "",
             (f"`python -m rnnlab.bench.threads --steps {meta['steps']} --repeats {meta['repeats']}`: the default "
             f"run (GRU, adding T=50, H=128, B=64, diagnostics every 50), median training-step time of "
             f"{meta['steps']} steps, median over {meta['repeats']} alternated repeats; {meta['cores']} usable "
             "cores. *Busy*: next to one `python -c \"while True: pass\"`."), "",
             (f"**This machine was shared with other jobs while it ran** (1-min load before the runs: "
             f"{meta['load_min']:.2f}–{meta['load_max']:.2f}), so *quiet* means \"no extra busy process\", not idle; "
             "compare within a column and the ratios, not absolute times with other files."), "",
             "| setting | quiet step (ms) | busy step (ms) | busy / quiet, median | busy / quiet, worst |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {r['quiet_step_ms']:.1f} | {r['busy_step_ms']:.1f} | {r['busy_over_quiet']:.2f}× "
              f"| {r['busy_over_quiet_max']:.2f}× |" for r in rows]
    lines += ["", "Every run (in the order they ran):", "", "| setting | busy | load before | step (ms) | whole run (s) |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['setting']} | {'yes' if r['busy'] else 'no'} | {r['load_1min_before']:.2f} | "
              f"{1e3 * r['step_median_s']:.1f} | {r['run_s']:.1f} |" for r in runs]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS, help="writes <out>.md and <out>.json")
    parser.add_argument("--render", action="store_true", help="only rewrite <out>.md from <out>.json")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads(args.out.with_suffix(".json").read_text())
        rows = summarise(saved["runs"])
        args.out.with_suffix(".json").write_text(json.dumps({**saved, "rows": rows}, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(rows, saved["runs"], saved["meta"]))
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    runs = []
    for _ in range(args.repeats):
        for busy in (False, True):
            for label, (threads, policy) in settings(cores).items():
                runs.append(measure(label, threads, policy, args.steps, busy))
                print(json.dumps(runs[-1]), flush=True)
    loads = [r["load_1min_before"] for r in runs]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "steps": args.steps, "repeats": args.repeats, "cores": cores,
            "load_min": min(loads), "load_max": max(loads)}
    print(save_tables(args.out, meta, summarise(runs), runs, markdown))


if __name__ == "__main__":
    main()
