"""The fast path (``cell.scan``: all steps in one autograd Function, backward by hand) equals the step loop.

The step loop (``layer.step_loop = True`` here) is the textbook code, one autograd node per step; the
diagnostics run on the scan (its probe gradients and recorded gates), so comparing the two also proves
the diagnostics see the very function that trains, and see what the step loop would show.
"""

from functools import partial

import pytest
import torch
from torch.nn import functional as F

from rnnlab.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.data.base import DataSpec
from rnnlab.diagnostics.probe import GradientProbe
from rnnlab.model.recurrent import RecurrentLayer
from rnnlab.model.sequence_model import SequenceModel

CELLS = {
    "rnn_tanh": partial(RNNCell, nonlinearity="tanh"),
    "rnn_relu": partial(RNNCell, nonlinearity="relu"),
    "rnn_no_bias": partial(RNNCell, bias=False),
    "lstm": LSTMCell,
    "lstm_no_bias": partial(LSTMCell, bias=False),
    "gru_textbook": partial(GRUCell, reset_after=False),
    "gru_reset_after": partial(GRUCell, reset_after=True),
    "gru_no_bias": partial(GRUCell, bias=False),
}


def _forward_backward(layer, x, lengths, state, loop: bool):
    layer.step_loop = loop
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    state = tuple(s.clone().requires_grad_() for s in state)
    out, final = layer(x, lengths, state)
    weights = torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)
    loss = (out * weights).sum() + sum((s * s.sin()).sum() for s in final)
    loss.backward()
    return [out, *final, x.grad, *(s.grad for s in state), *(p.grad for p in layer.parameters())]


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("name", list(CELLS))
def test_scan_equals_step_loop_with_gradients(name, bidirectional, padded):
    torch.manual_seed(0)
    layer = RecurrentLayer(CELLS[name], 5, 7, num_layers=2, bidirectional=bidirectional).double()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    B, T = 4, 6
    x = torch.randn(B, T, 5, dtype=torch.float64)
    lengths = torch.tensor([6, 3, 1, 5]) if padded else None
    state = tuple(torch.randn(4 if bidirectional else 2, B, 7, dtype=torch.float64) for _ in layer.state_names)
    fast = _forward_backward(layer, x, lengths, state, loop=False)
    loop = _forward_backward(layer, x, lengths, state, loop=True)
    assert len(fast) == len(loop)
    for a, b in zip(fast, loop):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru_textbook", "gru_reset_after"])
def test_scan_passes_gradcheck(name):
    torch.manual_seed(0)
    cell = CELLS[name](3, 4).double()
    T, B = 5, 2
    x = torch.randn(T, B, 3, dtype=torch.float64, requires_grad=True)  # time-major
    state = tuple(torch.randn(B, 4, dtype=torch.float64, requires_grad=True) for _ in cell.state_names)
    valid = torch.arange(T)[:, None] < torch.tensor([5, 3])[None, :]  # (T, B)
    params = list(cell.parameters())  # passed as inputs too: gradcheck perturbs them in place

    def f(x, *inputs):
        out, final = cell.scan(x, inputs[len(params):], valid)
        return (out, *final)

    assert torch.autograd.gradcheck(f, (x, *params, *state))


def test_observer_sees_every_step_and_record_every_gate():
    torch.manual_seed(0)
    layer = RecurrentLayer(GRUCell, 3, 4, num_layers=2, bidirectional=True)
    seen = []
    layer.observer = lambda layer_i, direction, t, h: seen.append((layer_i, direction, t))
    layer(torch.randn(2, 5, 3))
    assert len(seen) == 2 * 2 * 5
    layer.observer = None
    layer.cells[0].record = []
    layer(torch.randn(2, 5, 3))
    assert len(layer.cells[0].record) == 5 and set(layer.cells[0].record[0]) == {"r", "z", "h_tilde"}


def test_a_cell_without_scan_uses_the_step_loop():
    class Plain(RNNCell):
        def scan(self, x, state, valid=None, probe=None):
            return None

    torch.manual_seed(0)
    plain = RecurrentLayer(Plain, 3, 4)
    torch.manual_seed(0)
    fast = RecurrentLayer(RNNCell, 3, 4)
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(plain(x)[0], fast(x)[0])


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru_textbook", "gru_reset_after"])
def test_diagnostics_on_the_scan_equal_the_step_loop(name, padded, monkeypatch):
    """A measured step runs the scan (probe gradients, gates from the scan) and measures what the step loop,
    one hooked autograd node per h_t, measures: ‖∂L/∂h_t‖, ‖∂L/∂x_t‖ and gate statistics per step."""
    spec = DataSpec(name="toy", task="regression", readout="last", output_size=1, input_size=3)
    torch.manual_seed(0)
    model = SequenceModel(CELLS[name], spec, hidden_size=5, num_layers=2, bidirectional=True).double()
    x, y = torch.randn(4, 6, 3, dtype=torch.float64), torch.randn(4, 1, dtype=torch.float64)
    lengths = torch.tensor([6, 3, 1, 5]) if padded else None

    def measure(loop: bool) -> dict:
        model.recurrent.step_loop = loop
        model.zero_grad(set_to_none=True)
        probe = GradientProbe(model, lengths).attach()
        pred, _ = model(x, lengths)
        probe.stop_observing()
        F.mse_loss(pred, y).backward()
        probe.close()
        return {**probe.results(), **{n: p.grad.clone() for n, p in model.named_parameters()}}

    loop = measure(loop=True)
    monkeypatch.setattr("rnnlab.model.recurrent.loop", None)  # the step loop cannot run now: the scan must
    fast = measure(loop=False)
    assert {"h_mean", "h_max", "x_mean"} <= set(fast) and set(fast) == set(loop)
    if name != "rnn_tanh":
        assert any(k.endswith("_sat") for k in fast)
    for key in loop:
        torch.testing.assert_close(fast[key], loop[key], rtol=1e-10, atol=1e-12, equal_nan=True, msg=key)
