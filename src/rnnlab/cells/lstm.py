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
        bias = None if self.bias_ih is None else (self.bias_ih + self.bias_hh) * scale[:, 0]  # b_hh folded in
        out, h, c, gates = _LSTMScan.apply(x, self.weight_ih * scale, bias, state[0], state[1],
                                           self.weight_hh * scale, valid, probe)
        i, f, c_tilde, o = gates.chunk(4, dim=-1)
        self._record_scan(i=i, f=f, o=o, c_tilde=c_tilde)
        return out, (h, c)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, forget_bias={self.forget_bias}"


class _LSTMScan(torch.autograd.Function):
    """:meth:`LSTMCell.step` over all T steps, without an autograd graph per step (see ``RecurrentCell.scan``).

    Takes the layer's input x and the weights with the c̃ rows doubled (``scan`` doubles them), so that the
    pre-activations u = x_t W_x + h_{t-1} W_h + b give i, f, o = σ(u) and c̃ = 2σ(u) − 1 = tanh(u / 2); hence
    ∂c̃/∂u = (1 − c̃²) / 2. The input projection is done here, so that its backward can pick the faster
    matmul orientation for small input sizes (the adding problem's I = 2).
    Backward per step: ∂L/∂u_o = σ'·(∂L/∂h_t ⊙ tanh c_t); ∂L/∂c_t += tanh'·(∂L/∂h_t ⊙ o); then
    ∂L/∂u_i = σ'·(∂L/∂c_t ⊙ c̃), ∂L/∂u_f = σ'·(∂L/∂c_t ⊙ c_{t-1}), ∂L/∂u_c̃ = tanh'·(∂L/∂c_t ⊙ i) / 2,
    ∂L/∂c_{t-1} = ∂L/∂c_t ⊙ f, ∂L/∂h_{t-1} = ∂L/∂u_t W_h. The factors that do not depend on the recurrence
    are computed for all steps at once before the loop, which then runs 4 pointwise ops and one matmul per
    step on views made once; weight gradients are one matmul over all steps.
    Also returns the gates (T, B, 4H: i, f, c̃, o), for ``cell.record``; ``probe``'s gradient is ∂L/∂h_t
    of every step (see ``RecurrentCell.scan``).
    """

    @staticmethod
    def forward(ctx, x, weight_ih, bias, h0, c0, weight_hh, valid, probe):
        T, B, _ = x.shape
        H = weight_hh.shape[1]
        # (T, B, 4H): the input terms of every step, then i, f, c̃, o in their place, one step at a time
        gates = F.linear(x, weight_ih, bias)
        hs, cs = gates.new_empty(T + 1, B, H), gates.new_empty(T + 1, B, H)  # h_0 … h_T, c_0 … c_T
        hs[0], cs[0] = h0, c0
        tanh_cs = gates.new_empty(T, B, H)  # tanh c_t
        i, f, c_tilde, o = (gates[..., k * H: (k + 1) * H].unbind(0) for k in range(4))
        h, c, tc, g = hs.unbind(0), cs.unbind(0), tanh_cs.unbind(0), gates.unbind(0)
        w_t = weight_hh.t()
        for t in range(T):
            g[t].addmm_(h[t], w_t).sigmoid_()  # i, f, s = σ(2a) for c̃ = 2s − 1, o
            # c_t = f ⊙ c_{t-1} + i ⊙ (2s − 1) = f ⊙ c_{t-1} − i + 2 i ⊙ s: c̃ itself is fixed up after the loop
            torch.addcmul(torch.mul(f[t], c[t]).sub_(i[t]), i[t], c_tilde[t], value=2, out=c[t + 1])
            if valid is not None:
                torch.where(valid[t, :, None], c[t + 1], c[t], out=c[t + 1])
            torch.mul(o[t], torch.tanh(c[t + 1], out=tc[t]), out=h[t + 1])
            if valid is not None:
                torch.where(valid[t, :, None], h[t + 1], h[t], out=h[t + 1])
        gates[..., 2 * H: 3 * H].mul_(2).sub_(1)  # c̃ = 2s − 1, all steps at once
        ctx.save_for_backward(x, weight_ih, gates, hs, cs, tanh_cs, weight_hh, valid)
        ctx.has_bias = bias is not None
        ctx.set_materialize_grads(False)  # the gates' gradient (and any unused output's) comes as None
        out = hs[1:] if valid is None else hs[1:] * valid.unsqueeze(-1)
        ctx.mark_non_differentiable(gates)
        return out, hs[T].clone(), cs[T].clone(), gates

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_h, g_c, _):
        x, weight_ih, gates, hs, cs, tanh_cs, weight_hh, valid = ctx.saved_tensors
        T, B, G = gates.shape
        H = G // 4
        m, keep = step_masks(valid, gates.dtype)
        g_out = None if g_out is None else g_out.contiguous() if m is None else g_out * m
        i, f, c_tilde, o = (gates[..., k * H: (k + 1) * H] for k in range(4))
        # the factors that do not depend on the recurrence, for all steps at once (few ops per step below)
        # each written straight into its buffer: large temporaries cost page faults on CPU
        dc_dh = tanh_grad(o, tanh_cs)  # ∂c-path of ∂L/∂h_t: o ⊙ (1 − tanh² c_t)
        du_dc = gates.new_empty(T, B, 3, H)  # ∂u_{i,f,c̃}/∂c_t
        sigmoid_grad(c_tilde, i, grad_input=du_dc[:, :, 0])
        sigmoid_grad(cs[:-1], f, grad_input=du_dc[:, :, 1])
        tanh_grad(i, c_tilde, grad_input=du_dc[:, :, 2]).mul_(0.5)
        du_dh = sigmoid_grad(tanh_cs, o)  # ∂u_o/∂h_t: tanh c_t ⊙ σ'(u_o)
        d_x = torch.empty_like(gates)  # (T, B, 4H): ∂L/∂u
        d_probe = torch.empty_like(tanh_cs) if ctx.needs_input_grad[7] else None  # ∂L/∂h_t, for diagnostics
        # per-step views, made once: indexing costs a call per tensor per step
        d_ifc = d_x[..., : 3 * H].view(T, B, 3, H).unbind(0)
        d_o, d_u = d_x[..., 3 * H:].unbind(0), d_x.unbind(0)
        dc_dh_, du_dc_, du_dh_, f_ = dc_dh.unbind(0), du_dc.unbind(0), du_dh.unbind(0), f.unbind(0)
        g_out_ = None if g_out is None else g_out.unbind(0)
        dh = torch.zeros_like(hs[0]) if g_h is None else g_h
        dc = torch.zeros_like(cs[0]) if g_c is None else g_c
        for t in range(T - 1, -1, -1):
            if g_out_ is not None:  # None: a one-prediction readout reads the final state only
                dh = dh + g_out_[t]
            dh_cell, dc_cell = (dh, dc) if m is None else (dh * m[t], dc * m[t])
            if d_probe is not None:
                d_probe[t] = dh_cell
            dc_cell = torch.addcmul(dc_cell, dh_cell, dc_dh_[t])  # ∂L/∂c_t
            torch.mul(dc_cell.unsqueeze(1), du_dc_[t], out=d_ifc[t])
            torch.mul(dh_cell, du_dh_[t], out=d_o[t])
            dc = dc_cell * f_[t] if m is None else torch.addcmul(dc_cell * f_[t], dc, keep[t])
            d_prev = d_u[t].mm(weight_hh)
            dh = d_prev if m is None else d_prev.addcmul_(dh, keep[t])
        d_rows = rows(d_x)
        # (K, T·B) @ (T·B, 4H), transposed: faster than (4H, T·B) @ (T·B, K) when K is small (K = I = 2)
        d_w_hh = rows(hs[:-1]).t().mm(d_rows).t()
        d_w_ih = rows(x).t().mm(d_rows).t() if ctx.needs_input_grad[1] else None
        d_bias = d_rows.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        d_input = d_x.matmul(weight_ih) if ctx.needs_input_grad[0] else None
        return d_input, d_w_ih, d_bias, dh, dc, d_w_hh, None, d_probe
