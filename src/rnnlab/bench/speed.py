"""Speed benchmark: ``python -m rnnlab.bench [--quick] [--out benchmarks/]`` (``--claims``: the claims' shapes,
:mod:`rnnlab.bench.claims`).

For every shape × cell × implementation it times forward + backward of the recurrent layer on one
batch and reports the median over rounds (with min and max), tokens/s, peak memory and the **ratio
to fused on the same shape**. Implementations: ``fused`` (``torch.nn``; cuDNN on a GPU),
``unrolled`` (our cells, the fast path: ``cell.scan``, which diagnostics steps run too), ``step-loop``
(our cells one ``step`` at a time, an autograd node per step: what cells without a scan run),
``step-loop+compiled`` (the same in compiled blocks of steps
with ``compile=True``, i.e. ``model.compile=true``) and, on CUDA, bf16 autocast. Within each round every
implementation of a shape runs in turn and the ratio is the median of the per-round ratios, so a
shared machine's noise hits both sides alike: ratios are the figure, absolute times are not.
It then measures what ``compile=True`` costs and saves at the default run's shape, and (see
:mod:`rnnlab.bench.overhead`) the framework and diagnostics overhead of a real ``train(cfg)`` run.
Writes ``<out>/<device>.md`` (:mod:`rnnlab.bench.markdown`) and ``<out>/<device>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from rnnlab.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.model.recurrent import RecurrentLayer


@dataclass(frozen=True)
class Shape:
    name: str
    batch: int
    steps: int
    input_size: int
    hidden: int
    layers: int = 1


SHAPES = [Shape("B64 T100 H128", 64, 100, 128, 128),
          Shape("B32 T500 H256", 32, 500, 256, 256),
          Shape("LM: B20 T35 H650 ×2 layers", 20, 35, 650, 650, 2)]  # Zaremba et al. 2014, medium
QUICK_SHAPES = [Shape("B4 T8 H16", 4, 8, 16, 16)]
DEFAULT_RUN = Shape("adding, B64 T50 I2 H128", 64, 50, 2, 128)  # what `python run.py` trains
# "gru" unrolled is the textbook form (what model=gru model.impl=unrolled runs); fused GRU is always
# torch's reset-after form, which "gru (reset-after)" computes unrolled: the same maths as fused.
CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell, "gru (reset-after)": partial(GRUCell, reset_after=True)}
IMPLS = ("fused", "unrolled", "step-loop", "step-loop+compiled")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(cell, shape: Shape, impl: str, device: torch.device) -> RecurrentLayer:
    """The layer for an implementation name; every one starts from the same seed."""
    torch.manual_seed(0)
    kind = "fused" if impl.startswith("fused") else "unrolled"
    layer = RecurrentLayer(cell, shape.input_size, shape.hidden, shape.layers, impl=kind,
                           compile="+compiled" in impl).to(device)
    if impl.startswith("step-loop"):
        layer.step_loop = True  # cell.step once per step, one autograd node each
    return layer


def fwd_bwd(layer: RecurrentLayer, x: torch.Tensor, bf16: bool = False) -> float:
    """Seconds for one forward + backward (loss = sum of the outputs), gradients reset outside the timing."""
    layer.zero_grad(set_to_none=True)
    _sync(x.device)
    start = time.perf_counter()
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        out, _ = layer(x)
    out.float().sum().backward()
    _sync(x.device)
    return time.perf_counter() - start


def peak_memory_mib(layer: RecurrentLayer, x: torch.Tensor, bf16: bool = False) -> float | None:
    """Peak memory allocated during one forward + backward, above what was allocated before it.

    CUDA: the caching allocator's peak. CPU: the largest running total of the CPU allocator as the
    profiler sees it (``profile_memory=True``); None where the profiler does not report it.
    """
    if x.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
        fwd_bwd(layer, x, bf16)
        return (torch.cuda.max_memory_allocated(x.device) - base) / 2**20
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fwd_bwd(layer, x, bf16)
        peak, stack = 0, list(prof.profiler.kineto_results.experimental_event_tree())
        while stack:
            event = stack.pop()
            stack.extend(event.children)
            if type(event.extra_fields).__name__ == "_ExtraFields_Allocation":
                peak = max(peak, event.extra_fields.total_allocated)
        return peak / 2**20 if peak else None
    except Exception:  # noqa: BLE001 - a private profiler API: report "not measured" rather than fail
        return None


def bench_shape(shape: Shape, cells: dict, impls: list[str], device: torch.device, rounds: int,
                warmup: int) -> list[dict]:
    """Rows for one shape: every cell × impl, taking turns within each round."""
    x = torch.randn(shape.batch, shape.steps, shape.input_size, device=device)
    rows = []
    for cell_name, cell in cells.items():
        names = [i for i in impls if not (cell_name.startswith("gru (") and i.startswith("fused"))]
        layers, first_call = {}, {}
        for impl in names:
            layers[impl] = build(cell, shape, impl, device)
            first_call[impl] = fwd_bwd(layers[impl], x, "bf16" in impl)  # compiles when compiled
            for _ in range(warmup):
                fwd_bwd(layers[impl], x, "bf16" in impl)
        if "fused" not in layers:  # gru (reset-after) is compared with the fused GRU of its shape
            layers["fused"] = build(CELLS["gru"], shape, "fused", device)
            fwd_bwd(layers["fused"], x)
        times: dict[str, list[float]] = {k: [] for k in layers}
        for _ in range(rounds):
            for impl, layer in layers.items():
                times[impl].append(fwd_bwd(layer, x, "bf16" in impl))
        for impl in names:
            ratios = [t / f for t, f in zip(times[impl], times["fused"])]
            med = statistics.median(times[impl])
            rows.append({
                "shape": shape.name, "batch": shape.batch, "seq_len": shape.steps, "input_size": shape.input_size,
                "hidden_size": shape.hidden, "num_layers": shape.layers, "cell": cell_name, "impl": impl,
                "median_ms": med * 1e3, "min_ms": min(times[impl]) * 1e3, "max_ms": max(times[impl]) * 1e3,
                "tokens_per_s": shape.batch * shape.steps / med,
                "peak_mib": peak_memory_mib(layers[impl], x, "bf16" in impl),
                "ratio_to_fused": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                "ratio_of_best": min(times[impl]) / min(times["fused"]),
                "first_call_s": first_call[impl], "rounds": rounds})
        print(f"[bench]   {cell_name}: " + ", ".join(f"{r['impl']} {r['ratio_to_fused']:.2f}×"
                                                    for r in rows if r["cell"] == cell_name
                                                    and r["shape"] == shape.name), flush=True)
    return rows


def compile_cost(device: torch.device, rounds: int, cells: dict, shape: Shape = DEFAULT_RUN,
                 run_steps: int = 1500) -> list[dict]:
    """What ``compile=True`` costs and saves at the default run's shape. It compiles the step loop (in blocks
    of steps), which is how a cell without a scan (or ``model.scan=false``) trains every step: the saving
    per step is measured against the eager step loop, and the scan, which the built-in cells train on,
    is shown beside it. Cost: the first call over a normal one, with Inductor's caches empty (a fresh
    cache folder: the first run ever) and warm (after ``torch._dynamo.reset()``: what the next run of a
    sweep pays)."""
    x = torch.randn(shape.batch, shape.steps, shape.input_size, device=device)
    out = []
    for cell_name, cell in cells.items():
        eager, fast = build(cell, shape, "step-loop", device), build(cell, shape, "unrolled", device)
        fwd_bwd(eager, x)
        fwd_bwd(fast, x)
        eager_call = fwd_bwd(eager, x)
        with tempfile.TemporaryDirectory(prefix="rnnlab-inductor-") as cache, _inductor_cache(cache):
            torch._dynamo.reset()
            compiled = build(cell, shape, "step-loop+compiled", device)
            cold = fwd_bwd(compiled, x) - eager_call  # tracing, code generation, C++/Triton compilation
            torch._dynamo.reset()  # forget the compiled code in memory; the cache folder stays
            compiled = build(cell, shape, "step-loop+compiled", device)
            warm = fwd_bwd(compiled, x) - eager_call
        fwd_bwd(compiled, x)
        te, tc, tf = [], [], []
        for _ in range(rounds):
            te.append(fwd_bwd(eager, x))
            tc.append(fwd_bwd(compiled, x))
            tf.append(fwd_bwd(fast, x))
        saving = statistics.median(te) - statistics.median(tc)  # per training step of a cell without a scan
        row = {"cell": cell_name, "shape": shape.name, "compile_s": cold, "compile_warm_s": warm,
               "step_loop_ms": statistics.median(te) * 1e3, "compiled_ms": statistics.median(tc) * 1e3,
               "unrolled_ms": statistics.median(tf) * 1e3,
               "speedup": statistics.median([e / c for e, c in zip(te, tc)]),
               "vs_unrolled": statistics.median([f / c for f, c in zip(tf, tc)]), "run_steps": run_steps,
               "break_even_steps": cold / saving if saving > 0 else None,
               "break_even_steps_warm": warm / saving if saving > 0 else None,
               "pays_for_itself": {"cold": saving > 0 and cold <= run_steps * saving,
                                   "warm": saving > 0 and warm <= run_steps * saving}}
        out.append(row)
        print(f"[bench]   {cell_name}: compile {cold:.1f} s (warm cache {warm:.1f} s), compiled step loop "
              f"{row['speedup']:.2f}× the eager one's speed, {row['vs_unrolled']:.2f}× the scan's", flush=True)
    return out


def _inductor_cache(directory: str):
    """Inductor's cache folder set to ``directory`` for the block (a private torch helper; a no-op without it)."""
    try:
        from torch._inductor.runtime.cache_dir_utils import temporary_cache_dir
    except ImportError:
        return contextlib.nullcontext()
    return temporary_cache_dir(directory)


