"""``python -m rnnlab.explain``: step traces are the cells' own numbers; JSON weights are checked; the
text view renders a PNG and a terminal view from real (tiny) runs."""

import json
import math
import subprocess
import sys

import pytest
import torch
from matplotlib.image import imread
from rich.console import Console
from torch.nn import functional as F

from conftest import ROOT, compose_config
from rnnlab.data.base import DataSpec
from rnnlab.explain import heatmap as gh
from rnnlab.explain import trace as gt
from rnnlab.explain import views
from rnnlab.explain import weights as gw
from rnnlab.explain.cli import main
from rnnlab.model.sequence_model import SequenceModel
from rnnlab.training.checkpoint import load_model
from rnnlab.training.train import train

I, H = 3, 4
CASES = [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}), ("gru", {"reset_after": False}),
         ("gru", {"reset_after": True})]
COPY = ["data=copy", "data.seq_len=5", "data.n_train=64", "data.n_val=32", "data.n_test=32", "logger=none",
        "checkpoint_every_n_steps=0"]


def _random_cell(kind, seed=0, **kwargs):
    torch.manual_seed(seed)
    cell = gw.CELLS[kind](I, H, **kwargs).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn_like(p))
    return cell


def _inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=g, dtype=torch.float64) for n in (I, H, H)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs on the copy task (it has a vocabulary): an unrolled GRU, a fused GRU, an LSTM."""
    root = tmp_path_factory.mktemp("explain-runs")
    out = {}
    for name, overrides in {"gru": ["model=gru"], "gru_fused": ["model=gru", "model.impl=fused"],
                            "lstm": ["model=lstm", "model.num_layers=2"]}.items():
        results = train(compose_config(COPY + overrides, root / name))
        assert results["status"] == "ok", results["error"]
        out[name] = root / name
    sst2 = root / "SST-2"  # GLUE SST-2's format, a few made-up sentences
    sst2.mkdir()
    words = ["good", "bad", "plot", "film", "dull", "great", "not", "fun"]
    for split, n in (("train", 32), ("dev", 8)):
        rows = [" ".join(words[(i * 3 + k) % 8] for k in range(2 + i % 5)) + f"\t{i % 2}" for i in range(n)]
        (sst2 / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    results = train(compose_config(["data=sst2", f"data.root={sst2}", "data.batch_size=4", "model=gru",
                                    "data.val_fraction=0.25", "model.bidirectional=true", "logger=none",
                                    "checkpoint_every_n_steps=0"], root / "sst2"))
    assert results["status"] == "ok", results["error"]
    out.update(sst2=root / "sst2", sst2_root=sst2)
    return out


# ---- step ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, kwargs", CASES)
def test_traced_h_equals_the_cells_forward(kind, kwargs):
    cell = _random_cell(kind, **kwargs)
    x, h, c = _inputs()
    trace = gt.trace_step(cell, x, h, c if kind == "lstm" else None)
    state = (h[None], c[None]) if kind == "lstm" else (h[None],)
    h_out, new_state = cell(x[None], state)
    assert list(trace)[-1] == "h"
    torch.testing.assert_close(trace["h"], h_out[0], rtol=0, atol=0)
    if kind == "lstm":
        torch.testing.assert_close(trace["c"], new_state[1][0], rtol=0, atol=0)
    w = cell.gate_weights()  # the products are the textbook ones
    for g in gw.GATES[kind]:
        torch.testing.assert_close(trace[f"xW_x{g}"], x @ w[f"W_x{g}"])
    if kind == "gru" and not kwargs["reset_after"]:
        torch.testing.assert_close(trace["pre_r"], x @ w["W_xr"] + h @ w["W_hr"] + w["b_r"])
        torch.testing.assert_close(trace["rhW_hh"], (trace["r"] * h) @ w["W_hh"])


def test_gru_trace_lists_the_equations_in_order():
    trace = gt.trace_step(_random_cell("gru", reset_after=False), *_inputs()[:2])
    assert list(trace) == ["x_t", "h_prev", "xW_xr", "hW_hr", "b_r", "pre_r", "r", "xW_xz", "hW_hz", "b_z",
                           "pre_z", "z", "xW_xh", "r_h_prev", "rhW_hh", "b_h", "pre_h", "h_tilde", "z_h_prev",
                           "one_minus_z_h_tilde", "h"]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_named_weights_rebuild_the_same_cell(kind):
    cell = _random_cell(kind, **({"reset_after": False} if kind == "gru" else {}))
    rebuilt, defaulted = gw.cell_from_weights(kind, gw.export_weights(cell))
    assert defaulted == []
    x, h, c = _inputs()
    a = gt.trace_step(cell, x, h, c if kind == "lstm" else None)
    b = gt.trace_step(rebuilt, x, h, c if kind == "lstm" else None)
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)


@pytest.mark.parametrize("weights, message", [
    ({"W_xr": [[1, 2], [3, 4]], "W_hr": [[1, 2, 3], [4, 5, 6]]},
     "W_hr: expected shape (2, 2) (hidden × hidden"),
    ({"W_xr": [[1, 2], [3, 4]], "b_z": [1, 2, 3]}, "b_z: expected shape (2,) (hidden"),
    ({"W_xr": [[1, 2], [3, 4]], "W_xz": [[1, 2, 3]]}, "W_xz: expected shape (2, 2) (input × hidden"),
    ({"W_xr": [[1, 2], [3, 4]], "W_xi": [[1, 2]]}, "unknown key(s) 'W_xi' for a gru cell"),
    ({"W_xr": [[1, 2], [3, "a"]]}, "W_xr: not a number"),
])
def test_bad_weights_name_the_key_and_both_shapes(weights, message):
    with pytest.raises(ValueError) as error:
        gw.cell_from_weights("gru", weights)
    assert message in str(error.value)
    if "expected shape" in message:
        got = str(error.value).split("got ")[-1]
        assert got.startswith("(") and got != message


def test_cli_step_reports_zero_defaults_and_bad_shapes(tmp_path, capsys):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"W_xr": [[1.0, 0.0], [0.0, 1.0]], "b_r": [0.5, 0.0]}))
    assert main(["step", "--cell", "gru", "--weights", str(path), "--x", "1, 2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert any("defaulted to zeros" in n and "W_hh" in n and "W_xr" not in n for n in out["notes"])
    assert out["trace"]["pre_r"] == [1.5, 2.0] and out["trace"]["z"] == [0.5, 0.5]
    assert main(["step", "--cell", "gru", "--weights", str(path), "--x", "1, 2, 3"]) == 2
    assert "x_t: expected shape (2,)" in capsys.readouterr().err
    path.write_text(json.dumps({"W_xr": [[1.0, 0.0]], "W_hr": [[1.0]]}))
    assert main(["step", "--cell", "gru", "--weights", str(path), "--x", "1"]) == 2
    err = capsys.readouterr().err
    assert "W_hr: expected shape (2, 2) (hidden × hidden, input 1, hidden 2), got (1, 1)" in err


def test_example_file_and_tutorial_agree_with_the_command():
    """The shipped example runs as a subprocess, and the tutorial shows its real numbers."""
    example = ROOT / "experiments" / "gru_step_example.json"
    done = subprocess.run([sys.executable, "-m", "rnnlab.explain", "step", "--cell", "gru", "--weights",
                           str(example), "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    trace = json.loads(done.stdout)["trace"]
    tutorial = (ROOT / "experiments" / "explain_tutorial.md").read_text()
    for name in ("r", "z", "h_tilde", "h"):
        shown = ", ".join(gt._fmt(v) for v in trace[name])
        assert f"[{shown}]" in tutorial, (name, shown)


def test_run_dir_trace_is_the_models_step_and_survives_a_json_round_trip(runs, tmp_path, capsys):
    run, weights = runs["gru"], tmp_path / "gru.json"
    assert main(["step", "--run", str(run), "--token", "3", "--h", ",".join(["0.1"] * 8), "--json",
                 "--dump-weights", str(weights)]) == 0
    from_run = json.loads(capsys.readouterr().out)
    x = from_run["trace"]["x_t"]
    model, _ = gh.load_inspectable(run)
    with torch.no_grad():  # the model's own recurrent layer, one step from the same state
        out, _ = model.recurrent(torch.tensor([[x]]), state=(torch.full((1, 1, 8), 0.1),))
    torch.testing.assert_close(torch.tensor(from_run["trace"]["h"]), out[0, 0], rtol=0, atol=1e-6)
    assert main(["step", "--cell", "gru", "--weights", str(weights), "--x", json.dumps(x),
                 "--h", ",".join(["0.1"] * 8), "--json"]) == 0
    from_json = json.loads(capsys.readouterr().out)
    assert list(from_json["trace"]) == list(from_run["trace"])
    for name, values in from_run["trace"].items():
        torch.testing.assert_close(torch.tensor(from_json["trace"][name]), torch.tensor(values),
                                   rtol=0, atol=1e-5, msg=name)


def test_fused_gru_is_traced_in_its_reset_after_form(runs, tmp_path, capsys):
    run = runs["gru_fused"]
    assert main(["step", "--run", str(run), "--x", ",".join(["0.3"] * 8), "--json"]) == 0
    trace = json.loads(capsys.readouterr().out)
    assert trace["reset_after"] and "r_hW_hh_b" in trace["trace"]
    fused, _ = load_model(run)
    with torch.no_grad():  # torch.nn.GRU's own answer
        out, _ = fused.recurrent(torch.full((1, 1, 8), 0.3))
    torch.testing.assert_close(torch.tensor(trace["trace"]["h"]), out[0, 0], rtol=0, atol=1e-6)
    assert main(["step", "--run", str(run), "--x", "1", "--dump-weights", str(tmp_path / "w.json")]) == 2
    assert "reset-after" in capsys.readouterr().err


def test_lstm_second_layer_step(runs, capsys):
    assert main(["step", "--run", str(runs["lstm"]), "--layer", "1", "--x", ",".join(["0.5"] * 8),
                 "--max-units", "3"]) == 0
    out = capsys.readouterr().out
    assert "c_t = f_t ⊙ c_{t-1} + i_t ⊙ c̃_t" in out and "… (8 units)" in out
    assert "c_prev not given: zeros" in out


# ---- text ---------------------------------------------------------------------------------------
def test_text_view_writes_a_png_and_renders_in_the_terminal(runs, tmp_path, capsys):
    png = tmp_path / "gates.png"
    assert main(["text", "--run", str(runs["gru"]), "--sentence", "3 1 4 1 _ _ : _", "--out", str(png),
                 "--top-k", "3", "--json"]) == 0
    out = capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads(out[out.index("\n{") + 1:])
    assert result["tokens"] == ["3", "1", "4", "1", "_", "_", ":", "_"]
    assert set(result["rows"]) == {"r", "z", "dh"} and all(len(v) == 8 for v in result["rows"].values())
    assert all(0 < v < 1 for v in result["rows"]["r"])
    assert result["top"]["gate"] == "r" and len(result["top"]["low"]) == 3
    assert "mean r_t (reset)" in out and "lowest mean" in out
    console = Console(record=True, width=200, force_terminal=True, color_system="truecolor")
    rows = {k: torch.tensor(v).numpy() for k, v in result["rows"].items()}
    views.render_terminal(result["tokens"], rows, console)
    assert ";48;2;" in console.export_text(styles=True, clear=False)  # cells on a true-colour background
    assert "mean z_t (update)" in console.export_text()


def test_a_50_token_example_wraps_into_rows_of_legible_width(runs, tmp_path, capsys):
    sentence = " ".join(("3 1 4 1 _ _ : _ " * 7).split()[:50])
    widths = {}
    for n, words in ((8, sentence.split()[:8]), (50, sentence.split())):
        png = tmp_path / f"{n}.png"
        assert main(["text", "--run", str(runs["gru"]), "--sentence", " ".join(words), "--out", str(png),
                     "--no-terminal"]) == 0
        height, widths[n], _ = imread(png).shape
    assert widths[50] <= 1600, widths  # 2953 px before, one row of 50 tokens
    assert widths[50] / views.TOKENS_PER_ROW >= 60  # pixels per token: room for a 9 pt label and a value
    assert widths[8] < widths[50] and height > 2 * imread(tmp_path / "8.png").shape[0]  # three rows of 20


def test_text_view_of_a_held_out_example_and_an_lstm_layer(runs, tmp_path, capsys):
    png = tmp_path / "ex.png"
    assert main(["text", "--run", str(runs["lstm"]), "--example", "2", "--layer", "1", "--out", str(png),
                 "--no-terminal", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["rows"]) == {"i", "f", "o", "dh"} and len(result["tokens"]) == 25 and png.is_file()
    assert result["title"].startswith("LSTM on copy, val example 2, layer 1 direction 0"), result["title"]


def test_text_view_of_float_features_shows_the_input_rows(tmp_path, capsys):
    run = tmp_path / "adding"
    results = train(compose_config(["model=gru", "data.seq_len=6", "data.n_train=64", "data.n_val=32",
                                    "data.n_test=32", "logger=none"], run))
    assert results["status"] == "ok", results["error"]
    capsys.readouterr()  # the run's summary
    png = tmp_path / "ex.png"
    assert main(["text", "--run", str(run), "--example", "0", "--split", "test", "--out", str(png),
                 "--no-terminal", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["rows"])[:2] == ["input x_t[0]", "input x_t[1]"]  # value and marker, then the gates
    assert sum(result["rows"]["input x_t[1]"]) == 2  # the adding problem marks two of the six steps
    assert "test example 0" in result["title"] and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_bidirectional_classifier_on_text_files(runs, tmp_path, capsys):
    """SST-2's official format (tiny): padded batches, <unk>, both directions, a moved data folder."""
    root = runs["sst2_root"]
    run = runs["sst2"]
    assert main(["text", "--run", str(run), "--sentence", "A good plot, zzz!", "--direction", "1",
                 "--out", str(tmp_path / "s.png"), "--no-terminal", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tokens"] == ["<unk>", "good", "plot", "<unk>", "<unk>", "<unk>"]  # "a , zzz !" are unknown
    assert "predicted class" in result["title"]
    model, _ = gh.load_inspectable(run)
    x = torch.tensor([gh.encode("good plot film", model.spec.itos)[0]])
    out, _ = model.recurrent(model.embedding(x))  # (1, T, 2H): forward ‖ backward
    for direction in (0, 1):  # the recorded states are the layer's own, in time order
        _, steps = gh.record_pass(model, x, direction=direction)
        torch.testing.assert_close(steps["h"], out[..., 8 * direction: 8 * (direction + 1)])
    moved = root.rename(tmp_path / "moved")
    assert main(["text", "--run", str(run), "--example", "1", "--no-terminal"]) == 2
    assert "is not available here" in capsys.readouterr().err
    assert main(["text", "--run", str(run), "--example", "1", "--data-root", str(moved), "--top-k", "2",
                 "--gate", "z", "--min-count", "1", "--out", str(tmp_path / "e.png"), "--no-terminal",
                 "--json"]) == 0
    moved.rename(root)
    result = json.loads(capsys.readouterr().out)
    assert ", label " in result["title"] and "<pad>" not in result["tokens"]
    assert len(result["rows"]["dh"]) == len(result["tokens"]) and result["top"]["gate"] == "z"
    assert len(result["top"]["high"]) == 2
    assert {r["token"] for r in result["top"]["high"]} < set(model.spec.itos)


def test_unknown_words_and_unavailable_data_fail_clearly(runs, capsys):
    with pytest.raises(ValueError, match="not in this run's vocabulary, which has no <unk>"):
        gh.encode("3 7 cat", ["_", "1", "3", "7"])
    assert gh.encode("the cat sat", ["<pad>", "<unk>", "the", "sat"]) == ([2, 1, 3], ["the", "<unk>", "sat"])
    model, cfg = gh.load_inspectable(runs["gru"])
    cfg.data = {"_target_": "rnnlab.data.imdb.IMDBDataModule", "root": "/nonexistent/aclImdb"}
    with pytest.raises(gh.DataUnavailable, match="is not available here: .*--data-root DIR"):
        gh.build_datamodule(cfg, model)


def test_language_model_rows_include_the_next_token_loss():
    spec = DataSpec(name="lm", task="language_modeling", readout="all", output_size=6, vocab_size=6,
                    itos=["<pad>", "<unk>", "a", "b", "c", "<eos>"])
    torch.manual_seed(0)
    model = SequenceModel(gw.CELLS["gru"], spec, hidden_size=5, embedding_dim=4).eval()
    x, y = torch.tensor([[2, 3, 4, 5]]), torch.tensor([[3, 4, 5, -100]])
    rows, pred = gh.activity(model, x, y)
    expected = F.cross_entropy(pred[0, :3], y[0, :3], reduction="none")
    torch.testing.assert_close(rows["loss"][0, :3], expected)
    assert math.isnan(rows["loss"][0, 3]) and set(rows) == {"r", "z", "dh", "loss"}


def test_wandb_gets_the_figure_offline(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main(["text", "--run", str(runs["gru"]), "--sentence", "1 2 :", "--out", str(tmp_path / "g.png"),
                 "--no-terminal", "--wandb"]) == 0
    assert list((runs["gru"] / "wandb").glob("offline-run-*/files/media/**/*.png"))
