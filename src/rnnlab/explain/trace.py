"""One step of a cell, every intermediate of its equations, computed by the project's own cell code.

Weights come in the textbook names of ``rnnlab.cells`` from a JSON file or a trained run
(:mod:`rnnlab.explain.weights`).
:func:`trace_step` runs ``cell.forward`` with ``cell.record`` on (r, z, h̃ / i, f, o, c̃ and h, c are the
cell's own values), takes pre-activations from the cell's ``project_input`` / ``hidden_term`` and the
products from its ``gate_weights()`` views, and checks that every piece adds up to what the cell computed.
"""

from __future__ import annotations

import sys

import torch
from torch import Tensor

from rnnlab.cells import GRUCell
from rnnlab.cells.base import RecurrentCell
from rnnlab.explain.weights import GATES, as_tensor, cell_kind


def _vector(name: str, values, size: int, what: str, dtype: torch.dtype) -> Tensor:
    if values is None:
        return torch.zeros(1, size, dtype=dtype)
    t = as_tensor(name, values, dtype)
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
