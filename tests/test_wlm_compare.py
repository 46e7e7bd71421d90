"""benchmarks/wlm_compare.py's bookkeeping on made-up runs (no training, no timing): every ratio is a run over
the peer's run of the same round, both corpora go into one table, and a finished run is reused, not rerun."""

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
wlm_compare = pytest.importorskip("wlm_compare")


def made_up(tokens_per_second: list[float]) -> list[dict]:
    return [{"tokens_per_second": t, "valid_ppl": 60.0, "test_ppl": 65.0, "load_before": 1.0, "seconds": 60.0}
            for t in tokens_per_second]


def test_ratios_are_same_round_and_both_corpora_are_tabled(tmp_path):
    corpora = {}
    for name, (every, max_size, arms) in wlm_compare.CORPORA.items():
        runs = {f"{cell}/{who}": made_up([100.0, 200.0, 400.0]) for cell, whos in arms.items() for who in whos}
        # the fused LSTM is 0.9x the peer in round 0 and 1.1x in rounds 1 and 2; a ratio of medians would say 1.1
        runs["lstm/fused"] = made_up([90.0, 220.0, 440.0])
        corpora[name] = {"info": {"verses_every": every, "max_size": max_size, "vocab": 7, "tokens": {}}, "runs": runs}
    result = {"corpora": corpora, "peer_commit": "0" * 40, "rounds": 3, "load": [1.0, 1.0], "seconds": 60}
    path = tmp_path / "wlm_compare.md"
    wlm_compare.write_compare(result, path)
    table = path.read_text()
    for name in wlm_compare.CORPORA:
        assert f"| {name} | LSTM fused ≥ 1.0× | 0.900, 1.100, 1.100 | 1.100 | 2 of 3 rounds |" in table
        assert f"| {name} | LSTM unrolled ≥ 0.9× | 1.000, 1.000, 1.000 | 1.000 | 3 of 3 rounds |" in table
        assert f"## {name}: KJV word level" in table
    assert "| LSTM | rnnlab fused | 220 | 1.100 (0.900–1.100) |" in table
    assert "every verse of each split" in table and "every 5th verse of each split" in table


def test_a_finished_run_is_reused(tmp_path):
    out = tmp_path / "lstm_fused_0"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"loop_tokens_per_second": 5.0, "tokens_per_second": 6.0,
                                                  "metrics": {"val/ppl": 60.0, "test/ppl": 65.0}, "steps": 3}))
    (out / "run.json").write_text(json.dumps({"load_before": 0.5, "seconds": 12.0}))
    # no peer and no corpus: running anything would fail
    run = wlm_compare.run_arm(Path("/nonexistent"), Path("/nonexistent"), out, "lstm", "fused")
    assert run["tokens_per_second"] == 5.0 and run["seconds"] == 12.0 and run["load_before"] == 0.5


def test_a_round_with_a_run_older_than_the_code_runs_again_whole(tmp_path, monkeypatch):
    """Round 0's fused LSTM predates the last change to src/: every run of round 0 (the peer's too, for the
    same-round ratio) is removed and run again; round 1, made after it, is kept."""
    work, changed = tmp_path / "work", 1_000_000.0
    arms = [f"{cell}_{who}" for cell, whos in wlm_compare.CORPORA["full"][2].items() for who in whos]
    for round_, made in ((0, changed - 10), (1, changed + 10)):
        for arm in arms:
            out = work / "full" / f"{arm}_{round_}"
            out.mkdir(parents=True)
            (out / "run.json").write_text("{}")
            os.utime(out / "run.json", (made, made))
    os.utime(work / "full" / "lstm_peer_0" / "run.json", (changed + 10, changed + 10))  # the peer's age is moot
    assert [d.name for d in wlm_compare.stale_round(sorted((work / "full").glob("*_0")), changed)] == \
        ["gru_fused_0", "lstm_fused_0", "lstm_unrolled_0"]
    ran = []

    def fake_run_arm(peer, corpus, out, cell, who):
        ran.append(out.name)
        return made_up([100.0])[0]

    monkeypatch.setattr(wlm_compare, "run_arm", fake_run_arm)
    monkeypatch.setattr(wlm_compare, "last_source_change", lambda: changed)
    wlm_compare.compare(work, tmp_path, 2, {"full": ({}, tmp_path)})
    assert not any((work / "full" / f"{arm}_0").exists() for arm in arms)  # removed, then "run" by the fake
    assert all((work / "full" / f"{arm}_1" / "run.json").is_file() for arm in arms)
    assert ran == [f"{arm}_{r}" for r in (0, 1) for arm in arms]
