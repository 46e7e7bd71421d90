"""Run an experiment bundle (experiments/claim_*/run.py): several Hydra multiruns into one directory, then the
report, then RUN.md (the exact command, git commit, wall time, machine) beside the published report.

A bundle that tunes a hyper-parameter does it here, the same way for every cell: the same trials (the same
values, drawn once: :func:`log_uniform_draws`) on tuning seeds (:data:`TUNING_SEED` and up) that are never
evidence seeds (0 … n−1); :func:`search_trials` reads every trial back and :func:`choose` picks the best, or
stops the bundle with one line naming the failures when no trial of a cell succeeded.

Every multirun passes ``skip_completed=true``: rerunning the same command resumes, finished runs are not
trained again. Jobs run ``hydra/launcher=packed`` (``jobs`` processes of one thread each) unless told otherwise.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

PUBLISHED = ("report.md", "verdicts.json", "aggregate.json", "summary.md", "runs.csv", "*.png")  # committed as evidence
TUNING_SEED = 1000  # the search's seeds start here; evidence runs use 0 … n−1, never a tuning run


class SearchFailed(RuntimeError):
    """No trial of a cell succeeded: the message is the one line that names the failures."""


def log_uniform_draws(n: int, low: float, high: float, seed: int) -> list[float]:
    """``n`` learning rates exp(U(low, high)), drawn once from ``seed`` and rounded to 3 significant digits
    (Chung et al. 2014: 10 draws of exp(U(−12, −6))); every cell gets these same values."""
    rng = np.random.default_rng(seed)
    return [float(f"{math.exp(x):.3g}") for x in rng.uniform(low, high, size=n)]


def search_trials(search_dir: Path, pattern: str, key: str = "optimizer.lr") -> list[dict]:
    """Every trial below ``search_dir`` matching ``pattern``: {model, value (of ``key``), seed, status,
    val_loss (None unless ok and finite), run, error}."""
    trials = []
    for path in sorted(search_dir.glob(f"{pattern}/results.json")):
        results = json.loads(path.read_text())
        node = yaml.safe_load((path.parent / "config.yaml").read_text()) if (path.parent / "config.yaml").exists() else {}
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        loss = (results.get("metrics") or {}).get("val/loss")
        ok = results.get("status") == "ok" and isinstance(loss, (int, float)) and math.isfinite(loss)
        trials.append({"model": results.get("model"), "value": node, "seed": results.get("seed"),
                       "status": results.get("status") or "failed", "val_loss": loss if ok else None,
                       "run": path.parent.name, "error": results.get("error")})
    return trials


def choose(trials: list[dict], where: str) -> dict:
    """The trial with the lowest val/loss; :class:`SearchFailed` (one line naming every trial and why) when
    no trial succeeded or there is none."""
    done = [t for t in trials if t["val_loss"] is not None]
    if done:
        return min(done, key=lambda t: t["val_loss"])
    if not trials:
        raise SearchFailed(f"{where}: the search found no trial run (results.json); nothing to choose from")
    failures = "; ".join(f"{t['run']}: {t['status']}" + (f" ({t['error']})" if t.get("error") else "")
                         for t in trials)
    raise SearchFailed(f"{where}: every one of {len(trials)} search trials failed or diverged, so no value is "
                       f"chosen and the bundle stops: {failures}")


def divergence_counts(trials: list[dict]) -> dict:
    """{trials, ok, diverged, failed, diverged_fraction} over a cell's search trials (Collins et al. 2017)."""
    counts = {s: sum(t["status"] == s for t in trials) for s in ("ok", "diverged")}
    counts["failed"] = len(trials) - counts["ok"] - counts["diverged"]
    return {"trials": len(trials), **counts, "diverged_fraction": counts["diverged"] / len(trials) if trials else None}


def multirun(root: Path, sweep_dir: Path, label: str, overrides: list[str], jobs: int = 2) -> None:
    """``python run.py -m`` with these overrides, into ``sweep_dir``; raises if Hydra itself fails (a failed run
    does not: it is recorded in its results.json).

    Run directories are ``<label>_<job number>_<the swept keys>`` (``label`` tells the multiruns sharing the
    directory apart; the fixed overrides stay out of the name, which must stay under the file system's 255).
    """
    fixed = [o.split("=", 1)[0] for o in overrides if "," not in o.split("=", 1)[-1]]
    exclude = ",".join(dict.fromkeys(["skip_completed", "progress_bar", "threads", *fixed]))
    launcher = ["hydra/launcher=packed", f"hydra.launcher.n_jobs={jobs}"] if jobs > 1 else []
    command = [sys.executable, "run.py", "-m", f"hydra.sweep.dir={sweep_dir}", *launcher,
               f"hydra.sweep.subdir={label}_${{hydra.job.num}}_${{hydra.job.override_dirname}}",
               f"hydra.job.config.override_dirname.exclude_keys=[{exclude}]",
               "threads=1", "skip_completed=true", "progress_bar=false", *overrides]
    print("+", shlex.join(command[1:]), flush=True)
    subprocess.run(command, cwd=root, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def report(root: Path, sweep_dir: Path, min_runs: int | None = None) -> int:
    """``python -m rnnlab.report <sweep_dir>``: report.md, verdicts.json and the figures into the sweep dir;
    ``min_runs`` overrides every claim's (smoke runs)."""
    command = [sys.executable, "-m", "rnnlab.report", str(sweep_dir)]
    command += [] if min_runs is None else ["--min-runs", str(min_runs)]
    print("+", shlex.join(command[1:]), flush=True)
    return subprocess.run(command, cwd=root, check=False).returncode


def machine() -> str:
    """One line: CPU / GPU, cores, OS, Python and torch versions."""
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores{gpu}, {platform.platform()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def git_commit(root: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                           text=True, check=False).stdout.strip()
    return (done.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def publish(sweep_dir: Path, folder: Path, command: list[str], wall_seconds: float, sweeps: list[list[str]],
            commit: str, scale: str) -> None:
    """Copy the report's files from the sweep dir into ``folder`` and write ``folder/RUN.md``."""
    folder.mkdir(parents=True, exist_ok=True)
    for pattern in PUBLISHED:
        for path in sorted(sweep_dir.glob(pattern)):
            shutil.copy2(path, folder / path.name)
    lines = [f"# How this evidence was made ({scale} scale)", "",
             "Generated by the bundle's run script; nothing here is typed by hand.", "",
             "```bash", shlex.join(command), "```", "",
             f"- git commit: `{commit}`",
             f"- wall time: {wall_seconds / 60:.1f} min ({wall_seconds:.0f} s)",
             f"- machine: {machine()}",
             f"- finished: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"- sweep directory: `{sweep_dir}` (run directories, not committed)", "",
             "The multiruns it ran, in order (each also with `hydra.sweep.dir=<the sweep directory>`, its run",
             "directories named `<label>_<job>_<swept keys>`, `hydra/launcher=packed` unless `--jobs 1`,",
             "`skip_completed=true threads=1 progress_bar=false`):", ""]
    lines += [f"- `python run.py -m {shlex.join(s)}`" for s in sweeps]
    (folder / "RUN.md").write_text("\n".join(lines) + "\n")
