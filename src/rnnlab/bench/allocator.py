"""What glibc's handing freed memory back to the OS costs a training run: ``keep_freed_memory`` on and off.

``python -m rnnlab.bench.allocator`` trains each setting in a fresh process (the thresholds are
process-wide), alternated (on, off, on, off, …), one thread, ``logger=none``, diagnostics off, tiny
validation/test, and reports per run the training loop's tokens/s (results.json ``loop_tokens_per_second``),
the minor page faults and the system CPU time of the training call (``getrusage``), and the peak resident
memory. Two settings:

- ``lm``: word_language_model's shape: 2 × 200 LSTM (fused), embeddings 200, bptt 35, batch 20, KJV words
  with a 5,000-word vocabulary: the (700, 5000) logits are 14 MB, the buffers glibc kept returning;
- ``default``: the default run (GRU, adding T = 50, H = 128, batch 64): small buffers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from rnnlab.bench.worker import save_tables, worker_result

RESULTS = Path("benchmarks") / "allocator"
SETUPS = {
    "lm": ["data=kjv", "data.max_size=5000", "model=lstm", "model.impl=fused", "model.hidden_size=200",
           "model.num_layers=2", "embeddings.dim=200", "model.dropout=0.2", "optimizer=sgd", "optimizer.lr=20",
           "trainer.gradient_clip_val=0.25", "data.bptt=35", "data.batch_size=20"],
    "default": [],
}
WORKER = ("import sys, json; from rnnlab.bench.allocator import timed_run; "
          "print('RESULT ' + json.dumps(timed_run(sys.argv[1], int(sys.argv[2]), sys.argv[3])))")


def timed_run(setup: str, steps: int, keep: str) -> dict:
    """Train ``setup`` for ``steps`` steps in this process; faults and system time of the training call."""
    import resource

    from rnnlab.bench.overhead import compose_config
    from rnnlab.training.train import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config([*SETUPS[setup], f"trainer.max_steps={steps}", "trainer.limit_val_batches=2",
                              "trainer.limit_test_batches=2", "diagnostics.every_n_steps=0", "logger=none",
                              "progress_bar=false", "threads=1", f"keep_freed_memory={keep}", f"output_dir={tmp}"])
        before = resource.getrusage(resource.RUSAGE_SELF)
        results = train(cfg)
        after = resource.getrusage(resource.RUSAGE_SELF)
    if results["status"] != "ok":
        raise RuntimeError(f"{setup} keep_freed_memory={keep}: {results['error']}")
    return {"tokens_per_s": results["loop_tokens_per_second"], "step_median_s": results["step_seconds_median"],
            "steps": results["steps"], "set": results["keep_freed_memory"],
            "minor_faults": after.ru_minflt - before.ru_minflt, "system_s": after.ru_stime - before.ru_stime,
            "max_rss_mb": after.ru_maxrss / 1024}


def measure(setup: str, steps: int, keep: bool) -> dict:
    load = os.getloadavg()[0]
    result = worker_result(WORKER, [setup, str(steps), str(keep).lower()], {**os.environ, "OMP_NUM_THREADS": "1"})
    return {"setup": setup, "keep_freed_memory": keep, "load_1min_before": load, **result}


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for setup in dict.fromkeys(r["setup"] for r in runs):
        on = [r for r in runs if r["setup"] == setup and r["keep_freed_memory"]]
        off = [r for r in runs if r["setup"] == setup and not r["keep_freed_memory"]]
        row = {"setup": setup, "speedup": statistics.median(a["tokens_per_s"] / b["tokens_per_s"]
                                                            for a, b in zip(on, off)),
               "speedup_min": min(a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(on, off))}
        for name, arm in (("on", on), ("off", off)):
            for key in ("tokens_per_s", "minor_faults", "system_s", "max_rss_mb"):
                row[f"{key}_{name}"] = statistics.median(r[key] for r in arm)
        rows.append(row)
    return rows


def markdown(rows: list[dict], runs: list[dict], meta: dict) -> str:
    lines = [f"# keep_freed_memory on and off ({meta['date']})", "",
             (f"`python -m rnnlab.bench.allocator --steps {meta['steps']} --repeats {meta['repeats']}`: each run "
              f"a fresh process, one thread, {meta['steps']} training steps, settings alternated; medians over "
              f"{meta['repeats']} repeats; speed-up = on / off of runs side by side. 1-min load before the runs: "
              f"{meta['load_min']:.2f}–{meta['load_max']:.2f} on {meta['cores']} cores. `lm`: 2 × 200 LSTM "
              "(fused), bptt 35, batch 20, KJV words, vocabulary 5,000; `default`: GRU, adding T = 50."), "",
             ("| setup | tokens/s on | tokens/s off | speed-up (worst) | minor faults on / off | system s on / off "
             "| peak RSS MB on / off |"), "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['setup']} | {r['tokens_per_s_on']:,.0f} | {r['tokens_per_s_off']:,.0f} | {r['speedup']:.3f}× "
              f"({r['speedup_min']:.3f}×) | {r['minor_faults_on']:,.0f} / {r['minor_faults_off']:,.0f} | "
              f"{r['system_s_on']:.2f} / {r['system_s_off']:.2f} | {r['max_rss_mb_on']:.0f} / "
              f"{r['max_rss_mb_off']:.0f} |" for r in rows]
    lines += ["", "Every run, in order:", "", ("| setup | keep_freed_memory | load before | tokens/s | minor faults "
              "| system s |"), "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r['setup']} | {str(r['keep_freed_memory']).lower()} | {r['load_1min_before']:.2f} | "
              f"{r['tokens_per_s']:,.0f} | {r['minor_faults']:,} | {r['system_s']:.2f} |" for r in runs]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=150, help="training steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--out", type=Path, default=RESULTS, help="writes <out>.md and <out>.json")
    args = parser.parse_args(argv)
    runs = []
    for _ in range(args.repeats):
        for setup in args.setups:
            for keep in (True, False):
                runs.append(measure(setup, args.steps, keep))
                print(json.dumps(runs[-1]), flush=True)
    loads = [r["load_1min_before"] for r in runs]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "steps": args.steps, "repeats": args.repeats,
            "cores": len(os.sched_getaffinity(0)), "load_min": min(loads), "load_max": max(loads)}
    print(save_tables(args.out, meta, summarise(runs), runs, markdown))


if __name__ == "__main__":
    main()
