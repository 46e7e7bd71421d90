"""The claims' shapes: ``python -m rnnlab.bench --claims`` (or ``python -m rnnlab.bench.claims``).

Claim 1's runs train the adding problem (input 2) at small hidden sizes and long sequences, thousands of
updates each, so their wall time is the speed of one training step at these shapes: H ∈ {64, 128},
T ∈ {100, 200, 400}, batch 64, one thread. For every cell it times one step of the real model
(:class:`~rnnlab.model.sequence_model.SequenceModel`, MSE on the last step: forward, loss, backward) on

- ``fused``: ``model.impl=fused`` (torch.nn's kernel; GRU reset-after);
- ``unrolled``: ``model.impl=unrolled``, the scans (GRU reset-after too, so all four compute one function);
- ``auto``: ``model.impl=auto``, a step diagnostics do not measure;
- ``measured``: auto's measured step: the twin with the :class:`~rnnlab.diagnostics.probe.GradientProbe`
  attached, plus what the callback computes on it (per-gate gradient norms, spectral radii, the global norm).

``auto + diag50`` is a run measuring every 50 steps: (49 · auto + measured) / 50 from the same round.
Within a round every path runs once, in an order rotated each round, so a shared machine's load hits all
alike; each ratio (a speed ratio: > 1 is faster) is the median of its per-round ratios, and beside it the
ratio of the best times (steadier when other processes share the cores). The faster path is the one with
the lower median time. Targets: auto ≥ 0.95× the faster path, auto + diag50 ≥ 0.9×.
Writes ``<out>/claims_shapes.md`` and ``.json``; the load average (``os.getloadavg``) is recorded per shape.

Subnormal floats are flushed to zero while it times (``torch.set_flush_denormal``; ``--keep-denormals`` does
not): the weights stay at their initialisation, where ∂L/∂h_t decays below float32's normal range
(1.2e-38) within T ≈ 200 steps, and CPU arithmetic on subnormals is several times slower (the RNN's step
at H = 64, T = 200 here: 136 ms against 19.6 ms flushed). That cost hits every path alike and would hide
the paths' own differences; training runs do not flush (it would change the measured ‖∂L/∂h_t‖ there).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from rnnlab.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.data.base import DataSpec
from rnnlab.diagnostics.probe import GradientProbe, gate_grad_norms, spectral_radii
from rnnlab.model.auto_path import faster_path
from rnnlab.model.sequence_model import SequenceModel

CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}
HIDDEN, STEPS, BATCH = (64, 128), (100, 200, 400), 64
PATHS = ("fused", "unrolled", "auto", "measured")
EVERY = 50  # diagnostics.every_n_steps of the "auto + diag50" column
TARGETS = {"auto": 0.95, "auto_diag50": 0.9}
SPEC = DataSpec(name="adding", task="regression", readout="last", output_size=1, input_size=2)


def build(cell, hidden: int, impl: str) -> SequenceModel:
    """The model of one path; every path starts from the same seed (the same weights)."""
    torch.manual_seed(0)
    kwargs = {"reset_after": True} if cell is GRUCell else {}
    return SequenceModel(lambda i, h: cell(i, h, **kwargs), SPEC, hidden_size=hidden, impl=impl)


def step(model: SequenceModel, x: torch.Tensor, y: torch.Tensor, measure: bool) -> tuple[float, float]:
    """Seconds of one training step's forward (with the loss) and backward; ``measure``: as a measured step."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    probe = GradientProbe(model).attach() if measure else None
    loss = F.mse_loss(model(x)[0].squeeze(-1), y)
    if probe is not None:
        probe.stop_observing()
    middle = time.perf_counter()
    loss.backward()
    if probe is not None:
        probe.results()
        spectral_radii(model.recurrent)
        gate_grad_norms(model.recurrent)
        torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()]))
        probe.close()
    return middle - start, time.perf_counter() - middle


