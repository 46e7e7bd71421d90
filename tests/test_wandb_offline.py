"""W&B runs offline without an account and writes a real run that its own tools can read back."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab.report.sweep_table import link_wandb_runs
from rnnlab.training.loggers import wandb_api_key_available
from rnnlab.training.train import train

WANDB = str(Path(sys.executable).parent / "wandb")


def _inspect(run_dir: Path, *flags: str):
    out = subprocess.run([WANDB, "leet", "inspect", *flags, "--json", str(run_dir)], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    return out


def test_offline_run_is_written_and_readable(make_config, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the logger must choose offline by itself
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert not wandb_api_key_available()
    cfg = make_config(["logger=wandb", "model=lstm", "trainer.max_steps=3"])
    results = train(cfg)
    assert results["status"] == "ok"
    runs = list((Path(cfg.output_dir) / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb")), "a real offline run (what `wandb sync` uploads)"

    summary = json.loads(_inspect(runs[0], "--summary"))
    text = json.dumps(summary)
    # the resolved config is there (so runs group by model and data), and the final metrics
    assert '"lstm"' in text and '"data_name"' in text and '"adding"' in text
    assert "final/test/loss" in text and '"status"' in text

    records = [json.loads(line) for line in _inspect(runs[0]).splitlines() if line.strip()]
    history = [r for r in records if "history" in json.dumps(r)[:200]]
    assert history, "training metrics were logged as history records"
    assert any("train/loss" in json.dumps(r) for r in history)


def test_each_run_of_a_sweep_gets_its_own_finished_run(make_config):
    import wandb

    run_ids = set()
    for i in range(2):
        cfg = make_config(["logger=wandb", f"seed={i}"], name=f"run{i}")
        train(cfg)
        assert wandb.run is None  # finished before the next starts
        (run,) = (Path(cfg.output_dir) / "wandb").glob("offline-run-*")
        run_ids.add(run.name.rsplit("-", 1)[-1])
    assert len(run_ids) == 2


@pytest.mark.slow
def test_an_online_run_that_cannot_start_falls_back_to_offline(make_config, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "5")
    cfg = make_config(["logger=wandb"])
    results = train(cfg)
    assert results["status"] == "ok"
    assert len(list((Path(cfg.output_dir) / "wandb").glob("offline-run-*"))) == 1


def test_wandb_leet_inspect_reads_a_sweeps_gathered_folder(make_config, tmp_path):
    """The sweep's end links every run into ``<sweep>/wandb`` with a ``latest-run``, which W&B's tools read."""
    for seed in (0, 1):  # tmp_path is the sweep: one run directory per job, each with its own wandb/
        assert train(make_config(["logger=wandb", f"seed={seed}"], name=f"{seed}_seed{seed}"))["status"] == "ok"
    links = link_wandb_runs(tmp_path)
    assert len(links) == 2 and (tmp_path / "wandb" / "latest-run").resolve() == links[-1].resolve()
    summary = json.loads(_inspect(tmp_path / "wandb", "--summary"))  # failed before: no latest-run
    assert summary["config"]["seed"] == 1  # the last run started
