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
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from rnnlab.cells.base import RecurrentCell, State, rows, sigmoid_grad, step_masks, tanh_grad


class LSTMCell(RecurrentCell):
    """LSTM step. Fused counterpart: ``torch.nn.LSTM``.

    ``forget_bias`` (default 0.0, the project's: README "Fair defaults") initialises b_f. With b_f = 0
    the forget gate starts near σ(0) = 0.5, so the cell state halves every step and gradients through
    c_t vanish like a plain RNN's before training can learn to keep memory; b_f = 1 starts f_t near
    0.73 (Gers et al. 2000; Jozefowicz et al. 2015 found it closes most of the LSTM–GRU gap), but in
    benchmarks/fair_defaults.md it left the language models behind word_language_model's. torch.nn.LSTM
    has two bias vectors; only the input-side one gets ``forget_bias`` (the hidden-side forget block is
    zeroed), otherwise the effective bias would double.
    """

    gate_names = ("i", "f", "c", "o")
    state_names = ("h", "c")
    fused = nn.LSTM

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, forget_bias: float = 0.0) -> None:
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

    def scan(self, x: Tensor, state: State, valid: Tensor | None = None,
             probe: Tensor | None = None) -> tuple[Tensor, State]:
        # tanh a = 2σ(2a) − 1: with the c̃ rows doubled (2a), one σ covers all four gates of a step
        H = self.hidden_size
        scale = torch.ones(4 * H, 1, dtype=self.weight_hh.dtype, device=self.weight_hh.device)
        scale[2 * H: 3 * H] = 2.0
        bias = None if self.bias_ih is None else (self.bias_ih + self.bias_hh) * scale[:, 0]
        x_proj = F.linear(x, self.weight_ih * scale, bias)  # (T, B, 4H), b_hh folded in
        out, h, c, gates = _LSTMScan.apply(x_proj, state[0], state[1], self.weight_hh * scale, valid, probe)
        i, f, c_tilde, o = gates.chunk(4, dim=-1)
        self._record_scan(i=i, f=f, o=o, c_tilde=c_tilde)
        return out, (h, c)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, forget_bias={self.forget_bias}"


