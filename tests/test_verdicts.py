"""The four verdict words for every claim kind, on run directories with real seed-to-seed variance that the
test writes (results.json, config.yaml, val_curve.csv as training writes them): HOLDS, FAILS, INCONCLUSIVE
(the interval straddles the bound) and NOT ENOUGH RUNS; the negative control of ``close`` claims;
updates-to-solve from val_curve.csv; runs.csv from which every verdict is recomputed; the literature table."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from rnnlab.report.aggregate import group_runs
from rnnlab.report.claims import check, evaluate
from rnnlab.report.literature import literature_section
from rnnlab.report.runs import load_runs
from rnnlab.report.runs_table import read_runs_csv, write_runs_csv
from rnnlab.report.solving import (
    fraction_solved_curve,
    fraction_solved_figure,
    solved_section,
    updates_to_solve,
)

BASELINE = 0.167
# test losses per cell over 5 seeds: a and b far apart, c overlapping a, d overlapping a's reverse side
LOSSES = {"a": [1.00, 1.03, 0.97, 1.01, 0.99], "b": [1.50, 1.53, 1.47, 1.51, 1.49],
          "c": [1.02, 1.06, 0.96, 1.04, 1.00], "d": [0.99, 1.01, 0.95, 1.03, 0.98]}


def write_run(root: Path, model: str, seed: int, loss: float, status: str = "ok", curve=None, steps=1000,
              seq_len=100) -> Path:
    run = root / f"{model}_T{seq_len}_s{seed}"
    run.mkdir(parents=True)
    results = {"status": status, "model": model, "data": "adding", "task": "regression", "seed": seed,
               "baseline_loss": BASELINE, "steps": steps if status == "ok" else None, "params": 100,
               "metrics": {"test/loss": loss} if status == "ok" else {},
               "early_stopping": {"stopped": False, "step": None, "threshold": 0.05 * BASELINE,
                                  "monitor": "val/loss", "reason": None}}
    config = {"seed": seed, "model": {"name": model, "hidden_size": 8}, "data": {"seq_len": seq_len},
              "trainer": {"max_steps": steps},
              "optimizer": {"lr": 0.001}, "early_stopping": {"threshold_fraction_of_baseline": 0.05}}
    (run / "results.json").write_text(json.dumps(results))
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    rows = curve or [(500, BASELINE), (steps, BASELINE * 0.9)]
    (run / "val_curve.csv").write_text("step,seconds,val/loss\n" + "".join(f"{s},{s / 100},{v}\n" for s, v in rows))
    return run


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verdicts")
    for model, losses in LOSSES.items():
        for seed, loss in enumerate(losses):
            write_run(root, model, seed, loss)
    for seed, loss in enumerate(LOSSES["a"][:3]):  # e: three seeds and two failed runs
        write_run(root, "e", seed, loss)
    write_run(root, "e", 3, 0.0, status="failed")
    write_run(root, "e", 4, 0.0, status="failed")
    return root


def verdict_of(sweep: Path, claim: dict) -> dict:
    runs, _ = load_runs([sweep])
    full = {"id": "x", "select": {}, "min_runs": 5, "min_fraction": 0.8, "relative_to": None, **claim}
    assert check(full, "test") is None
    return evaluate(full, runs)


@pytest.mark.parametrize("order, verdict", [
    (["a", "b"], "HOLDS"),          # ascending, CIs apart
    (["b", "a"], "FAILS"),          # reversed, CIs apart
    (["a", "c"], "INCONCLUSIVE"),   # ascending means, CIs overlap
    (["a", "d"], "INCONCLUSIVE"),   # reversed means, CIs overlap: not FAILS
    (["a", "e"], "NOT ENOUGH RUNS"),  # e has 3 measured runs of 5
])
def test_order_claims_end_in_four_words(sweep, order, verdict):
    v = verdict_of(sweep, {"kind": "order", "by": "model", "metric": "metrics.test/loss", "order": order})
    assert v["verdict"] == verdict, v["numbers"]


@pytest.mark.parametrize("pair, bound, verdict", [
    (["c", "a"], {"margin": 0.1}, "HOLDS"),          # difference CI ≈ [−0.02, 0.06] inside ± 0.1
    (["b", "a"], {"margin": 0.1}, "FAILS"),          # ≈ 0.5 apart
    (["c", "a"], {"margin": 0.03}, "INCONCLUSIVE"),  # straddles + 0.03
    (["c", "a"], {"tolerance": 0.03}, "INCONCLUSIVE"),
    (["e", "a"], {"margin": 0.1}, "NOT ENOUGH RUNS"),
])
def test_close_claims_end_in_four_words(sweep, pair, bound, verdict):
    v = verdict_of(sweep, {"kind": "close", "by": "model", "metric": "metrics.test/loss", "pair": pair, **bound})
    assert v["verdict"] == verdict, v["numbers"]
    if verdict != "NOT ENOUGH RUNS":
        low, high = v["numbers"]["difference_ci95"]
        assert low < v["numbers"]["difference"] < high  # real variance: a real interval


def test_a_match_that_the_negative_control_also_passes_is_inconclusive(sweep):
    base = {"kind": "close", "by": "model", "metric": "metrics.test/loss", "pair": ["c", "a"]}
    # d (the "tanh RNN" here) is as close to the better cell a as c is: the rule cannot tell cells apart
    spoilt = verdict_of(sweep, {**base, "margin": 0.1, "control": "d"})
    assert spoilt["verdict"] == "INCONCLUSIVE"
    assert spoilt["numbers"]["negative_control"]["verdict"] == "HOLDS"
    assert spoilt["numbers"]["reason"].startswith("negative control: the same rule calls d a match for a")
    # b is far from a: the control does not match, and the claim keeps its verdict
    kept = verdict_of(sweep, {**base, "margin": 0.1, "control": "b"})
    assert kept["verdict"] == "HOLDS" and kept["numbers"]["negative_control"]["verdict"] == "FAILS"


def test_a_margin_from_the_measured_gap_needs_a_real_gap(sweep):
    base = {"kind": "close", "by": "model", "metric": "metrics.test/loss", "pair": ["c", "a"]}
    real = verdict_of(sweep, {**base, "margin_of_gap": 0.25, "control": "b"})  # gap ≈ 0.5: bound ≈ 0.125
    assert real["verdict"] == "HOLDS" and real["numbers"]["bound"] == pytest.approx(0.25 * (1.5 - 1.0), rel=1e-9)
    assert real["numbers"]["negative_control"]["gap_is_real"] is True
    none = verdict_of(sweep, {**base, "margin_of_gap": 0.25, "control": "d"})  # d is not worse than a
    assert none["verdict"] == "INCONCLUSIVE" and "no margin to measure by" in none["numbers"]["reason"]


def test_a_close_claim_without_one_bound_is_one_line():
    claim = {"id": "m", "kind": "close", "by": "model", "metric": "m", "pair": ["a", "b"]}
    assert check(claim, "exp.yaml: claims[0]") == ("exp.yaml: claims[0] (id m): a 'close' claim needs one bound of "
                                                  "tolerance, margin, margin_of_gap; got none")
    assert "give control" in check({**claim, "margin_of_gap": 0.5}, "e")


@pytest.mark.parametrize("model, min_runs, verdict", [
    ("a", 5, "HOLDS"),             # 5/5 below 1.2
    ("b", 5, "FAILS"),             # 0/5
    ("e", 3, "INCONCLUSIVE"),      # 3 pass, 2 failed runs undecided: the fraction lies in [0.6, 1.0] around 0.8
    ("e", 5, "NOT ENOUGH RUNS"),   # 3 measured of the 5 needed
])
def test_fraction_claims_end_in_four_words(sweep, model, min_runs, verdict):
    v = verdict_of(sweep, {"kind": "fraction", "select": {"model": model}, "metric": "metrics.test/loss",
                           "op": "lt", "value": 1.2, "min_runs": min_runs})
    assert v["verdict"] == verdict, v["numbers"]
    if model == "e" and min_runs == 3:
        assert v["numbers"]["groups"][0]["fraction_range"] == [0.6, 1.0]


def test_updates_to_solve_is_read_from_the_curve_and_censored_at_the_budget(tmp_path):
    threshold = 0.05 * BASELINE
    write_run(tmp_path, "gru", 0, 0.001, curve=[(100, 0.15), (200, threshold * 0.99), (300, 0.001)], steps=400)
    write_run(tmp_path, "gru", 1, 0.001, curve=[(100, 0.15), (200, 0.1), (300, threshold)], steps=400)
    write_run(tmp_path, "gru", 2, 0.16, curve=[(100, 0.16), (400, 0.16)], steps=400)
    write_run(tmp_path, "gru", 3, 0.16, status="diverged", curve=[(100, 0.16), (200, float("nan"))], steps=400)
    runs, _ = load_runs([tmp_path])
    # a run that diverged unsolved is censored at its budget, not where it stopped
    assert [updates_to_solve(r) for r in runs] == [(200.0, True), (300.0, True), (400.0, False), (400.0, False)]
    runs = runs[:3]
    x, y, n = fraction_solved_curve(runs)
    assert n == 3 and list(x) == [0, 200, 300, 400] and list(y) == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3])
    fig = fraction_solved_figure("adding", group_runs(runs)["adding"])
    (ax,) = fig.axes
    assert ax.get_title() == "T = 100" and ax.get_legend().get_texts()[0].get_text() == "gru: 2/3 solved"
    section = solved_section(group_runs(runs))
    assert section[1] == "## Solved (fraction of seeds, updates-to-solve)"
    assert section[-1] == "| model=gru | 2/3 | 300 | 200, 300 |"  # median of 200, 300 and the censored run
    solved = verdict_of(tmp_path, {"kind": "fraction", "metric": "solved", "op": "eq", "value": 1, "min_runs": 3})
    assert solved["verdict"] == "FAILS" and solved["numbers"]["groups"][0]["passing"] == 2  # 2/3 < 0.8


def test_runs_csv_recomputes_every_verdict(sweep, tmp_path):
    claims = [
        {"id": "o", "kind": "order", "by": "model", "metric": "metrics.test/loss", "order": ["a", "b"]},
        {"id": "c", "kind": "close", "by": "model", "metric": "metrics.test/loss", "pair": ["c", "a"],
         "margin": 0.1, "control": "d"},
        {"id": "f", "kind": "fraction", "select": {"model": "e"}, "metric": "metrics.test/loss", "op": "lt",
         "value": 1.2, "min_runs": 3},
        {"id": "s", "kind": "fraction", "select": {"data.seq_len": 100}, "metric": "solved", "op": "eq", "value": 1},
    ]
    runs, _ = load_runs([sweep])
    path = write_runs_csv(runs, claims, tmp_path / "runs.csv")
    header = path.read_text().splitlines()[0].split(",")
    assert header[:4] == ["run", "group", "model", "data"] and "updates_to_solve" in header
    assert len(path.read_text().splitlines()) == 1 + len(runs)
    back = read_runs_csv(path)
    for claim in claims:
        full = {"select": {}, "min_runs": 5, "min_fraction": 0.8, "relative_to": None, **claim}
        direct, again = evaluate(full, runs), evaluate(full, back)
        assert again["verdict"] == direct["verdict"], claim["id"]
        if "difference" in direct["numbers"]:
            assert again["numbers"]["difference_ci95"] == pytest.approx(direct["numbers"]["difference_ci95"])
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(yaml.safe_dump({"claims": claims}))
    done = subprocess.run([sys.executable, "-m", "rnnlab.report.runs_table", str(path), str(experiment)],
                          capture_output=True, text=True, cwd=ROOT, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("HOLDS           o:")
    assert done.stdout.splitlines()[1].startswith("INCONCLUSIVE    c:")
    as_json = subprocess.run([sys.executable, "-m", "rnnlab.report.runs_table", str(path), str(experiment), "--json"],
                             capture_output=True, text=True, cwd=ROOT, check=True, timeout=120)
    close = {v["id"]: v for v in json.loads(as_json.stdout)}["c"]
    direct = evaluate({"select": {}, "min_runs": 5, "min_fraction": 0.8, "relative_to": None, **claims[1]}, runs)
    assert close["verdict"] == "INCONCLUSIVE"
    assert close["numbers"]["difference_ci95"] == pytest.approx(direct["numbers"]["difference_ci95"])


def test_the_report_puts_our_numbers_beside_the_papers(sweep, tmp_path):
    runs, _ = load_runs([sweep])
    for run in runs:
        run.config["literature"] = [{"source": "Somebody 2014, Table 2", "by": "model", "metric": "metrics.test/loss",
                                     "values": {"a": 0.9, "b": 1.6}}]
    problems: list[str] = []
    lines = literature_section(runs, problems)
    assert problems == [] and lines[:2] == ["", "## Beside the literature"]
    row_a = next(line for line in lines if line.startswith("| a |"))
    assert row_a == "| a | 1 ± 0.022, 95 % CI [0.972, 1.03] (n = 5) | 0.9 | +0.1 |"  # std 0.0224 of LOSSES["a"]
