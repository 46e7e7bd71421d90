"""The recurrent layer: any cell over time, stacked, in one or two directions, unrolled or fused.

``impl="unrolled"`` runs our cells; ``impl="fused"`` runs the cell's ``torch.nn`` counterpart (cuDNN on
a GPU). Both hold the same parameters: the fused module is initialised from the same cells, so one seed
gives one model, and state dicts load across implementations (keys are converted on load).
``impl="auto"`` holds our cells and trains each step on the faster of the two over their parameters,
measured steps on the cells (:mod:`rnnlab.model.auto_path`).

Unrolled runs one of two paths, which compute the same numbers (tests hold them equal in float64):

- the fast path, ``cell.scan``: all T steps in one autograd Function with a hand-derived backward (no
  autograd node per step, weight gradients in one matmul over all steps); on CPU it runs about as fast
  as ``torch.nn`` (see benchmarks/). Diagnostics run on it too: with an ``observer`` set, the scan also
  returns ∂L/∂h_t of every step (as the gradient of a "probe" input: its backward has dh_t at hand
  anyway) and fills ``cell.record`` from the gates it computed, so a measured step runs the same code as
  any other step, plus the probes' hooks;
- the step loop, ``cell.step`` once per step with an autograd node each: it runs for cells without a
  ``scan``, under autocast, and with ``scan=False`` (``model.scan=false``: the textbook loop, to check
  the scan against, or to time it). It lives in :mod:`rnnlab.model.step_loop`. ``compile=True`` compiles it
  in blocks of ``COMPILE_BLOCK`` steps of ``cell.step`` (backward by AOTAutograd): one compilation
  serves every sequence length; other batch sizes, no-grad passes and steps with an observer or
  recorded gates run eagerly. On CPU it is about twice as fast as the eager loop and slower than the
  hand-written scans (benchmarks/cpu.md): it is the fast path for cells that have only a ``step``.

State, for both implementations, is torch's layout: a tuple with one (L·D, B, H) tensor per state
name of the cell ((h,) or (h, c)), index ``layer * D + direction``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.cells.base import RecurrentCell, State
from rnnlab.model.auto_path import faster_path, fused_kernel, point_at
from rnnlab.model.padding import reverse_padded
from rnnlab.model.step_loop import Observer, compiled_loop, loop

IMPLS = ("unrolled", "fused", "auto")
PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class RecurrentLayer(nn.Module):
    """``num_layers`` stacked single-layer cells, optionally bidirectional, dropout between layers.

    Unrolled, the layer works time-major inside ((T, B, ·): each step's slice is contiguous) and returns
    batch-first views, as ``torch.nn``'s ``batch_first`` modules do.
    """

    def __init__(self, cell: Callable[[int, int], RecurrentCell], input_size: int, hidden_size: int,
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
                 impl: str = "unrolled", compile: bool = False, scan: bool = True) -> None:
        super().__init__()
        if impl not in IMPLS:
            raise ValueError(f"model.impl must be one of {IMPLS}, got {impl!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"model.num_layers must be a positive integer, got {num_layers!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {dropout!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.bidirectional, self.impl = num_layers, bool(bidirectional), impl
        self.num_directions = 2 if bidirectional else 1
        self.dropout_p = float(dropout)
        D = self.num_directions
        cells = [cell(input_size if layer == 0 else hidden_size * D, hidden_size)
                 for layer in range(num_layers) for _ in range(D)]
        self._cell_factory = cell
        self.cell_type = type(cells[0])
        self.forget_bias = getattr(cells[0], "forget_bias", None)  # LSTM's b_f init, for results.json
        self.chrono_t_max = getattr(cells[0], "chrono_t_max", None)  # gated cells' chrono init, results.json
        self.state_names = cells[0].state_names
        self.observer: Observer | None = None
        self.step_loop = not scan  # True: always loop cell.step, even where cell.scan would run
        self.compile = bool(compile)
        self._compiled_steps: dict[tuple, tuple[int, Callable]] = {}  # (cell class, unpadded) -> (batch, block)
        self.auto_path: str | None = None  # impl=auto: "fused"/"unrolled" pins the unmeasured steps' path (tests)
        self._kernel: list[nn.RNNBase] = []  # impl=auto: the fused kernel over the cells' parameters, built on use
        if impl != "fused":
            if impl == "auto":
                for c in cells:
                    c.prepare_for_fused()  # the twin computes the fused kernel's function (GRU: reset-after)
            self.cells = nn.ModuleList(cells)
            self.dropout = nn.Dropout(self.dropout_p)
        else:
            for c in cells:
                c.prepare_for_fused()
            proto = cells[0]
            self.rnn = proto.fused(input_size, hidden_size, num_layers, bias=proto.bias, batch_first=True,
                                   dropout=self.dropout_p if num_layers > 1 else 0.0,
                                   bidirectional=self.bidirectional, **proto.fused_kwargs())
            with torch.no_grad():  # same initial weights as the unrolled cells built from this seed
                for key, value in self._cells_to_fused({f"cells.{i}.{n}": p for i, c in enumerate(cells)
                                                        for n, p in c.named_parameters()}).items():
                    self.rnn.get_parameter(key.removeprefix("rnn.")).copy_(value)
        self.register_load_state_dict_pre_hook(self._convert_keys_on_load)

    # ---- parameter names across implementations -------------------------------------------------
    def _fused_key(self, index: int, name: str) -> str:
        layer, direction = divmod(index, self.num_directions)
        return f"rnn.{name}_l{layer}{'_reverse' if direction else ''}"

    def _cells_to_fused(self, sd: dict[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
        out = {}
        for i in range(self.num_layers * self.num_directions):
            for name in PARAM_NAMES:
                if f"{prefix}cells.{i}.{name}" in sd:
                    out[prefix + self._fused_key(i, name)] = sd[f"{prefix}cells.{i}.{name}"]
        return out

    def _fused_to_cells(self, sd: dict[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
        out = {}
        for i in range(self.num_layers * self.num_directions):
            for name in PARAM_NAMES:
                if prefix + self._fused_key(i, name) in sd:
                    out[f"{prefix}cells.{i}.{name}"] = sd[prefix + self._fused_key(i, name)]
        return out

    def _convert_keys_on_load(self, module, state_dict, prefix, *args) -> None:
        """Let a checkpoint of one implementation load into the other."""
        has_cells = any(k.startswith(prefix + "cells.") for k in state_dict)
        has_fused = any(k.startswith(prefix + "rnn.") for k in state_dict)
        if self.impl == "fused" and has_cells and not has_fused:
            converted = self._cells_to_fused(state_dict, prefix)
        elif self.impl != "fused" and has_fused and not has_cells:
            converted = self._fused_to_cells(state_dict, prefix)
        else:
            return
        for k in [k for k in state_dict if k.startswith(prefix + ("cells." if has_cells else "rnn."))]:
            del state_dict[k]
        state_dict.update(converted)

    def _build_cells(self) -> list[RecurrentCell]:
        D = self.num_directions
        return [self._cell_factory(self.input_size if layer == 0 else self.hidden_size * D, self.hidden_size)
                for layer in range(self.num_layers) for _ in range(D)]

    def unrolled_cells(self) -> list[RecurrentCell]:
        """Our cells with this layer's current weights (fresh copies when fused), index layer·D + direction."""
        if self.impl != "fused":
            return list(self.cells)
        cells = self._build_cells()
        sd = self._fused_to_cells({f"rnn.{k}": v.detach() for k, v in self.rnn.named_parameters()})
        for i, c in enumerate(cells):
            c.prepare_for_fused()
            c.load_state_dict({n: sd[f"cells.{i}.{n}"] for n, _ in c.named_parameters()})
            c.to(device=self.rnn.weight_hh_l0.device, dtype=self.rnn.weight_hh_l0.dtype)
        return cells

    # ---- forward ----------------------------------------------------------------------------------
    def init_state(self, batch: int, device=None, dtype=None) -> State:
        """Zero state in torch's layout: one (L·D, B, H) tensor per state name."""
        p = next(self.parameters())
        return tuple(torch.zeros(self.num_layers * self.num_directions, batch, self.hidden_size,
                                 device=device or p.device, dtype=dtype or p.dtype) for _ in self.state_names)

    def forward(self, x: Tensor, lengths: Tensor | None = None,
                state: State | None = None) -> tuple[Tensor, State]:
        """x (B, T, I), lengths (B,) or None, state as :meth:`init_state` -> out (B, T, D·H), final state.

        With ``lengths``, steps past a sequence's end neither update its state nor produce output (their
        rows of ``out`` are zero), exactly as packing does for the fused module.
        """
        B, T, _ = x.shape
        if lengths is not None:
            if int(lengths.min()) < 1 or int(lengths.max()) > T:
                raise ValueError(f"sequence lengths must lie in [1, {T}], got [{int(lengths.min())}, "
                                 f"{int(lengths.max())}]")
            if bool((lengths == T).all()):
                lengths = None  # no padding: skip the masking work
        if state is None:
            state = self.init_state(B, x.device, x.dtype)
        if self.path(x.device.type, T) == "fused":
            return self._forward_fused(x, lengths, state)
        return self._forward_unrolled(x, lengths, state)

    def path(self, device_type: str = "cpu", seq_len: int = 1) -> str:
        """The path the next forward (of ``seq_len`` steps) runs on that device: ``"fused"`` or ``"unrolled"``.
        Under auto, a measured step (an observer, or gates recorded) runs our cells; any other the rule's
        faster path for the cell at this H and T."""
        if self.impl != "auto":
            return self.impl
        if self.observer is not None or any(c.record is not None for c in self.cells):
            return "unrolled"
        return self.auto_path or faster_path(self.cell_type, device_type, self.hidden_size, seq_len)

    def fused_module(self) -> nn.RNNBase:
        """The ``torch.nn`` module the fused path runs: its own (impl=fused), or over the cells' parameters (auto)."""
        if self.impl == "fused":
            return self.rnn
        if not self._kernel:
            self._kernel.append(fused_kernel(self.cells[0], self.input_size, self.hidden_size, self.num_layers,
                                             self.bidirectional, self.dropout_p))
        names = self._cells_to_fused({f"cells.{i}.{n}": p for i, c in enumerate(self.cells)
                                      for n, p in c.named_parameters()})
        return point_at(self._kernel[0], {k.removeprefix("rnn."): p for k, p in names.items()}, self.training)

    def _forward_fused(self, x: Tensor, lengths: Tensor | None, state: State) -> tuple[Tensor, State]:
        hx = state if len(state) > 1 else state[0]
        rnn = self.fused_module()
        if lengths is None:
            out, final = rnn(x, hx)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, final = rnn(packed, hx)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, (final if isinstance(final, tuple) else (final,))

    def _forward_unrolled(self, x: Tensor, lengths: Tensor | None, state: State) -> tuple[Tensor, State]:
        D = self.num_directions
        valid = None
        if lengths is not None:  # (T, B): step t of sequence b is real
            valid = torch.arange(x.shape[1], device=x.device).unsqueeze(1) < lengths.to(x.device).unsqueeze(0)
        finals: list[State] = []
        layer_input = x.transpose(0, 1)  # (T, B, I): time-major inside, so every step's slice is contiguous
        for layer in range(self.num_layers):
            outs = []
            for direction in range(D):
                i = layer * D + direction
                cell_state = tuple(s[i] for s in state)
                out, final = self._run_cell(self.cells[i], layer_input, lengths, valid, cell_state,
                                            layer, direction)
                outs.append(out)
                finals.append(final)
            layer_input = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (T, B, D·H)
            if layer < self.num_layers - 1 and self.dropout_p > 0:
                layer_input = self.dropout(layer_input)
        final_state = tuple(torch.stack([f[k] for f in finals]) for k in range(len(self.state_names)))
        return layer_input.transpose(0, 1), final_state  # (B, T, D·H), as torch.nn's batch_first returns it

    def _run_cell(self, cell: RecurrentCell, x: Tensor, lengths: Tensor | None, valid: Tensor | None,
                  state: State, layer: int, direction: int) -> tuple[Tensor, State]:
        """One cell over x (T, B, I) -> out (T, B, H), final state."""
        if direction == 1:
            x = reverse_padded(x, lengths, time_dim=0)
        observer = self.observer
        eager_only = torch.is_autocast_enabled(x.device.type)  # the scans' in-place kernels need one dtype
        result = None
        if not (eager_only or self.step_loop):
            result = self._scan(cell, x, valid, state, layer, direction, observer)
        if result is None:  # step by step: no scan, autocast, or asked for
            x_proj = cell.project_input(x)  # (T, B, G·H): every input term in one matmul
            if self.compile and observer is None and cell.record is None and torch.is_grad_enabled():
                result = compiled_loop(self._compiled_steps, cell, x_proj, valid, state)
            if result is None:
                result = loop(cell.step, x_proj, valid, state, observer, layer, direction)
        out, state = result
        if direction == 1:
            out = reverse_padded(out, lengths, time_dim=0)
        return out, state

    @staticmethod
    def _scan(cell: RecurrentCell, x: Tensor, valid: Tensor | None, state: State, layer: int, direction: int,
              observer: Observer | None) -> tuple[Tensor, State] | None:
        """``cell.scan``, and for an observer every step's h_t: a leaf per step (B, H), stacked into the scan's
        ``probe`` (its values are not read) and then given h_t's value; the scan sets its gradient to the
        total ∂L/∂h_t, so hooks on it see what they would see on the step loop's h_t. Past a sequence's
        end h_t reads as zero (the step loop shows the value it computed and discarded there); its
        gradient is zero in both."""
        if observer is None:
            return cell.scan(x, state, valid)
        probes = None
        if torch.is_grad_enabled():
            probes = [x.new_zeros(x.shape[1], cell.hidden_size, requires_grad=True) for _ in range(x.shape[0])]
            result = cell.scan(x, state, valid, probe=torch.stack(probes))  # (T, B, H)
        else:
            result = cell.scan(x, state, valid)
        if result is None:
            return None
        out = result[0]  # (T, B, H)
        for t in range(out.shape[0]):
            h = out[t]
            if probes is not None:
                with torch.no_grad():
                    h = probes[t].copy_(h)
            observer(layer, direction, t, h)
        return result

    def __getstate__(self) -> dict:
        """Pickling and deep copies leave the compiled functions and auto's kernel behind (rebuilt on use)."""
        return {**self.__dict__, "_compiled_steps": {}, "_kernel": []}

    def extra_repr(self) -> str:
        return (f"{self.cell_type.__name__}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, dropout={self.dropout_p}, impl={self.impl!r}"
                + (", compile=True" if self.compile else "") + (", scan=False" if self.step_loop else ""))

