"""Gradient diagnostics measure what they claim: ‖∂L/∂h_t‖ against analytic and independent references,
‖∂L/∂x_t‖ the same in both implementations, per-gate norms and spectral radii, and no hooks left behind."""

from __future__ import annotations

import gc
import tracemalloc
import warnings
import weakref
from functools import partial

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from rnnlab.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.data.base import DataSpec
from rnnlab.diagnostics.callback import GradientDiagnostics
from rnnlab.diagnostics.decay import decay_summary
from rnnlab.diagnostics.probe import GradientProbe, align, gate_grad_norms, spectral_radii
from rnnlab.model.sequence_model import SequenceModel

SPEC = DataSpec(name="toy", task="regression", readout="last", output_size=1, input_size=3)


class LinearRNNCell(RNNCell):
    """h_t = x_t W_x + h_{t-1} W_h + b (identity φ): ∂h_t/∂h_{t-1} = W_hᵀ exactly."""

    fused = None

    def step(self, x_proj, state):
        (h_prev,) = state
        h = x_proj + self.hidden_term(h_prev)
        return h, (h,)

    def scan(self, x, state, valid=None, probe=None):
        return None  # no fast path: the layer loops step()


def _model(cell, impl="unrolled", hidden=4, **kwargs) -> SequenceModel:
    torch.manual_seed(0)
    return SequenceModel(cell, SPEC, hidden_size=hidden, impl=impl, **kwargs).double()


def _measure(model, x, y, lengths=None) -> dict:
    probe = GradientProbe(model, lengths).attach()
    pred, _ = model(x, lengths)
    probe.stop_observing()
    F.mse_loss(pred, y).backward()
    probe.close()
    return probe.results()


def test_linear_rnn_gradient_is_the_analytic_jacobian_product():
    model = _model(LinearRNNCell)
    B, T = 5, 7
    x, y = torch.randn(B, T, 3, dtype=torch.float64), torch.randn(B, 1, dtype=torch.float64)
    lengths = torch.tensor([7, 3, 5, 1, 7])
    got = _measure(model, x, y, lengths)

    # by hand: ∂L/∂h_{L_b-1} = 2 (ŷ_b − y_b)/B · w_head and ∂L/∂h_{t-1} = ∂L/∂h_t W_hᵀ (row vectors)
    W_h, w = model.recurrent.cells[0].weight_hh.detach().t(), model.head.weight.detach()[0]  # (H, H), (H,)
    with torch.no_grad():
        pred, _ = model(x, lengths)
    expected = torch.full((B, T), float("nan"), dtype=torch.float64)  # right-aligned: index T-1 = last step
    for b in range(B):
        g = 2 * (pred[b, 0] - y[b, 0]) / B * w
        for t in range(int(lengths[b]) - 1, -1, -1):
            expected[b, t + T - int(lengths[b])] = g.norm()
            g = g @ W_h.t()
    torch.testing.assert_close(got["h_mean"][0], expected.nanmean(0), rtol=1e-10, atol=0)
    torch.testing.assert_close(got["h_max"][0], expected.nan_to_num(-1.0).amax(0), rtol=1e-10, atol=0)


