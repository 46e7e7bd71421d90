"""What every cell shares: the stacked parameter layout, the input projection and the state contract.

Parameters are stored exactly as ``torch.nn.RNN/LSTM/GRU`` store one layer and direction:
``weight_ih`` (G·H, I), ``weight_hh`` (G·H, H), ``bias_ih`` (G·H), ``bias_hh`` (G·H), the G gate blocks
stacked in :attr:`RecurrentCell.gate_names` order. Two reasons: one matmul computes every gate's
input term at once (fast), and weights copy 1:1 between our cells and the fused cuDNN modules.

The textbook names are views of those tensors in the row-vector convention ``x_t W``:
``W_x<g> = weight_ih[block g]ᵀ`` (I×H), ``W_h<g> = weight_hh[block g]ᵀ`` (H×H) and
``b_<g> = bias_ih[block g] + bias_hh[block g]`` (see :meth:`RecurrentCell.gate_weights`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

State = tuple[Tensor, ...]


# ∂L/∂pre from ∂L/∂out and out, for out = tanh(pre), σ(pre), relu(pre): what autograd itself calls
tanh_grad = torch.ops.aten.tanh_backward  # (grad, out), optionally grad_input=<buffer to write into>
sigmoid_grad = torch.ops.aten.sigmoid_backward
relu_grad = torch.ops.aten.threshold_backward  # (grad, out, 0)


def check_chrono_t_max(t_max: float | None, key: str = "model.cell.chrono_t_max") -> None:
    """A chrono T_max is None or a number > 2 (U(1, T_max − 1) must not be empty); the error names ``key``."""
    if t_max is not None and (isinstance(t_max, bool) or not isinstance(t_max, (int, float)) or t_max <= 2):
        raise ValueError(f"{key} must be a number > 2 (the longest dependency, in steps; e.g. the task's T) "
                         f"or null, got {t_max!r}")


def chrono_bias(hidden_size: int, t_max: float | None) -> Tensor | None:
    """Tallec & Ollivier 2018's chrono initialisation of a keep-gate bias: b ~ log U(1, T_max − 1) per unit,
    so unit j's memory starts with a characteristic time of 1 … T_max − 1 steps (σ(b) = 1 − 1/U). None when
    ``t_max`` is None (and no random number is drawn)."""
    if t_max is None:
        return None
    check_chrono_t_max(t_max)
    return torch.empty(hidden_size).uniform_(1.0, float(t_max) - 1.0).log_()


def rows(x: Tensor) -> Tensor:
    """(T, B, K) -> (T·B, K): every step's rows, for a weight gradient summed over all steps in one matmul."""
    return x.reshape(-1, x.shape[-1])


def step_masks(valid: Tensor | None, dtype: torch.dtype) -> tuple[Tensor, Tensor] | tuple[None, None]:
    """(T, B) bool -> (m, 1 − m), each (T, B, 1) in ``dtype``, for a hand-written backward; Nones without padding."""
    if valid is None:
        return None, None
    m = valid.unsqueeze(-1).to(dtype)
    return m, 1 - m


