"""The report: real tiny runs (3 seeds × RNN/GRU on adding, a failed run, a copy-task run) aggregated, claims
evaluated, figures drawn, bad input reported line by line; the sweep's summary.md readable."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import open_dict
from scipy import stats as scipy_stats

from conftest import ROOT, compose_config
from rnnlab.report.aggregate import group_runs
from rnnlab.report.claims import evaluate_all
from rnnlab.report.cli import main
from rnnlab.report.figures import final_metric_figure, gradient_figure, learning_curves_figure, readable
from rnnlab.report.runs import load_runs
from rnnlab.report.stats import t975
from rnnlab.report.sweep_table import write_table
from rnnlab.training.train import train

WANDB = str(Path(sys.executable).parent / "wandb")
SEEDS = (0, 1, 2)
# Conditions on parameter counts and step counts: certain whatever the tiny runs learn.
CLAIMS = [
    {"id": "rnn_smaller", "text": "the RNN has fewer parameters than 200 in every seed", "kind": "fraction",
     "select": {"model": "rnn", "data": "adding"}, "metric": "params", "op": "lt", "value": 200,
     "min_fraction": 1.0, "min_runs": 3},
    {"id": "gru_below_rnn", "text": "the GRU has fewer parameters than the RNN", "kind": "order",
     "select": {"data": "adding"}, "by": "model", "metric": "params", "order": ["gru", "rnn"], "min_runs": 3},
    {"id": "five_seeds", "text": "the loss beats half the baseline in 5 seeds", "kind": "fraction",
     "select": {"data": "adding", "data.seq_len": {"ge": 10}}, "metric": "metrics.test/loss",
     "relative_to": "baseline_loss", "op": "le", "value": 0.5, "min_runs": 5},
    {"id": "same_steps", "text": "GRU and RNN train for the same number of updates", "kind": "close",
     "select": {"data": "adding"}, "by": "model", "metric": "steps", "pair": ["gru", "rnn"], "tolerance": 0.01,
     "min_runs": 3},
    {"id": "rnn_below_tier", "text": "the RNN has fewer parameters than each gated cell", "kind": "order",
     "select": {"data": "adding"}, "by": "model", "metric": "params", "order": ["rnn", ["gru"]], "min_runs": 3},
    {"id": "gru_as_big_as_rnn", "text": "the GRU has the RNN's parameter count within 10 %", "kind": "close",
     "select": {"data": "adding"}, "by": "model", "metric": "params", "pair": ["gru", "rnn"], "tolerance": 0.1,
     "min_runs": 3},
]


def _run(root: Path, name: str, overrides: list[str], claims=CLAIMS) -> dict:
    cfg = compose_config(["logger=none", "trainer.max_steps=4", "data.n_train=256", "data.n_val=64",
                          "data.n_test=64", "diagnostics.every_n_steps=2", *overrides], root / name)
    with open_dict(cfg):
        cfg.claims = claims
    return train(cfg)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """8 real runs: RNN and GRU × 3 seeds on adding (T = 10), a failed one (hidden size −1), one on copy."""
    root = tmp_path_factory.mktemp("sweep")
    for model in ("rnn", "gru"):
        for seed in SEEDS:
            _run(root, f"{model}_s{seed}", [f"model={model}", f"seed={seed}", "data.seq_len=10"])
    _run(root, "bad", ["model=gru", "model.hidden_size=-1", "data.seq_len=10"])
    _run(root, "copy_gru", ["model=gru", "data=copy", "data.seq_len=5"])
    return root


def test_t_table_matches_student_t():
    for df in range(1, 31):
        assert t975(df) == pytest.approx(scipy_stats.t.ppf(0.975, df), abs=6e-4)
    for df in (31, 45, 75, 500, 5000):  # beyond the table: the next tabulated df below, never narrower
        assert scipy_stats.t.ppf(0.975, df) <= t975(df) <= scipy_stats.t.ppf(0.975, df) + 0.025


def test_seeds_of_one_configuration_are_grouped_and_nothing_is_dropped(sweep):
    runs, problems = load_runs([sweep])
    assert len(runs) == 8 and problems == []
    by_data = group_runs(runs)
    assert sorted(by_data) == ["adding", "copy"]
    adding = by_data["adding"]
    assert [(g.model, len(g.runs), g.counts["ok"], g.counts["failed"]) for g in adding] == [
        ("rnn", 3, 3, 0), ("gru", 1, 0, 1), ("gru", 3, 3, 0)]
    assert [g.labels["model.hidden_size"] for g in adding] == [8, -1, 8]  # the key that tells them apart
    rnn = adding[0]
    losses = [json.loads((sweep / f"rnn_s{s}" / "results.json").read_text())["metrics"]["test/loss"] for s in SEEDS]
    summary = rnn.stats["metrics.test/loss"]
    half = scipy_stats.t.ppf(0.975, 2) * np.std(losses, ddof=1) / np.sqrt(3)
    assert summary.n == 3 and summary.mean == pytest.approx(np.mean(losses))
    assert summary.mean - summary.ci_low == pytest.approx(half, rel=1e-3)  # the t table rounds to 3 decimals
    assert summary.ci_high - summary.mean == pytest.approx(half, rel=1e-3)
    for key in ("params", "seconds_per_update", "gradients.init_slope_log10_per_step", "gradients.slope_log10_per_step",
                "gradients.init_log10_ratio_first_last", "gradients.log10_ratio_first_last"):
        assert key in rnn.stats, key


def test_claims_hold_fail_or_lack_runs_with_the_numbers(sweep):
    runs, problems = load_runs([sweep])
    verdicts = {v["id"]: v for v in evaluate_all(runs, problems)}
    assert problems == []
    assert {k: v["verdict"] for k, v in verdicts.items()} == {
        "rnn_smaller": "HOLDS", "gru_below_rnn": "FAILS", "five_seeds": "NOT ENOUGH RUNS", "same_steps": "HOLDS",
        "rnn_below_tier": "HOLDS", "gru_as_big_as_rnn": "FAILS"}
    close = verdicts["gru_as_big_as_rnn"]["numbers"]
    assert close["difference"] == 297 - 105 and close["bound"] == pytest.approx(10.5)
    group = verdicts["rnn_smaller"]["numbers"]["groups"][0]
    assert (group["tested"], group["passing"], group["fraction"]) == (3, 3, 1.0)
    order = verdicts["gru_below_rnn"]["numbers"]
    # reversed with the intervals apart (parameter counts do not vary over seeds): FAILS, not INCONCLUSIVE
    assert order["pairs"] == [{"lower": "gru", "upper": "rnn", "means_ascend": False, "cis_apart": True}]
    assert order["groups"]["gru"]["runs"] == "4 runs: 3 ok, 0 diverged, 1 failed"  # the failed run is counted
    assert order["groups"]["rnn"]["mean"] < order["groups"]["gru"]["mean"]
    assert verdicts["five_seeds"]["numbers"]["groups"][0]["tested"] == 3
    assert verdicts["same_steps"]["numbers"]["difference"] == 0
    # fewer runs asked for: the same numbers now decide
    assert {v["id"]: v["verdict"] for v in evaluate_all(runs, [], min_runs=1)}["five_seeds"] in ("HOLDS", "FAILS")


def test_report_command_writes_report_verdicts_aggregate_and_figures(sweep, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "rnnlab.report", str(sweep), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "the runs use 2 data sets (adding, copy); each is reported on its own" in proc.stderr
    assert "HOLDS           rnn_smaller" in proc.stdout and "8 runs: 7 ok, 0 diverged, 1 failed" in proc.stdout
    verdicts = json.loads((out / "verdicts.json").read_text())
    assert [v["id"] for v in verdicts] == [c["id"] for c in CLAIMS]
    assert all(set(v) == {"id", "text", "kind", "verdict", "numbers"} for v in verdicts)
    aggregate = json.loads((out / "aggregate.json").read_text())
    assert [(g["data"], g["n"]) for g in aggregate] == [("adding", 3), ("adding", 1), ("adding", 3), ("copy", 1)]
    report = (out / "report.md").read_text()
    assert "| **gru_below_rnn**: the GRU has fewer parameters than the RNN | **FAILS** |" in report
    rows = (out / "runs.csv").read_text().splitlines()  # one row per run, the failed one too
    assert len(rows) == 1 + 8 and rows[0].startswith("run,group,model,data,task,data.seq_len,seed,status,")
    assert sum(",failed," in row for row in rows) == 1
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert {"adding_final_metric.png", "adding_T10_gradients.png", "copy_final_metric.png"} <= set(pngs)
    assert all(f"]({name})" in report for name in pngs)


def test_figures_say_what_was_run(sweep, tmp_path):
    runs, _ = load_runs([sweep])
    groups = group_runs(runs)["adding"]
    fig = final_metric_figure("adding", groups)  # one T: a bar per model, T in the title
    assert fig._suptitle.get_text().startswith("adding: final test MSE / baseline MSE, T = 10\n")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "configuration" and ax.get_ylabel().startswith("test MSE / baseline")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rnn", "gru"] and len(ax.patches) == 2
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["baseline", "gru", "rnn"]
    lengths = [_run(tmp_path, f"rnn_T{T}", ["model=rnn", f"data.seq_len={T}", "model.param_budget=12000"])
               for T in (6, 8)]
    assert all(r["status"] == "ok" for r in lengths)
    runs, _ = load_runs([tmp_path])
    fig = final_metric_figure("adding", group_runs(runs)["adding"])  # two T: a line against T
    assert fig._suptitle.get_text().startswith("adding: final test MSE / baseline MSE against T")
    assert fig.axes[0].get_xlabel() == "sequence length T"
    assert [readable("model.param_budget", v) for v in (12000, 1_600_000, None)] == [
        "12K params", "1.6M params", "no parameter budget"]
    assert readable("model.hidden_size", 64) == "H = 64" and readable("data.seq_len", 5) == "seq_len = 5"
    fig = gradient_figure("adding", 10, groups)
    assert fig._suptitle.get_text() == "adding, T = 10: gradient norm against distance to the loss"
    assert [ax.get_title() for ax in fig.axes] == ["at initialisation", "after training"]
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["rnn (3 seeds)", "gru (3 seeds)"]


def test_learning_curves_average_the_seeds_val_curve_files(sweep, tmp_path):
    """val_curve.csv in the agreed format (step,seconds,<val metrics>); a seed stopped early drops out."""
    for seed in SEEDS:
        shutil.copytree(sweep / f"gru_s{seed}", tmp_path / f"gru_s{seed}")
        steps = (2, 4, 6) if seed < 2 else (2, 4)
        rows = [f"{s},{0.1 * s + seed / 100},{1.0 / s + seed},{1.0 / s + seed}" for s in steps]
        (tmp_path / f"gru_s{seed}" / "val_curve.csv").write_text("step,seconds,val/loss,val/mse\n" + "\n".join(rows))
    runs, _ = load_runs([tmp_path])
    fig = learning_curves_figure("adding", 10, group_runs(runs)["adding"])
    by_step, by_seconds = fig.axes
    assert fig._suptitle.get_text() == "adding, T = 10: val/loss on the validation set during training"
    assert by_step.get_xlabel() == "updates (training steps)"
    assert by_seconds.get_xlabel() == "training seconds (validation excluded)"
    (line,) = by_step.get_lines()
    assert list(line.get_xdata()) == [2, 4, 6] and line.get_label() == "gru (3 seeds)"
    assert np.allclose(line.get_ydata(), [1 / 2 + 1, 1 / 4 + 1, 1 / 6 + 0.5])  # means over the seeds still running


def test_real_runs_keep_their_validation_curve(sweep):
    """Each run writes val_curve.csv (training side: rnnlab.training.callbacks), which the report reads."""
    runs, _ = load_runs([sweep])
    curve = next(r for r in runs if r.status == "ok").val_curve()
    assert curve is not None, "no val_curve.csv in the run directory"
    assert list(curve)[:2] == ["step", "seconds"] and "val/loss" in curve
    fig = learning_curves_figure("adding", 10, group_runs(runs)["adding"])
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["rnn (3 seeds)", "gru (3 seeds)"]


def test_bad_input_is_one_line_each_and_the_rest_is_reported(sweep, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"report: {empty}: no results.json below it; nothing to report there (did its runs start?)",
                   f"report: error: no run could be read below {empty}; nothing written"]
    mixed = tmp_path / "mixed"
    shutil.copytree(sweep / "rnn_s0", mixed / "rnn_s0")
    (mixed / "broken").mkdir()
    (mixed / "broken" / "results.json").write_text('{"status": "ok", ')
    bad_claim = {**CLAIMS[0], "kind": "median"}
    cfg = (mixed / "rnn_s0" / "config.yaml")
    cfg.write_text(cfg.read_text().replace("kind: fraction", "kind: median", 1))
    assert main([str(mixed), str(empty)]) == 0
    err = capsys.readouterr().err
    assert f"report: {mixed / 'broken' / 'results.json'}: unreadable results.json (" in err
    assert f"report: {empty}: no results.json below it" in err
    assert f"{mixed / 'rnn_s0' / 'config.yaml'}: claims[0] (id {bad_claim['id']}): kind is 'median'; use one of " in err
    assert (mixed / "report.md").exists() and "unreadable results.json" in (mixed / "report.md").read_text()


def test_sweep_summary_is_a_readable_table(sweep):
    text = write_table(sweep)
    assert text == (sweep / "summary.md").read_text().rstrip("\n")
    header = next(line for line in text.splitlines() if line.startswith("| model |"))
    assert header.startswith("| model | hidden_size | runs | status | test MSE | MSE/base | params | ms/upd |")
    assert "| slope₀ | slope | ratio₀ | ratio |" in header and "gradients." not in text
    assert "ratio₀: log10 ‖∂L/∂h_first‖/‖∂L/∂h_last‖, at initialisation" in text  # the legend under the table
    terminal = write_table(sweep, terminal=True)  # what a sweep's end prints: fits 120 columns
    assert max(len(line) for line in terminal.splitlines() if line.startswith("|")) <= 120, terminal
    assert "| slope₀ | slope |" in terminal and "ratio₀" not in terminal and "tokens/s" not in terminal
    assert "test accuracy" in text  # the copy task's table shows its own metric
    rnn_row = next(line for line in text.splitlines() if line.startswith("| rnn |"))
    assert " ± " in rnn_row and "| 3 | ok |" in rnn_row
    assert "| 1 | 1 failed |" in text
    assert text.endswith("8 runs: 7 ok, 0 diverged, 1 failed")
    for line in text.splitlines():
        assert "e+0" not in line  # plain numbers, never scientific notation for big ones


def test_wandb_report_run_holds_the_table_verdicts_and_figures(sweep, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "wandb_out"
    assert main([str(sweep), "--out", str(out), "--wandb"]) == 0
    (run,) = (out / "wandb").glob("offline-run-*")
    inspect = [WANDB, "leet", "inspect", "--json", str(run)]
    summary = json.loads(subprocess.run([*inspect[:3], "--summary", *inspect[3:]], capture_output=True, text=True,
                                        timeout=120, check=True).stdout)
    text = json.dumps(summary)
    assert '"verdict/gru_below_rnn": "FAILS"' in text and '"verdict/rnn_smaller": "HOLDS"' in text
    assert "report/aggregate" in text and "report/adding_final_metric" in text
    assert sweep.name in text  # the report run is in the sweep's group
