"""A cell's weights in the textbook names of ``rnnlab.cells`` (row vectors: ``W_x<g>`` input × hidden,
``W_h<g>`` hidden × hidden, ``b_<g>`` hidden): checked, written into a cell (:func:`cell_from_weights`: ``b_<g>``
goes into ``bias_ih``, ``bias_hh`` is zero; missing gates are zeros), read from a trained run
(:func:`cell_from_run`) and exported (:func:`export_weights`). :mod:`rnnlab.explain.trace` steps such a cell.
"""

from __future__ import annotations

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


def as_tensor(key: str, value, dtype: torch.dtype) -> Tensor:
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
    tensors = {k: as_tensor(k, weights[k], dtype) for k in keys if k in weights}
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
