"""Lightning DDP with 2 CPU processes on gloo (ddp_spawn): same training as one process, one set of outputs."""

import csv
import json
from pathlib import Path

import pytest
import torch

from rnnlab.training.resolvers import usable_cores
from rnnlab.training.train import train

# One batch of 32 per step in one process = two ranks of 16: with the whole training set in one step
# the data order cannot differ, so the averaged gradients, and so the runs, must agree.
SHARED = ["model=gru", "model.hidden_size=16", "data.seq_len=12", "data.n_train=32", "data.n_val=32",
          "data.n_test=32", "trainer.max_steps=8", "trainer.val_check_interval=2", "logger=csv",
          "checkpoint_every_n_steps=4", "optimizer.lr=0.01", "trainer.limit_val_batches=1.0",
          "trainer.limit_test_batches=1.0"]


def val_loss_curve(run_dir: Path, steps: int) -> list[tuple[int, float]]:
    """(step, val/loss) of the validations during training, from the run's Lightning CSV log (the
    single-process run also logs the final evaluation, at step ``steps``)."""
    (path,) = run_dir.rglob("metrics.csv")
    with path.open() as f:
        rows = [(int(row["step"]), float(row["val/loss"])) for row in csv.DictReader(f) if row.get("val/loss")]
    return [(step, loss) for step, loss in rows if step < steps]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_matches_one_process(make_config):
    single = train(make_config(SHARED + ["data.batch_size=32"], name="single"))
    cfg = make_config(SHARED + ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "data.batch_size=16"],
                      name="ddp")
    ddp = train(cfg)
    assert single["status"] == "ok" and ddp["status"] == "ok", ddp.get("traceback")
    assert ddp["steps"] == single["steps"] == 8
    for key in ("val/loss", "test/loss"):  # reduced across ranks (sync_dist)
        assert ddp["metrics"][key] == pytest.approx(single["metrics"][key], rel=1e-4), key
    curves = [val_loss_curve(Path(run["output_dir"]), 8) for run in (single, ddp)]
    (single_steps, single_loss), (ddp_steps, ddp_loss) = (zip(*curve) for curve in curves)
    assert ddp_steps == single_steps == (1, 3, 5, 7)  # validated every 2 steps (Lightning's 0-based step)
    assert ddp_loss == pytest.approx(single_loss, rel=1e-4)  # the loss curve, point by point
    ours = torch.load(Path(cfg.output_dir) / "model.pt", weights_only=True)["state_dict"]
    theirs = torch.load(Path(single["output_dir"]) / "model.pt", weights_only=True)["state_dict"]
    for name in theirs:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-5)
    # rank 0 alone writes: one results.json, one checkpoint folder, one CSV log, no per-rank copies
    out = Path(cfg.output_dir)
    assert json.loads((out / "results.json").read_text())["status"] == "ok"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt"]  # no step copies by default
    assert len(list(out.rglob("results.json"))) == 1 and len(list(out.rglob("metrics.csv"))) == 1
    assert ddp["tokens_per_second"] > 0


def test_more_devices_than_the_machine_has_fail_before_training(make_config):
    cores = usable_cores()
    results = train(make_config(["logger=none", f"trainer.devices={cores + 1}"]))
    assert results["status"] == "failed" and results["steps"] == 0
    assert results["error"] == (f"trainer.devices={cores + 1} but this machine has {cores} usable CPU cores: "
                                f"set trainer.devices to at most {cores}")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    results = train(make_config(["logger=none", "trainer=gpu", f"trainer.devices=[{gpus}]"]))
    assert results["status"] == "failed" and results["steps"] == 0
    if gpus:
        assert results["error"].startswith(f"trainer.devices=[{gpus}] but this machine has {gpus} CUDA GPUs")
    else:
        assert results["error"] == "trainer.accelerator=gpu but no CUDA GPU is visible here: use trainer=cpu"
