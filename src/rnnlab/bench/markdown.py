"""The benchmark's Markdown table and the description of the machine it ran on (see :mod:`rnnlab.bench.speed`)."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from rnnlab.model.step_loop import COMPILE_BLOCK


def machine(device: torch.device) -> dict:
    """What ran the benchmark; ``file_stem`` names the output files (cpu, or cuda-<gpu>)."""
    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"device": device.type, "cpu": cpu, "cpu_cores": _cores(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d %H:%M"), "file_stem": "cpu"}
    if device.type == "cuda":
        gpu = torch.cuda.get_device_name(device)
        info.update(gpu=gpu, cudnn=torch.backends.cudnn.version(),
                    file_stem="cuda-" + "".join(c if c.isalnum() else "-" for c in gpu.lower()).strip("-"))
    return info


def _cores() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _f(value, fmt: str = "{:.2f}") -> str:
    return "n/a" if value is None else fmt.format(value)


INTRO = (
    "Ratios are the figure: within each round every implementation of a shape runs in turn, in one process; "
    "`× fused` is the median over rounds of its time over `torch.nn`'s time in the same round (min–max in "
    "brackets), `best/best` the ratio of the fastest rounds. Absolute times on a shared machine are noise.\n\n"
    "`unrolled` is the default fast path (our cells through `cell.scan`: all steps in one autograd Function "
    "with a hand-derived backward), which diagnostics steps run too; `step-loop` runs `cell.step` once per step "
    "with an autograd node each, as cells without a scan do (and `model.scan=false`); `step-loop+compiled` is "
    f"that loop with `model.compile=true` (compiled in blocks of {COMPILE_BLOCK} steps). GRU: unrolled `gru` is "
    "the textbook form, `gru (reset-after)` the form "
    "torch.nn.GRU computes; both are compared with the fused GRU.")
PEAK = ("Peak MiB: memory allocated during one forward + backward above what was allocated before (CPU: the "
        "allocator's running total as the profiler reports it; CUDA: the caching allocator's peak).")
COMPILE = (f"`model.compile=true` compiles the step loop in blocks of {COMPILE_BLOCK} steps of `cell.step`. "
           "That loop is "
           "how a cell without a scan (or `model.scan=false`) trains every step, so the saving per step is the "
           "eager loop's time minus the compiled one's, over a default run's 1,500 steps. The built-in cells "
           "train on their scans (`unrolled`), shown beside it. Compile s: the first call over an eager one, "
           "with an empty Inductor cache (the first run ever) and a warm one (later runs of a sweep). "
           "Break-even: compile seconds / seconds saved per step.")
NO_GPU = ("Not measured here (no GPU): cuDNN, the unrolled/fused ratio on a GPU and bf16 autocast; the same "
          "command on a CUDA machine adds those rows and writes `cuda-<gpu>.md`.")


def write_markdown(result: dict, path: Path) -> None:
    m = result["machine"]
    command = f"python -m rnnlab.bench{' --quick' if result['quick'] else ''}"
    lines = [f"# rnnlab speed benchmark: {m['device']}", "",
             (f"Machine: {m.get('gpu') or m['cpu']}; {m['cpu_cores']} CPU cores, {m['torch_threads']} torch threads; "
              f"torch {m['torch']}, Python {m['python']}; {m['date']}. Command: `{command}` "
              f"({result['seconds']:.0f} s)."), "", INTRO, "",
             "## Recurrent layer: forward + backward of one batch", "",
             "| shape | cell | impl | ms (median) | ms (min–max) | tokens/s | peak MiB | × fused | best/best |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['shape']} | {r['cell']} | {r['impl']} | {r['median_ms']:.2f} | "
                     f"{r['min_ms']:.2f}–{r['max_ms']:.2f} | {r['tokens_per_s']:,.0f} | {_f(r['peak_mib'], '{:.1f}')} "
                     f"| **{r['ratio_to_fused']:.2f}** ({r['ratio_min']:.2f}–{r['ratio_max']:.2f}) "
                     f"| {r['ratio_of_best']:.2f} |")
    lines += ["", PEAK]
    if result.get("compile"):
        lines += ["", "## `model.compile=true`: cost and saving at the default run's shape", "", COMPILE, "",
                  ("| cell | compile s (cold / warm) | step loop ms | compiled ms | speed vs step loop | "
                   "unrolled (scan) ms | speed vs scan | break-even steps (cold / warm) | pays in a default run "
                   "without a scan (cold / warm) |"),
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for c in result["compile"]:
            pays = " / ".join("yes" if c["pays_for_itself"][k] else "no" for k in ("cold", "warm"))
            lines.append(f"| {c['cell']} | {c['compile_s']:.1f} / {c['compile_warm_s']:.1f} | "
                         f"{c['step_loop_ms']:.2f} | {c['compiled_ms']:.2f} | {c['speedup']:.2f}× | "
                         f"{c['unrolled_ms']:.2f} | {c['vs_unrolled']:.2f}× | {_f(c['break_even_steps'], '{:.0f}')} / "
                         f"{_f(c['break_even_steps_warm'], '{:.0f}')} | {pays} |")
    if result.get("framework"):
        f = result["framework"]
        lines += ["", "## Framework overhead", "",
                  (f"`train(cfg)` ({f['config']}, {f['steps']} steps, logger=none, diagnostics off) against a bare "
                   "PyTorch loop with the same model, optimiser, clipping and batches in memory; steps/s over the "
                   "training steps only (forward to optimiser step), from each run's median step time; the median "
                   f"over {f['repeats']} alternating pairs."),
                  "", "| | median step ms | tokens/s (mean over training steps) | whole run, s |",
                  "|---|---:|---:|---:|",
                  (f"| train(cfg) | {_f(f.get('train_step_ms_median'), '{:.2f}')} | {f['train_tokens_per_s']:,.0f} "
                   f"| {f['train_wall_s']:.1f} |"),
                  (f"| bare loop | {_f(f.get('bare_step_ms_median'), '{:.2f}')} | {f['bare_tokens_per_s']:,.0f} "
                   f"| {f['bare_wall_s']:.1f} |"), "",
                  (f"**steps/s ratio framework / bare: {f['steps_per_s_ratio']:.3f}** "
                   f"({f['ratio_min']:.3f}–{f['ratio_max']:.3f}; target ≥ {f['target']}); from mean step times "
                   f"{_f(f.get('mean_ratio'), '{:.3f}')} ({_f(f.get('mean_ratio_min'), '{:.3f}')}–"
                   f"{_f(f.get('mean_ratio_max'), '{:.3f}')}). The whole run also "
                   "starts up, validates, tests and saves; the bare loop does none of that.")]
    if result.get("diagnostics"):
        d = result["diagnostics"]
        lines += ["", "## Diagnostics overhead", "",
                  f"The same `train(cfg)`, {d['steps']} steps, median of {d['repeats']}:", "",
                  "| diagnostics.every_n_steps | tokens/s | relative to off |", "|---|---:|---:|"]
        lines += [f"| {k}{' (off)' if k == '0' else ''} | {v:,.0f} | {d['relative_to_off'][k]:.3f} |"
                  for k, v in d["tokens_per_s"].items()]
    if m["device"] != "cuda":
        lines += ["", NO_GPU]
    path.write_text("\n".join(lines) + "\n")
