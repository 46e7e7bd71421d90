"""model.impl=auto: the fused kernel and the unrolled twin compute one function over one set of parameters;
measured steps run the twin, so a real run measures ‖∂L/∂h_t‖; diagnostics do not change training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import compose_config
from rnnlab.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.diagnostics.plots import load_arrays
from rnnlab.model.auto_path import faster_path, paths_by_device
from rnnlab.model.recurrent import RecurrentLayer
from rnnlab.training.train import train

CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def _loss_and_grads(layer: RecurrentLayer, path: str, x, lengths, state):
    layer.auto_path = path
    layer.zero_grad(set_to_none=True)
    out, final = layer(x, lengths, state)
    loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum() + sum(s.pow(2).sum() for s in final)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in layer.named_parameters()}


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("name", list(CELLS))
def test_the_twin_has_the_fused_kernels_loss_and_gradients(name, num_layers, bidirectional):
    torch.manual_seed(0)
    layer = RecurrentLayer(CELLS[name], 5, 7, num_layers, bidirectional, impl="auto").double()
    with torch.no_grad():  # away from the initialisation, so that every gate matters
        for p in layer.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    B, T = 4, 6
    x = torch.randn(B, T, 5, dtype=torch.float64)
    lengths = torch.tensor([6, 3, 1, 5])
    state = tuple(torch.randn(num_layers * (2 if bidirectional else 1), B, 7, dtype=torch.float64)
                  for _ in layer.state_names)
    loss_f, grads_f = _loss_and_grads(layer, "fused", x, lengths, state)
    loss_u, grads_u = _loss_and_grads(layer, "unrolled", x, lengths, state)
    torch.testing.assert_close(loss_u, loss_f, rtol=1e-12, atol=1e-12)
    assert set(grads_f) == set(grads_u) and len(grads_f) == 4 * num_layers * (2 if bidirectional else 1)
    for key in grads_f:  # the fused kernel's gradients landed on the cells' own parameters
        assert grads_f[key].abs().sum() > 0, key
        torch.testing.assert_close(grads_u[key], grads_f[key], rtol=1e-10, atol=1e-12, msg=key)
    if name == "gru":
        assert all(c.reset_after for c in layer.cells)  # the variant torch.nn.GRU computes, on both paths


def test_measured_steps_run_the_twin_and_the_rest_the_rules_path():
    layer = RecurrentLayer(LSTMCell, 2, 4, impl="auto")
    assert layer.path("cpu", 100) == faster_path(LSTMCell, "cpu", 4, 100) == "fused"
    assert layer.path("cuda") == "fused"
    layer.observer = lambda *args: None
    assert layer.path("cpu") == layer.path("cuda") == "unrolled"
    layer.observer = None
    layer.cells[0].record = []
    assert layer.path("cpu") == "unrolled"
    assert RecurrentLayer(RNNCell, 2, 4, impl="auto").path("cpu") == "unrolled"
    assert list(layer.state_dict()) == [f"cells.0.{n}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def test_the_cpu_rule_follows_the_claims_shapes_table():
    # benchmarks/claims_shapes.md (B = 64, one thread): the faster path per cell, H and T
    for H, T in [(64, 100), (64, 400), (128, 100), (128, 400)]:
        assert faster_path(RNNCell, "cpu", H, T) == "unrolled"
        assert faster_path(LSTMCell, "cpu", H, T) == ("fused" if H == 64 else "unrolled")
        assert faster_path(GRUCell, "cpu", H, T) == ("fused" if (H, T) == (128, 400) else "unrolled")
        assert faster_path(GRUCell, "cuda", H, T) == "fused"
    assert faster_path(GRUCell, "cpu", 128, 200) == "fused" and faster_path(GRUCell, "cpu", 128, 199) == "unrolled"
    assert paths_by_device(GRUCell, 128) == {"cpu": "fused for T ≥ 200, unrolled below", "cuda": "fused"}
    assert paths_by_device(LSTMCell, 64) == {"cpu": "fused", "cuda": "fused"}
    gru = RecurrentLayer(GRUCell, 2, 128, impl="auto")
    assert gru.path("cpu", 200) == "fused" and gru.path("cpu", 100) == "unrolled"


def test_auto_draws_the_random_numbers_an_unrolled_layer_draws_and_loads_a_fused_checkpoint():
    torch.manual_seed(3)
    auto = RecurrentLayer(LSTMCell, 3, 5, 2, impl="auto")
    after_auto = torch.rand(3)
    torch.manual_seed(3)
    unrolled = RecurrentLayer(LSTMCell, 3, 5, 2, impl="unrolled")
    torch.testing.assert_close(torch.rand(3), after_auto, rtol=0, atol=0)
    torch.testing.assert_close(auto.state_dict(), unrolled.state_dict(), rtol=0, atol=0)
    fused = RecurrentLayer(LSTMCell, 3, 5, 2, impl="fused")
    auto.load_state_dict(fused.state_dict())
    torch.testing.assert_close(auto.cells[1].weight_hh, fused.rnn.weight_hh_l1, rtol=0, atol=0)


def test_a_textbook_gru_cannot_run_under_auto():
    with pytest.raises(ValueError, match=r"reset_after=true"):
        RecurrentLayer(lambda i, h: GRUCell(i, h, reset_after=False), 2, 4, impl="auto")


RUN = ["data=adding", "data.seq_len=12", "data.n_train=128", "data.n_val=16", "data.n_test=16",
       "trainer.max_steps=12", "model.impl=auto"]


def _weights(results: dict) -> dict[str, torch.Tensor]:
    return torch.load(Path(results["output_dir"]) / "model.pt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_a_real_auto_run_measures_h_and_diagnostics_leave_training_alone(tmp_path, model):
    measured = train(compose_config(RUN + [f"model={model}", "diagnostics.every_n_steps=5"], tmp_path / "diag"))
    plain = train(compose_config(RUN + [f"model={model}", "diagnostics.every_n_steps=0"], tmp_path / "plain"))
    assert measured["status"] == plain["status"] == "ok", measured.get("traceback") or plain.get("traceback")
    arrays = load_arrays(Path(measured["output_dir"]))
    assert str(arrays["measured_on"]) == "h" and str(arrays["impl"]) == "auto"
    assert arrays["step"].tolist() == [0, 5, 10, 11]
    assert arrays["h_norm_mean"].shape == (4, 1, 12) and (arrays["h_norm_mean"] > 0).all()
    gate = "gate_f_sat" if model == "lstm" else "gate_z_sat"
    assert np.isfinite(arrays[gate]).all()
    saved = json.loads((Path(measured["output_dir"]) / "results.json").read_text())
    assert saved["gradients"]["measured_on"] == "h"
    H, T = saved["param_budget"]["hidden_size"], 12
    assert saved["fairness"]["auto_train_path"] == {"cpu": faster_path(CELLS[model], "cpu", H, T), "cuda": "fused"}
    assert saved["fairness"]["gru_variant"] == ("reset_after" if model == "gru" else None)
    ours, theirs = _weights(measured), _weights(plain)
    assert ours.keys() == theirs.keys()
    if faster_path(CELLS[model], "cpu", H, T) == "unrolled":  # every step on the same path: the same bits
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=key)
    else:  # 4 of 12 steps through the twin: the same function, rounded differently in float32
        for key in ours:
            torch.testing.assert_close(ours[key], theirs[key], rtol=1e-4, atol=1e-5, msg=key)
