"""The experiment bundles (experiments/claim_*/run.py): every multirun they launch composes, and each runs
end to end at smoke scale, through the report's verdicts, so the bundles never rot."""

import importlib.util
import itertools
import json
import math
import os
import shutil
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from conftest import CONF, ROOT, compose_config

VERDICTS = {"HOLDS", "FAILS", "INCONCLUSIVE", "NOT ENOUGH RUNS"}


def bundle(name: str):
    spec = importlib.util.spec_from_file_location(f"bundle_{name}", ROOT / "experiments" / name / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def jobs(overrides: list[str]) -> list[list[str]]:
    """The first and the last job of a multirun (every swept key at its first, then its last value)."""
    split = [o.split("=", 1) for o in overrides]
    return [[f"{k}={v.split(',')[i]}" for k, v in split] for i in (0, -1)]


def claim_ids(experiment: str) -> list[str]:
    return [c.id for c in OmegaConf.load(CONF / "experiment" / f"{experiment}.yaml").claims]


@pytest.mark.parametrize("scale", ["cpu", "paper", "smoke"])
def test_every_multirun_of_the_vanishing_bundle_composes(scale):
    module = bundle("claim_vanishing")
    plan = module.sweeps(scale, [])
    assert {"adding_T100", "adding_T100_lstm_fb1", "adding_T100_lstm_fb0", "adding_T200", "copy_T100"} <= set(plan)
    for label, overrides in plan.items():
        for job in jobs(overrides):
            cfg = compose_config(job, tiny=False)
            # ‖∂L/∂h_t‖ on every arm: our cells, or auto's unrolled twin on measured steps (the LSTM, on CPU)
            assert cfg.model.impl == ("auto" if cfg.model.name == "lstm" else "unrolled")
            assert cfg.diagnostics.every_n_steps > 0
            assert cfg.optimizer._target_ == "torch.optim.RMSprop" and cfg.optimizer.lr == 0.001  # Arjovsky et al.
            if cfg.model.name == "lstm":  # every LSTM arm names its forget bias; 0 only in the ablation arm
                assert cfg.model.cell.forget_bias == (0.0 if label.endswith("_fb0") else 1.0), label
                assert cfg.bundle_task == ("forget_bias_ablation" if label.endswith("_fb0") else "main")
            if cfg.data.get("seq_len") is not None:  # adding, copy: stop once solved, at the T's own budget
                assert cfg.early_stopping.threshold_fraction_of_baseline == 0.05
                task = label.split("_T")[0]
                assert cfg.trainer.max_steps == module.SCALES[scale][task][cfg.data.seq_len], label
    if scale != "smoke":  # the literature's budgets: LSTM ≈ 4–5K updates at T = 100, ≈ 20K at T = 200
        assert module.SCALES[scale]["adding"][100] >= 10000 and module.SCALES[scale]["adding"][200] >= 20000
    assert len(claim_ids("claim_vanishing")) == len(set(claim_ids("claim_vanishing")))


@pytest.mark.parametrize("scale", ["cpu", "paper", "smoke"])
def test_every_multirun_of_the_gru_lstm_bundle_composes(scale):
    module = bundle("claim_gru_lstm")
    for task, model in itertools.product(module.SCALES[scale]["tasks"], module.MODELS):
        overrides = module.task_overrides(task, model, scale, [], jsb="/tmp/jsb.pickle")
        searched = module.task_overrides(task, model, scale, [], jsb="/tmp/jsb.pickle", search=True)
        search_cfg = compose_config([*searched, "optimizer.lr=0.000123", "seed=1000"], tiny=False)
        cfg = compose_config([*overrides, "optimizer.lr=0.000123", "seed=0"], tiny=False)
        # the search differs from the evidence in its update cap at most, never above the evidence's
        assert {o for o in searched if "max_steps" not in o} == {o for o in overrides if "max_steps" not in o}
        assert search_cfg.trainer.max_steps <= cfg.trainer.max_steps == module.SCALES[scale]["max_steps"][task]
        assert cfg.optimizer._target_ == "torch.optim.RMSprop" and cfg.trainer.gradient_clip_val == 1.0
        assert cfg.early_stopping.monitor == "val/loss" and cfg.early_stopping.patience > 0
        assert cfg.bundle_task == task
        if task in ("jsb", "chorales"):  # Chung et al. 2014's sizes
            assert cfg.model.hidden_size == module.CHUNG_SIZES[model]
            assert cfg.weight_noise.sigma == 0.075 and cfg.early_stopping.restore_best
        # the LSTM trains on torch's fused kernel (the faster path on CPU), the GRU stays the textbook cell
        assert cfg.model.impl == {"lstm": "auto"}.get(model, "unrolled")


def test_every_cell_gets_the_same_search_and_a_failed_search_is_one_line(tmp_path):
    from rnnlab.training.bundle import SearchFailed, choose, log_uniform_draws, search_trials

    draws = log_uniform_draws(10, -12, -6, seed=2014)
    assert draws == log_uniform_draws(10, -12, -6, seed=2014) and len(set(draws)) == 10
    assert all(math.exp(-12) * 0.999 <= lr <= math.exp(-6) * 1.001 for lr in draws)
    for i, status in enumerate(["diverged", "failed"]):
        run = tmp_path / f"jsb_gru_{i}"
        run.mkdir()
        (run / "results.json").write_text(json.dumps({"status": status, "model": "gru", "seed": 1000, "metrics": {},
                                                      "error": "boom" if status == "failed" else None}))
        (run / "config.yaml").write_text(f"optimizer:\n  lr: {draws[i]}\n")
    trials = search_trials(tmp_path, "jsb_gru_*")
    assert [t["value"] for t in trials] == draws[:2] and all(t["val_loss"] is None for t in trials)
    with pytest.raises(SearchFailed) as failed:
        choose(trials, "search, jsb, gru")
    assert str(failed.value) == ("search, jsb, gru: every one of 2 search trials failed or diverged, so no value is "
                                 "chosen and the bundle stops: jsb_gru_0: diverged; jsb_gru_1: failed (boom)")


def run_bundle(name: str, tmp_path, *args: str, sweep: str = "sweep") -> subprocess.CompletedProcess:
    """The bundle at smoke scale: runs in ``tmp_path/<sweep>``, evidence published to ``tmp_path/published``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "experiments" / name / "run.py"), "--scale", "smoke",
                           "--out", str(tmp_path / sweep), "--publish", str(tmp_path / "published"), "--jobs", "1",
                           *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600)


def check_verdicts(folder, experiment: str) -> list[dict]:
    verdicts = json.loads((folder / "verdicts.json").read_text())
    assert sorted(v["id"] for v in verdicts) == sorted(claim_ids(experiment))
    assert {v["verdict"] for v in verdicts} <= VERDICTS
    return verdicts


@pytest.mark.slow
def test_the_vanishing_bundle_runs_at_smoke_scale(tmp_path):
    done = run_bundle("claim_vanishing", tmp_path, "--only", "adding")
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(p.parent for p in (tmp_path / "sweep").glob("adding_*/results.json"))
    assert len(runs) == 14  # T 100: rnn, gru, LSTM bias 1, LSTM bias 0; T 200: rnn, gru, LSTM bias 1; × 2 seeds
    for run in runs:
        results = json.loads((run / "results.json").read_text())
        assert results["status"] == "ok" and results["early_stopping"]["monitor"] == "val/loss"
        assert (run / "val_curve.csv").read_text().startswith("step,seconds,val/loss,val/mse\n")
    verdicts = check_verdicts(tmp_path / "published", "claim_vanishing")
    judged = {v["id"] for v in verdicts if v["verdict"] != "NOT ENOUGH RUNS"}
    assert {"rnn_stays_at_baseline_adding", "lstm_solves_adding_T100", "gru_solves_adding_T200",
            "forget_bias_1_solves_sooner_T100"} <= judged
    rows = (tmp_path / "published" / "runs.csv").read_text().splitlines()
    assert len(rows) == 1 + 14 and "updates_to_solve" in rows[0] and "model.cell.forget_bias" in rows[0]
    assert (tmp_path / "published" / "adding_fraction_solved.png").exists()
    run_md = (tmp_path / "published" / "RUN.md").read_text()
    assert "--scale smoke" in run_md and "git commit" in run_md and "wall time" in run_md
    assert "run time: 14 runs" in run_md
    # every run's record is kept beside the evidence; a fresh sweep directory (another session) resumes from it
    records = sorted(p.parent.name for p in (tmp_path / "published" / "records").glob("*/results.json"))
    assert records == [run.name for run in runs]
    again = run_bundle("claim_vanishing", tmp_path, "--only", "adding", sweep="elsewhere")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "14 recorded runs restored" in again.stdout
    for run in runs:  # skipped, not trained again: the restored results are the recorded ones
        assert (tmp_path / "elsewhere" / run.name / "results.json").read_text() == (run / "results.json").read_text()
    assert (tmp_path / "published" / "runs.csv").read_text().splitlines() == rows


@pytest.mark.slow
def test_the_gru_lstm_bundle_runs_at_smoke_scale(tmp_path):
    # Bach chorales from music21's corpus (the `corpora` extra): no files on disk, so the README's test
    # command passes on any machine.
    pytest.importorskip("music21", reason='pip install -e ".[corpora]"')
    done = run_bundle("claim_gru_lstm", tmp_path, "--tasks", "chorales", f"data.cache_dir={tmp_path / 'cache'}")
    assert done.returncode == 0, done.stderr[-3000:]
    chosen = json.loads((tmp_path / "published" / "lr_search.json").read_text())
    draws = chosen["protocol"]["draws"]
    assert len(draws) == 2 and chosen["protocol"]["evidence_seeds"] == [0, 1]
    assert set(chosen["chorales"]) == {"rnn", "gru", "lstm"}
    for model, pick in chosen["chorales"].items():
        # the same draws for every cell, each on the tuning seed; the best by validation NLL
        assert sorted(t["value"] for t in pick["trials"]) == sorted(draws)
        assert {t["seed"] for t in pick["trials"]} == {1000} and pick["divergence"]["trials"] == 2
        best = min((t for t in pick["trials"] if t["val_loss"] is not None), key=lambda t: t["val_loss"])
        assert pick["lr"] == best["value"]
        evidence = (tmp_path / "sweep" / "runs").glob(f"*_{model}_*/results.json")
        seeds = sorted(json.loads(p.read_text())["seed"] for p in evidence)
        assert seeds == [0, 1], model  # evidence seeds only: no tuning run is evidence
    for results in (tmp_path / "sweep" / "runs").glob("*/results.json"):
        assert json.loads(results.read_text())["status"] == "ok"
    check_verdicts(tmp_path / "published", "claim_gru_lstm")
    assert len((tmp_path / "published" / "runs.csv").read_text().splitlines()) == 1 + 6
    table = (tmp_path / "published" / "lr_search.md").read_text()
    assert all(f"| chorales | {model} | " in table for model in ("rnn", "gru", "lstm"))  # divergence per cell
    # a committed search is not run again by a later command (another clone, no search records): same rates
    assert all(pick["overrides"][-1] == f"data.cache_dir={tmp_path / 'cache'}" for pick in chosen["chorales"].values())
    shutil.rmtree(tmp_path / "published" / "records" / "lr_search")
    again = run_bundle("claim_gru_lstm", tmp_path, "--tasks", "chorales", f"data.cache_dir={tmp_path / 'cache'}",
                       sweep="elsewhere")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("from the committed search") == 3
    assert not list((tmp_path / "elsewhere").glob("lr_search/*/results.json"))
    assert json.loads((tmp_path / "published" / "lr_search.json").read_text()) == chosen


def test_a_committed_search_is_reused_only_under_the_same_protocol_and_overrides():
    published_search = bundle("claim_gru_lstm").published_search
    protocol, overrides = {"draws": [0.001, 0.002], "tuning_seed": 1000}, ["data=polyphonic", "data.root='{jsb}'"]
    earlier = {"protocol": protocol, "jsb": {"gru": {"lr": 0.002, "overrides": overrides}}}
    assert published_search(earlier, protocol, "jsb", "gru", overrides)["lr"] == 0.002
    assert published_search(earlier, {**protocol, "draws": [0.001]}, "jsb", "gru", overrides) is None
    assert published_search(earlier, protocol, "jsb", "gru", [*overrides, "trainer.max_steps=10000"]) is None
    assert published_search(earlier, protocol, "jsb", "lstm", overrides) is None
    assert published_search(earlier, protocol, "kjv_char", "gru", overrides) is None


@pytest.mark.slow
def test_a_search_where_every_trial_failed_stops_the_bundle_with_one_line(tmp_path):
    done = run_bundle("claim_gru_lstm", tmp_path, "--tasks", "chorales", f"data.cache_dir={tmp_path / 'cache'}",
                      "--", "model.hidden_size=-1")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "learning-rate search, chorales, rnn" in errors[0], done.stderr[-3000:]
    assert "every one of 2 search trials failed or diverged" in errors[0]
    assert not (tmp_path / "sweep" / "lr_search.json").exists() and not (tmp_path / "published" / "lr_search.json").exists()


def test_publishing_removes_evidence_that_this_report_did_not_write(tmp_path):
    from rnnlab.training.bundle import publish, search_table

    sweep, folder = tmp_path / "sweep", tmp_path / "published"
    sweep.mkdir()
    folder.mkdir()
    (sweep / "report.md").write_text("# Report\n")
    (sweep / "adding_fraction_solved.png").write_bytes(b"png")
    (folder / "copy_T200_gradients.png").write_bytes(b"old")  # a task the new protocol no longer runs
    (folder / "README.md").write_text("kept")
    publish(sweep, folder, ["python", "run.py"], 1.0, [["seed=0"]], "abc", "smoke")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "RUN.md", "adding_fraction_solved.png",
                                                         "report.md"]
    pick = {"lr": 0.00152, "val_loss_of_best": 8.61234, "divergence": {"trials": 10, "ok": 8, "diverged": 2,
                                                                       "failed": 0, "diverged_fraction": 0.2}}
    table = search_table({"protocol": {}, "jsb": {"rnn": pick}})
    assert table.splitlines()[-1] == "| jsb | rnn | 0.00152 | 8.612 | 10 | 8 | 2 | 0 | 0.20 |"


def test_a_command_for_other_tasks_writes_its_own_run_file_with_its_tasks_time(tmp_path):
    from rnnlab.training.bundle import publish

    out, folder = tmp_path / "out", tmp_path / "published"
    for name, seconds in (("lr_search/jsb_gru_0_lr=1", 100.0), ("runs/jsb_gru_0_seed=0", 200.0),
                          ("runs/chorales_gru_0_seed=0", 30.0), ("runs/kjv_char_rnn_0_seed=0", 5.0)):
        (out / name).mkdir(parents=True)
        (out / name / "results.json").write_text(json.dumps({"status": "ok", "wall_seconds": seconds}))
    (out / "runs" / "report.md").write_text("# Report\n")
    publish(out / "runs", folder, ["python", "run.py"], 1.0, [["seed=0"]], "abc", "cpu", all_runs=out)
    publish(out / "runs", folder, ["python", "run.py", "--tasks", "chorales"], 1.0, [["seed=0"]], "abc", "cpu",
            all_runs=out, run_file="RUN_chorales.md", prefixes=("chorales_",))
    assert "run time: 4 runs, 5.6 min in all" in (folder / "RUN.md").read_text()
    chorales = (folder / "RUN_chorales.md").read_text()
    assert "run time: 1 runs, 0.5 min in all" in chorales and "--tasks chorales" in chorales


def test_records_restore_into_a_fresh_sweep_and_never_overwrite_a_run_there(tmp_path):
    from rnnlab.training.bundle import restore_records, save_records

    sweep, records, fresh = tmp_path / "sweep", tmp_path / "records", tmp_path / "fresh"
    for name, status in (("search/a_0", "ok"), ("runs/b_0", "failed")):
        (sweep / name).mkdir(parents=True)
        (sweep / name / "results.json").write_text(json.dumps({"status": status}))
        (sweep / name / "config.yaml").write_text("seed: 0\n")
        (sweep / name / "last.ckpt").write_bytes(b"big")  # not part of a record
    (sweep / "report.md").write_text("# Report\n")
    assert save_records(sweep, records) == 2
    assert sorted(str(p.relative_to(records)) for p in records.rglob("*") if p.is_file()) == [
        "runs/b_0/config.yaml", "runs/b_0/results.json", "search/a_0/config.yaml", "search/a_0/results.json"]
    (fresh / "runs" / "b_0").mkdir(parents=True)
    (fresh / "runs" / "b_0" / "results.json").write_text(json.dumps({"status": "ok"}))  # trained here since
    assert restore_records(records, fresh) == 1
    assert json.loads((fresh / "search" / "a_0" / "results.json").read_text()) == {"status": "ok"}
    assert json.loads((fresh / "runs" / "b_0" / "results.json").read_text()) == {"status": "ok"}
    assert restore_records(tmp_path / "none", fresh) == 0
