"""Real Lightning runs of a few steps through rnnlab.training.train.train, on the real composed configs."""

import json
from pathlib import Path

import pytest

from conftest import options
from rnnlab.training.train import train

GENERATED_DATA = ["adding", "copy"]  # data sets that need no files; file-based ones have their own tests
RESULT_KEYS = {"status", "error", "model", "impl", "data", "task", "params", "seed", "steps", "epochs",
               "train_seconds", "tokens_per_second", "metrics", "embeddings", "gradients"}


@pytest.mark.parametrize("data", GENERATED_DATA)
@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("impl", ["unrolled", "fused"])
def test_every_model_trains_on_every_generated_data_set(make_config, model, data, impl):
    cfg = make_config([f"model={model}", f"data={data}", f"model.impl={impl}", "logger=csv",
                       "data.seq_len=6", "data.n_train=64", "data.n_val=16", "data.n_test=16"])
    results = train(cfg)
    assert results["status"] == "ok", results.get("traceback")
    saved = json.loads((Path(cfg.output_dir) / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert RESULT_KEYS <= set(saved)
    assert saved["model"] == model and saved["data"] == data and saved["impl"] == impl and saved["steps"] == 2
    assert saved["params"] > 0 and saved["tokens_per_second"] > 0
    assert 0 < saved["step_seconds_median"] <= saved["train_seconds"]  # one of its 2 steps
    assert set(saved["metrics"]) >= {"val/loss", "test/loss", "test/acc", "test/ppl"}
    assert saved["metrics"]["test/loss"] > 0
    assert (saved["metrics"]["test/acc"] is not None) == (data == "copy")


def test_every_config_option_in_the_groups_composes(make_config):
    for group in ("optimizer", "trainer", "logger", "embeddings", "experiment"):
        for option in options(group):
            make_config([f"{group}={option}"])


def test_a_tiny_gru_learns_the_adding_problem(make_config):
    cfg = make_config(["model=gru", "data.seq_len=20", "data.n_train=5000", "data.n_val=200", "data.n_test=500",
                       "model.hidden_size=32", "optimizer.lr=0.01", "trainer.max_steps=300", "logger=none",
                       "trainer.val_check_interval=100", "trainer.log_every_n_steps=50",
                       "trainer.limit_val_batches=1.0", "trainer.limit_test_batches=1.0"])
    results = train(cfg)
    assert results["status"] == "ok"
    assert results["metrics"]["test/loss"] < 0.05 < results["baseline_loss"]


@pytest.mark.parametrize("impl", ["unrolled", "fused"])
def test_same_seed_gives_identical_results(make_config, impl):
    runs = [train(make_config(["model=lstm", f"model.impl={impl}", "trainer.max_steps=5", "logger=none",
                               "data.n_train=256", "data.seq_len=10"], name=f"run{i}")) for i in range(2)]
    assert runs[0]["metrics"] == runs[1]["metrics"]
    other = train(make_config(["model=lstm", f"model.impl={impl}", "trainer.max_steps=5", "logger=none",
                               "data.n_train=256", "data.seq_len=10", "seed=1"], name="other"))
    assert other["metrics"] != runs[0]["metrics"]


@pytest.mark.parametrize("override, message", [
    ("model.hidden_size=-3", "model.hidden_size must be a positive integer, got -3"),
    ("model.num_layers=0", "model.num_layers must be a positive integer"),
    ("model.dropout=1.5", "model.dropout must be in [0, 1)"),
    ("model.impl=cudnn", "model.impl must be one of"),
    ("data.seq_len=1", "data.seq_len must be an integer >= 2"),
    ("data.batch_size=0", "data.batch_size must be a positive integer"),
    ("model.cell.nonlinearity=sigmoid", "nonlinearity must be 'tanh' or 'relu'"),
])
def test_invalid_values_fail_before_training_with_a_clear_message(make_config, override, message):
    overrides = [override] + (["model=rnn"] if "nonlinearity" in override else [])
    results = train(make_config(overrides + ["logger=none"]))
    assert results["status"] == "failed" and results["steps"] == 0
    assert message in results["error"]
    assert "\n" not in results["error"]


def test_compile_unused_says_when_compile_would_change_nothing():
    from rnnlab.cells import GRUCell
    from rnnlab.model.recurrent import RecurrentLayer
    from rnnlab.training.train import compile_unused

    assert "trains on its scan" in compile_unused(RecurrentLayer(GRUCell, 2, 4, compile=True), None)
    assert "fused" in compile_unused(RecurrentLayer(GRUCell, 2, 4, impl="fused", compile=True), None)
    assert compile_unused(RecurrentLayer(GRUCell, 2, 4, compile=True, scan=False), None) is None
    assert compile_unused(RecurrentLayer(GRUCell, 2, 4, compile=True), "bf16-mixed") is None  # autocast: the loop
