"""What a user sees in the terminal: one line on what is trained, a step progress bar, the summary.

Real ``run.py`` subprocesses at 80 columns, with W&B offline and nothing silenced by the environment.
"""

import io
import json
import os
import re
import subprocess
import sys

from rich.console import Console

from conftest import ROOT
from rnnlab.training.summary import print_summary
from rnnlab.training.train import train

# A few steps of the default run, every trainer.limit_* key as conf/trainer/cpu.yaml sets it.
FEW_STEPS = ["threads=1", "trainer.max_steps=6", "trainer.val_check_interval=3", "trainer.log_every_n_steps=1",
             "model.hidden_size=8", "data.n_train=384", "data.n_val=64", "data.n_test=64", "data.seq_len=10",
             "diagnostics.every_n_steps=3"]
# Each line of issue 14's list, as it read on every run before.
NOISE = ["GPU available", "TPU available", "💡 Tip", "litlogger", "was configured so", "_pytree", "LeafSpec",
         "anonymous setting", "wandb:", "Run history", "Run summary", "Epoch ", "v_num"]


def run_py(run_dir, *overrides):
    env = {**os.environ, "COLUMNS": "80", "WANDB_MODE": "offline"}
    env.pop("WANDB_SILENT", None)  # conftest sets it for in-process tests; a user's shell does not
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *FEW_STEPS, f"hydra.run.dir={run_dir}",
                           *overrides], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_run_prints_what_it_trains_a_step_bar_and_the_summary_and_nothing_else(tmp_path):
    run_dir = tmp_path / "a_run_directory_whose_path_is_longer_than_the_eighty_columns_of_the_terminal"
    proc = run_py(run_dir, "progress_bar=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert [n for n in NOISE if n in out] == [], out
    lines = out.splitlines()
    assert re.fullmatch(rf"training gru \(unrolled, [\d,]+ parameters\) on adding for 6 steps -> {run_dir}", lines[0])
    bar = next(line for line in lines if line.startswith("train (steps)"))
    assert "6/6" in bar and "it/s" in bar and "train/loss" in bar, bar  # steps of max_steps, speed, loss
    assert f"run directory: {run_dir}   (results.json, config.yaml, run.log, figures)" in lines  # whole, one line
    assert f"W&B (offline): wandb leet {run_dir}/wandb" in lines and "…" not in out
    assert len(lines) < 20, out
    log = (run_dir / "run.log").read_text()  # the detail is kept
    assert "GPU available" in log and "`Trainer.fit` stopped: `max_steps=6` reached" in log


def test_hydra_verbose_brings_the_libraries_lines_back(tmp_path):
    proc = run_py(tmp_path / "run", "progress_bar=false", "hydra.verbose=[lightning,rnnlab]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "GPU available" in out and "wandb: Run history:" in out


def test_a_missing_data_set_is_said_once_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "data=imdb", f"data.root={tmp_path / 'aclImdb'}",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, "COLUMNS": "80", "WANDB_MODE": "offline"})
    assert proc.returncode == 1
    (line,) = (proc.stdout + proc.stderr).strip().splitlines()
    assert line.startswith("error: FileNotFoundError: data.root=") and "data.download=true" in line
    results = json.loads((tmp_path / "run" / "results.json").read_text())  # and recorded, with its traceback
    assert results["status"] == "failed" and results["data_option"] == "imdb" and results["traceback"]
    assert "run failed: FileNotFoundError" in (tmp_path / "run" / "run.log").read_text()


def test_a_sweep_run_that_stops_before_its_data_names_the_data_option(tmp_path):
    proc = run_py(tmp_path / "run", "hydra.mode=MULTIRUN", "data=copy", "trainer.devices=99",
                  f"hydra.sweep.dir={tmp_path / 'sweep'}")
    row = next(line for line in proc.stdout.splitlines() if line.startswith("│ data"))
    assert "copy (the data= option" in row and "None" not in proc.stdout
    assert proc.stdout.count("trainer.devices=99 but") == 1  # in the summary box only (a sweep goes on)
    (results,) = (tmp_path / "sweep").glob("*/results.json")
    assert json.loads(results.read_text())["data_option"] == "copy"


def test_summary_at_80_columns_keeps_the_run_directory_whole(make_config, tmp_path):
    cfg = make_config(["logger=csv", "trainer.max_steps=2"], name="x" * 120)  # a 140-character path
    results = train(cfg)
    assert results["status"] == "ok"
    out = io.StringIO()
    print_summary(results, Console(file=out, width=80))
    text = out.getvalue()
    assert f"run directory: {cfg.output_dir}" in text.splitlines()[-1] and "…" not in text
    assert re.search(r"│ model\s+│ gru \(unrolled\), [\d,]+ parameters", text)
    assert re.search(r"│ data\s+│ adding \(regression\)", text) and re.search(r"│ test loss\s+│ \d", text)


def test_summary_of_a_run_that_failed_before_its_data_omits_the_data_row(make_config):
    results = train(make_config(["logger=csv", "trainer.devices=99"]))  # refused before anything is built
    assert results["status"] == "failed" and results["data"] is None
    out = io.StringIO()
    print_summary(results, Console(file=out, width=80))
    text = out.getvalue()
    assert "│ data" not in text and "None" not in text and "trainer.devices=99" in text