def _textbook_gru_h_grads(cell: GRUCell, head, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """∂L/∂h_t by autograd through a separate implementation of the GRU equations (row vectors)."""
    W = {k: v.detach().clone() for k, v in cell.gate_weights().items()}
    h = torch.zeros(x.shape[0], cell.hidden_size, dtype=x.dtype, requires_grad=True)  # h_0: the graph's root
    hs = []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        r = torch.sigmoid(x_t @ W["W_xr"] + h @ W["W_hr"] + W["b_r"])
        z = torch.sigmoid(x_t @ W["W_xz"] + h @ W["W_hz"] + W["b_z"])
        h_tilde = torch.tanh(x_t @ W["W_xh"] + (r * h) @ W["W_hh"] + W["b_h"])
        h = z * h + (1 - z) * h_tilde
        hs.append(h)
    loss = F.mse_loss(head(h), y)
    return list(torch.autograd.grad(loss, hs))


def test_tiny_gru_gradient_matches_an_independent_autograd_and_finite_difference_reference():
    model = _model(GRUCell, hidden=3)
    x, y = torch.randn(4, 6, 3, dtype=torch.float64), torch.randn(4, 1, dtype=torch.float64)
    got = _measure(model, x, y)
    reference = _textbook_gru_h_grads(model.recurrent.cells[0], model.head, x, y)  # T × (B, H)
    norms = torch.stack([g.norm(dim=-1) for g in reference], dim=1)  # (B, T)
    torch.testing.assert_close(got["h_mean"][0], norms.mean(0), rtol=1e-10, atol=0)
    torch.testing.assert_close(got["h_max"][0], norms.amax(0), rtol=1e-10, atol=0)

    # the reference itself against central differences: perturb h_2 of sample 0, unit 1, run on
    cell, eps = model.recurrent.cells[0], 1e-6

    def loss_from(h2: torch.Tensor) -> float:
        h = h2
        for t in range(3, 6):
            h, _ = cell(x[:, t], (h,))
        return float(F.mse_loss(model.head(h), y))

    with torch.no_grad():
        h = torch.zeros(4, 3, dtype=torch.float64)
        for t in range(3):
            h, _ = cell(x[:, t], (h,))
        bump = torch.zeros_like(h)
        bump[0, 1] = eps
        fd = (loss_from(h + bump) - loss_from(h - bump)) / (2 * eps)
    assert fd == pytest.approx(float(reference[2][0, 1]), rel=1e-6, abs=1e-12)


def test_bidirectional_reverse_direction_is_reported_in_time_order():
    model = _model(partial(RNNCell), hidden=3, bidirectional=True)
    x, y = torch.randn(3, 5, 3, dtype=torch.float64), torch.randn(3, 1, dtype=torch.float64)
    got = _measure(model, x, y)
    fwd, bwd = model.recurrent.cells
    hs = {0: [], 1: []}
    h_f = h_b = torch.zeros(3, 3, dtype=torch.float64)
    for t in range(5):  # forward direction over t = 0..4, reverse over t = 4..0
        h_f, _ = fwd(x[:, t], (h_f,))
        h_b, _ = bwd(x[:, 4 - t], (h_b,))
        hs[0].append(h_f)
        hs[1].insert(0, h_b)  # hs[1][t] is the reverse direction's state at time t
    loss = F.mse_loss(model.head(torch.cat([h_f, h_b], dim=-1)), y)
    grads = torch.autograd.grad(loss, hs[0] + hs[1])
    norms = torch.stack([g.norm(dim=-1).mean(0) for g in grads]).view(2, 5)  # (direction, t)
    torch.testing.assert_close(got["h_mean"], norms, rtol=1e-10, atol=0)
    assert got["h_mean"][1, 0] > got["h_mean"][1, -1]  # the reverse direction ends (is read) at t = 0


@pytest.mark.parametrize("cell", [partial(GRUCell, reset_after=True), LSTMCell, RNNCell])
def test_fused_and_unrolled_measure_the_same_input_gradients_and_gate_norms(cell):
    unrolled = _model(cell, "unrolled", hidden=4, num_layers=2, bidirectional=True)
    fused = _model(cell, "fused", hidden=4, num_layers=2, bidirectional=True)
    fused.load_state_dict(unrolled.state_dict())
    x, y = torch.randn(4, 6, 3, dtype=torch.float64), torch.randn(4, 1, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4, 5])
    got_u, got_f = _measure(unrolled, x, y, lengths), _measure(fused, x, y, lengths)
    assert "h_mean" in got_u and "h_mean" not in got_f  # the fused model has no observable h_t
    for key in ("x_mean", "x_max"):
        assert torch.isfinite(got_u[key]).all()
        torch.testing.assert_close(got_u[key], got_f[key], rtol=1e-9, atol=0)
    norms_u, norms_f = gate_grad_norms(unrolled.recurrent), gate_grad_norms(fused.recurrent)
    assert list(norms_u) == list(norms_f) and len(norms_u) == 4 * 4 * len(unrolled.recurrent.cell_type.gate_names)
    np.testing.assert_allclose(list(norms_u.values()), list(norms_f.values()), rtol=1e-9)
    # the per-gate blocks partition the stacked gradient
    full = unrolled.recurrent.cells[1].weight_hh.grad.norm()
    gates = unrolled.recurrent.cell_type.gate_names
    assert sum(norms_u[f"l0_rev/W_h{g}"] ** 2 for g in gates) == pytest.approx(float(full) ** 2, rel=1e-12)
    rho_u, rho_f = spectral_radii(unrolled.recurrent), spectral_radii(fused.recurrent)
    np.testing.assert_allclose(np.array(list(rho_u.values())), np.array(list(rho_f.values())), rtol=1e-9)
    first_gate = f"W_h{gates[0]}"
    block = unrolled.recurrent.cells[0].gate_weights()[first_gate].detach()
    assert rho_u[first_gate][0] == pytest.approx(float(torch.linalg.eigvals(block).abs().max()), rel=1e-12)


def test_gru_gate_statistics_are_the_recorded_gates():
    model = _model(GRUCell, hidden=5)
    x, y = torch.randn(6, 4, 3, dtype=torch.float64) * 3, torch.randn(6, 1, dtype=torch.float64)
    got = _measure(model, x, y)
    cell = model.recurrent.cells[0]
    cell.record = []
    with torch.no_grad():
        model(x)
    z = torch.stack([r["z"] for r in cell.record], dim=1)  # (B, T, H)
    cell.record = None
    assert set(got) >= {"r_mean", "r_sat", "z_mean", "z_sat"} and "h_tilde_mean" not in got
    torch.testing.assert_close(got["z_mean"][0], z.mean(dim=(0, 2)))
    torch.testing.assert_close(got["z_sat"][0], ((z < 0.05) | (z > 0.95)).double().mean(dim=(0, 2)))


