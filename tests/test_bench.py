"""The benchmark command runs end to end (quick mode) and writes a well-formed table and JSON; compile=True
computes what the eager layer computes. No timing is asserted: speed targets live in the bench output."""

import json

import pytest
import torch

from rnnlab.bench import speed
from rnnlab.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.model.recurrent import RecurrentLayer
from rnnlab.model.step_loop import COMPILE_BLOCK


def test_quick_bench_writes_table_and_json(tmp_path):
    result = speed.main(["--quick", "--out", str(tmp_path), "--rounds", "2"])
    stem = tmp_path / result["machine"]["file_stem"]
    data = json.loads(stem.with_suffix(".json").read_text())
    assert data["device"] in ("cpu", "cuda") and data["machine"]["torch"] == torch.__version__
    rows = data["rows"]
    assert {(r["cell"], r["impl"]) for r in rows} >= {(c, i) for c in ("rnn", "lstm", "gru")
                                                     for i in ("fused", "unrolled")}
    for r in rows:
        assert r["min_ms"] <= r["median_ms"] <= r["max_ms"]
        assert r["ratio_min"] <= r["ratio_to_fused"] <= r["ratio_max"] and r["ratio_to_fused"] > 0
        assert r["tokens_per_s"] > 0
        if r["impl"] == "fused":
            assert r["ratio_to_fused"] == 1.0
    framework = data["framework"]
    assert framework["steps_per_s_ratio"] > 0 and framework["train_tokens_per_s"] > 0
    assert set(data["diagnostics"]["tokens_per_s"]) == {"0", "50", "1"}

    table = stem.with_suffix(".md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| shape |"))
    assert "× fused" in header and "tokens/s" in header and "peak MiB" in header
    body = [line for line in table.splitlines() if line.startswith("| B4 ")]
    assert len(body) == len(rows)
    assert "steps/s ratio framework / bare" in table and "Diagnostics overhead" in table


@pytest.mark.slow
@pytest.mark.parametrize("cell", [GRUCell, LSTMCell], ids=["gru", "lstm"])
def test_compiled_step_loop_matches_eager(cell):
    """compile=True runs the step loop (here: scan=False) in compiled blocks of COMPILE_BLOCK steps, the rest
    eagerly; outputs and gradients equal the eager loop's, padded or not, for lengths that are not multiples
    of the block; a second length reuses the compiled block, and another batch size or a no-grad pass runs
    eagerly (no new graph)."""
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    eager = RecurrentLayer(cell, 3, 8, num_layers=2, scan=False)
    torch.manual_seed(0)
    compiled = RecurrentLayer(cell, 3, 8, num_layers=2, compile=True, scan=False)
    torch._dynamo.reset()
    counters.clear()
    graphs = []
    for T in (2 * COMPILE_BLOCK + 3, 3 * COMPILE_BLOCK + 1):
        x = torch.randn(4, T, 3)
        for lengths in (None, torch.tensor([T, 2, T, 1])):
            results = []
            for layer in (eager, compiled):
                layer.zero_grad(set_to_none=True)
                out, (h, *_) = layer(x, lengths)
                (out.sum() + h.pow(2).sum()).backward()
                results.append([out, h, *(p.grad for p in layer.parameters())])
            for a, b in zip(*results):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        graphs.append(counters["stats"]["unique_graphs"])
    assert compiled._compiled_steps and graphs[0] >= 1
    assert graphs[1] == graphs[0], "a new sequence length compiled a new graph"
    x = torch.randn(3, 2 * COMPILE_BLOCK, 3)  # another batch size, and a no-grad pass: eager, no new graph
    with torch.no_grad():
        torch.testing.assert_close(compiled(x)[0], eager(x)[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled(x)[0], eager(x)[0], rtol=1e-5, atol=1e-6)
    assert counters["stats"]["unique_graphs"] == graphs[0]


def test_observed_and_recorded_steps_stay_eager_under_compile():
    """Diagnostics need one autograd node per h_t: with an observer the compiled layer loops eagerly."""
    torch.manual_seed(0)
    layer = RecurrentLayer(GRUCell, 3, 4, compile=True, scan=False)
    seen = []
    layer.observer = lambda lay, d, t, h: seen.append(h.grad_fn is not None)
    layer(torch.randn(2, COMPILE_BLOCK + 1, 3))
    assert len(seen) == COMPILE_BLOCK + 1 and all(seen) and not layer._compiled_steps


@pytest.mark.slow
def test_compile_cost_is_measured_against_the_scan_and_reported(tmp_path):
    """The compile table: the compiled step loop against the eager one (how a cell without a scan trains)."""
    from rnnlab.bench.markdown import machine, write_markdown
    from rnnlab.bench.speed import Shape, compile_cost

    shape = Shape("B2 T3 I2 H4", 2, 3, 2, 4)
    (row,) = compile_cost(torch.device("cpu"), 3, {"rnn": RNNCell}, shape=shape, run_steps=10)
    assert row["compile_s"] > 0 and row["compiled_ms"] > 0 and row["unrolled_ms"] > 0
    saving = (row["step_loop_ms"] - row["compiled_ms"]) / 1e3
    assert row["pays_for_itself"]["cold"] == (saving > 0 and row["compile_s"] <= 10 * saving)
    assert row["pays_for_itself"]["warm"] == (saving > 0 and row["compile_warm_s"] <= 10 * saving)
    assert (row["break_even_steps"] is None) == (saving <= 0)
    result = {"machine": machine(torch.device("cpu")), "quick": True, "rows": [], "compile": [row], "seconds": 1.0}
    write_markdown(result, tmp_path / "cpu.md")
    line = next(x for x in (tmp_path / "cpu.md").read_text().splitlines() if x.startswith("| rnn |"))
    assert f"{row['vs_unrolled']:.2f}×" in line and line.endswith(" |")


def test_claims_bench_times_every_path_and_writes_its_files(tmp_path):
    result = speed.main(["--claims", "--out", str(tmp_path), "--rounds", "1", "--hidden", "8", "--seq-len", "6,9"])
    data = json.loads((tmp_path / "claims_shapes.json").read_text())
    assert data["rows"] == json.loads(json.dumps(result["rows"])) and data["threads"] == 1
    assert {(r["cell"], r["seq_len"]) for r in data["rows"]} == {(c, t) for c in ("rnn", "lstm", "gru") for t in (6, 9)}
    assert [entry["seq_len"] for entry in data["loads"]] == [6, 9] and data["loads"][0]["loadavg_1m_before"] >= 0
    for r in data["rows"]:
        assert r["faster_path"] in ("fused", "unrolled") and r["auto_path"] in ("fused", "unrolled")
        assert min(r[f"{p}_ms"] for p in ("fused", "unrolled", "auto", "measured")) > 0
        assert r["auto_diag50_ms"] == pytest.approx((49 * r["auto_ms"] + r["measured_ms"]) / 50)  # one round
    table = (tmp_path / "claims_shapes.md").read_text()
    assert "1-minute load average" in table and "Targets: auto ≥ 0.95×" in table
    assert sum(line.startswith(("| rnn | 8 |", "| lstm | 8 |", "| gru | 8 |")) for line in table.splitlines()) == 12
