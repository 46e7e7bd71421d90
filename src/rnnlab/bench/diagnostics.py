"""What the gradient diagnostics cost: training steps/s with ``diagnostics.every_n_steps`` off, 50 and 1.

``python -m rnnlab.bench.diagnostics`` trains the adding problem (T = 200, H = 128, batch 64, unrolled
GRU and RNN, Adam, clipping at 1 as in conf/trainer) through Lightning with and without the
:class:`~rnnlab.diagnostics.callback.GradientDiagnostics` callback and prints a Markdown table.

Timing: wall time from ``on_train_batch_start`` to ``on_train_batch_end`` (forward, backward,
diagnostics, optimizer step) of the steps after ``warmup``, excluding the last step (measured by the
callback once per run, like step 0); ``timed`` = 100 steps include exactly two measured steps at
every_n_steps = 50. No logger (the cost of sending to W&B is W&B's); the files written at the end of
training are outside the timed window. ``repeats`` > 1 keeps each setting's best run, which is what a
shared machine's noise calls for.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial

import lightning as L
import torch

from rnnlab.cells import GRUCell, LSTMCell, RNNCell
from rnnlab.data.adding import AddingDataModule
from rnnlab.diagnostics.callback import GradientDiagnostics
from rnnlab.model.sequence_model import SequenceModel
from rnnlab.training.lightning_module import SequenceLightningModule

CELLS = {"rnn": RNNCell, "gru": GRUCell, "lstm": LSTMCell}


class _StepTimer(L.Callback):
    def __init__(self, first: int, stop: int) -> None:
        self.first, self.stop, self.seconds, self.steps = first, stop, 0.0, 0
        self._t0 = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step - 1  # the step that just finished
        if self.first <= step < self.stop:
            self.seconds += time.perf_counter() - self._t0
            self.steps += 1


def steps_per_second(model: str, every_n_steps: int, seq_len: int = 200, hidden_size: int = 128,
                     batch_size: int = 64, timed: int = 100, warmup: int = 5, impl: str = "unrolled",
                     seed: int = 0) -> float:
    """Training steps/s of one configuration; ``every_n_steps`` = 0 runs without the callback."""
    L.seed_everything(seed, verbose=False)
    total = warmup + timed + 1
    data = AddingDataModule(seq_len, n_train=batch_size * total, n_val=batch_size, n_test=batch_size,
                            batch_size=batch_size, seed=seed)
    data.setup("fit")
    net = SequenceModel(CELLS[model], data.spec, name=model, hidden_size=hidden_size, impl=impl)
    module = SequenceLightningModule(net, optimizer=partial(torch.optim.Adam, lr=1e-3))
    timer = _StepTimer(warmup, warmup + timed)
    with tempfile.TemporaryDirectory() as tmp:
        callbacks = [timer] + ([GradientDiagnostics(every_n_steps, tmp)] if every_n_steps else [])
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=total, logger=False, callbacks=callbacks,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            limit_val_batches=0, num_sanity_val_steps=0, gradient_clip_val=1.0)
        trainer.fit(module, datamodule=data)
    return timer.steps / timer.seconds


def diagnostics_overhead(models: tuple[str, ...] = ("gru", "rnn"), settings: tuple[int, ...] = (0, 50, 1),
                         repeats: int = 1, **kwargs) -> list[dict]:
    """One row per (model, every_n_steps): ``steps_per_s`` (best of ``repeats``, settings interleaved) and
    ``slowdown`` relative to diagnostics off (0.05 = 5 % slower)."""
    best: dict[tuple[str, int], float] = {}
    for _ in range(repeats):
        for model in models:
            for every in settings:
                rate = steps_per_second(model, every, **kwargs)
                best[model, every] = max(best.get((model, every), 0.0), rate)
    rows = []
    for (model, every), rate in best.items():
        off = best.get((model, 0))
        rows.append({"model": model, "every_n_steps": every, "steps_per_s": rate,
                     "slowdown": None if off is None else 1 - rate / off})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| model | every_n_steps | steps/s | slowdown vs off |", "|---|---|---|---|"]
    for r in rows:
        slowdown = "–" if r["slowdown"] is None or r["every_n_steps"] == 0 else f"{r['slowdown']:+.1%}"
        lines.append(f"| {r['model']} | {r['every_n_steps'] or 'off'} | {r['steps_per_s']:.2f} | {slowdown} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Steps/s of training with gradient diagnostics off, every 50 "
                                     "and every step (adding problem, unrolled).")
    parser.add_argument("--models", default="gru,rnn")
    parser.add_argument("--settings", default="0,50,1", help="every_n_steps values; 0 = off")
    parser.add_argument("--seq-len", type=int, default=200)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--timed", type=int, default=100, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = diagnostics_overhead(tuple(args.models.split(",")), tuple(int(s) for s in args.settings.split(",")),
                                repeats=args.repeats, seq_len=args.seq_len, hidden_size=args.hidden_size,
                                batch_size=args.batch_size, timed=args.timed)
    print(f"adding problem, T={args.seq_len}, H={args.hidden_size}, B={args.batch_size}, unrolled, "
          f"{torch.get_num_threads()} torch threads, {args.timed} timed steps, best of {args.repeats}\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
