"""A bad value, a typo in a key or an unknown option ends in one line naming the key, before anything is built."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, TINY, compose_config, options
from rnnlab.training.config_check import ConfigError, check_config
from rnnlab.training.train import train

# command-line override -> the one line run.py ends with
BAD = {
    "trainer.max_steps=abc": ("error: trainer.max_steps must be a positive integer (or -1: no limit), got 'abc'; "
                              "e.g. trainer.max_steps=1500"),
    "optimizer.lr=-1": "error: optimizer.lr must be a positive number, got -1; e.g. optimizer.lr=1e-3",
    "model.hidden_size=abc": "error: model.hidden_size must be a positive integer, got 'abc'; e.g. model.hidden_size=128",
    "model.hiden_size=10": "error: unknown key `model.hiden_size`: did you mean `model.hidden_size`?",
    "+model.hiden_size=10": "error: unknown key `model.hiden_size`: did you mean `model.hidden_size`?",
    "+trainer.max_step=10": "error: unknown key `trainer.max_step`: did you mean `trainer.max_steps`?",
    "modle=lstm": "error: unknown key `modle`: did you mean `model`?",
    "model=transformer": "error: model=transformer: no such option; choose one of gru, lstm, rnn",
    "model=_base": "error: model=_base: no such option; choose one of gru, lstm, rnn",
    "model=gur": "error: model=gur: no such option: did you mean `model=gru`? choose one of gru, lstm, rnn",
    "model.dropout=1.5": "error: model.dropout must be in [0, 1), got 1.5; e.g. model.dropout=0.2",
    "seed=-3": "error: seed must be an integer ≥ 0, got -3; e.g. seed=0",
    "progress_bar=maybe": "error: progress_bar must be bool, got 'maybe'",
}


@pytest.mark.parametrize("override", list(BAD))
def test_run_py_ends_a_bad_value_in_one_line_without_a_wandb_run(override, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "offline"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), *TINY, "logger=wandb", "threads=1",
                           f"output_dir={run_dir}", f"hydra.run.dir={run_dir}", override],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == BAD[override]
    assert "Traceback" not in proc.stderr and proc.stdout.strip() == ""  # nothing ran, nothing else said
    assert not list(tmp_path.rglob("wandb")) and not run_dir.exists()  # no empty run folder left behind


def run_py(tmp_path, *overrides: str, **env: str) -> subprocess.CompletedProcess:
    run_dir = tmp_path / "run"
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *TINY, "threads=1", f"output_dir={run_dir}",
                           f"hydra.run.dir={run_dir}", *overrides], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, check=False, env={**os.environ, **env})


@pytest.mark.parametrize("value, full", [("0", False), ("", False), ("1", True)])
def test_hydra_full_error_is_on_only_when_it_is_1_as_in_hydra(tmp_path, value, full):
    proc = run_py(tmp_path, "modle=lstm", HYDRA_FULL_ERROR=value)
    assert proc.returncode == 1
    assert ("Traceback" in proc.stderr) == full, proc.stderr[-2000:]
    if not full:
        assert proc.stderr.strip().splitlines() == ["error: unknown key `modle`: did you mean `model`?"]


def test_an_empty_wandb_mode_means_unset(tmp_path):
    proc = run_py(tmp_path, "logger=wandb", WANDB_MODE="")  # conftest removed any API key
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["status"] == "ok"
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))  # no key: offline, as with WANDB_MODE unset


def test_a_sweep_records_a_bad_value_as_failed_and_builds_nothing(make_config, tmp_path):
    """In a sweep train() gets the bad config: the run is recorded failed, with the same line, no W&B run."""
    results = train(make_config(["optimizer.lr=-1", "logger=wandb"]))
    assert results["status"] == "failed" and results["params"] is None
    assert results["error"] == "optimizer.lr must be a positive number, got -1; e.g. optimizer.lr=1e-3"
    assert json.loads((tmp_path / "run" / "results.json").read_text())["error"] == results["error"]
    assert not list(tmp_path.rglob("wandb"))


@pytest.mark.parametrize("override, message", [
    ("model.hidden_size=0", "model.hidden_size must be a positive integer, got 0; e.g. model.hidden_size=128"),
    ("model.num_layers=1.5", "model.num_layers must be a positive integer, got 1.5; e.g. model.num_layers=2"),
    ("data.batch_size=-1", "data.batch_size must be a positive integer, got -1; e.g. data.batch_size=64"),
    ("diagnostics.every_n_steps=-5", ("diagnostics.every_n_steps must be a positive integer or 0 (off), "
                                     "got -5; e.g. diagnostics.every_n_steps=50")),
    ("threads=0", "threads must be null or an integer ≥ 1, got 0; e.g. threads=1"),
    ("model.bidirectional=maybe", "model.bidirectional must be true or false, got 'maybe'"),
    ("keep_freed_memory=maybe", "keep_freed_memory must be bool, got 'maybe'"),
    ("+data.seq_lenn=3", "unknown key `data.seq_lenn`: did you mean `data.seq_len`?"),
    ("+model.cell.forget_bais=2", "unknown key `model.cell.forget_bais`: did you mean `model.cell.forget_bias`?"),
])
def test_check_config_names_the_key_the_value_and_the_fix(override, message):
    extra = ["model=lstm"] if "forget" in override else []
    with pytest.raises(ConfigError) as caught:
        check_config(compose_config(extra + [override]))
    assert str(caught.value) == message


@pytest.mark.parametrize("group", ["model", "data", "embeddings", "optimizer", "trainer", "logger", "experiment"])
def test_every_shipped_option_passes_the_check(group):
    for option in options(group):
        overrides = [f"{group}={option}"] + (["embeddings.path=vectors.txt"] if option == "pretrained" else [])
        check_config(compose_config(overrides, tiny=False))
