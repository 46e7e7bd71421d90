"""keep_freed_memory: glibc keeps a step's freed buffers, so the next step does not fault them in again."""

import json
import platform
import subprocess
import sys

import pytest

from rnnlab.training.train import train

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# three buffers of a language-model step's size (14 MB, 14 MB, 28 MB), allocated and freed 20 times
# after 3 warm-up steps; prints the minor page faults of those 20 steps
STEPS = """
import resource, sys, torch
from rnnlab.training.allocator import keep_freed_memory
if sys.argv[1] == "on":
    assert keep_freed_memory()
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
    assert off > 10 * pages_per_step  # glibc's own thresholds: most steps fault their buffers in again
    assert on < off / 10, (on, off)


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_results_json_says_whether_the_thresholds_were_set(make_config, tmp_path):
    results = train(make_config(["keep_freed_memory=false"], name="off"))
    assert results["status"] == "ok" and results["keep_freed_memory"] is False
    results = train(make_config([], name="on"))
    assert results["keep_freed_memory"] is True
    assert json.loads((tmp_path / "on" / "results.json").read_text())["keep_freed_memory"] is True


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_the_allocator_bench_writes_its_table(tmp_path):
    from rnnlab.bench.allocator import main

    main(["--steps", "3", "--repeats", "1", "--setups", "default", "--out", str(tmp_path / "allocator")])
    saved = json.loads((tmp_path / "allocator.json").read_text())
    assert [(r["setup"], r["keep_freed_memory"], r["set"]) for r in saved["runs"]] == [("default", True, True),
                                                                                      ("default", False, False)]
    assert all(r["steps"] == 3 and r["minor_faults"] > 0 and r["tokens_per_s"] > 0 for r in saved["runs"])
    table = (tmp_path / "allocator.md").read_text()
    assert "| default |" in table and "speed-up" in table
