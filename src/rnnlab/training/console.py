"""What a run prints: a progress bar counted in training steps, and no library chatter.

A run's terminal shows one line saying what is trained, the progress bar and the summary. The rest stays
available: ``hydra.verbose=lightning`` brings Lightning's messages back to the terminal,
``hydra.verbose=rnnlab`` W&B's (``hydra.verbose=true`` both, and every library's debug lines), and
``run.log`` in the run directory keeps every log record (conf/hydra/job_logging/rnnlab.yaml).
"""

from __future__ import annotations

import logging
import warnings

from lightning.pytorch.callbacks import RichProgressBar

# Loggers whose INFO records are status chatter on the console ("GPU available: False", the
# "💡 Tip" for another logger, "`Trainer.fit` stopped: `max_steps=…` reached"); warnings still show.
CHATTY_LIBRARIES = ("lightning", "lightning_fabric", "pytorch_lightning")


def verbose(library: str) -> bool:
    """True when ``hydra.verbose`` asked for DEBUG on everything (``hydra.verbose=true``) or on this library
    (``hydra.verbose=lightning``, ``hydra.verbose=[lightning,rnnlab]``)."""
    return logging.getLogger().isEnabledFor(logging.DEBUG) or logging.getLogger(library).isEnabledFor(logging.DEBUG)


FILE_ONLY = {"file_only": True}  # log.error(..., extra=FILE_ONLY): run.log only, the terminal says it elsewhere


class LibraryChatterFilter(logging.Filter):
    """Console-handler filter (conf/hydra/job_logging/rnnlab.yaml): drops the chatty libraries' records below
    WARNING unless ``hydra.verbose`` names them; the file handler has no filter, so run.log keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "file_only", False):
            return False
        if record.levelno >= logging.WARNING or record.name.split(".")[0] not in CHATTY_LIBRARIES:
            return True
        return verbose(record.name.split(".")[0])


def ignore_known_warnings() -> None:
    """Silence, by exact message, warnings a user can do nothing about."""
    # Lightning 2.6's utilities/_pytree.py uses torch's LeafSpec, which torch 2.9 deprecates: Lightning's to fix
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


class StepProgressBar(RichProgressBar):
    """Lightning's rich progress bar, counted in training steps out of ``trainer.max_steps`` across epochs
    (Lightning's own restarts every epoch and reads ``Epoch 4/-2`` when only max_steps bounds training),
    without W&B's run id (``v_num``); the loss (``train/loss``, logged every ``log_every_n_steps``) and
    the speed in it/s (steps per second) stay."""

    def _counts_steps(self) -> bool:
        return self.trainer.max_steps is not None and self.trainer.max_steps > 0

    @property
    def total_train_batches(self) -> int | float:
        return self.trainer.max_steps if self._counts_steps() else super().total_train_batches

    def _get_train_description(self, current_epoch: int) -> str:
        if not self._counts_steps():
            return super()._get_train_description(current_epoch)
        return f"{'train (steps)':{len(self.validation_description)}}"

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self._counts_steps() and self.train_progress_bar_id is not None:
            return  # one bar for the whole run: not reset at each epoch
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._counts_steps():
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if not self.is_disabled and self.train_progress_bar_id is None:
            self._initialize_train_progress_bar_id()
        self._update(self.train_progress_bar_id, trainer.global_step)
        self._update_metrics(trainer, pl_module)
        self.refresh()

    def get_metrics(self, trainer, pl_module) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the logger's run id, not a number to watch
        return metrics
