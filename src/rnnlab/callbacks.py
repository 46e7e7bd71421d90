"""Callbacks the training loop always uses: throughput timing and divergence detection."""

from __future__ import annotations

import math
import time

import lightning as L
import torch


class ThroughputTimer(L.Callback):
    """Counts training tokens (valid steps × sequences) and the wall time spent in training steps."""

    def __init__(self) -> None:
        self.tokens = 0
        self.step_seconds = 0.0
        self.fit_seconds = 0.0
        self._t0 = self._fit0 = 0.0

    def on_fit_start(self, trainer, pl_module) -> None:
        self._fit0 = time.perf_counter()

    def on_fit_end(self, trainer, pl_module) -> None:
        self.fit_seconds += time.perf_counter() - self._fit0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.step_seconds += time.perf_counter() - self._t0
        lengths = batch.get("lengths")
        self.tokens += int(lengths.sum()) if lengths is not None else batch["x"].shape[0] * batch["x"].shape[1]

    @property
    def tokens_per_second(self) -> float | None:
        return self.tokens / self.step_seconds if self.step_seconds > 0 else None


class DivergenceGuard(L.Callback):
    """Stops training cleanly at the first non-finite training loss and remembers where."""

    def __init__(self) -> None:
        self.diverged_at: int | None = None
        self.last_finite_loss: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if math.isfinite(value):
            self.last_finite_loss = value
        elif self.diverged_at is None:
            self.diverged_at = trainer.global_step
            trainer.should_stop = True
