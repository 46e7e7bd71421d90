"""The GRU cell (Cho et al. 2014), as this project defines it.

    r_t = σ(x_t W_xr + h_{t-1} W_hr + b_r)          reset gate
    z_t = σ(x_t W_xz + h_{t-1} W_hz + b_z)          update gate
    h̃_t = tanh(x_t W_xh + (r_t ⊙ h_{t-1}) W_hh + b_h)
    h_t = z_t ⊙ h_{t-1} + (1 − z_t) ⊙ h̃_t

``torch.nn.GRU`` (and cuDNN) compute a variant that applies the reset *after* the matmul:

    h̃_t = tanh(x_t W_xh + b_xh + r_t ⊙ (h_{t-1} W_hh + b_hh))

``reset_after=False`` (the default) is the equations above; ``reset_after=True`` is the cuDNN
variant. ``reset_after=None`` (the config default) means the equations above when unrolled and
the cuDNN variant when ``model.impl=fused``, the only form torch.nn.GRU has; the run logs which.
Both variants have the same parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rnnlab.cells.base import RecurrentCell, State


class GRUCell(RecurrentCell):
    """GRU step. Fused counterpart: ``torch.nn.GRU`` (reset-after variant only)."""

    gate_names = ("r", "z", "h")
    fused = nn.GRU

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 reset_after: bool | None = None) -> None:
        self._reset_after_requested = reset_after
        self.reset_after = bool(reset_after)
        super().__init__(input_size, hidden_size, bias)

    def prepare_for_fused(self) -> None:
        if self._reset_after_requested is False:
            raise ValueError(
                "model.impl=fused runs torch.nn.GRU, which only computes the reset-after variant "
                "r_t ⊙ (h_{t-1} W_hh + b_hh); set model.cell.reset_after=true (or null), "
                "or use model.impl=unrolled for the textbook form")
        self.reset_after = True

    def step(self, x_proj: Tensor, state: State) -> tuple[Tensor, State]:
        (h_prev,) = state
        H = self.hidden_size
        x_rz, x_h = x_proj[..., : 2 * H], x_proj[..., 2 * H:]  # (B, 2H), (B, H)
        b_hh = self.bias_hh
        if self.reset_after:
            h_rz, h_h = self.hidden_term(h_prev).split((2 * H, H), dim=-1)
            r, z = torch.sigmoid(x_rz + h_rz).chunk(2, dim=-1)
            h_tilde = torch.tanh(x_h + r * h_h)
        else:
            h_rz = F.linear(h_prev, self.weight_hh[: 2 * H], None if b_hh is None else b_hh[: 2 * H])
            r, z = torch.sigmoid(x_rz + h_rz).chunk(2, dim=-1)
            h_tilde = torch.tanh(x_h + F.linear(r * h_prev, self.weight_hh[2 * H:],
                                                None if b_hh is None else b_hh[2 * H:]))
        h = z * h_prev + (1 - z) * h_tilde  # (B, H)
        self._record(r=r, z=z, h_tilde=h_tilde)
        return h, (h,)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reset_after={self.reset_after}"