def main(argv: list[str] | None = None) -> dict:
    from rnnlab.bench.markdown import machine, write_markdown
    from rnnlab.bench.overhead import overhead_section

    argv = sys.argv[1:] if argv is None else list(argv)
    if "--claims" in argv:  # the claims' shapes, every path: its own options (rnnlab.bench.claims)
        from rnnlab.bench.claims import main as claims_main

        return claims_main([a for a in argv if a != "--claims"])

    parser = argparse.ArgumentParser(prog="python -m rnnlab.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one tiny shape, few rounds, no compile (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"), help="folder for <device>.md/.json")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per row (default 15; quick 3)")
    parser.add_argument("--impls", default=None, help=f"comma list from {','.join(IMPLS)}")
    parser.add_argument("--cells", default=None, help=f"comma list from {','.join(CELLS)}")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-overhead", action="store_true", help="skip the train() overhead runs")
    parser.add_argument("--overhead-steps", type=int, default=None, help="training steps per overhead run")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rounds = args.rounds or (3 if args.quick else 15)
    impls = tuple(args.impls.split(",")) if args.impls else (("fused", "unrolled") if args.quick else IMPLS)
    cells = {k: CELLS[k] for k in args.cells.split(",")} if args.cells else CELLS
    if unknown := [i for i in impls if i not in IMPLS]:
        parser.error(f"unknown impl {unknown}: choose from {IMPLS}")
    if device.type == "cuda":  # mixed precision is a GPU matter
        impls += tuple(f"{i} bf16" for i in impls if i in ("fused", "unrolled"))
    started = time.perf_counter()
    result = {"device": device.type, "machine": machine(device), "quick": args.quick, "rows": []}
    for shape in QUICK_SHAPES if args.quick else SHAPES:
        print(f"[bench] {shape.name}", flush=True)
        result["rows"] += bench_shape(shape, cells, list(impls), device, rounds, warmup=1 if args.quick else 3)
    if "step-loop+compiled" in impls:
        print(f"[bench] compile cost at the default run's shape ({DEFAULT_RUN.name})", flush=True)
        result["compile"] = compile_cost(device, rounds, {k: v for k, v in cells.items() if "(" not in k})
    if not args.no_overhead:
        result.update(overhead_section(args.quick, args.overhead_steps))
    result["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / result["machine"]["file_stem"]
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, stem.with_suffix(".md"))
    print(f"[bench] wrote {stem}.md and {stem}.json in {result['seconds']:.0f} s")
    return result

