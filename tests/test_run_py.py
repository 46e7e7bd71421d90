"""The command line as users type it: run.py single runs, multiruns, and its errors."""

import json
import subprocess
import sys

from conftest import ROOT, TINY


def run_py(*args: str, cwd=ROOT):
    flags = [a for a in args if a.startswith("-")]  # Hydra wants -m before the overrides
    overrides = [a for a in args if not a.startswith("-")]
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *flags, *TINY, "logger=csv", *overrides],
                          cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def test_multirun_writes_one_result_per_run_and_a_table(tmp_path):
    proc = run_py("-m", "model=rnn,lstm,gru", "logger=wandb", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/results.json"))]
    assert sorted(r["model"] for r in results) == ["gru", "lstm", "rnn"]
    assert all(r["status"] == "ok" for r in results)
    table = (tmp_path / "summary.md").read_text()
    assert table.count("| ok |") == 3 and "3 runs: 3 ok, 0 diverged, 0 failed" in table
    assert "3 runs: 3 ok" in proc.stdout
    runs = sorted((tmp_path / "wandb").glob("*-run-*"))  # the sweep's W&B runs in one place, for `wandb leet`
    assert len(runs) == 3 and all(r.is_symlink() and list(r.resolve().glob("*.wandb")) for r in runs)
    assert (tmp_path / "wandb" / "latest-run").resolve() == runs[-1].resolve()  # what `wandb leet inspect` reads
    header = next(line for line in table.splitlines() if line.startswith("| model |"))  # readable names, no dots
    assert "| MSE/base |" in header and header.endswith("| ratio₀ | ratio |") and "MSE/base: test MSE ÷" in table
    printed = [line for line in proc.stdout.splitlines() if line.startswith("| ")]  # the terminal's table
    assert printed and max(map(len, printed)) <= 120 and "| slope |" in printed[0] and "ratio" not in printed[0]


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    proc = run_py("-m", "model.hidden_size=-1,8", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {r["status"]: r for r in (json.loads(p.read_text()) for p in tmp_path.glob("*/results.json"))}
    assert set(results) == {"failed", "ok"}
    assert "model.hidden_size must be a positive integer" in results["failed"]["error"]
    assert "2 runs: 1 ok, 0 diverged, 1 failed" in (tmp_path / "summary.md").read_text()


def test_a_failed_single_run_exits_nonzero_with_one_line(tmp_path):
    """A bad value stops before anything is built (tests/test_config_errors.py holds the whole table)."""
    proc = run_py("model.hidden_size=-1", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "error: model.hidden_size must be a positive integer, got -1; e.g. model.hidden_size=128"
    assert not (tmp_path / "results.json").exists()


def test_unknown_choice_is_named_with_the_choices(tmp_path):
    proc = run_py("model=transformer", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == "error: model=transformer: no such option; choose one of gru, lstm, rnn"


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    proc = run_py("model.hidden_sise=3", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == "error: unknown key `model.hidden_sise`: did you mean `model.hidden_size`?"
