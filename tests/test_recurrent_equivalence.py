"""Unrolled (our cells) and fused (torch.nn) compute the same function with the same parameters."""

from functools import partial

import pytest
import torch

from rnnlab.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.model.recurrent import RecurrentLayer

CELLS = {
    "rnn_tanh": partial(RNNCell, nonlinearity="tanh"),
    "rnn_relu": partial(RNNCell, nonlinearity="relu"),
    "lstm": LSTMCell,
    "gru": partial(GRUCell, reset_after=True),  # the variant torch.nn.GRU computes
}


def _pair(cell, bidirectional, num_layers=2, I=5, H=7):
    torch.manual_seed(0)
    unrolled = RecurrentLayer(cell, I, H, num_layers, bidirectional, impl="unrolled").double()
    torch.manual_seed(0)
    fused = RecurrentLayer(cell, I, H, num_layers, bidirectional, impl="fused").double()
    return unrolled, fused


def _run(layer, x, lengths, state):
    out, final = layer(x, lengths, state)
    loss = (out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum() + sum(s.pow(2).sum() for s in final)
    loss.backward()
    return out, final


def _grads(layer):
    """Parameter gradients keyed by the fused (torch.nn) names, whatever the implementation."""
    grads = {n: p.grad for n, p in layer.named_parameters()}
    return layer._cells_to_fused(grads) if layer.impl == "unrolled" else grads


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("direction", ["unrolled_to_fused", "fused_to_unrolled"])
def test_same_outputs_states_and_gradients(name, bidirectional, direction):
    unrolled, fused = _pair(CELLS[name], bidirectional)
    # Copy weights one way or the other through state_dict: keys convert on load.
    with torch.no_grad():
        for p in (unrolled if direction == "unrolled_to_fused" else fused).parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    if direction == "unrolled_to_fused":
        fused.load_state_dict(unrolled.state_dict())
    else:
        unrolled.load_state_dict(fused.state_dict())

    B, T = 4, 6
    x = torch.randn(B, T, 5, dtype=torch.float64)
    lengths = torch.tensor([6, 3, 1, 5])
    state = tuple(torch.randn(4 if bidirectional else 2, B, 7, dtype=torch.float64)
                  for _ in unrolled.state_names)
    out_u, fin_u = _run(unrolled, x, lengths, state)
    out_f, fin_f = _run(fused, x, lengths, state)

    torch.testing.assert_close(out_u, out_f, rtol=1e-10, atol=1e-12)
    assert len(fin_u) == len(fin_f)
    for a, b in zip(fin_u, fin_f):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    g_u, g_f = _grads(unrolled), _grads(fused)
    assert set(g_u) == set(g_f) and len(g_u) == 8 * (2 if bidirectional else 1)
    for key in g_f:
        torch.testing.assert_close(g_u[key], g_f[key], rtol=1e-9, atol=1e-11, msg=key)


@pytest.mark.parametrize("name", list(CELLS))
def test_one_seed_gives_the_same_initial_weights_in_both_implementations(name):
    unrolled, fused = _pair(CELLS[name], bidirectional=True)
    sd_u = unrolled._cells_to_fused(unrolled.state_dict())
    for key, value in fused.state_dict().items():
        torch.testing.assert_close(sd_u[key], value)


def test_padding_steps_emit_zeros_and_keep_state():
    torch.manual_seed(0)
    layer = RecurrentLayer(GRUCell, 3, 4, impl="unrolled")
    x = torch.randn(2, 5, 3)
    out, (h,) = layer(x, torch.tensor([5, 2]))
    assert torch.all(out[1, 2:] == 0)
    # the final state of the short sequence is its state at its last valid step
    _, (h_short,) = layer(x[1:, :2])
    torch.testing.assert_close(h[0, 1], h_short[0, 0])


def test_textbook_gru_cannot_run_fused_and_says_how_to_fix():
    with pytest.raises(ValueError, match="reset_after=true"):
        RecurrentLayer(partial(GRUCell, reset_after=False), 3, 4, impl="fused")
