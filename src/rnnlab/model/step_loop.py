"""The step loop: ``cell.step`` once per step, an autograd node each, eager or (``model.compile=true``)
in compiled blocks of ``COMPILE_BLOCK`` steps.

The eager :func:`loop` is what an observer sees step by step; cells without a scan, ``model.scan=false``
and autocast train through it. A compiled block is ``torch.compile`` of K steps (forward, and backward
by AOTAutograd). Its shapes do not depend on T, so one compilation serves every sequence length (the
T mod K steps left over run eagerly) and, parameters being graph inputs, every cell of the class. It compiles for the first batch size it
trains on (once more for padded batches); other batch sizes (an epoch's last batch) and no-grad passes
(validation) loop eagerly, because a recompilation costs tens of seconds on CPU, more than those few
steps save. benchmarks/cpu.md and benchmarks/compile_run.md have the numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rnnlab.cells.base import RecurrentCell, State

COMPILE_BLOCK = 5  # steps per compiled block: as fast as 10 or 25 on CPU, compiled in 2/3 of the time (2 is slow)
CompiledBlocks = dict[tuple, tuple[int, Callable]]  # (cell class, unpadded) -> (batch size, compiled block)


# observer(layer, direction, step, h_t): called for every h_t when set (diagnostics); ``step`` counts
# in processing order, so for the reverse direction step s is time T_b − 1 − s of sample b.
Observer = Callable[[int, int, int, Tensor], None]


def loop(step: Callable, x_proj: Tensor, valid: Tensor | None, state: State, observer: Observer | None = None,
         layer: int = 0, direction: int = 0) -> tuple[Tensor, State]:
    """``step`` over x_proj (T, B, G·H) -> out (T, B, H), final state; each h_t a node of the autograd graph."""
    outs = []
    for t in range(x_proj.shape[0]):
        h, new_state = step(x_proj[t], state)
        if observer is not None:
            observer(layer, direction, t, h)
        if valid is None:
            state = new_state
        else:  # a finished sequence keeps its state and emits zeros
            m = valid[t].unsqueeze(1)  # (B, 1)
            state = tuple(torch.where(m, n, o) for n, o in zip(new_state, state))
            h = torch.where(m, h, torch.zeros_like(h))
        outs.append(h)
    return torch.stack(outs), state  # (T, B, H)


def steps(cell: RecurrentCell, x_proj: Tensor, valid: Tensor | None, state: State) -> tuple[Tensor, State]:
    """:func:`loop` over ``cell.step`` without an observer: what a block compiles."""
    return loop(cell.step, x_proj, valid, state)


def compiled_loop(blocks: CompiledBlocks, cell: RecurrentCell, x_proj: Tensor, valid: Tensor | None,
                  state: State) -> tuple[Tensor, State] | None:
    """x_proj (T, B, G·H) through compiled blocks -> out (T, B, H), final state; None where this call
    should loop eagerly (another batch size, T < K). ``blocks`` is the layer's cache, filled here."""
    B, T, K = x_proj.shape[1], x_proj.shape[0], COMPILE_BLOCK
    key = (type(cell), valid is None)
    if key not in blocks:
        blocks[key] = (B, torch.compile(steps, dynamic=False))
    batch, block = blocks[key]
    if B != batch or T < K:
        return None
    outs = []
    for start in range(0, T - T % K, K):
        out, state = block(cell, x_proj[start:start + K], None if valid is None else valid[start:start + K], state)
        outs.append(out)
    if T % K:
        rest = slice(T - T % K, T)
        out, state = steps(cell, x_proj[rest], None if valid is None else valid[rest], state)
        outs.append(out)
    return (outs[0] if len(outs) == 1 else torch.cat(outs)), state
