"""Does ``model.compile=true`` pay for itself within a default run? Whole ``python run.py`` runs, timed.

``model.compile=true`` compiles the step loop, which is how a cell without a scan trains (here the GRU
with ``model.scan=false``, i.e. the textbook loop of ``cell.step``). Each run is its own process, with
the default config (GRU, adding T=50, 1,500 steps), no logger and no progress bar:

1. ``model.scan=false``: the eager step loop;
2. ``model.scan=false model.compile=true`` with an empty Inductor cache (the first run ever);
3. the same again, the cache now warm (what later runs of a sweep pay);
4. the default (``cell.scan``), for reference.

Prints a Markdown table of wall time (start-up, compilation, training, validation and test), training
time, tokens/s and test MSE. ``--steps`` shortens the runs.

    python benchmarks/compile_run.py [--steps 1500] [--model gru]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(overrides: list[str], cache: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="rnnlab-compile-run-") as out:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
        done = subprocess.run([sys.executable, str(ROOT / "run.py"), "logger=none", "progress_bar=false",
                               f"output_dir={out}", *overrides], env=env, capture_output=True, text=True,
                              check=False, cwd=ROOT)
        results_file = Path(out) / "results.json"
        if not results_file.exists():
            raise RuntimeError(f"run.py {' '.join(overrides)} wrote no results:\n{done.stderr[-2000:]}")
        return json.loads(results_file.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--model", default="gru")
    args = parser.parse_args()
    common = [f"model={args.model}", f"trainer.max_steps={args.steps}"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnlab-inductor-") as cache:
        for name, extra in (("eager step loop (model.scan=false)", ["model.scan=false"]),
                            ("compiled step loop, cold cache", ["model.scan=false", "model.compile=true"]),
                            ("compiled step loop, warm cache", ["model.scan=false", "model.compile=true"]),
                            ("scan (the default)", [])):
            r = run(common + extra, cache)
            if r["status"] != "ok":
                raise RuntimeError(f"{name}: {r['status']}: {r['error']}")
            rows.append((name, r))
            print(f"[compile_run] {name}: {r['wall_seconds']:.1f} s", file=sys.stderr, flush=True)
    print(f"{args.model}, adding T=50, {args.steps} steps, one process per run\n")
    print("| run | wall s | train s | tokens/s | median step ms | test MSE |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['wall_seconds']:.1f} | {r['train_seconds']:.1f} | {r['tokens_per_second']:,.0f} | "
              f"{r['step_seconds_median'] * 1e3:.2f} | {r['metrics']['test/loss']:.5f} |")


if __name__ == "__main__":
    main()
