"""The LSTM cell (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

    i_t = σ(x_t W_xi + h_{t-1} W_hi + b_i)          input gate
    f_t = σ(x_t W_xf + h_{t-1} W_hf + b_f)          forget gate
    c̃_t = tanh(x_t W_xc + h_{t-1} W_hc + b_c)       candidate cell
    o_t = σ(x_t W_xo + h_{t-1} W_ho + b_o)          output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ c̃_t
    h_t = o_t ⊙ tanh(c_t)

Gate blocks are stored in torch's order (i, f, c̃, o), so weights copy 1:1 to ``torch.nn.LSTM``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.cells.base import RecurrentCell, State


class LSTMCell(RecurrentCell):
    """LSTM step. Fused counterpart: ``torch.nn.LSTM``.

    ``forget_bias`` (default 1.0) initialises b_f. With b_f = 0 the forget gate starts near
    σ(0) = 0.5, so the cell state halves every step and gradients through c_t vanish like a plain
    RNN's before training can learn to keep memory; b_f = 1 starts f_t near 0.73 (Gers et al. 2000;
    Jozefowicz et al. 2015 found it closes most of the LSTM–GRU gap). torch.nn.LSTM has two bias
    vectors; only the input-side one gets ``forget_bias`` (the hidden-side forget block is zeroed),
    otherwise the effective bias would double.
    """

    gate_names = ("i", "f", "c", "o")
    state_names = ("h", "c")
    fused = nn.LSTM

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, forget_bias: float = 1.0) -> None:
        self.forget_bias = float(forget_bias)
        super().__init__(input_size, hidden_size, bias)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias:
            H = self.hidden_size
            with torch.no_grad():
                self.bias_ih[H:2 * H].fill_(self.forget_bias)
                self.bias_hh[H:2 * H].zero_()

    def step(self, x_proj: Tensor, state: State) -> tuple[Tensor, State]:
        h_prev, c_prev = state
        pre_i, pre_f, pre_c, pre_o = (x_proj + self.hidden_term(h_prev)).chunk(4, dim=-1)  # 4 × (B, H)
        i = torch.sigmoid(pre_i)
        f = torch.sigmoid(pre_f)
        c_tilde = torch.tanh(pre_c)
        o = torch.sigmoid(pre_o)
        c = f * c_prev + i * c_tilde
        h = o * torch.tanh(c)
        self._record(i=i, f=f, o=o, c_tilde=c_tilde)
        return h, (h, c)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, forget_bias={self.forget_bias}"
