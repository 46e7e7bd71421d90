"""Each cell computes its textbook equations, written out here independently with the named weights."""

import pytest
import torch

from rnnlab.cells import GRUCell, LSTMCell, RNNCell

B, I, H = 3, 4, 5


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, I, generator=g, dtype=torch.float64), torch.randn(B, H, generator=g, dtype=torch.float64)


def _randomise(cell):
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.randn_like(p))
    return cell.double()


@pytest.mark.parametrize("nonlinearity, phi", [("tanh", torch.tanh), ("relu", torch.relu)])
def test_rnn_equation(nonlinearity, phi):
    cell = _randomise(RNNCell(I, H, nonlinearity=nonlinearity))
    x, h = _inputs()
    w = cell.gate_weights()
    assert set(w) == {"W_x", "W_h", "b"}
    expected = phi(x @ w["W_x"] + h @ w["W_h"] + w["b"])
    out, (h_new,) = cell(x, (h,))
    torch.testing.assert_close(out, expected)
    assert out is h_new


def test_lstm_equations():
    cell = _randomise(LSTMCell(I, H))
    x, h = _inputs()
    c = torch.randn(B, H, dtype=torch.float64)
    w = cell.gate_weights()
    i = torch.sigmoid(x @ w["W_xi"] + h @ w["W_hi"] + w["b_i"])
    f = torch.sigmoid(x @ w["W_xf"] + h @ w["W_hf"] + w["b_f"])
    o = torch.sigmoid(x @ w["W_xo"] + h @ w["W_ho"] + w["b_o"])
    c_tilde = torch.tanh(x @ w["W_xc"] + h @ w["W_hc"] + w["b_c"])
    c_new = f * c + i * c_tilde
    out, (_, c_out) = cell(x, (h, c))
    torch.testing.assert_close(c_out, c_new)
    torch.testing.assert_close(out, o * torch.tanh(c_new))


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_equations(reset_after):
    cell = _randomise(GRUCell(I, H, reset_after=reset_after))
    x, h = _inputs()
    w = cell.gate_weights()
    r = torch.sigmoid(x @ w["W_xr"] + h @ w["W_hr"] + w["b_r"])
    z = torch.sigmoid(x @ w["W_xz"] + h @ w["W_hz"] + w["b_z"])
    if reset_after:  # torch.nn.GRU / cuDNN: r_t ⊙ (h W_hh + b_hh), with the two h-biases kept apart
        b_xh, b_hh = cell.bias_ih[2 * H:], cell.bias_hh[2 * H:]
        h_tilde = torch.tanh(x @ w["W_xh"] + b_xh + r * (h @ w["W_hh"] + b_hh))
    else:  # the project's definition: (r_t ⊙ h_{t-1}) W_hh
        h_tilde = torch.tanh(x @ w["W_xh"] + (r * h) @ w["W_hh"] + w["b_h"])
    expected = z * h + (1 - z) * h_tilde
    out, _ = cell(x, (h,))
    torch.testing.assert_close(out, expected)


def test_lstm_forget_bias_is_set_once():
    cell = LSTMCell(I, H, forget_bias=1.0)
    assert torch.all(cell.bias_ih[H:2 * H] == 1.0) and torch.all(cell.bias_hh[H:2 * H] == 0.0)
    torch.testing.assert_close(cell.gate_weights()["b_f"], torch.ones(H))


def test_chrono_init_spreads_the_keep_gates_time_scales_up_to_t_max():
    T = 100
    torch.manual_seed(0)
    lstm = LSTMCell(I, 64, chrono_t_max=T)
    b = lstm.gate_weights()
    assert torch.all(b["b_f"] >= 0.0) and torch.all(b["b_f"] <= torch.log(torch.tensor(T - 1.0)))
    assert b["b_f"].std() > 0.5  # spread over the units, not one value
    torch.testing.assert_close(b["b_i"], -b["b_f"])
    torch.manual_seed(0)
    plain = GRUCell(I, 64)
    torch.manual_seed(0)
    chrono = GRUCell(I, 64, chrono_t_max=T)
    w, w0 = chrono.gate_weights(), plain.gate_weights()
    assert torch.all(w["b_z"] >= 0.0) and torch.all(w["b_z"] <= torch.log(torch.tensor(T - 1.0)))
    torch.testing.assert_close(w["b_r"], w0["b_r"])  # the reset gate and the candidate keep the default draw
    torch.testing.assert_close(w["b_h"], w0["b_h"])


@pytest.mark.parametrize("kwargs, message", [
    ({"chrono_t_max": 2}, "model.cell.chrono_t_max must be a number > 2"),
    ({"chrono_t_max": "100"}, "model.cell.chrono_t_max must be a number > 2"),
    ({"chrono_t_max": 100, "forget_bias": 1.0}, "leave model.cell.forget_bias at 0.0"),
])
def test_chrono_init_rejects_a_bad_value_naming_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LSTMCell(I, H, **kwargs)


@pytest.mark.parametrize("cell_type, gates", [(GRUCell, {"r", "z", "h_tilde"}),
                                              (LSTMCell, {"i", "f", "o", "c_tilde"})])
def test_gates_recorded_only_on_request(cell_type, gates):
    cell = cell_type(I, H)
    x = torch.randn(B, I)
    cell(x)
    assert cell.record is None
    cell.record = []
    cell(x)
    cell(x)
    assert len(cell.record) == 2 and set(cell.record[0]) == gates
    assert all(v.shape == (B, H) for v in cell.record[0].values())


def test_invalid_sizes_name_the_key():
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        GRUCell(I, -3)
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(I, H, nonlinearity="sigmoid")