class _LSTMScan(torch.autograd.Function):
    """:meth:`LSTMCell.step` over all T steps, without an autograd graph per step (see ``RecurrentCell.scan``).

    Takes u = pre-activations with the c̃ block doubled (``scan`` doubles those rows of W_x, W_h, b), so
    that σ(u) gives i, f, o and 2σ(u) − 1 = tanh(u / 2) gives c̃; hence ∂c̃/∂u = (1 − c̃²) / 2.
    Backward per step: ∂L/∂u_o = σ'·(∂L/∂h_t ⊙ tanh c_t); ∂L/∂c_t += tanh'·(∂L/∂h_t ⊙ o); then
    ∂L/∂u_i = σ'·(∂L/∂c_t ⊙ c̃), ∂L/∂u_f = σ'·(∂L/∂c_t ⊙ c_{t-1}), ∂L/∂u_c̃ = tanh'·(∂L/∂c_t ⊙ i) / 2,
    ∂L/∂c_{t-1} = ∂L/∂c_t ⊙ f, ∂L/∂h_{t-1} = ∂L/∂u_t W_h. Weight gradients are one matmul over all steps.
    Also returns the gates (T, B, 4H: i, f, c̃, o), for ``cell.record``; ``probe``'s gradient is ∂L/∂h_t
    of every step (see ``RecurrentCell.scan``).
    """

    @staticmethod
    def forward(ctx, x_proj, h0, c0, weight_hh, valid, probe):
        T, B, G = x_proj.shape
        H = G // 4
        gates = x_proj  # (T, B, 4H): i, f, c̃, o of every step, in place of their input terms (scan made x_proj)
        hs, cs = x_proj.new_empty(T + 1, B, H), x_proj.new_empty(T + 1, B, H)  # h_0 … h_T, c_0 … c_T
        hs[0], cs[0] = h0, c0
        tanh_cs = x_proj.new_empty(T, B, H)  # tanh c_t
        i, f, c_tilde, o = (gates[..., k * H: (k + 1) * H].unbind(0) for k in range(4))
        h, c, tc = hs.unbind(0), cs.unbind(0), tanh_cs.unbind(0)
        w_t = weight_hh.t()
        for t in range(T):
            gates[t].addmm_(h[t], w_t).sigmoid_()  # i, f, s = σ(2a) for c̃ = 2s − 1, o
            # c_t = f ⊙ c_{t-1} + i ⊙ (2s − 1) = f ⊙ c_{t-1} − i + 2 i ⊙ s: c̃ itself is fixed up after the loop
            torch.addcmul(torch.mul(f[t], c[t]).sub_(i[t]), i[t], c_tilde[t], value=2, out=c[t + 1])
            if valid is not None:
                torch.where(valid[t, :, None], c[t + 1], c[t], out=c[t + 1])
            torch.mul(o[t], torch.tanh(c[t + 1], out=tc[t]), out=h[t + 1])
            if valid is not None:
                torch.where(valid[t, :, None], h[t + 1], h[t], out=h[t + 1])
        gates[..., 2 * H: 3 * H].mul_(2).sub_(1)  # c̃ = 2s − 1, all steps at once
        ctx.save_for_backward(gates, hs, cs, tanh_cs, weight_hh, valid)
        ctx.set_materialize_grads(False)  # the gates' gradient (and any unused output's) comes as None
        ctx.mark_dirty(x_proj)  # overwritten with the gates, and returned as them
        out = hs[1:] if valid is None else hs[1:] * valid.unsqueeze(-1)
        ctx.mark_non_differentiable(gates)
        return out, hs[T].clone(), cs[T].clone(), gates

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_h, g_c, _):
        gates, hs, cs, tanh_cs, weight_hh, valid = ctx.saved_tensors
        T, _, G = gates.shape
        H = G // 4
        m, keep = step_masks(valid, gates.dtype)
        g_out = None if g_out is None else g_out.contiguous() if m is None else g_out * m
        i, f, c_tilde, o = (gates[..., k * H: (k + 1) * H] for k in range(4))
        B = gates.shape[1]
        # the factors that do not depend on the recurrence, for all steps at once (few ops per step below)
        # each written straight into its buffer: large temporaries cost page faults on CPU
        dc_dh = tanh_grad(o, tanh_cs)  # ∂c-path of ∂L/∂h_t: o ⊙ (1 − tanh² c_t)
        du_dc = gates.new_empty(T, B, 3, H)  # ∂u_{i,f,c̃}/∂c_t
        sigmoid_grad(c_tilde, i, grad_input=du_dc[:, :, 0])
        sigmoid_grad(cs[:-1], f, grad_input=du_dc[:, :, 1])
        tanh_grad(i, c_tilde, grad_input=du_dc[:, :, 2]).mul_(0.5)
        du_dh = sigmoid_grad(tanh_cs, o)  # ∂u_o/∂h_t: tanh c_t ⊙ σ'(u_o)
        d_x = torch.empty_like(gates)  # (T, B, 4H): ∂L/∂u
        d_ifc, d_o = d_x[..., : 3 * H].view(T, B, 3, H), d_x[..., 3 * H:]
        d_probe = torch.empty_like(tanh_cs) if ctx.needs_input_grad[5] else None  # ∂L/∂h_t, for diagnostics
        dh = torch.zeros_like(hs[0]) if g_h is None else g_h
        dc = torch.zeros_like(cs[0]) if g_c is None else g_c
        for t in range(T - 1, -1, -1):
            if g_out is not None:  # None: a one-prediction readout reads the final state only
                dh = dh + g_out[t]
            dh_cell, dc_cell = (dh, dc) if m is None else (dh * m[t], dc * m[t])
            if d_probe is not None:
                d_probe[t] = dh_cell
            dc_cell = torch.addcmul(dc_cell, dh_cell, dc_dh[t])  # ∂L/∂c_t
            torch.mul(dc_cell.unsqueeze(1), du_dc[t], out=d_ifc[t])
            torch.mul(dh_cell, du_dh[t], out=d_o[t])
            dc = dc_cell * f[t] if m is None else torch.addcmul(dc_cell * f[t], dc, keep[t])
            d_prev = d_x[t].mm(weight_hh)
            dh = d_prev if m is None else d_prev.addcmul_(dh, keep[t])
        d_w = rows(d_x).t().mm(rows(hs[:-1]))
        return d_x, dh, dc, d_w, None, d_probe
