"""keep_freed_memory: glibc keeps a step's freed buffers, so the next step does not fault them in again."""

import json
import platform
import subprocess
import sys

import pytest

from rnnlab.training.train import train

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# three buffers of a language-model step's size (14 MB, 14 MB, 28 MB), allocated and freed 20 times
# after 3 warm-up steps; prints the minor page faults of those 20 steps. "off" pins glibc's start-up
# thresholds (128 KiB): the regime a run falls into when glibc hands the buffers back; whether glibc's moving
# thresholds end there depends on the process's earlier allocations, so it is set, not hoped for.
STEPS = """
import ctypes, resource, sys, torch
from rnnlab.training.allocator import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, keep_freed_memory
if sys.argv[1] == "on":
    assert keep_freed_memory()
else:
    libc = ctypes.CDLL("libc.so.6")
    assert libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024) and libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024)
def step():
    a, b, c = torch.ones(3_500_000), torch.ones(3_500_000), torch.ones(7_000_000)
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(setting: str) -> int:
    out = subprocess.run([sys.executable, "-c", STEPS, setting], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_freed_buffers_are_reused_without_page_faults():
    on, off = _faults("on"), _faults("off")
    pages_per_step = (14 + 14 + 28) * 2**20 // 4096  # what a step touches: 14,336 pages of 4 KiB
    assert off > 10 * pages_per_step  # handed back: every step faults its buffers in again
    assert on < off / 10, (on, off)


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_results_json_says_whether_the_thresholds_were_set(make_config, tmp_path):
    results = train(make_config(["keep_freed_memory=false"], name="off"))
    assert results["status"] == "ok" and results["keep_freed_memory"] is False
    results = train(make_config([], name="on"))
    assert results["keep_freed_memory"] is True
    assert json.loads((tmp_path / "on" / "results.json").read_text())["keep_freed_memory"] is True


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_the_allocator_bench_times_a_run_and_writes_its_table(tmp_path):
    """One real timed run (in this process; the bench starts a fresh one per run, through the same worker
    helper as the threads bench, whose test runs it), then the table from a pair of runs."""
    from rnnlab.bench.allocator import markdown, summarise, timed_run
    from rnnlab.bench.worker import save_tables

    run = timed_run("default", 3, "true")
    assert run["steps"] == 3 and run["set"] is True and run["tokens_per_s"] > 0 and run["max_rss_mb"] > 0
    runs = [{"setup": "default", "keep_freed_memory": keep, "load_1min_before": 0.5, **run,
             "tokens_per_s": tps, "minor_faults": faults} for keep, tps, faults in ((True, 110.0, 10), (False, 100.0, 90))]
    rows = summarise(runs)
    assert rows[0]["speedup"] == pytest.approx(1.1) and rows[0]["minor_faults_off"] == 90
    meta = {"date": "today", "steps": 3, "repeats": 1, "cores": 2, "load_min": 0.5, "load_max": 0.5}
    table = save_tables(tmp_path / "allocator", meta, rows, runs, markdown)
    assert "| default | 110 | 100 | 1.100× (1.100×) | 10 / 90 |" in table
    assert json.loads((tmp_path / "allocator.json").read_text())["rows"] == rows
