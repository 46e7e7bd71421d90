"""One training step's gradients through time: ‖∂L/∂h_t‖, ‖∂L/∂x_t‖, gate statistics, per-gate norms.

:class:`GradientProbe` attaches to a :class:`~rnnlab.model.sequence_model.SequenceModel` for one forward/backward:

- ‖∂L/∂h_t‖ for every time step, layer and direction (``model.impl=unrolled`` or ``auto``, whose
  measured steps run our cells: :mod:`rnnlab.model.auto_path`): the
  recurrent layer's ``observer`` puts a tensor hook on every h_t; the hook receives the *total*
  gradient of the loss with respect to h_t, through the output at t and through h_{t+1}, …
  (for an LSTM this is the gradient w.r.t. h_t, not c_t). On the fast path the hooked h_t is a
  "probe" leaf per step, holding h_t's value, whose gradient the scan's backward sets (see :mod:`rnnlab.model.recurrent`), so a
  measured step runs the same scan as every other step;
- ‖∂L/∂x_t‖, the gradient w.r.t. the first recurrent layer's input x_t (the embedding output, or the
  float features): it flows back through the whole recurrence too, and works for both
  implementations, so it is what is measured when the model is fused (cuDNN);
- gate means and saturation (< 0.05 or > 0.95) of the sigmoid gates (GRU r_t, z_t; LSTM i_t, f_t,
  o_t) per time step, from ``cell.record`` (unrolled only).

Norms are per sample (‖·‖₂ over the hidden/input units, in float64 so that a vanished gradient of
1e-30 is not squared to zero), then the mean and the max over the batch. Observers are set by
:meth:`GradientProbe.attach` and removed by :meth:`GradientProbe.stop_observing` (call it after the
forward); the tensor hooks belong to that step's autograd graph and go with it after backward.

Time alignment: index t of every curve is at distance T−1−t from the loss. For a one-prediction
readout ("last") that is the number of steps between h_t and the state the loss reads; for per-step
losses (copy task, language modelling) the same convention is kept: distance to the end of the
sequence. Padded batches (``lengths``) are right-aligned per sample, so index T−1 is each sample's
last valid step; the reverse direction's step s (time L_b−1−s) lands on index T−1−s.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from rnnlab.model.recurrent import RecurrentLayer

SATURATION = (0.05, 0.95)
PARAM_KINDS = (("weight_ih", "W_x"), ("weight_hh", "W_h"), ("bias_ih", "b_x"), ("bias_hh", "b_h"))


def align(values: Tensor, lengths: Tensor | None, reverse: bool = False) -> tuple[Tensor, Tensor]:
    """Per-sample values (B, T) in processing order -> (mean, max) over valid samples, each (T,).

    Index t of the result is at distance T−1−t from each sample's last valid step (see the module
    docstring); an index no sample reaches is NaN.
    """
    B, T = values.shape
    if lengths is None:
        v = values.flip(1) if reverse else values  # (B, T), time order
        return v.mean(0), v.amax(0)
    s = torch.arange(T, device=values.device).expand(B, T)  # (B, T) processing step
    L = lengths.to(values.device).view(B, 1)
    valid = s < L  # (B, T)
    index = (T - 1 - s) if reverse else (s + T - L)  # (B, T) right-aligned time index
    rows = torch.arange(B, device=values.device).view(B, 1).expand(B, T)
    out = values.new_full((B, T), float("nan"))
    out[rows[valid], index[valid]] = values[valid]
    count = (~out.isnan()).sum(0)  # (T,)
    mean = out.nansum(0) / count  # NaN where count == 0
    peak = out.nan_to_num(float("-inf")).amax(0)
    return mean, torch.where(count > 0, peak, torch.full_like(peak, float("nan")))


def layer_names(layer: RecurrentLayer) -> list[str]:
    """``l<layer>`` / ``l<layer>_rev`` for index layer·D + direction (torch.nn's suffixes)."""
    return [f"l{i // layer.num_directions}{'_rev' if i % layer.num_directions else ''}"
            for i in range(layer.num_layers * layer.num_directions)]


def recurrent_parameters(layer: RecurrentLayer) -> list[dict[str, Tensor | None]]:
    """The live parameters of each layer·direction, by cell name (weight_ih, …), for both implementations."""
    out = []
    for i in range(layer.num_layers * layer.num_directions):
        if layer.impl != "fused":
            out.append({name: getattr(layer.cells[i], name) for name, _ in PARAM_KINDS})
        else:
            out.append({name: getattr(layer.rnn, layer._fused_key(i, name).removeprefix("rnn."), None)
                        for name, _ in PARAM_KINDS})
    return out


@torch.no_grad()
def gate_grad_norms(layer: RecurrentLayer) -> dict[str, float]:
    """‖∂L/∂W‖ split by gate: ``l0/W_xr``, ``l0/W_hr``, ``l0/b_xr``, ``l0/b_hr``, … (RNN: ``l0/W_x``, ``l0/W_h``).

    torch.nn stacks the gate blocks in ``weight_ih`` (G·H, I) etc.; block g is gate
    ``cell.gate_names[g]``. ``b_x<g>``/``b_h<g>`` are the two stored bias vectors (b_<g> is their sum).
    """
    gates = layer.cell_type.gate_names
    names, norms = [], []
    for lname, params in zip(layer_names(layer), recurrent_parameters(layer)):
        for attr, prefix in PARAM_KINDS:
            p = params[attr]
            if p is None or p.grad is None:
                continue
            for gate, block in zip(gates, p.grad.chunk(len(gates))):
                names.append(f"{lname}/{prefix}{gate}")
                norms.append(torch.linalg.vector_norm(block, dtype=torch.float64))
    values = torch.stack(norms).tolist() if norms else []
    return dict(zip(names, values))


@torch.no_grad()
def spectral_radii(layer: RecurrentLayer) -> dict[str, list[float]]:
    """ρ(W_h<g>) = max |eigenvalue| of each gate's H×H recurrent block, per layer·direction."""
    gates = layer.cell_type.gate_names
    out: dict[str, list[float]] = {f"W_h{g}": [] for g in gates}
    for params in recurrent_parameters(layer):
        for gate, block in zip(gates, params["weight_hh"].detach().chunk(len(gates))):  # G × (H, H)
            out[f"W_h{gate}"].append(float(torch.linalg.eigvals(block.double()).abs().max()))
    return out


class GradientProbe:
    """Measures one forward/backward of ``model``; see the module docstring for what and how.

    ``attach()`` before the forward, ``stop_observing()`` after it (before backward), ``results()``
    after backward, ``close()`` in any case (idempotent: restores the inputs it made require grad).
    """

    def __init__(self, model, lengths: Tensor | None = None, gates: bool = True) -> None:
        self.model, self.layer = model, model.recurrent
        self.lengths = lengths
        self.gates = gates and self.layer.impl != "fused"
        self._h: dict[int, dict[int, Tensor]] = {}  # layer·D + direction -> step -> (B,) norms
        self._x: Tensor | None = None  # (B, T) per-sample ‖∂L/∂x_t‖
        self._leaf: Tensor | None = None  # an input we made require grad
        self._x_hook = None
        self.gate_stats: dict[str, Tensor] = {}  # "<gate>_mean" / "<gate>_sat" -> (L·D, T)
        self.T: int | None = None  # sequence length of the observed batch
        self.B = 0

    @property
    def cells(self) -> list:
        return list(self.layer.cells) if self.layer.impl != "fused" else []

    def attach(self) -> GradientProbe:
        if self.layer.impl != "fused":  # auto: the observer sends this step through our cells
            self.layer.observer = self._observe_h
        self.model.input_observer = self._observe_x
        for cell in self.cells if self.gates else []:
            cell.record = []
        return self

    def _observe_h(self, layer: int, direction: int, step: int, h: Tensor) -> None:
        if h.requires_grad:
            self.B = h.shape[0]
            store = self._h.setdefault(layer * self.layer.num_directions + direction, {})
            h.register_hook(partial(_store_norm, store, step))

    def _observe_x(self, inputs: Tensor) -> None:  # (B, T, I)
        self.T = inputs.shape[1]
        if not torch.is_grad_enabled():
            return
        if not inputs.requires_grad:  # float features or frozen embeddings: a leaf we may flag
            inputs.requires_grad_(True)
            self._leaf = inputs
        self._x_hook = inputs.register_hook(self._store_x)  # a leaf keeps its hooks: removed in close()

    def _store_x(self, grad: Tensor) -> None:  # grad (B, T, I)
        self._x = torch.linalg.vector_norm(grad.detach(), dim=-1, dtype=torch.float64)  # (B, T)

    def stop_observing(self) -> None:
        """Remove the observers and summarise the recorded gates (the graph's hooks stay until backward)."""
        if self.layer.observer == self._observe_h:
            self.layer.observer = None
        if self.model.input_observer == self._observe_x:
            self.model.input_observer = None
        records = [cell.record for cell in self.cells if cell.record is not None]
        for cell in self.cells:
            cell.record = None
        if records and records[0]:
            self.gate_stats = self._summarise_gates(records)

    @torch.no_grad()
    def _summarise_gates(self, records: list[list[dict[str, Tensor]]]) -> dict[str, Tensor]:
        D = self.layer.num_directions
        names = [k for k in records[0][0] if not k.endswith("_tilde")]  # the sigmoid gates
        out: dict[str, list[Tensor]] = {}
        low, high = SATURATION
        for i, steps in enumerate(records):
            for name in names:
                g = torch.stack([r[name] for r in steps], dim=1).double()  # (B, T, H)
                for stat, v in (("mean", g.mean(-1)), ("sat", ((g < low) | (g > high)).double().mean(-1))):
                    out.setdefault(f"{name}_{stat}", []).append(align(v, self.lengths, i % D == 1)[0])
        return {k: torch.stack(v) for k, v in out.items()}  # (L·D, T)

    def close(self) -> None:
        self.stop_observing()
        if self._x_hook is not None:
            self._x_hook.remove()
            self._x_hook = None
        if self._leaf is not None:
            self._leaf.grad = None
            self._leaf.requires_grad_(False)
            self._leaf = None

    def results(self) -> dict[str, Tensor]:
        """After backward: ``h_mean``/``h_max`` (L·D, T), ``x_mean``/``x_max`` (T,), gate stats (L·D, T).

        Keys are absent when not measured (h: fused model; x: no gradient reached the input).
        """
        out: dict[str, Tensor] = dict(self.gate_stats)
        if self._x is not None:
            out["x_mean"], out["x_max"] = align(self._x, self.lengths)
        if self._h and self.T is not None:
            D = self.layer.num_directions
            means, maxes = [], []
            for i in range(self.layer.num_layers * D):
                steps = self._h.get(i, {})
                device = next(iter(steps.values())).device if steps else "cpu"
                nan = torch.full((self.B,), float("nan"), dtype=torch.float64, device=device)  # never reached
                values = torch.stack([steps.get(s, nan) for s in range(self.T)], dim=1)  # (B, T)
                m, x = align(values, self.lengths, reverse=i % D == 1)
                means.append(m)
                maxes.append(x)
            out["h_mean"], out["h_max"] = torch.stack(means), torch.stack(maxes)
        return {k: v.cpu() for k, v in out.items()}


def _store_norm(store: dict[int, Tensor], step: int, grad: Tensor) -> None:
    store[step] = torch.linalg.vector_norm(grad.detach(), dim=-1, dtype=torch.float64)  # (B,)
