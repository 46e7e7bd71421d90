"""The thread default survives a shared machine: OpenMP threads sleep when idle, and the bench measures it."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from rnnlab.bench.threads import markdown, measure, summarise


def _spincount(code: list[str], **env_vars) -> str:
    """GOMP_SPINCOUNT as OpenMP reports it when torch loads it (0 = PASSIVE: idle threads sleep at once)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"OMP_DISPLAY_ENV": "verbose", **env_vars}
    proc = subprocess.run([sys.executable, *code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=True)
    return next(line.split("=", 1)[1].strip(" '") for line in proc.stderr.splitlines() if "GOMP_SPINCOUNT" in line)


def test_importing_rnnlab_before_torch_makes_openmp_threads_sleep():
    assert _spincount(["-c", "import rnnlab, torch"]) == "0"
    assert _spincount([str(ROOT / "run.py"), "--help"]) == "0"  # what a user's run gets
    assert _spincount(["-c", "import torch"]) != "0"  # OpenMP's own default spins: what we change
    assert _spincount(["-c", "import rnnlab, torch"], OMP_WAIT_POLICY="ACTIVE") != "0"  # the user's choice wins


@pytest.mark.slow
@pytest.mark.serial  # starts a busy process beside a timed run
def test_threads_bench_times_a_default_run_quiet_and_next_to_a_busy_process():
    runs = [measure("threads=1", "1", None, steps=3, busy=busy) for busy in (False, True)]
    assert all(r["status"] == "ok" and r["step_median_s"] > 0 and r["torch_threads"] == 1 for r in runs)
    (row,) = summarise(runs)
    assert row["busy_over_quiet"] == runs[1]["step_median_s"] / runs[0]["step_median_s"]
    meta = {"date": "now", "steps": 3, "repeats": 1, "cores": 2, "load_min": 0.0, "load_max": 1.0}
    assert "| threads=1 |" in markdown([row], runs, meta)