def bench_cell(name: str, hidden: int, steps: int, rounds: int, warmup: int) -> dict:
    """One row: every path of one cell at one shape, alternated within rounds."""
    x, y = torch.rand(BATCH, steps, 2), torch.rand(BATCH)
    models = {"fused": build(CELLS[name], hidden, "fused"), "unrolled": build(CELLS[name], hidden, "unrolled")}
    models["auto"] = models["measured"] = build(CELLS[name], hidden, "auto")
    fwd: dict[str, list[float]] = {p: [] for p in PATHS}
    bwd: dict[str, list[float]] = {p: [] for p in PATHS}
    for r in range(warmup + rounds):
        for path in PATHS[r % 4:] + PATHS[: r % 4]:
            f, b = step(models[path], x, y, measure=path == "measured")
            if r >= warmup:
                fwd[path].append(f)
                bwd[path].append(b)
    total = {p: [f + b for f, b in zip(fwd[p], bwd[p])] for p in PATHS}
    diag = [((EVERY - 1) * a + m) / EVERY for a, m in zip(total["auto"], total["measured"])]
    faster = min(("fused", "unrolled"), key=lambda p: statistics.median(total[p]))

    def ratio(ref: str, times: list[float]) -> float:
        return statistics.median([r / v for r, v in zip(total[ref], times)])

    def best(ref: str, times: list[float]) -> float:  # best against best: steadier under load
        return min(total[ref]) / min(times)

    return {"cell": name, "hidden_size": hidden, "seq_len": steps, "batch": BATCH, "rounds": rounds,
            **{f"{p}_ms": statistics.median(total[p]) * 1e3 for p in PATHS},
            **{f"{p}_forward_ms": statistics.median(fwd[p]) * 1e3 for p in PATHS},
            **{f"{p}_backward_ms": statistics.median(bwd[p]) * 1e3 for p in PATHS},
            "auto_diag50_ms": statistics.median(diag) * 1e3,
            "unrolled_vs_fused": ratio("fused", total["unrolled"]), "faster_path": faster,
            "auto_path": faster_path(CELLS[name], "cpu", hidden, steps),
            "auto_vs_faster": ratio(faster, total["auto"]), "auto_diag50_vs_faster": ratio(faster, diag),
            "unrolled_vs_fused_best": best("fused", total["unrolled"]), "auto_vs_faster_best": best(faster, total["auto"]),
            "auto_diag50_vs_faster_best": best(faster, diag)}


def run(hidden=HIDDEN, steps=STEPS, cells=tuple(CELLS), rounds: int = 10, warmup: int = 2,
        flush_denormal: bool = True) -> dict:
    rows, loads = [], []
    started = time.perf_counter()
    flushing = torch.set_flush_denormal(flush_denormal) and flush_denormal  # False where the CPU cannot
    try:
        for h in hidden:
            for t in steps:
                loads.append({"hidden_size": h, "seq_len": t, "loadavg_1m_before": os.getloadavg()[0]})
                for name in cells:
                    rows.append(r := bench_cell(name, h, t, rounds, warmup))
                    print(f"[claims] H={h} T={t} {name}: unrolled/fused {r['unrolled_vs_fused']:.2f}, auto "
                          f"{r['auto_vs_faster']:.2f}, auto+diag50 {r['auto_diag50_vs_faster']:.2f} of "
                          f"{r['faster_path']}", flush=True)
    finally:
        torch.set_flush_denormal(False)  # torch's default: the rest of the process computes as runs do
    return {"rows": rows, "flush_denormal": flushing, "loads": loads, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
            "cores": len(os.sched_getaffinity(0)), "seconds": time.perf_counter() - started, "targets": TARGETS,
            "every_n_steps": EVERY}


