"""``early_stopping.restore_best=true``: the run ends with the weights of its best validation.

Early stopping in the literature (Chung et al. 2014, on music) reports the test score of the model that
was best on validation; Lightning's EarlyStopping only stops, patience validations after that best. This
callback keeps a copy of the weights at every improvement of the monitor (in memory: one copy of the
parameters) and loads it when the fit ends, so validation, test and ``model.pt`` are of the best model.
``checkpoints/last.ckpt`` stays the last state, from which a resumed run goes on training; the copy
travels in it, so a resumed run still ends on the best weights seen before and after the interruption.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn


class BestWeights(L.Callback):
    """Copies the weights whenever ``monitor`` improves on validation; loads the best copy at the fit's end."""

    def __init__(self, monitor: str = "val/loss", mode: str = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"early_stopping.mode must be min or max, got {mode!r}")
        self.monitor, self.mode = monitor, mode
        self.best_score: float | None = None
        self.best_step: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    def _better(self, score: float) -> bool:
        if not math.isfinite(score):
            return False
        if self.best_score is None:
            return True
        return score < self.best_score if self.mode == "min" else score > self.best_score

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[self.monitor])
        if self._better(score):
            self.best_score, self.best_step = score, trainer.global_step
            self.best_state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.best_state is not None:
            pl_module.model.load_state_dict(self.best_state)

    def read(self) -> dict:
        """results.json's ``early_stopping`` additions: which validation the final weights are from."""
        return {"restored_best": self.best_state is not None, "best_step": self.best_step,
                "best_score": self.best_score}

    def state_dict(self) -> dict:
        return {"best_score": self.best_score, "best_step": self.best_step, "best_state": self.best_state}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_score, self.best_step = state_dict.get("best_score"), state_dict.get("best_step")
        self.best_state = state_dict.get("best_state")
