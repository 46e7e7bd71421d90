"""Callbacks the training loop always uses: throughput timing, divergence detection, validation once an epoch."""

from __future__ import annotations

import math
import statistics
import time

import lightning as L
import torch


class ThroughputTimer(L.Callback):
    """Counts training tokens (valid steps × sequences) and the wall time spent in training steps.

    Also keeps each step's time, for the median step time: on a shared machine a burst of load moves
    the mean, not the median (the speed benchmark compares medians). ``loop_seconds`` adds the time
    between consecutive steps (loading the next batch, Lightning's loop, checkpoints) but not validation:
    what a hand-written loop's wall clock per batch measures (word_language_model's ms/batch).
    """

    def __init__(self) -> None:
        self.tokens = 0
        self.step_times: list[float] = []
        self.step_seconds = 0.0
        self.fit_seconds = self.loop_seconds = 0.0
        self._t0 = self._fit0 = 0.0
        self._last_end: float | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        self._fit0 = time.perf_counter()

    def on_fit_end(self, trainer, pl_module) -> None:
        self.fit_seconds += time.perf_counter() - self._fit0
        # callback_metrics travel back to the main process from ddp_spawn workers; attributes don't
        trainer.callback_metrics.update({"perf/tokens": torch.tensor(float(self.tokens)),
                                         "perf/step_seconds": torch.tensor(self.step_seconds),
                                         "perf/step_median": torch.tensor(statistics.median(self.step_times)
                                                                          if self.step_times else 0.0),
                                         "perf/fit_seconds": torch.tensor(self.fit_seconds),
                                         "perf/loop_seconds": torch.tensor(self.loop_seconds),
                                         "perf/steps": torch.tensor(float(trainer.global_step)),
                                         "perf/epochs": torch.tensor(trainer.global_step
                                                                     / max(trainer.num_training_batches, 1))})

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()
        if self._last_end is not None:
            self.loop_seconds += self._t0 - self._last_end

    def on_validation_start(self, trainer, pl_module) -> None:
        self._last_end = None  # the gap holding a validation is not training time

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._last_end = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.step_times.append(time.perf_counter() - self._t0)
        self.step_seconds += self.step_times[-1]
        self.loop_seconds += self.step_times[-1]
        self._last_end = time.perf_counter()
        lengths = batch.get("lengths")
        self.tokens += int(lengths.sum()) if lengths is not None else batch["x"].shape[0] * batch["x"].shape[1]

    @staticmethod
    def read(trainer) -> dict:
        """{"steps", "epochs", "fit_seconds", "tokens_per_second", "loop_tokens_per_second",
        "step_seconds_median"} of the last fit, wherever it ran."""
        m = trainer.callback_metrics
        if "perf/tokens" not in m:
            return {"steps": 0, "epochs": 0, "fit_seconds": 0.0, "tokens_per_second": None,
                    "loop_tokens_per_second": None, "step_seconds_median": None}
        tokens, seconds = float(m["perf/tokens"]), float(m["perf/step_seconds"])
        # tokens are counted on rank 0 only: the whole job trains world_size times as many
        tokens *= trainer.world_size
        return {"steps": int(m["perf/steps"]), "epochs": round(float(m["perf/epochs"]), 3),
                "fit_seconds": float(m["perf/fit_seconds"]), "tokens_per_second": tokens / seconds if seconds else None,
                "loop_tokens_per_second": tokens / float(m["perf/loop_seconds"]) if seconds else None,
                "step_seconds_median": float(m["perf/step_median"]) or None}


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
        # every rank must agree to stop, or DDP waits forever on the rank that stopped
        if trainer.strategy.reduce_boolean_decision(not math.isfinite(value), all=False):
            if self.diverged_at is None:
                self.diverged_at = trainer.global_step
            trainer.should_stop = True
        else:
            self.last_finite_loss = value

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.diverged_at is not None:  # see ThroughputTimer.on_fit_end
            trainer.callback_metrics["perf/diverged_at"] = torch.tensor(float(self.diverged_at))
            trainer.callback_metrics["perf/last_finite_loss"] = torch.tensor(float(self.last_finite_loss or "nan"))

    @staticmethod
    def read(trainer) -> dict | None:
        """{"step", "last_finite_loss"} when the last fit diverged, else None."""
        m = trainer.callback_metrics
        if "perf/diverged_at" not in m:
            return None
        return {"step": int(m["perf/diverged_at"]), "last_finite_loss": float(m["perf/last_finite_loss"])}


class EpochValidation(L.Callback):
    """Clips ``trainer.val_check_interval`` (in steps) to the epoch: an interval longer than the epoch
    would otherwise skip validation during a short training (``trainer.max_epochs=1``) altogether."""

    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning has turned val_check_interval into val_check_batch by now (fit loop's setup_data)
        batches = trainer.num_training_batches
        if isinstance(trainer.val_check_interval, int) and 0 < batches < float("inf"):
            trainer.val_check_batch = min(trainer.val_check_batch, batches)
