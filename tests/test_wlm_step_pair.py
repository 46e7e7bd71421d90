"""benchmarks/wlm_step_pair.py on a tiny vocabulary: both updates really train (their losses fall on a
repeated batch), the pairs alternate, and the table carries every arm (no speed is asserted: the bench
measures, tests don't time)."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
step_pair = pytest.importorskip("wlm_step_pair")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_both_updates_train_the_same_architecture(cell):
    torch.manual_seed(0)
    vocab = 30
    x = torch.randint(0, vocab, (step_pair.B, step_pair.T))
    y = x.clone()  # the current token: learnable in a few updates through embedding and head
    ours, plain = step_pair.ours(cell, "fused", vocab), step_pair.plain(cell, vocab)
    state_ours = state_plain = None
    losses = {"ours": [], "plain": []}
    count = {who: sum(p.numel() for p in update.model.parameters()) for who, update in (("ours", ours), ("plain", plain))}
    assert count["ours"] == count["plain"]  # the same architecture, parameter for parameter
    for _ in range(6):
        state_ours, loss = ours(x, y, None)
        losses["ours"].append(float(loss))
        state_plain, loss = plain(x, y, None)
        losses["plain"].append(float(loss))
    for who, curve in losses.items():
        assert curve[0] == pytest.approx(float(torch.log(torch.tensor(30.0))), abs=0.2), who  # starts near uniform
        assert min(curve[1:]) < curve[0], who  # it learns
    assert state_ours[0].shape == (2, step_pair.B, 200)
    assert (state_plain[0] if cell == "lstm" else state_plain).shape == (2, step_pair.B, 200)


def test_pairs_and_table(tmp_path):
    runs = [step_pair.pair(cell, impl, 30, updates=4, warmup=1) for cell, impl in step_pair.ARMS]
    for r in runs:
        assert r["updates"] == 4 and r["ours_ms"] > 0 and r["plain_ms"] > 0
        assert r["ratio_q1"] <= r["ratio_median"] <= r["ratio_q3"]
    result = {"updates": 4, "pairs": {"fifth": runs}, "machine": "test", "load": [1.0, 1.0], "seconds": 6.0,
              "profile": None}
    step_pair.write_table(result, tmp_path / "t.md")
    table = (tmp_path / "t.md").read_text()
    assert table.count("| fifth (30) |") == 3 and "| LSTM | unrolled |" in table
