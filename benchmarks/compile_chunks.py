"""Does compiling the *unrolled loop* pay on this machine? ``torch.compile`` of K steps of ``cell.step``.

The issue's candidate designs for ``model.compile``: compile the per-step cell (what ``model.compile=true``
does, measured by ``python -m rnnlab.bench``), or compile a fixed block of steps so one compilation
serves every sequence length. This script measures the second: a chunk of K steps of the cell's own
``step`` (forward and, through AOTAutograd, backward) compiled once, run T // K times per sequence,
the T mod K steps left over run eagerly. It compares forward + backward with the scan (``cell.scan``,
what ``model.impl=unrolled`` trains with) on the default run's cells at B=64, T=100, H=128, and prints
a Markdown table: compile seconds (first call over a normal one) and time per batch.

    python benchmarks/compile_chunks.py [--chunk 10] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch

from rnnlab.cells import GRUCell, LSTMCell, RNNCell

CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


def chunk(cell, x_proj, state):
    """K steps of the textbook step: (K, B, G·H), state -> (K, B, H), state."""
    outs = []
    for t in range(x_proj.shape[0]):
        h, state = cell.step(x_proj[t], state)
        outs.append(h)
    return torch.stack(outs), state


def chunked(compiled, cell, x, K):
    """The whole sequence x (T, B, I) through compiled K-step chunks, the remainder eagerly."""
    T, B = x.shape[:2]
    x_proj, state, outs = cell.project_input(x), cell.init_state(B), []
    for start in range(0, T - T % K, K):
        out, state = compiled(cell, x_proj[start:start + K], state)
        outs.append(out)
    for t in range(T - T % K, T):
        h, state = cell.step(x_proj[t], state)
        outs.append(h[None])
    return torch.cat(outs), state


def fwd_bwd(run) -> float:
    start = time.perf_counter()
    out, _ = run()
    out.sum().backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunk", type=int, default=10, help="steps per compiled chunk (K)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=100, help="sequence length T")
    args = parser.parse_args()
    B, H, K = 64, 128, args.chunk
    print(f"B={B} T={args.steps} H={H}, chunks of K={K} steps, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}\n")
    print("| cell | compile s | scan ms | compiled chunks ms | chunks' speed vs scan | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, cls in CELLS.items():
        torch.manual_seed(0)
        cell = cls(H, H)
        x = torch.randn(args.steps, B, H)
        torch._dynamo.reset()  # one cell's compilation at a time (they share chunk's code object)
        compiled = torch.compile(chunk, dynamic=False)
        scan = partial(lambda c, x: c.scan(x, c.init_state(x.shape[1])), cell, x)
        run = partial(chunked, compiled, cell, x, K)
        fwd_bwd(scan)
        baseline = fwd_bwd(scan)
        compile_s = fwd_bwd(run) - baseline
        diff = float((scan()[0] - run()[0]).detach().abs().max())  # grad mode kept: no recompilation
        ts, tc = [], []
        for _ in range(args.rounds):  # alternate, so the machine's noise hits both alike
            cell.zero_grad(set_to_none=True)
            ts.append(fwd_bwd(scan))
            cell.zero_grad(set_to_none=True)
            tc.append(fwd_bwd(run))
        speed = statistics.median(s / c for s, c in zip(ts, tc))
        print(f"| {name} | {compile_s:.1f} | {statistics.median(ts) * 1e3:.2f} | {statistics.median(tc) * 1e3:.2f} "
              f"| {speed:.2f}× | {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
