"""One training update of ours beside a plain torch loop's, in one process, alternated update by update.

wlm_compare.py times whole runs, one after another: on this shared machine two runs of the same arm differ
by ±10 % from round to round, more than the gaps its targets ask about. Here both updates run in one
process on one thread, on the same batch, alternately, the order swapped every pair (ABBA: whoever runs
second finds warmer caches: with a fixed order the second ran about 5 % faster, measured on a loaded
machine), so the machine's load falls on both
alike and each pair gives one ratio; the table reports the median ratio and its quartiles.

- ours: the model ``run.py`` builds from word_language_model's setting (benchmarks/wlm_compare.py's SETTING:
  2 × 200, embeddings 200, dropout 0.2, SGD lr 20, clip 0.25, bptt 35, batch 20), our loss, the gradient
  clipped by norm and the optimiser step as ``run.py`` configures them;
- plain: the same architecture written directly on torch.nn (embedding, dropout, a time-major
  ``nn.LSTM``/``nn.GRU``, dropout, linear, log-softmax + NLL), clipped, updated by hand (p -= lr · grad):
  the loop word_language_model and most tutorials write.

The vocabulary sizes are the two corpora of wlm_compare.md (every 5th verse: 5,001 with ``<eos>``; every
verse: its training words + ``<eos>``); the tokens are random (a step's cost does not depend on them).
Lightning's own part of an update (its loop, hooks, our callbacks, checkpoints) is what this leaves out; the
``--profile`` run measures it: a real ``run.py`` epoch under Lightning's SimpleProfiler, the share of
the batch loop's time that is not the model's forward, loss and backward.

    python benchmarks/wlm_step_pair.py                  # writes benchmarks/wlm_step_pair.{json,md}
    python benchmarks/wlm_step_pair.py --profile /tmp/wlm_compare/fifth   # + the Lightning share, that corpus
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch
from torch import nn
from torch.nn import functional as F
from wlm_compare import QUIET, SETTING

from rnnlab.training.machine import machine_line

VOCABS = {"fifth": 5001, "full": 12077}  # wlm_compare.md's corpora: 5,000 words + <eos>; 12,076 words + <eos>
ARMS = (("lstm", "fused"), ("gru", "fused"), ("lstm", "unrolled"))  # wlm_compare's targets
B, T = 20, 35


def setting(key: str) -> str:
    return next(o.split("=", 1)[1] for o in SETTING if o.startswith(f"{key}="))


class PlainLM(nn.Module):
    """Embedding → dropout → time-major torch RNN → dropout → linear, as the textbook loop builds it."""

    def __init__(self, cell: str, vocab: int, size: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.embed, self.drop = nn.Embedding(vocab, size), nn.Dropout(dropout)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](size, size, layers, dropout=dropout)
        self.out = nn.Linear(size, vocab)

    def forward(self, x, state):  # x (T, B)
        h, state = self.rnn(self.drop(self.embed(x)), state)
        return F.log_softmax(self.out(self.drop(h)), dim=-1), state


def ours(cell: str, impl: str, vocab: int):
    """Our model and optimiser for the setting, built as run.py builds them, and one update of theirs:
    update(x, y, state) -> (state, loss)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from rnnlab.data.base import DataSpec
    from rnnlab.model.param_budget import build_model

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=["data=ptb", f"model={cell}", f"model.impl={impl}", *SETTING])
    spec = DataSpec(name="ptb", task="language_modeling", readout="all", output_size=vocab, vocab_size=vocab)
    model, _ = build_model(cfg.model, spec)
    model.train()
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    clip = float(cfg.trainer.gradient_clip_val)

    def update(x, y, state):
        optimizer.zero_grad()
        pred, state = model(x, None, state)
        loss = F.cross_entropy(pred.flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        return tuple(s.detach() for s in state), loss.detach()

    update.model = model
    return update


def plain(cell: str, vocab: int):
    """The textbook loop's update on PlainLM (time-major batches): update(x, y, state) -> (state, loss)."""
    size, lr, clip = int(setting("model.hidden_size")), float(setting("optimizer.lr")), float(
        setting("trainer.gradient_clip_val"))
    model = PlainLM(cell, vocab, size, int(setting("model.num_layers")), float(setting("model.dropout")))
    model.train()

    def update(x, y, state):
        model.zero_grad()
        out, state = model(x.t(), state)
        loss = F.nll_loss(out.flatten(0, 1), y.t().flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-lr)
        return (tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()), loss.detach()

    update.model = model
    return update


def pair(cell: str, impl: str, vocab: int, updates: int, warmup: int = 5) -> dict:
    """``updates`` pairs, the order swapped every pair; ratio = plain's time / ours (> 1: ours is faster)."""
    torch.manual_seed(0)
    mine, theirs = ours(cell, impl, vocab), plain(cell, vocab)
    x, y = torch.randint(0, vocab, (B, T)), torch.randint(0, vocab, (B, T))
    state = {"ours": None, "plain": None}
    steps = {"ours": mine, "plain": theirs}
    seconds: dict[str, list[float]] = {"ours": [], "plain": []}
    for i in range(warmup + updates):
        for who in (("ours", "plain") if i % 2 == 0 else ("plain", "ours")):
            start = time.perf_counter()
            state[who] = steps[who](x, y, state[who])[0]
            if i >= warmup:
                seconds[who].append(time.perf_counter() - start)
    ratios = [p / o for o, p in zip(seconds["ours"], seconds["plain"])]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return {"cell": cell, "impl": impl, "vocab": vocab, "updates": updates,
            "ours_ms": 1000 * statistics.median(seconds["ours"]), "plain_ms": 1000 * statistics.median(seconds["plain"]),
            "ratio_median": statistics.median(ratios), "ratio_q1": q1, "ratio_q3": q3}


PROFILE_ROW = re.compile(r"^\|\s*(.+?)\s*\|\s*([\d.e-]+)\s*\|\s*(\d+)\s*\|\s*([\d.e-]+)\s*\|")


def lightning_share(corpus: Path, work: Path, cell: str = "lstm", impl: str = "fused") -> dict:
    """One run.py epoch on ``corpus`` under SimpleProfiler: of the batch loop's seconds, the share outside the
    model's forward + loss (training_step) and backward (Lightning's loop, clipping, the optimiser, hooks)."""
    out = work / f"profile_{cell}_{impl}"
    shutil.rmtree(out, ignore_errors=True)  # SimpleProfiler appends to its file: one run's report only
    profiler = f"+trainer.profiler={{_target_:lightning.pytorch.profilers.SimpleProfiler,dirpath:{out},filename:simple}}"
    subprocess.run([sys.executable, str(ROOT / "run.py"), "data=ptb", f"data.root={corpus}", f"model={cell}",
                    f"model.impl={impl}", *SETTING, *QUIET, "diagnostics.every_n_steps=0", profiler,
                    f"output_dir={out}"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    totals: dict[str, float] = {}
    for line in (out / "fit-simple.txt").read_text().splitlines():
        if m := PROFILE_ROW.match(line.replace("\t", "")):
            name = re.sub(r"\{.*\}", "", m.group(1))  # a callback's repr with its settings: its class name
            totals[name] = totals.get(name, 0.0) + float(m.group(4))
    batch = totals["run_training_batch"]
    model = totals["[Strategy]SingleDeviceStrategy.training_step"] + totals["[Strategy]SingleDeviceStrategy.backward"]
    steps = json.loads((out / "results.json").read_text())["steps"]
    return {"cell": cell, "impl": impl, "corpus": str(corpus), "steps": steps, "batch_seconds": batch,
            "model_seconds": model, "outside_share": 1 - model / batch,
            "outside_ms_per_update": 1000 * (batch - model) / steps,
            "largest_outside": sorted(((k, v) for k, v in totals.items() if k.startswith(("[Callback]", "[LightningModule]"))
                                       and "optimizer_step" not in k), key=lambda kv: -kv[1])[:5]}


def write_table(result: dict, path: Path) -> None:
    lines = ["# One update of ours beside a plain torch loop's, alternated in one process", "",
             (f"Setting: word_language_model's ({' '.join(SETTING)}), one thread, random tokens; {result['updates']} "
              f"pairs an arm after 5 warm-up pairs, the order swapped every pair. Ratio = the plain loop's time / "
              f"ours for the same pair (> 1: ours is faster); median and quartiles over the pairs. Machine: "
              f"{result['machine']}; load before / after: {result['load'][0]} / {result['load'][1]}; "
              f"wall time {result['seconds'] / 60:.1f} min."), "",
             "| corpus (vocabulary) | cell | ours | ours ms | plain ms | plain / ours: median (quartiles) |",
             "|---|---|---|---:|---:|---:|"]
    for name, runs in result["pairs"].items():
        for r in runs:
            lines.append(f"| {name} ({r['vocab']:,}) | {r['cell'].upper()} | {r['impl']} | {r['ours_ms']:.1f} | "
                         f"{r['plain_ms']:.1f} | {r['ratio_median']:.3f} ({r['ratio_q1']:.3f}–{r['ratio_q3']:.3f}) |")
    if profile := result.get("profile"):
        lines += ["", (f"Lightning's part ({profile['cell'].upper()} {profile['impl']}, one run.py epoch of "
                       f"{profile['steps']} updates under SimpleProfiler, corpus {Path(profile['corpus']).name}): "
                       f"{100 * profile['outside_share']:.1f} % of the batch loop's time "
                       f"({profile['outside_ms_per_update']:.2f} ms an update) is outside the model's forward, "
                       "loss and backward: Lightning's loop and hooks, our callbacks and checkpoints, and the gradient "
                       "clipping and optimiser step that the plain loop does too. The largest named parts:"), ""]
        lines += [f"- {name}: {seconds:.2f} s" for name, seconds in profile["largest_outside"]]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=60, help="pairs per arm")
    parser.add_argument("--corpora", nargs="+", choices=list(VOCABS), default=list(VOCABS))
    parser.add_argument("--profile", type=Path, help="a PTB-format corpus folder (wlm_compare's export) to profile")
    parser.add_argument("--work", type=Path, default=Path("/tmp/wlm_step_pair"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load, started = os.getloadavg()[0], time.perf_counter()
    pairs = {}
    for name in args.corpora:
        pairs[name] = [pair(cell, impl, VOCABS[name], args.updates) for cell, impl in ARMS]
        for r in pairs[name]:
            print(name, r, flush=True)
    result = {"updates": args.updates, "pairs": pairs, "machine": machine_line(),
              "profile": lightning_share(args.profile, args.work) if args.profile else None}
    result.update(load=[round(load, 2), round(os.getloadavg()[0], 2)], seconds=time.perf_counter() - started)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "wlm_step_pair.json").write_text(json.dumps(result, indent=2) + "\n")
    write_table(result, args.out / "wlm_step_pair.md")


if __name__ == "__main__":
    main()