def test_align_right_aligns_padded_sequences():
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]])  # sample 1 has length 2
    mean, peak = align(values, torch.tensor([3, 2]))
    torch.testing.assert_close(mean, torch.tensor([1.0, 3.0, 4.0]))  # index 2: both last steps
    torch.testing.assert_close(peak, torch.tensor([1.0, 4.0, 5.0]))
    mean, _ = align(values, torch.tensor([3, 2]), reverse=True)  # step s lands on T-1-s
    torch.testing.assert_close(mean, torch.tensor([3.0, 3.5, 2.5]))


def test_decay_summary_of_a_geometric_curve():
    T, rho = 30, 0.5
    curve = 2.0 * rho ** (T - 1 - np.arange(T))  # index t at distance T-1-t
    s = decay_summary(curve)
    assert s["slope_log10_per_step"] == pytest.approx(np.log10(rho))
    assert s["log10_ratio_first_last"] == pytest.approx((T - 1) * np.log10(rho))
    assert s["h_norm_first"] == pytest.approx(curve[0]) and s["h_norm_last"] == 2.0
    curve[:5] = 0.0  # underflowed in float32: no ratio, the slope from the rest
    s = decay_summary(curve)
    assert s["log10_ratio_first_last"] is None and s["slope_log10_per_step"] == pytest.approx(np.log10(rho))


def test_every_n_steps_must_be_positive():
    with pytest.raises(ValueError, match="every_n_steps must be a positive integer"):
        GradientDiagnostics(-1, ".")


def _state_is_clean(model, x) -> bool:
    cells = model.recurrent.cells
    return (model.recurrent.observer is None and model.input_observer is None
            and all(c.record is None for c in cells) and not x.requires_grad and x.grad is None)


def test_hooks_are_removed_and_memory_does_not_grow_over_1000_steps(monkeypatch):
    """1,000 measured steps through the callback's own hooks: after each, no observer, gate record, flagged
    input or input hook is left and every h_t of the step (hence its autograd graph) is freed; over the
    last 900 steps live tensors do not grow, and Python allocations only by the numbers stored per step."""
    model = _model(GRUCell, hidden=8).float()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    callback = GradientDiagnostics(1, ".", measure_last_step=False)

    class Trainer:  # the attributes of lightning.Trainer the callback reads
        global_step, max_steps, max_epochs, current_epoch, num_training_batches = 0, -1, None, 0, 10**6
        gradient_clip_val, gradient_clip_algorithm, is_global_zero, loggers = 1.0, "norm", True, []

    class Module(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

    trainer, module = Trainer(), Module()
    x, y = torch.randn(8, 8, 3), torch.randn(8, 1)  # the same leaf every step: hooks on it would pile up
    layer = model.recurrent
    observed: list[weakref.ref] = []  # every h_t the probe hooks, weakly
    observe = GradientProbe._observe_h
    monkeypatch.setattr(GradientProbe, "_observe_h",
                        lambda self, i, d, t, h: (observed.append(weakref.ref(h)), observe(self, i, d, t, h)))

    def run(steps: int) -> None:
        for _ in range(steps):
            observed.clear()
            callback.on_train_batch_start(trainer, module, {"x": x, "y": y}, 0)
            loss = F.mse_loss(model(x)[0], y)
            callback.on_before_backward(trainer, module, loss)
            opt.zero_grad()
            loss.backward()
            callback.on_before_optimizer_step(trainer, module, opt)
            opt.step()
            callback.on_train_batch_end(trainer, module, None, None, 0)
            trainer.global_step += 1
            del loss
            assert len(observed) == 8 and all(ref() is None for ref in observed), "a step's h_t outlived it"
            assert layer.observer is None and model.input_observer is None and layer.cells[0].record is None
            assert not x.requires_grad and x.grad is None and not x._backward_hooks

    def live_tensors() -> int:
        gc.collect()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gc sees deprecated torch aliases
            return sum(isinstance(o, torch.Tensor) for o in gc.get_objects())

    run(100)
    tensors = live_tensors()
    tracemalloc.start()
    run(900)
    python_growth = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(callback.history["step"]) == 1000 and callback.history["step"][-1] == 999
    assert live_tensors() == tensors
    stored = sum(np.asarray(v[-1]).nbytes + 150 for v in callback.history.values())  # one step's numbers
    assert python_growth < 900 * 2 * stored, (python_growth, stored)