def markdown(result: dict) -> str:
    rows = result["rows"]
    loads = [entry["loadavg_1m_before"] for entry in result["loads"]]
    kept = "flushed to zero" if result.get("flush_denormal") else "kept"
    intro = (f"Generated by `python -m rnnlab.bench --claims` on {result['date']} ({result['torch']}, "
             f"{result['threads']} torch thread, {result['cores']} cores, shared: 1-minute load average "
             f"{min(loads):.2f}–{max(loads):.2f} before each shape), {rows[0]['rounds']} alternated rounds. "
             "One training step of the adding problem's model (batch 64, input 2): forward + MSE + backward. "
             "Speed ratios (> 1 faster) are medians of per-round ratios; `auto + diag50` = (49 auto + 1 "
             "measured step) / 50; (best): the ratio of the best times. GRU is the reset-after variant on every "
             f"path. Subnormal floats {kept} while timing (see rnnlab/bench/claims.py: at initialisation "
             "∂L/∂h_t becomes subnormal within ~200 steps, which slows every path alike).")
    header = ("| cell | H | T | fused ms | unrolled ms | unrolled / fused (best) | auto trains on | faster | "
              "auto / faster (best) | auto + diag50 / faster (best) | measured step ms |")
    lines = ["# The claims' shapes: fused, unrolled and auto, one thread", "", intro, "", header,
             "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['hidden_size']} | {r['seq_len']} | {r['fused_ms']:.1f} | "
                     f"{r['unrolled_ms']:.1f} | {r['unrolled_vs_fused']:.2f} ({r['unrolled_vs_fused_best']:.2f}) | "
                     f"{r['auto_path']} | {r['faster_path']} | {r['auto_vs_faster']:.2f} ({r['auto_vs_faster_best']:.2f}) | "
                     f"{r['auto_diag50_vs_faster']:.2f} ({r['auto_diag50_vs_faster_best']:.2f}) | {r['measured_ms']:.1f} |")
    auto_min = min(r["auto_vs_faster"] for r in rows)
    diag_min = min(r["auto_diag50_vs_faster"] for r in rows)
    verdict = (f"Targets: auto ≥ {TARGETS['auto']}× the faster path: lowest {auto_min:.2f} "
               f"({'met' if auto_min >= TARGETS['auto'] else 'NOT met'}); auto + diag50 ≥ {TARGETS['auto_diag50']}×: "
               f"lowest {diag_min:.2f} ({'met' if diag_min >= TARGETS['auto_diag50'] else 'NOT met'}).")
    lines += ["", verdict, "",
              "## Where the time goes: forward and backward, ms", "",
              "| cell | H | T | fused fwd | fused bwd | unrolled fwd | unrolled bwd | measured fwd | measured bwd |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['cell']} | {r['hidden_size']} | {r['seq_len']} | {r['fused_forward_ms']:.1f} | "
                     f"{r['fused_backward_ms']:.1f} | {r['unrolled_forward_ms']:.1f} | {r['unrolled_backward_ms']:.1f} | "
                     f"{r['measured_forward_ms']:.1f} | {r['measured_backward_ms']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m rnnlab.bench --claims", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks"), help="folder for claims_shapes.md/.json")
    parser.add_argument("--rounds", type=int, default=10, help="alternated rounds per row (after 2 warm-up rounds)")
    parser.add_argument("--hidden", default=",".join(map(str, HIDDEN)), help="comma list of hidden sizes")
    parser.add_argument("--seq-len", default=",".join(map(str, STEPS)), help="comma list of sequence lengths")
    parser.add_argument("--cells", default=",".join(CELLS), help=f"comma list from {','.join(CELLS)}")
    parser.add_argument("--keep-denormals", action="store_true", help="time with subnormal floats (not flushed)")
    args = parser.parse_args(argv)
    if unknown := [c for c in args.cells.split(",") if c not in CELLS]:
        parser.error(f"--cells: unknown {unknown}, choose from {','.join(CELLS)}")
    torch.set_num_threads(1)
    result = run(tuple(int(v) for v in args.hidden.split(",")), tuple(int(v) for v in args.seq_len.split(",")),
                 tuple(args.cells.split(",")), args.rounds, flush_denormal=not args.keep_denormals)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "claims_shapes.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "claims_shapes.md").write_text(markdown(result))
    print(f"[claims] wrote {args.out}/claims_shapes.md and .json in {result['seconds']:.0f} s")
    return result


if __name__ == "__main__":
    main()
