"""Training callbacks: throughput timing, divergence detection, validation once an epoch, the validation
curve, early stopping."""

from __future__ import annotations

import csv
import math
import statistics
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason
from lightning.pytorch.trainer.states import TrainerFn


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


class ValidationCurve(L.Callback):
    """Appends one row per validation to ``<run dir>/val_curve.csv``: ``step,seconds,val/...``.

    ``seconds`` counts training time since the fit started, without validation (or the sanity check),
    so curves against seconds compare cells, not evaluation costs. The count is kept in checkpoints:
    a resumed run continues its file, dropping rows written after the checkpoint it resumes from
    (they are redone). Reads ``trainer.callback_metrics`` only: the training trajectory is untouched.
    """

    FILE = "val_curve.csv"

    def __init__(self, output_dir) -> None:
        self.path = Path(output_dir) / self.FILE
        self.seconds = 0.0
        self._since: float | None = None  # perf_counter when the current training stretch began
        self._columns: list[str] | None = None

    def _fitting(self, trainer) -> bool:
        return trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking

    def on_train_start(self, trainer, pl_module) -> None:
        self._since = time.perf_counter()
        if not trainer.is_global_zero or not self.path.exists():
            return
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))
        if rows:
            self._columns = rows[0][2:]
            kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= trainer.global_step]
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerows(kept)

    def _pause(self) -> None:
        if self._since is not None:
            self.seconds += time.perf_counter() - self._since
            self._since = None

    def on_validation_start(self, trainer, pl_module) -> None:
        if self._fitting(trainer):
            self._pause()

    def on_validation_end(self, trainer, pl_module) -> None:
        if not self._fitting(trainer):
            return
        self._since = time.perf_counter()
        if not trainer.is_global_zero:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        fresh = self._columns is None or not self.path.exists()
        if fresh:
            self._columns = sorted(metrics)
        with self.path.open("w" if fresh else "a", newline="") as f:
            writer = csv.writer(f)
            if fresh:
                writer.writerow(["step", "seconds", *self._columns])
            writer.writerow([trainer.global_step, f"{self.seconds:.4f}",
                             *(repr(metrics[c]) if c in metrics else "" for c in self._columns)])

    def on_train_end(self, trainer, pl_module) -> None:
        self._pause()

    def state_dict(self) -> dict:
        running = time.perf_counter() - self._since if self._since is not None else 0.0
        return {"seconds": self.seconds + running}

    def load_state_dict(self, state_dict: dict) -> None:
        self.seconds = float(state_dict.get("seconds", 0.0))


class ThresholdStopping(EarlyStopping):
    """Lightning's EarlyStopping that also says at which step it stopped, and why (through
    ``callback_metrics``, which come back from ddp_spawn workers, like :class:`ThroughputTimer`'s numbers)."""

    REASONS = tuple(EarlyStoppingReason)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stopped_step: int | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if self.stopped_step is None and self.stopping_reason != EarlyStoppingReason.NOT_STOPPED:
            self.stopped_step = trainer.global_step

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.stopped_step is not None:
            trainer.callback_metrics["perf/early_stop_step"] = torch.tensor(float(self.stopped_step))
            trainer.callback_metrics["perf/early_stop_reason"] = torch.tensor(
                float(self.REASONS.index(self.stopping_reason)))

    def read(self, trainer) -> dict:
        """results.json's ``early_stopping`` block, right after the fit."""
        m = trainer.callback_metrics
        stopped = "perf/early_stop_step" in m
        return {"stopped": stopped, "step": int(m["perf/early_stop_step"]) if stopped else None,
                "threshold": self.stopping_threshold, "monitor": self.monitor,
                "reason": self.REASONS[int(m["perf/early_stop_reason"])].name.lower() if stopped else None}


EARLY_STOPPING_KEYS = ("monitor", "mode", "stopping_threshold", "threshold_fraction_of_baseline", "patience",
                       "min_delta", "restore_best")  # restore_best: rnnlab.training.best_weights


def build_early_stopping(settings, baseline_loss: float | None) -> ThresholdStopping | None:
    """``early_stopping: {monitor, mode, stopping_threshold | threshold_fraction_of_baseline, patience}``.

    ``threshold_fraction_of_baseline: 0.01`` stops once the monitor is ≤ 1 % of the data's baseline loss
    (adding, copy: "solved"); ``patience: null`` stops on the threshold only. All three null: off.
    """
    settings = dict(settings or {})
    if unknown := sorted(set(settings) - set(EARLY_STOPPING_KEYS)):
        raise ValueError(f"early_stopping.{unknown[0]} is not a key; the keys are {', '.join(EARLY_STOPPING_KEYS)}")
    if all(settings.get(k) is None for k in ("stopping_threshold", "threshold_fraction_of_baseline", "patience")):
        return None  # off
    threshold, fraction = settings.get("stopping_threshold"), settings.get("threshold_fraction_of_baseline")
    if threshold is not None and fraction is not None:
        raise ValueError("early_stopping: set stopping_threshold or threshold_fraction_of_baseline, not both")
    if fraction is not None:
        if not baseline_loss:
            raise ValueError(f"early_stopping.threshold_fraction_of_baseline={fraction} but this data set has no "
                             "baseline loss: use early_stopping.stopping_threshold")
        threshold = float(fraction) * baseline_loss
    patience = settings.get("patience")
    return ThresholdStopping(monitor=settings.get("monitor") or "val/loss", mode=settings.get("mode") or "min",
                             stopping_threshold=threshold, min_delta=settings.get("min_delta") or 0.0,
                             patience=10**9 if patience is None else int(patience), check_on_train_epoch_end=False)


class EpochValidation(L.Callback):
    """In a run bounded by epochs (``trainer.max_epochs=N``, ``max_steps`` -1), clips
    ``trainer.val_check_interval`` (in steps) to the epoch: an interval longer than the epoch would
    otherwise skip validation during a short training (``trainer.max_epochs=1``) altogether. A run bounded
    by steps keeps counting the interval across epochs (tiny data sets have epochs of one batch)."""

    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning has turned val_check_interval into val_check_batch by now (fit loop's setup_data)
        batches = trainer.num_training_batches
        if trainer.max_steps == -1 and isinstance(trainer.val_check_interval, int) and 0 < batches < float("inf"):
            trainer.val_check_batch = min(trainer.val_check_batch, batches)
