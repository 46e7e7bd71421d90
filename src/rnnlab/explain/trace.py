"""One step of a cell, every intermediate of its equations, computed by the project's own cell code.

Weights come in the textbook names of ``rnnlab.cells`` (row vectors: ``W_x<g>`` input × hidden,
``W_h<g>`` hidden × hidden, ``b_<g>`` hidden), from a JSON file (:func:`cell_from_weights`: ``b_<g>`` goes
into ``bias_ih``, ``bias_hh`` is zero; missing gates are zeros) or a trained run (:func:`cell_from_run`).
:func:`trace_step` runs ``cell.forward`` with ``cell.record`` on (r, z, h̃ / i, f, o, c̃ and h, c are the
cell's own values), takes pre-activations from the cell's ``project_input`` / ``hidden_term`` and the
products from its ``gate_weights()`` views, and checks that every piece adds up to what the cell computed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import Tensor

from rnnlab.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.cells.base import RecurrentCell

CELLS: dict[str, type[RecurrentCell]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}
GATES = {"rnn": ("",), "lstm": ("i", "f", "o", "c"), "gru": ("r", "z", "h")}  # the equations' order


def weight_keys(kind: str) -> list[str]:
    """GRU: W_xr, W_hr, b_r, W_xz, …; LSTM: W_xi, W_hi, b_i, …; RNN: W_x, W_h, b."""
    return [k for g in GATES[kind] for k in (f"W_x{g}", f"W_h{g}", f"b_{g}" if g else "b")]


def _expected_shape(key: str, input_size: int, hidden_size: int) -> tuple[tuple[int, ...], str]:
    if key.startswith("W_x"):
        return (input_size, hidden_size), "input × hidden"
    if key.startswith("W_h"):
        return (hidden_size, hidden_size), "hidden × hidden"
    return (hidden_size,), "hidden"


def _as_tensor(key: str, value, dtype: torch.dtype) -> Tensor:
    try:
        return torch.as_tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{key}: not a number, a list of numbers or of equal rows ({error})") from None


def check_weights(kind: str, weights: dict, input_size: int | None = None, hidden_size: int | None = None,
                  dtype: torch.dtype = torch.float64) -> tuple[dict, int, int]:
    """Validate named weights -> (tensors, input size, hidden size).

    The sizes are read from the first ``W_x*`` (input) and the first key present (hidden); the
    ``input_size`` / ``hidden_size`` arguments are used only where no weight tells.
    Raises ValueError naming the key, the expected and the got shape, or the unknown key.
    """
    if kind not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, got {kind!r}")
    keys = weight_keys(kind)
    unknown = [k for k in weights if k not in keys]
    if unknown:
        other = [c for c in CELLS if c != kind and all(k in weight_keys(c) for k in unknown)]
        hint = f" (these are {other[0]} names: pass --cell {other[0]}?)" if other else ""
        raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))} for a {kind} cell{hint}; "
                         f"the names are {', '.join(keys)}")
    tensors = {k: _as_tensor(k, weights[k], dtype) for k in keys if k in weights}
    first_x = next((t for k, t in tensors.items() if k.startswith("W_x") and t.dim() == 2), None)
    first = next((t for t in tensors.values() if t.dim() >= 1), None)
    input_size = first_x.shape[0] if first_x is not None else input_size
    hidden_size = first.shape[-1] if first is not None else hidden_size
    if input_size is None or hidden_size is None:
        raise ValueError(f"cannot tell the {'input' if input_size is None else 'hidden'} size: give at least "
                         f"one W_x* matrix, or x_t and h_prev")
    for k, t in tensors.items():
        shape, what = _expected_shape(k, input_size, hidden_size)
        if tuple(t.shape) != shape:
            raise ValueError(f"{k}: expected shape {shape} ({what}, input {input_size}, "
                             f"hidden {hidden_size}), got {tuple(t.shape)}")
    return tensors, input_size, hidden_size


def cell_from_weights(kind: str, weights: dict, input_size: int | None = None, hidden_size: int | None = None,
                      dtype: torch.dtype = torch.float64, **cell_kwargs) -> tuple[RecurrentCell, list[str]]:
    """Our cell with the named weights written into its stacked blocks -> (cell, keys defaulted to zero).

    ``W_x<g>`` goes to ``weight_ih[block g]`` transposed, ``W_h<g>`` to ``weight_hh[block g]`` transposed,
    ``b_<g>`` to ``bias_ih[block g]``; ``bias_hh`` is zero. A GRU is the textbook (reset-before) form
    unless ``reset_after=True`` is passed.
    """
    tensors, I, H = check_weights(kind, weights, input_size, hidden_size, dtype)
    if kind == "gru":
        cell_kwargs.setdefault("reset_after", False)
    cell = CELLS[kind](I, H, **cell_kwargs).to(dtype)
    order = cell.gate_names  # storage order (LSTM: i, f, c, o)
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
        for k, t in tensors.items():
            g = order.index(k[3:] if k.startswith("W_") else k[2:])
            rows = slice(g * H, (g + 1) * H)
            if k.startswith("W_x"):
                cell.weight_ih[rows] = t.t()
            elif k.startswith("W_h"):
                cell.weight_hh[rows] = t.t()
            else:
                cell.bias_ih[rows] = t
    return cell, [k for k in weight_keys(kind) if k not in tensors]


def cell_kind(cell: RecurrentCell) -> str:
    return next(k for k, c in CELLS.items() if isinstance(cell, c))


def cell_from_run(run_dir: str | Path, layer: int = 0, direction: int = 0) -> tuple[RecurrentCell, dict]:
    """The trained cell at (layer, direction) of a run, exactly as the model runs it -> (cell, run config)."""
    from rnnlab.training.checkpoint import load_model

    model, cfg = load_model(run_dir)  # its own impl: unrolled_cells() adapts a fused GRU to reset-after
    rec = model.recurrent
    if not 0 <= layer < rec.num_layers:
        raise ValueError(f"--layer must lie in [0, {rec.num_layers - 1}] for this run, got {layer}")
    if not 0 <= direction < rec.num_directions:
        raise ValueError(f"--direction must be 0{' or 1' if rec.num_directions == 2 else ''} for this run "
                         f"({'bi' if rec.num_directions == 2 else 'uni'}directional), got {direction}")
    cell = rec.unrolled_cells()[layer * rec.num_directions + direction]
    return cell.eval(), {"model": model, "config": cfg}


def export_weights(cell: RecurrentCell) -> dict[str, list]:
    """The cell's weights in the textbook names, as a JSON-ready dict (``b_<g>`` = bias_ih + bias_hh).

    A reset-after GRU also needs its two h-biases apart (``b_xh``, ``b_hh``), which the textbook names
    cannot hold: it is refused.
    """
    if getattr(cell, "reset_after", False):
        raise ValueError("this GRU runs the reset-after (cuDNN) form, whose b_xh and b_hh cannot be merged "
                         "into one b_h: its weights do not fit the textbook names")
    return {k: v.detach().double().tolist() for k, v in cell.gate_weights().items()}


def _vector(name: str, values, size: int, what: str, dtype: torch.dtype) -> Tensor:
    if values is None:
        return torch.zeros(1, size, dtype=dtype)
    t = _as_tensor(name, values, dtype)
    if tuple(t.shape) != (size,):
        raise ValueError(f"{name}: expected shape ({size},) ({what}), got {tuple(t.shape)}")
    return t.unsqueeze(0)  # (1, size)


def trace_step(cell: RecurrentCell, x_t, h_prev=None, c_prev=None) -> dict[str, Tensor]:
    """Every intermediate of one step, in the order of the equations -> {name: (size,) tensor}.

    Names: ``x_t, h_prev[, c_prev]``, then per gate ``xW_x<g>, hW_h<g>, b_<g>, pre_<g>, <g>``, then the
    state update; the last entry is ``h``, the cell's own output. Missing h_prev / c_prev are zeros.
    """
    kind = cell_kind(cell)
    H, dtype = cell.hidden_size, cell.weight_hh.dtype
    x = _vector("x_t", x_t, cell.input_size, "the cell's input size", dtype)  # (1, I)
    h0 = _vector("h_prev", h_prev, H, "the cell's hidden size", dtype)  # (1, H)
    state: tuple[Tensor, ...] = (h0,)
    if kind == "lstm":
        state = (h0, _vector("c_prev", c_prev, H, "the cell's hidden size", dtype))
    elif c_prev is not None:
        raise ValueError(f"c_prev is only for an LSTM; this is a {kind} cell")
    w, order = cell.gate_weights(), cell.gate_names
    rows = {g: slice(order.index(g) * H, (order.index(g) + 1) * H) for g in order}
    zero = torch.zeros(H, dtype=dtype)
    old_record, cell.record = cell.record, []
    try:
        with torch.no_grad():
            h, new_state = cell(x, state)  # the model's own step: h and the recorded activations
            recorded = cell.record[-1] if cell.record else {}
            x_proj = cell.project_input(x)  # (1, G·H) = x W_x + b_ih, every gate
            h_term = cell.hidden_term(h0)  # (1, G·H) = h W_h + b_hh, every gate
            out = {"x_t": x, "h_prev": h0} | ({"c_prev": state[1]} if kind == "lstm" else {})
            for g in GATES[kind]:
                b, pre = (f"b_{g}", f"pre_{g}") if g else ("b", "pre")
                out[f"xW_x{g}"] = x @ w[f"W_x{g}"]
                if kind == "gru" and g == "h":
                    out |= _gru_candidate(cell, x_proj, h0, out["r"], rows["h"], w, w.get("b_h", zero))
                    parts = out["rhW_hh"] + out["b_h"] if "rhW_hh" in out else out["b_xh"] + out["r_hW_hh_b"]
                    _agree("pre_h = its parts", out["xW_xh"] + parts, out["pre_h"])
                else:
                    out[f"hW_h{g}"] = h0 @ w[f"W_h{g}"]
                    out[b] = w.get(b, zero).reshape(1, H)
                    out[pre] = x_proj[:, rows[g]] + h_term[:, rows[g]]
                    _agree(f"{pre} = xW_x{g} + hW_h{g} + {b}", out[f"xW_x{g}"] + out[f"hW_h{g}"] + out[b],
                           out[pre])
                if kind == "rnn":
                    phi = torch.tanh if cell.nonlinearity == "tanh" else torch.relu
                    _agree(f"{cell.nonlinearity}(pre)", phi(out[pre]), h)
                    continue
                name = {"c": "c_tilde", "h": "h_tilde"}.get(g, g)
                if name not in recorded:
                    raise AssertionError(f"{type(cell).__name__} did not record {name!r} in cell.record "
                                         f"(only {sorted(recorded)}): the trace needs the cell's own value")
                out[name] = recorded[name]  # what the cell computed
                fn, fn_name = (torch.tanh, "tanh") if g in ("c", "h") else (torch.sigmoid, "σ")
                _agree(f"{name} = {fn_name}({pre})", fn(out[pre]), out[name])
            if kind == "gru":
                out["z_h_prev"] = out["z"] * h0
                out["one_minus_z_h_tilde"] = (1 - out["z"]) * out["h_tilde"]
                _agree("h = z⊙h_prev + (1−z)⊙h̃", out["z_h_prev"] + out["one_minus_z_h_tilde"], h)
            elif kind == "lstm":
                out["f_c_prev"] = out["f"] * state[1]
                out["i_c_tilde"] = out["i"] * out["c_tilde"]
                out["c"] = new_state[1]
                _agree("c = f⊙c_prev + i⊙c̃", out["f_c_prev"] + out["i_c_tilde"], out["c"])
                out["tanh_c"] = torch.tanh(out["c"])
                _agree("h = o⊙tanh(c)", out["o"] * out["tanh_c"], h)
            out["h"] = h
    finally:
        cell.record = old_record
    return {k: v.reshape(-1) for k, v in out.items()}


def _gru_candidate(cell: GRUCell, x_proj: Tensor, h0: Tensor, r: Tensor, rows: slice, w: dict,
                   b_h: Tensor) -> dict[str, Tensor]:
    """h̃'s intermediates: textbook (r ⊙ h_{t-1}) W_hh, or cuDNN's r ⊙ (h_{t-1} W_hh + b_hh)."""
    H = cell.hidden_size
    if not cell.reset_after:
        rh = r * h0  # (1, H)
        return {"r_h_prev": rh, "rhW_hh": rh @ w["W_hh"], "b_h": b_h.reshape(1, H),
                "pre_h": x_proj[:, rows] + cell.hidden_term(rh)[:, rows]}  # the cell's own terms
    zero = torch.zeros(1, H, dtype=h0.dtype)
    b_xh, b_hh = ((cell.bias_ih[rows].reshape(1, H), cell.bias_hh[rows].reshape(1, H)) if cell.bias
                  else (zero, zero))
    hw = cell.hidden_term(h0)[:, rows]  # h W_hh + b_hh
    return {"hW_hh": h0 @ w["W_hh"], "b_xh": b_xh, "b_hh": b_hh, "r_hW_hh_b": r * hw,
            "pre_h": x_proj[:, rows] + r * hw}


def _agree(what: str, a: Tensor, b: Tensor) -> None:
    tol = 1e-5 if a.dtype == torch.float32 else 1e-10
    if not torch.allclose(a, b, rtol=tol, atol=tol):
        raise AssertionError(f"the trace disagrees with the cell's forward at {what}: "
                             f"{a.tolist()} vs {b.tolist()}")


# ---- presentation -------------------------------------------------------------------------------
_ACT = {"c_tilde": ("tanh", "c"), "h_tilde": ("tanh", "h")}
_FIXED = {
    "x_t": "input x_t", "h_prev": "h_{t-1}", "c_prev": "c_{t-1}",
    "r_h_prev": "r_t ⊙ h_{t-1}", "rhW_hh": "(r_t ⊙ h_{t-1}) W_hh", "hW_hh": "h_{t-1} W_hh",
    "b_xh": "b_xh (input-side bias)", "b_hh": "b_hh (hidden-side bias)",
    "r_hW_hh_b": "r_t ⊙ (h_{t-1} W_hh + b_hh)", "z_h_prev": "z_t ⊙ h_{t-1}",
    "one_minus_z_h_tilde": "(1 − z_t) ⊙ h̃_t", "f_c_prev": "f_t ⊙ c_{t-1}",
    "i_c_tilde": "i_t ⊙ c̃_t", "c": "c_t = f_t ⊙ c_{t-1} + i_t ⊙ c̃_t", "tanh_c": "tanh(c_t)",
}


def formula(name: str, kind: str, nonlinearity: str = "tanh", reset_after: bool = False) -> str:
    """The equation behind one trace entry, for the table."""
    if name in _FIXED:
        return _FIXED[name]
    if name == "h":
        return {"gru": "h_t = z_t ⊙ h_{t-1} + (1 − z_t) ⊙ h̃_t", "lstm": "h_t = o_t ⊙ tanh(c_t)",
                "rnn": f"h_t = {nonlinearity}(pre)"}[kind]
    if name.startswith("xW_x"):
        return f"x_t W_x{name[4:]}"
    if name.startswith("hW_h"):
        return f"h_{{t-1}} W_h{name[4:]}"
    if name == "pre_h" and kind == "gru":
        return ("x_t W_xh + b_xh + r_t ⊙ (h_{t-1} W_hh + b_hh)" if reset_after
                else "x_t W_xh + (r_t ⊙ h_{t-1}) W_hh + b_h")
    if name.startswith("pre"):
        g = name[4:]
        return f"x_t W_x{g} + h_{{t-1}} W_h{g} + b{'_' + g if g else ''}"
    if name.startswith("b"):
        return f"bias {name}"
    fn, g = _ACT.get(name, ("σ", name))
    return f"{name.replace('_tilde', '̃')}_t = {fn}(pre_{g})"


def _fmt(v: float) -> str:
    v = round(v, 3)
    return f"{0.0 if v == 0 else v:.3f}"


def trace_json(trace: dict[str, Tensor], info: dict) -> dict:
    """Machine-readable form: ``info`` (cell, source, notes) plus ``trace`` {name: list of floats}."""
    return {**info, "trace": {k: v.tolist() for k, v in trace.items()}}


def render_trace(trace: dict[str, Tensor], info: dict, console=None, max_units: int = 8) -> None:
    """The worked example as a Rich table: name, equation, value rounded to 3 decimals."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if sys.stdout.isatty() else 120)  # no wrapping in logs and pipes
    kind = info["cell"]
    table = Table(title=info.get("title"), caption="\n".join(info.get("notes", [])) or None,
                  caption_justify="left", title_justify="left")
    for col, style in (("name", "bold cyan"), ("equation", ""), ("value", "bold")):
        table.add_column(col, style=style, no_wrap=col != "equation")
    gate_ends = {"r", "z", "h_tilde", "i", "f", "o", "c_tilde", "h_prev", "c_prev", "pre"} - (
        {"h_prev"} if kind == "lstm" else set())
    for name, value in trace.items():
        values = [_fmt(v) for v in value.tolist()]
        more = f", … ({len(values)} units)" if len(values) > max_units else ""
        equation = formula(name, kind, info.get("nonlinearity") or "tanh", info.get("reset_after", False))
        table.add_row(name, equation, f"[{', '.join(values[:max_units])}{more}]",
                      end_section=name in gate_ends)
    console.print(table)
