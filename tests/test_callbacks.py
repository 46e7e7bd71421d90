"""The validation curve (val_curve.csv) and early stopping once solved (results.json's early_stopping)."""

import csv
from pathlib import Path

import pytest

from rnnlab.training.train import train

SMALL = ["model=gru", "model.hidden_size=8", "data.seq_len=10", "data.n_train=256", "data.n_val=64",
         "data.n_test=64", "logger=none", "diagnostics.every_n_steps=0"]


def read_curve(run_dir) -> list[dict]:
    with (Path(run_dir) / "val_curve.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_every_validation_adds_a_row_with_training_seconds(make_config):
    results = train(make_config(SMALL + ["trainer.max_steps=6", "trainer.val_check_interval=2"]))
    assert results["status"] == "ok"
    rows = read_curve(results["output_dir"])
    assert list(rows[0]) == ["step", "seconds", "val/loss", "val/mse"]
    assert [int(r["step"]) for r in rows] == [2, 4, 6]  # the sanity check and the final validate() add none
    seconds = [float(r["seconds"]) for r in rows]
    assert 0 < seconds[0] < seconds[1] < seconds[2] <= results["train_seconds"]
    assert float(rows[-1]["val/loss"]) == pytest.approx(results["metrics"]["val/loss"], rel=1e-6)


def test_a_resumed_run_continues_its_curve(make_config, tmp_path):
    first = train(make_config(SMALL + ["trainer.max_steps=4", "trainer.val_check_interval=2"], name="run"))
    curve = Path(first["output_dir"]) / "val_curve.csv"
    with curve.open("a") as f:  # a row written after the last checkpoint by a run that was then killed
        f.write("5,99.0,1.0,1.0\n")
    resumed = train(make_config(SMALL + ["trainer.max_steps=8", "trainer.val_check_interval=2",
                                         f"resume={first['output_dir']}"], name="unused"))
    assert resumed["status"] == "ok", resumed["error"]
    rows = read_curve(first["output_dir"])
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8]
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds) and seconds[2] > seconds[1]  # training seconds carry over the restart


def test_a_run_stops_once_solved_and_says_so(make_config):
    # a threshold every run reaches at its first validation (val/loss ≤ 10 × the baseline): stops at step 2
    results = train(make_config(SMALL + ["trainer.max_steps=8", "trainer.val_check_interval=2",
                                         "early_stopping.threshold_fraction_of_baseline=10"]))
    assert results["status"] == "ok" and results["steps"] == 2
    block = results["early_stopping"]
    assert block["stopped"] and block["step"] == 2 and block["monitor"] == "val/loss"
    assert block["threshold"] == pytest.approx(10 * results["baseline_loss"])
    assert [int(r["step"]) for r in read_curve(results["output_dir"])] == [2]

    unsolved = train(make_config(SMALL + ["trainer.max_steps=4", "trainer.val_check_interval=2",
                                          "early_stopping.stopping_threshold=1e-9"], name="unsolved"))
    assert unsolved["steps"] == 4
    assert unsolved["early_stopping"] == {"stopped": False, "step": None, "threshold": 1e-9, "monitor": "val/loss",
                                          "reason": None}
    assert "early_stopping" not in train(make_config(SMALL, name="off"))  # off by default


@pytest.mark.parametrize(("override", "message"), [
    ("+early_stopping.treshold=0.1", "early_stopping.treshold is not a key"),
    ("early_stopping={stopping_threshold: 0.1, threshold_fraction_of_baseline: 0.1}", "not both"),
])
def test_bad_early_stopping_settings_fail_with_the_key(make_config, override, message):
    results = train(make_config(SMALL + [override]))
    assert results["status"] == "failed" and message in results["error"]
