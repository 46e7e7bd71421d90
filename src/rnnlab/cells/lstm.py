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


class LSTMCell(RecurrentCell):
    """LSTM step. Fused counterpart: ``torch.nn.LSTM``.

    ``forget_bias`` (default 0.0, the project's: README "Fair defaults") initialises b_f. With b_f = 0
    the forget gate starts near σ(0) = 0.5, so the cell state halves every step and gradients through
    c_t vanish like a plain RNN's before training can learn to keep memory; b_f = 1 starts f_t near
    0.73 (Gers et al. 2000; Jozefowicz et al. 2015 found it closes most of the LSTM–GRU gap), but in
    benchmarks/fair_defaults.md it left the language models behind word_language_model's. torch.nn.LSTM
    has two bias vectors; only the input-side one gets ``forget_bias`` (the hidden-side forget block is
    zeroed), otherwise the effective bias would double.

    ``chrono_t_max`` (default None; Tallec & Ollivier 2018's chrono initialisation) instead draws
    b_f ~ log U(1, T_max − 1) per unit and sets b_i = −b_f: the cell state forgets on time scales spread
    up to T_max steps, and writes as much less; T_max is the longest dependency (the task's T).
    """

    gate_names = ("i", "f", "c", "o")
    state_names = ("h", "c")
    fused = nn.LSTM

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, forget_bias: float = 0.0,
                 chrono_t_max: float | None = None) -> None:
        self.forget_bias = float(forget_bias)
        self.chrono_t_max = chrono_t_max
        check_chrono_t_max(chrono_t_max)  # before anything is built
        if chrono_t_max is not None and self.forget_bias != 0.0:
            raise ValueError(f"model.cell.chrono_t_max={chrono_t_max} draws the forget bias itself; leave "
                             f"model.cell.forget_bias at 0.0 (got {forget_bias}) or set chrono_t_max=null")
        super().__init__(input_size, hidden_size, bias)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.bias:
            H = self.hidden_size
            with torch.no_grad():
                self.bias_ih[H:2 * H].fill_(self.forget_bias)
                self.bias_hh[H:2 * H].zero_()
                if (b_f := chrono_bias(H, self.chrono_t_max)) is not None:
                    self.bias_ih[H:2 * H].copy_(b_f)
                    self.bias_ih[:H].copy_(-b_f)  # b_i = −b_f
                    self.bias_hh[:H].zero_()

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
        bias = None if self.bias_ih is None else self.bias_ih + self.bias_hh  # b_hh folded into the input
        out, h, c, gates = _LSTMScan.apply(x, self.weight_ih, bias, state[0], state[1], self.weight_hh, valid,
                                           probe)
        i, f, c_tilde, o = gates.chunk(4, dim=-1)
        self._record_scan(i=i, f=f, o=o, c_tilde=c_tilde)
        return out, (h, c)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, forget_bias={self.forget_bias}, chrono_t_max={self.chrono_t_max}"


