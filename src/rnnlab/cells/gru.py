"""The GRU cell (Cho et al. 2014), as this project defines it.

    r_t = σ(x_t W_xr + h_{t-1} W_hr + b_r)          reset gate
    z_t = σ(x_t W_xz + h_{t-1} W_hz + b_z)          update gate
    h̃_t = tanh(x_t W_xh + (r_t ⊙ h_{t-1}) W_hh + b_h)
    h_t = z_t ⊙ h_{t-1} + (1 − z_t) ⊙ h̃_t

``torch.nn.GRU`` (and cuDNN) compute a variant that applies the reset *after* the matmul:

    h̃_t = tanh(x_t W_xh + b_xh + r_t ⊙ (h_{t-1} W_hh + b_hh))

``reset_after=False`` (the default) is the equations above; ``reset_after=True`` is the cuDNN
variant. ``reset_after=None`` (the config default) means the equations above when unrolled and
the cuDNN variant when ``model.impl=fused`` or ``auto``, the only form torch.nn.GRU has; results.json's
``fairness.gru_variant`` says which ran.
Both variants have the same parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from rnnlab.cells.base import (
    RecurrentCell,
    State,
    check_chrono_t_max,
    chrono_bias,
    rows,
    sigmoid_grad,
    step_masks,
    tanh_grad,
)


class GRUCell(RecurrentCell):
    """GRU step. Fused counterpart: ``torch.nn.GRU`` (reset-after variant only).

    ``chrono_t_max`` (default None; Tallec & Ollivier 2018's chrono initialisation): b_z ~ log U(1, T_max − 1)
    per unit. Of the three blocks only the update gate sets how long h is kept (z_t multiplies h_{t-1}, so
    its bias is +log U, where the LSTM's forget bias is; 1 − z_t writes, so the LSTM's b_i = −b_f holds by
    construction); b_r and b_h keep the default draw, since r_t only chooses what h̃_t sees.
    """

    gate_names = ("r", "z", "h")
    fused = nn.GRU

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 reset_after: bool | None = None, chrono_t_max: float | None = None) -> None:
        self._reset_after_requested = reset_after
        self.reset_after = bool(reset_after)
        self.chrono_t_max = chrono_t_max
        check_chrono_t_max(chrono_t_max)  # before anything is built
        super().__init__(input_size, hidden_size, bias)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias and (b_z := chrono_bias(self.hidden_size, self.chrono_t_max)) is not None:
            H = self.hidden_size
            with torch.no_grad():
                self.bias_ih[H:2 * H].copy_(b_z)  # torch's block order (r, z, h)
                self.bias_hh[H:2 * H].zero_()

    def prepare_for_fused(self) -> None:
        if self._reset_after_requested is False:
            raise ValueError(
                "model.impl=fused (and auto) runs torch.nn.GRU, which only computes the reset-after variant "
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

    def scan(self, x: Tensor, state: State, valid: Tensor | None = None,
             probe: Tensor | None = None) -> tuple[Tensor, State]:
        if self.reset_after:  # b_hh sits inside r ⊙ (h W_h + b_hh): the step's matmul adds it
            x_proj, bias_hh = self.project_input(x), self.bias_hh
        else:  # b_hh adds to x_t W_x: folded into the input projection
            bias = None if self.bias_ih is None else self.bias_ih + self.bias_hh
            x_proj, bias_hh = F.linear(x, self.weight_ih, bias), None
        out, h, gates = _GRUScan.apply(x_proj, state[0], self.weight_hh, bias_hh, valid, self.reset_after, probe)
        self._record_scan(**dict(zip(("r", "z", "h_tilde"), gates.chunk(3, dim=-1))))
        return out, (h,)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, reset_after={self.reset_after}, chrono_t_max={self.chrono_t_max}"


class _GRUScan(torch.autograd.Function):
    """:meth:`GRUCell.step` over all T steps, without an autograd graph per step (see ``RecurrentCell.scan``).

    Backward of h_t = h̃ + z ⊙ (h_{t-1} − h̃), step by step: ∂L/∂pre_z = σ'·(∂L/∂h_t ⊙ (h_{t-1} − h̃)),
    ∂L/∂pre_h̃ = tanh'·(∂L/∂h_t ⊙ (1 − z)), then through r into W_h (the variant decides where), and
    ∂L/∂h_{t-1} = ∂L/∂h_t ⊙ z + (the matmul terms). Weight gradients are one matmul over all steps.
    Also returns the gates (T, B, 3H: r, z, h̃), for ``cell.record``; ``probe``'s gradient is ∂L/∂h_t of
    every step (see ``RecurrentCell.scan``).
    """

    @staticmethod
    def forward(ctx, x_proj, h0, weight_hh, bias_hh, valid, reset_after, probe):
        T, B, G = x_proj.shape
        H = G // 3
        gates = torch.empty_like(x_proj)  # (T, B, 3H): r, z, h̃ of every step
        hs = x_proj.new_empty(T + 1, B, H)  # h_0 … h_T
        hs[0] = h0
        # saved besides: reset-after, hh = h_{t-1} W_h + b_hh (r multiplies its h̃ block); textbook, r ⊙ h_{t-1}
        extra = x_proj.new_empty(T, B, G if reset_after else H)
        bias = x_proj.new_zeros(G) if bias_hh is None else bias_hh  # reset-after only: textbook folds it into x_proj
        x_rz, x_h = (v.unbind(0) for v in x_proj.split((2 * H, H), dim=-1))
        h = hs.unbind(0)
        w_t, w_rz_t, w_h_t = weight_hh.t(), weight_hh[: 2 * H].t(), weight_hh[2 * H:].t()
        # activations go through contiguous tensors: writing into a column slice is several times slower
        for t in range(T):
            if reset_after:
                hh = torch.addmm(bias, h[t], w_t, out=extra[t])  # (B, 3H)
                rz = torch.add(x_rz[t], hh[:, : 2 * H]).sigmoid_()  # (B, 2H)
                h_tilde = torch.addcmul(x_h[t], rz[:, :H], hh[:, 2 * H:]).tanh_()
            else:
                rz = torch.addmm(x_rz[t], h[t], w_rz_t).sigmoid_()
                h_tilde = torch.addmm(x_h[t], torch.mul(rz[:, :H], h[t], out=extra[t]), w_h_t).tanh_()
            torch.cat([rz, h_tilde], 1, out=gates[t])
            torch.addcmul(h_tilde, rz[:, H:], h[t] - h_tilde, out=h[t + 1])
            if valid is not None:
                torch.where(valid[t, :, None], h[t + 1], h[t], out=h[t + 1])
        ctx.save_for_backward(gates, extra, hs, weight_hh, valid)
        ctx.reset_after, ctx.has_bias = reset_after, bias_hh is not None
        ctx.set_materialize_grads(False)  # the gates' gradient (and any unused output's) comes as None
        out = hs[1:] if valid is None else hs[1:] * valid.unsqueeze(-1)
        ctx.mark_non_differentiable(gates)
        return out, hs[T].clone(), gates

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_h, _):
        gates, extra, hs, weight_hh, valid = ctx.saved_tensors
        T, _, G = gates.shape
        H = G // 3
        m, keep = step_masks(valid, gates.dtype)
        g_out = None if g_out is None else g_out.contiguous() if m is None else g_out * m
        d_x = torch.empty_like(gates)  # (T, B, 3H): ∂L/∂x_proj, i.e. ∂L/∂pre_{r, z, h̃}
        r, z, h_tilde = gates[..., :H], gates[..., H: 2 * H], gates[..., 2 * H:]
        h_prev = hs[:-1]
        w_rz, w_h = weight_hh[: 2 * H], weight_hh[2 * H:]
        if ctx.reset_after:
            d_hh = torch.empty_like(gates)  # ∂L/∂(h W_h + b_hh): r ⊙ ∂L/∂pre_h̃ in the h̃ block
        d_probe = torch.empty_like(h_prev) if ctx.needs_input_grad[6] else None  # ∂L/∂h_t, for diagnostics
        dh = torch.zeros_like(hs[0]) if g_h is None else g_h
        for t in range(T - 1, -1, -1):
            if g_out is not None:
                dh = dh + g_out[t]
            dh_cell = dh if m is None else dh * m[t]
            if d_probe is not None:
                d_probe[t] = dh_cell
            d_z = sigmoid_grad(dh_cell * (h_prev[t] - h_tilde[t]), z[t])
            d_h = tanh_grad(torch.addcmul(dh_cell, dh_cell, z[t], value=-1), h_tilde[t])
            d_prev = dh_cell * z[t] if m is None else torch.addcmul(dh_cell * z[t], dh, keep[t])
            if ctx.reset_after:  # pre_h̃ = x_h̃ + r ⊙ hh_h̃
                d_r = sigmoid_grad(d_h * extra[t, :, 2 * H:], r[t])
                torch.cat([d_r, d_z, d_h], 1, out=d_x[t])
                d_prev.addmm_(torch.cat([d_r, d_z, d_h * r[t]], 1, out=d_hh[t]), weight_hh)
            else:  # pre_h̃ = x_h̃ + (r ⊙ h_{t-1}) W_hh + b_hh
                d_rh = d_h.mm(w_h)  # ∂L/∂(r ⊙ h_{t-1})
                d_r = sigmoid_grad(d_rh * h_prev[t], r[t])
                torch.cat([d_r, d_z, d_h], 1, out=d_x[t])
                d_prev.addcmul_(d_rh, r[t]).addmm_(d_x[t, :, : 2 * H], w_rz)
            dh = d_prev
        if ctx.reset_after:
            d_w = rows(d_hh).t().mm(rows(h_prev))
            d_b = rows(d_hh).sum(0) if ctx.has_bias else None
        else:
            d_w = torch.cat([rows(d_x[..., : 2 * H]).t().mm(rows(h_prev)), rows(d_x[..., 2 * H:]).t().mm(rows(extra))])
            d_b = None
        return d_x, dh, d_w, d_b, None, None, d_probe