class RecurrentCell(nn.Module):
    """One layer, one direction, one time step.

    Subclasses set ``gate_names`` and ``fused`` (their ``torch.nn`` counterpart) and implement
    :meth:`step`, which receives the precomputed input term ``x_t W_x + b_x`` for all gates.
    The recurrent layer calls :meth:`project_input` once for the whole sequence (one big matmul)
    and :meth:`step` per time step; :meth:`forward` does both for a single step.

    Gate activations are recorded only when ``self.record`` is a list (the default is ``None``):
    each step then appends a dict ``{gate_name: (B, H) tensor}``. When not recording this costs
    one ``is None`` test per step.
    """

    gate_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ("h",)
    fused: type[nn.RNNBase] | None = None

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive integer, got {value!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        gates = len(self.gate_names)
        self.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gates * hidden_size))
            self.bias_hh = nn.Parameter(torch.empty(gates * hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.record: list[dict[str, Tensor]] | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(−1/√H, 1/√H) for every parameter, as ``torch.nn`` initialises its recurrent layers."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def fused_kwargs(self) -> dict:
        """Extra constructor arguments for the ``torch.nn`` counterpart (e.g. the nonlinearity)."""
        return {}

    def init_state(self, batch: int, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> State:
        """Zero state: one (B, H) tensor per name in ``state_names``."""
        dtype = dtype or self.weight_hh.dtype
        return tuple(torch.zeros(batch, self.hidden_size, device=device, dtype=dtype)
                     for _ in self.state_names)

    def project_input(self, x: Tensor) -> Tensor:
        """x W_x + b_x for every gate at once: (..., I) -> (..., G·H)."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def hidden_term(self, h: Tensor) -> Tensor:
        """h W_h + b_h for every gate at once: (B, H) -> (B, G·H)."""
        return F.linear(h, self.weight_hh, self.bias_hh)

    def step(self, x_proj: Tensor, state: State) -> tuple[Tensor, State]:
        """Advance one step given ``x_proj = project_input(x_t)`` (B, G·H)."""
        raise NotImplementedError

    def scan(self, x: Tensor, state: State, valid: Tensor | None = None,
             probe: Tensor | None = None) -> tuple[Tensor, State] | None:
        """Every step at once, the fast path. Time-major, so that each step's slice is contiguous:
        ``x`` (T, B, I) the layer's input, ``valid`` (T, B) bool or None (no padding).

        Returns out (T, B, H), zero past each sequence's end, and the final state (a finished sequence
        keeps its state), or ``None`` when the cell has no fast path: the layer then loops :meth:`step`.
        For the diagnostics, ``probe`` (T, B, H), zeros that require grad, stands for a zero added to
        every h_t: its gradient must come out as ∂L/∂h_t, the total gradient of the loss w.r.t. the
        cell's output at step t (through out_t and through every later step); and when ``self.record``
        is a list, it gets one dict of gates per step, as :meth:`step` records them. A scan that cannot
        do either returns ``None`` for them, and the layer loops :meth:`step` on those steps.

        The built-in cells implement it as one ``torch.autograd.Function`` each: no autograd graph per
        step, the backward derived by hand, weight gradients in one matmul over all steps, and b_hh
        folded into the input projection wherever the equations add it to x_t W_x. Tests hold it equal
        to :meth:`step` and to ``torch.nn`` in float64, gradients and diagnostics included.
        """
        return None

    def _record_scan(self, **gates: Tensor) -> None:
        """``cell.record`` from a scan: one dict per step of (B, H) views, each gate given as (T, B, H)."""
        if self.record is not None:
            T = next(iter(gates.values())).shape[0]
            self.record.extend({name: g[t] for name, g in gates.items()} for t in range(T))

    def forward(self, x_t: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """h_t, state_t from x_t (B, I) and state_{t-1} (zeros when None)."""
        if state is None:
            state = self.init_state(x_t.shape[0], x_t.device, x_t.dtype)
        return self.step(self.project_input(x_t), state)

    def _record(self, **gates: Tensor) -> None:
        if self.record is not None:
            self.record.append(gates)

    def gate_weights(self) -> dict[str, Tensor]:
        """The textbook names, in the row-vector convention (``W_x<g>`` is I×H, ``W_h<g>`` is H×H).

        These are views for reading (tracing, per-gate gradient norms); ``b_<g>`` is the sum of the
        two stored bias vectors, which is all the equations see.
        """
        out: dict[str, Tensor] = {}
        for name, block in zip(self.gate_names, self.weight_ih.chunk(len(self.gate_names))):
            out[f"W_x{name}"] = block.t()
        for name, block in zip(self.gate_names, self.weight_hh.chunk(len(self.gate_names))):
            out[f"W_h{name}"] = block.t()
        if self.bias:
            for name, b_i, b_h in zip(self.gate_names, self.bias_ih.chunk(len(self.gate_names)),
                                      self.bias_hh.chunk(len(self.gate_names))):
                out[f"b_{name}" if name else "b"] = b_i + b_h
        return out

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"

    def prepare_for_fused(self) -> None:
        """Check (and where needed adapt) this cell so its ``torch.nn`` counterpart computes the same maths.

        Raises ``ValueError`` naming the fix when the fused module cannot compute this cell.
        """
        if self.fused is None:
            raise ValueError(f"{type(self).__name__} has no torch.nn counterpart: use model.impl=unrolled")