class _LSTMScan(torch.autograd.Function):
    """:meth:`LSTMCell.step` over all T steps, without an autograd graph per step (see ``RecurrentCell.scan``).

    Takes the layer's input x and the weights as stored; the input projection is done here, so that its
    backward can pick the faster matmul orientation for small input sizes (the adding problem's I = 2).
    Write a_t = x_t W_x + h_{t-1} W_h + b for the pre-activations: i, f, o = σ(a) and c̃ = tanh a_c̃.
    Forward: on CPU a tanh costs about three σ's, so each step runs one σ over the gates and one over the
    cell, and no tanh, through tanh a = 2σ(2a) − 1 = 1 − 2σ(−2a):
    - the c̃ block is doubled (the input terms of all steps at once, W_h's c̃ rows on a copy made once), so
      one in-place σ over a step's 4H pre-activations gives i, f, o and s = σ(2a_c̃), c̃ = 2s − 1 (fixed up
      for all steps at once after the loop);
    - the loop carries n_t = −2c_t instead of c_t: n_t = f ⊙ n_{t-1} − 2 i ⊙ c̃ = f ⊙ n_{t-1} + 2i − 4 i ⊙ s;
      then r_t = σ(n_t), so tanh c_t = 1 − 2r_t and h_t = o ⊙ tanh c_t = o − 2 o ⊙ r_t (one addcmul);
      c_t and tanh c_t are recovered for all steps at once after the loop.
    Backward per step: ∂L/∂a_o = σ'·(∂L/∂h_t ⊙ tanh c_t); ∂L/∂c_t += tanh'·(∂L/∂h_t ⊙ o); then
    ∂L/∂a_i = σ'·(∂L/∂c_t ⊙ c̃), ∂L/∂a_f = σ'·(∂L/∂c_t ⊙ c_{t-1}), ∂L/∂a_c̃ = tanh'·(∂L/∂c_t ⊙ i),
    ∂L/∂c_{t-1} = ∂L/∂c_t ⊙ f, ∂L/∂h_{t-1} = ∂L/∂out_{t-1} + ∂L/∂a_t W_h (an in-place addmm into a copy
    of ∂L/∂out). The factors that do not depend on the recurrence are computed for all steps at once before
    the loop, which then runs 4 pointwise ops and one addmm per step on views made once; weight gradients
    are one matmul over all steps. The backward works with ∂L/∂a and the weights as stored, so the
    doubling needs no backward of its own.
    Also returns the gates (T, B, 4H: i, f, c̃, o), for ``cell.record``; ``probe``'s gradient is ∂L/∂h_t
    of every step (see ``RecurrentCell.scan``).
    """

    @staticmethod
    def forward(ctx, x, weight_ih, bias, h0, c0, weight_hh, valid, probe):
        T, B, _ = x.shape
        H = weight_hh.shape[1]
        c_rows = slice(2 * H, 3 * H)
        w_hh = weight_hh.clone()  # the c̃ rows doubled: σ(2a) gives tanh a = 2σ(2a) − 1
        w_hh[c_rows] *= 2
        # (T, B, 4H): the input terms of every step (c̃'s doubled), then i, f, s = σ(2a_c̃), o in their place
        gates = F.linear(x, weight_ih, bias)
        gates[..., c_rows] *= 2
        hs, cs = gates.new_empty(T + 1, B, H), gates.new_empty(T + 1, B, H)  # h_0 … h_T; n_0 … n_T, then c
        hs[0] = h0
        torch.mul(c0, -2, out=cs[0])  # n_0 = −2c_0
        r = gates.new_empty(T, B, H)  # σ(−2c_t), later tanh c_t
        i, f, s, o = (gates[..., k * H: (k + 1) * H].unbind(0) for k in range(4))
        h, n, r_, g = hs.unbind(0), cs.unbind(0), r.unbind(0), gates.unbind(0)
        w_t = w_hh.t()
        for t in range(T):
            g[t].addmm_(h[t], w_t).sigmoid_()  # i, f, s, o
            # n_t = f ⊙ n_{t-1} + 2i − 4 i ⊙ s  (= −2c_t)
            torch.addcmul(torch.mul(f[t], n[t]).add_(i[t], alpha=2), i[t], s[t], value=-4,
                          out=n[t + 1])
            if valid is not None:
                torch.where(valid[t, :, None], n[t + 1], n[t], out=n[t + 1])
            # h_t = o ⊙ tanh c_t = o − 2 o ⊙ σ(n_t)
            torch.addcmul(o[t], o[t], torch.sigmoid(n[t + 1], out=r_[t]), value=-2, out=h[t + 1])
            if valid is not None:
                torch.where(valid[t, :, None], h[t + 1], h[t], out=h[t + 1])
        # all steps at once: c̃ = 2s − 1, c = −n / 2, tanh c = 1 − 2r
        gates[..., c_rows].mul_(2).sub_(1)
        cs.mul_(-0.5)
        tanh_cs = r.mul_(-2).add_(1)
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
        # ∂L/∂h_t collects in a copy of ∂L/∂out_t (zeros without one): each step's matmul adds into it in
        # place, so the loop neither adds ∂L/∂out_t nor allocates a buffer for ∂L/∂h_t
        if g_out is None:
            g_out = torch.zeros_like(tanh_cs)
        else:
            g_out = g_out.clone(memory_format=torch.contiguous_format) if m is None else g_out * m
        dh_ = g_out.unbind(0)
        i, f, c_tilde, o = (gates[..., k * H: (k + 1) * H] for k in range(4))
        # the factors that do not depend on the recurrence, for all steps at once (few ops per step below)
        # each written straight into its buffer: large temporaries cost page faults on CPU
        dc_dh = tanh_grad(o, tanh_cs)  # ∂c-path of ∂L/∂h_t: o ⊙ (1 − tanh² c_t)
        da_dc = gates.new_empty(T, 3, B, H)  # ∂a_{i,f,c̃}/∂c_t
        sigmoid_grad(c_tilde, i, grad_input=da_dc[:, 0])
        sigmoid_grad(cs[:-1], f, grad_input=da_dc[:, 1])
        tanh_grad(i, c_tilde, grad_input=da_dc[:, 2])
        da_dh = sigmoid_grad(tanh_cs, o)  # ∂a_o/∂h_t: tanh c_t ⊙ σ'(a_o)
        d_a = torch.empty_like(gates)  # (T, B, 4H): ∂L/∂a
        d_probe = torch.empty_like(tanh_cs) if ctx.needs_input_grad[7] else None  # ∂L/∂h_t, for diagnostics
        # per-step views, made once: indexing costs a call per tensor per step
        # (3, B, H) views, as da_dc's steps: ∂L/∂c_t (B, H) then broadcasts over the leading dimension, which
        # the mul runs faster than a broadcast over the middle one of (B, 3, H) (3.3 vs 4.9 µs, in isolation)
        d_ifc = d_a.view(T, B, 4, H)[:, :, :3].transpose(1, 2).unbind(0)
        d_o, d_a_ = d_a[..., 3 * H:].unbind(0), d_a.unbind(0)
        dc_dh_, da_dc_, da_dh_, f_ = dc_dh.unbind(0), da_dc.unbind(0), da_dh.unbind(0), f.unbind(0)
        if g_h is not None:
            dh_[T - 1].add_(g_h)
        dc = torch.zeros_like(cs[0]) if g_c is None else g_c
        for t in range(T - 1, -1, -1):
            dh = dh_[t]
            dh_cell, dc_cell = (dh, dc) if m is None else (dh * m[t], dc * m[t])
            if d_probe is not None:
                d_probe[t] = dh_cell
            dc_cell = torch.addcmul(dc_cell, dh_cell, dc_dh_[t])  # ∂L/∂c_t
            torch.mul(dc_cell, da_dc_[t], out=d_ifc[t])
            torch.mul(dh_cell, da_dh_[t], out=d_o[t])
            dc = dc_cell * f_[t] if m is None else torch.addcmul(dc_cell * f_[t], dc, keep[t])
            if t > 0:  # ∂L/∂h_{t-1} += ∂L/∂a_t W_h (+ ∂L/∂h_t where step t is padding: there h_t = h_{t-1})
                dh_[t - 1].addmm_(d_a_[t], weight_hh)
                if m is not None:
                    dh_[t - 1].addcmul_(dh, keep[t])
        dh = d_a_[0].mm(weight_hh)  # ∂L/∂h_0
        if m is not None:
            dh.addcmul_(dh_[0], keep[0])
        d_rows = rows(d_a)
        d_w_hh = _weight_grad(rows(hs[:-1]), d_rows)
        d_w_ih = _weight_grad(rows(x), d_rows) if ctx.needs_input_grad[1] else None
        d_bias = d_rows.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        d_input = d_a.matmul(weight_ih) if ctx.needs_input_grad[0] else None
        return d_input, d_w_ih, d_bias, dh, dc, d_w_hh, None, d_probe


def _weight_grad(inputs: Tensor, d_rows: Tensor) -> Tensor:
    """Σ_t ∂L/∂a_tᵀ x_t as (4H, K) from the rows x (T·B, K) and ∂L/∂a (T·B, 4H), in one matmul.

    Contiguous when K is not small, so that the gradient needs no copy on its way into ``.grad``; for small K
    (the adding problem's I = 2) (K, T·B) @ (T·B, 4H), transposed, is the faster orientation."""
    if inputs.shape[1] < 16:
        return inputs.t().mm(d_rows).t()
    return d_rows.t().mm(inputs)
