"""Claim 2, the whole bundle in one command: tanh RNN vs GRU vs LSTM at matched parameter counts
(model.param_budget) on Bach chorales, KJV words, KJV characters and Fashion-MNIST rows, RMSProp with
gradient clipping at norm 1.

1. Learning-rate search: every cell × task on seed 0 over the grid (``<out>/lr_search``);
   the best rate per cell and task = the lowest val/loss (a diverged or failed run never wins). A best
   rate at the grid's edge is not an answer: that cell then tries the next rate outwards on the
   1-3-10 ladder (3e-3 -> 1e-2 -> 3e-2; 3e-4 -> 1e-4), up to the scale's ``extend`` steps, and
   lr_search.json says whether its best is still at the edge.
2. That rate × the other seeds per cell and task (``<out>/runs``; the search's seed-0 run at that rate is
   copied there: the same config), then the report on those runs.

    python experiments/claim_gru_lstm/run.py                  # CPU scale (README: runs, wall time)
    python experiments/claim_gru_lstm/run.py --scale paper --jobs 2 -- trainer=gpu
    python experiments/claim_gru_lstm/run.py --scale smoke --out /tmp/x --publish none --tasks fashion_mnist

Every multirun passes skip_completed=true: the same command resumes. The report's files, lr_search.json
(every search run's val/loss and the chosen rates) and RUN.md go to --publish (default: this folder).
Arguments after ``--`` are passed to every run (Hydra overrides).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from rnnlab.training.bundle import git_commit, multirun, publish, report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXPERIMENT = "claim_gru_lstm"
MODELS = ("rnn", "gru", "lstm")
# per task: its data overrides with the CPU-scale training length, and the parameter budget (stated:
# Chung et al.'s ≈20K where the data allow; word level: the 12,077-word vocabulary's embedding and softmax
# alone hold ≈1.5M at 64 dimensions). Validation during training on 50 batches at most (it picks the
# learning rate); the test set is always whole.
TASKS = {
    "chorales": (["data=chorales", "trainer.max_steps=1000"], 20000),
    "kjv_word": (["data=kjv", "data.level=word", "trainer.max_steps=300", "trainer.limit_val_batches=50"],
                 1_600_000),
    "kjv_char": (["data=kjv", "data.level=char", "trainer.max_steps=1500", "trainer.limit_val_batches=50"], 50000),
    "fashion_mnist": (["data=fashion_mnist", "data.root=/usr/share/datasets/fashion-mnist",
                       "data.pixels_per_step=28", "trainer.max_steps=1500", "trainer.limit_val_batches=50"], 20000),
}
SCALES = {
    # ≤ 45 min on 2 CPU cores, 2 jobs × 1 thread (README)
    "cpu": {"seeds": 5, "grid": [3e-4, 1e-3, 3e-3], "extend": 2, "extra": []},
    # Chung et al. 2014 trained to convergence with early stopping; a GPU (add trainer=gpu)
    "paper": {"seeds": 5, "grid": [1e-4, 3e-4, 1e-3, 3e-3], "extend": 2, "extra": [
        "trainer.max_steps=20000", "trainer.val_check_interval=500", "early_stopping.patience=10"]},
    # seconds: the test suite runs it so the bundle never rots (the report judges claims on 2 seeds)
    "smoke": {"seeds": 2, "grid": [1e-3, 3e-3], "extend": 1, "extra": [
        "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2"]},
}


def joined(values) -> str:
    return ",".join(str(v) for v in values)


def task_overrides(task: str, scale: str, extra: list[str]) -> list[str]:
    data, budget = TASKS[task]
    return [f"experiment={EXPERIMENT}", *data, f"model.param_budget={budget}", *SCALES[scale]["extra"], *extra]


def next_rate(lr: float, up: bool) -> float:
    """The next rate outwards on the 1-3-10 ladder: 3e-3 -> 1e-2 (up), 3e-4 -> 1e-4 (down)."""
    exponent = math.floor(math.log10(lr) + 1e-9)
    mantissa = lr / 10 ** exponent
    if up:
        return float(f"{(3 * 10 ** exponent if mantissa < 2 else 10 ** (exponent + 1)):.3g}")
    return float(f"{(10 ** exponent if mantissa > 2 else 3 * 10 ** (exponent - 1)):.3g}")


def beyond_edge(losses: dict[float, float]) -> float | None:
    """The rate to try next when the best of ``losses`` ({lr: val/loss}) lies at its edge, else None."""
    rates, best = sorted(losses), min(losses, key=losses.get)
    if len(rates) < 2 or not math.isfinite(losses[best]):
        return None
    if best == rates[-1]:
        return next_rate(best, up=True)
    if best == rates[0]:
        return next_rate(best, up=False)
    return None


def search_results(search_dir: Path, task: str) -> dict[str, dict[float, tuple[float, Path]]]:
    """{model: {lr: (val/loss, run dir)}} of one task's search runs (val/loss inf when diverged or failed)."""
    found: dict[str, dict[float, tuple[float, Path]]] = {}
    for path in sorted(search_dir.glob(f"{task}_*/results.json")):
        results = json.loads(path.read_text())
        lr = float(OmegaConf.load(path.parent / "config.yaml").optimizer.lr)
        loss = results["metrics"].get("val/loss") if results["status"] == "ok" else None
        found.setdefault(results["model"], {})[lr] = (math.inf if loss is None else loss, path.parent)
    return found


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of {', '.join(TASKS)}")
    parser.add_argument("--out", type=Path, default=None, help="sweep directory (default multirun/<bundle>_<scale>)")
    parser.add_argument("--publish", default=str(HERE), help="where report and RUN.md go; 'none' to skip")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (packed launcher, 1 thread each)")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    tasks = args.tasks.split(",")
    if unknown := [t for t in tasks if t not in TASKS]:
        parser.error(f"--tasks: {unknown[0]!r} is not a task; the tasks are {', '.join(TASKS)}")
    scale = SCALES[args.scale]
    out = (args.out or ROOT / "multirun" / f"{EXPERIMENT}_{args.scale}").resolve()
    commit, started, plan, chosen = git_commit(ROOT), time.perf_counter(), [], {}
    for task in tasks:
        search = [*task_overrides(task, args.scale, extra), f"model={joined(MODELS)}", "seed=0",
                  f"optimizer.lr={joined(scale['grid'])}"]
        multirun(ROOT, out / "lr_search", task, search, args.jobs)
        plan.append(search)
        losses = search_results(out / "lr_search", task)
        for step in range(scale["extend"]):  # cells whose best rate is at the edge try one further out
            outwards: dict[float, list[str]] = {}
            for model in MODELS:
                if (lr := beyond_edge({r: v[0] for r, v in losses[model].items()})) is not None:
                    outwards.setdefault(lr, []).append(model)
            for lr, models in outwards.items():  # one multirun per new rate, its cells run side by side
                further = [*task_overrides(task, args.scale, extra), f"model={joined(models)}", "seed=0",
                           f"optimizer.lr={lr}"]
                multirun(ROOT, out / "lr_search", f"{task}_edge{step + 1}_{'_'.join(models)}_lr{lr}", further,
                         args.jobs)
                plan.append(further)
            losses = search_results(out / "lr_search", task)
        for model in MODELS:
            best = min(losses[model], key=lambda lr: losses[model][lr][0])
            chosen.setdefault(task, {})[model] = {
                "lr": best, "val_loss": {lr: v[0] for lr, v in sorted(losses[model].items())},
                "best_at_edge": beyond_edge({r: v[0] for r, v in losses[model].items()}) is not None}
            # the search already trained seed 0 at this rate: the same config, so it joins the seeds' group
            seed0 = out / "runs" / f"{task}_{model}_lr_search_seed0"
            if not seed0.exists():
                shutil.copytree(losses[model][best][1], seed0)
            if scale["seeds"] > 1:
                final = [*task_overrides(task, args.scale, extra), f"model={model}", f"optimizer.lr={best}",
                         f"seed={joined(range(1, scale['seeds']))}"]
                multirun(ROOT, out / "runs", f"{task}_{model}", final, args.jobs)
                plan.append(final)
    (out / "lr_search.json").write_text(json.dumps(chosen, indent=2) + "\n")
    code = report(ROOT, out / "runs", min_runs=2 if args.scale == "smoke" else None)
    if args.publish != "none":
        publish(out / "runs", Path(args.publish), ["python", *sys.argv], time.perf_counter() - started, plan,
                commit, args.scale)
        (Path(args.publish) / "lr_search.json").write_text(json.dumps(chosen, indent=2) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
