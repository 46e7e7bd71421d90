"""The vanilla (Elman) recurrent cell.

    h_t = φ(x_t W_x + h_{t-1} W_h + b),    φ = tanh (default) or relu

With φ = tanh, ∂h_t/∂h_{t-1} = diag(1 − h_t²) W_hᵀ: the backward signal is multiplied by this
Jacobian once per step, so ‖∂L/∂h_t‖ shrinks (or grows) geometrically with the distance to the
loss. That is the vanishing-gradient problem this project measures.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.cells.base import RecurrentCell, State


class RNNCell(RecurrentCell):
    """h_t = φ(x_t W_x + h_{t-1} W_h + b). Fused counterpart: ``torch.nn.RNN``."""

    gate_names = ("",)  # one block: the textbook names are W_x, W_h, b
    fused = nn.RNN

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)
        self._phi = torch.tanh if nonlinearity == "tanh" else torch.relu

    def fused_kwargs(self) -> dict:
        return {"nonlinearity": self.nonlinearity}

    def step(self, x_proj: Tensor, state: State) -> tuple[Tensor, State]:
        (h_prev,) = state
        h = self._phi(x_proj + self.hidden_term(h_prev))  # (B, H)
        return h, (h,)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity}"
