"""Checkpoints and resume: a killed run continues to the same result as an uninterrupted one."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import ROOT, TINY
from rnnlab.training.checkpoint import CHECKPOINT_DIR, LAST
from rnnlab.training.train import train

RUN = ["model=lstm", "model.hidden_size=16", "data.seq_len=30", "data.n_train=640", "data.n_val=64",
       "data.n_test=64", "trainer.max_steps=60", "trainer.val_check_interval=20", "checkpoint_every_n_steps=5",
       "logger=csv", "model.dropout=0.3", "model.num_layers=2"]


def test_checkpoint_is_plain_data_and_self_describing(make_config):
    cfg = make_config(RUN[:6] + ["trainer.max_steps=3", "logger=none"])
    assert train(cfg)["status"] == "ok"
    ckpt = torch.load(Path(cfg.output_dir) / CHECKPOINT_DIR / LAST, weights_only=True)  # no pickled objects
    assert ckpt["global_step"] == 3
    assert ckpt["rnnlab"]["config"]["model"]["name"] == "lstm" and ckpt["rnnlab"]["spec"]["name"] == "adding"


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_metrics(tmp_path, make_config):
    reference = train(make_config(RUN, name="uninterrupted"))
    assert reference["status"] == "ok"

    run_dir = tmp_path / "killed"
    cmd = [sys.executable, str(ROOT / "run.py"), *TINY, *RUN, f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run_dir / CHECKPOINT_DIR / LAST
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # let it train past the checkpoint, then kill it without warning
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "results.json").exists(), "the run finished before it could be killed: make it longer"
    killed_at = torch.load(ckpt, weights_only=True)["global_step"]
    assert 0 < killed_at < 60

    resumed = train(make_config(RUN + [f"resume={run_dir}"], name="unused"))
    assert resumed["status"] == "ok" and resumed["steps"] == 60
    assert resumed["output_dir"] == str(run_dir)
    for key in ("val/loss", "test/loss"):  # bit-identical on CPU: equal floats, not close ones
        assert resumed["metrics"][key] == reference["metrics"][key], key
    weights = [torch.load(Path(r["output_dir"]) / "model.pt", weights_only=True)["state_dict"]
               for r in (reference, resumed)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert json.loads((run_dir / "results.json").read_text())["status"] == "ok"


def test_resume_refuses_another_model_and_corrupt_files(make_config, tmp_path):
    cfg = make_config(RUN[:6] + ["trainer.max_steps=2", "logger=none"], name="orig")
    train(cfg)
    other = train(make_config(["model=gru", f"resume={cfg.output_dir}", "logger=none"], name="x"))
    assert other["status"] == "failed" and "trained with other settings" in other["error"]
    assert "model.name='lstm' (checkpoint) vs 'gru' (now)" in other["error"]

    ckpt = Path(cfg.output_dir) / CHECKPOINT_DIR / LAST
    ckpt.write_bytes(ckpt.read_bytes()[:100])  # truncated
    corrupt = train(make_config(RUN[:6] + [f"resume={cfg.output_dir}", "logger=none"], name="y"))
    assert corrupt["status"] == "failed" and "not a readable rnnlab checkpoint" in corrupt["error"]

    missing = train(make_config([f"resume={tmp_path / 'nowhere'}", "logger=none"], name="z"))
    assert missing["status"] == "failed" and "no such run directory" in missing["error"]
