"""The vanilla (Elman) recurrent cell.

    h_t = φ(x_t W_x + h_{t-1} W_h + b),    φ = tanh (default) or relu

With φ = tanh, ∂h_t/∂h_{t-1} = diag(1 − h_t²) W_hᵀ: the backward signal is multiplied by this
Jacobian once per step, so ‖∂L/∂h_t‖ shrinks (or grows) geometrically with the distance to the
loss. That is the vanishing-gradient problem this project measures.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from rnnlab.cells.base import RecurrentCell, State, relu_grad, rows, step_masks, tanh_grad


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

    def scan(self, x: Tensor, state: State, valid: Tensor | None = None,
             probe: Tensor | None = None) -> tuple[Tensor, State]:
        bias = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        x_proj = F.linear(x, self.weight_ih, bias)  # (T, B, H): x_t W_x + b for every step
        out, h = _RNNScan.apply(x_proj, state[0], self.weight_hh, valid, self.nonlinearity == "relu", probe)
        return out, (h,)  # no gates to record

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, nonlinearity={self.nonlinearity}"


class _RNNScan(torch.autograd.Function):
    """:meth:`RNNCell.step` over all T steps, without an autograd graph per step (see ``RecurrentCell.scan``).

    Backward: ∂L/∂pre_t = ∂L/∂h_t ⊙ φ'(pre_t), ∂L/∂h_{t-1} = ∂L/∂pre_t W_h, and ∂L/∂W_h = Σ_t ∂L/∂pre_tᵀ h_{t-1}
    as one matmul over all steps. A padded step (m_t = 0) keeps h: its ∂L/∂h passes straight through.
    ``probe``'s gradient is ∂L/∂h_t of every step (see ``RecurrentCell.scan``).
    """

    @staticmethod
    def forward(ctx, x_proj, h0, weight_hh, valid, relu, probe):
        T, B, H = x_proj.shape
        hs = x_proj.new_empty(T + 1, B, H)  # h_0 … h_T
        hs[0], hs[1:] = h0, x_proj  # the input terms, turned into h_t in place below
        w_t, phi_ = weight_hh.t(), (torch.relu_ if relu else torch.tanh_)
        h_prev, h = hs.unbind(0)[:-1], hs.unbind(0)[1:]
        for t in range(T):
            phi_(h[t].addmm_(h_prev[t], w_t))
            if valid is not None:
                torch.where(valid[t, :, None], h[t], h_prev[t], out=h[t])
        ctx.save_for_backward(hs, weight_hh, valid)
        ctx.relu = relu
        ctx.set_materialize_grads(False)  # an unused output's gradient comes as None, not a tensor of zeros
        out = hs[1:] if valid is None else hs[1:] * valid.unsqueeze(-1)
        return out, hs[T].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_h):
        hs, weight_hh, valid = ctx.saved_tensors
        T = hs.shape[0] - 1
        m, keep = step_masks(valid, hs.dtype)
        g_out = None if g_out is None else g_out.contiguous() if m is None else g_out * m
        d_pre = torch.empty_like(hs[1:])  # (T, B, H)
        d_probe = torch.empty_like(d_pre) if ctx.needs_input_grad[5] else None  # ∂L/∂h_t, for diagnostics
        h = hs.unbind(0)[1:]
        dh = torch.zeros_like(hs[0]) if g_h is None else g_h
        for t in range(T - 1, -1, -1):
            if g_out is not None:
                dh = dh + g_out[t]
            dh_cell = dh if m is None else dh * m[t]
            if d_probe is not None:
                d_probe[t] = dh_cell
            if ctx.relu:
                d_prev = relu_grad(dh_cell, h[t], 0, grad_input=d_pre[t]).mm(weight_hh)
            else:
                d_prev = tanh_grad(dh_cell, h[t], grad_input=d_pre[t]).mm(weight_hh)
            dh = d_prev if m is None else d_prev.addcmul_(dh, keep[t])
        d_w = rows(d_pre).t().mm(rows(hs[:-1]))
        return d_pre, dh, d_w, None, None, d_probe
