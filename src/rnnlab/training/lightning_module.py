"""The LightningModule: one shared ``_step(batch, stage)``; loss and metrics chosen by the data's task.

- regression: MSE loss, ``<stage>/mse``;
- classification: cross-entropy, ``<stage>/acc`` (per sequence, or per step when ``readout="all"``);
- multilabel: Bernoulli negative log-likelihood summed over labels, averaged over valid steps
  (the per-frame NLL of polyphonic music, Chung et al. 2014), ``<stage>/nll``;
- language_modeling: cross-entropy per token, ``<stage>/ppl``; the recurrent state is carried
  across the contiguous chunks of an epoch (detached between steps: truncated BPTT) and reset at
  the start of every epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchmetrics import MeanMetric, MeanSquaredError, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from rnnlab.data.base import IGNORE_INDEX, DataSpec
from rnnlab.model.sequence_model import SequenceModel

STAGES = ("train", "val", "test")


class LossPerplexity(MeanMetric):
    """exp(mean cross-entropy per token), from the loss the step computed anyway: torchmetrics' Perplexity
    takes the (B, T, V) logits and computes a second log-softmax over all of them every step, a cost that
    grows with the vocabulary. Update with the batch's mean loss, weight = its tokens."""

    def compute(self) -> Tensor:
        return super().compute().exp()


def _metrics(spec: DataSpec) -> MetricCollection:
    if spec.task == "regression":
        return MetricCollection({"mse": MeanSquaredError()})
    if spec.task == "classification":
        return MetricCollection({"acc": MulticlassAccuracy(spec.output_size, average="micro",
                                                           ignore_index=IGNORE_INDEX)})
    if spec.task == "multilabel":
        return MetricCollection({"nll": MeanMetric()})
    return MetricCollection({"ppl": LossPerplexity()})


def frame_nll(logits: Tensor, y: Tensor, lengths: Tensor | None) -> Tensor:
    """Σ_labels Bernoulli NLL per step (B, T), averaged over the valid steps -> scalar."""
    nll = F.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(-1)  # (B, T)
    if lengths is None:
        return nll.mean()
    valid = torch.arange(nll.shape[1], device=nll.device)[None, :] < lengths.to(nll.device)[:, None]
    return (nll * valid).sum() / valid.sum()


class SequenceLightningModule(L.LightningModule):
    """Trains a :class:`SequenceModel` on the task its data spec names."""

    def __init__(self, model: SequenceModel, optimizer: Callable[..., torch.optim.Optimizer],
                 scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
                 run_config: dict | None = None, lr_anneal: float | None = None) -> None:
        super().__init__()
        self.run_config = run_config or {}
        self.model, self.spec = model, model.spec
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.lr_anneal = lr_anneal
        # keyed "<stage>_metrics": a ModuleDict key "train" would shadow nn.Module.train
        self.metrics = nn.ModuleDict({f"{s}_metrics": _metrics(self.spec).clone(prefix=f"{s}/") for s in STAGES})
        self.train_loss = MeanMetric()
        self._carried: dict[str, tuple[Tensor, ...] | None] = {s: None for s in STAGES}
        self._training_rng: Tensor | None = None  # torch's RNG state at the last training step's end
        self.clip_norm: tuple[int, Tensor] | None = None  # (step, gradient norm before clipping): the last clipped

    def forward(self, x: Tensor, lengths: Tensor | None = None, state=None):
        return self.model(x, lengths, state)

    def _step(self, batch: dict[str, Tensor], stage: str) -> Tensor:
        x, y, lengths = batch["x"], batch["y"], batch.get("lengths")
        language_modeling = self.spec.task == "language_modeling"
        state = self._carried[stage] if language_modeling else None
        if state is not None and state[0].shape[1] != x.shape[0]:
            state = None  # a batch of another size cannot continue these streams
        pred, state = self.model(x, lengths, state)  # (B, O) or (B, T, O)
        if language_modeling:
            self._carried[stage] = tuple(s.detach() for s in state)
        if self.spec.task == "regression":
            loss = F.mse_loss(pred, y)
        elif self.spec.task == "multilabel":
            loss = frame_nll(pred, y, lengths)
        else:
            flat_pred, flat_y = (pred.flatten(0, 1), y.flatten()) if pred.dim() == 3 else (pred, y)
            loss = F.cross_entropy(flat_pred, flat_y, ignore_index=IGNORE_INDEX)
            pred, y = flat_pred, flat_y
        B = x.shape[0]
        metrics = self.metrics[f"{stage}_metrics"]
        if self.spec.task == "multilabel":
            metrics.update(loss.detach(), weight=B)
        elif language_modeling:
            metrics.update(loss.detach(), weight=(y != IGNORE_INDEX).sum())
        else:
            metrics.update(pred.detach(), y)
        if stage == "train":
            self.train_loss.update(loss.detach(), weight=B)  # the epoch mean, exact, whatever is logged
            if not self._logger_writes_this_step():
                return loss
        # Metric objects: Lightning computes them at the epoch's end from all the updates above
        self.log(f"{stage}/loss", loss if stage == "train" else loss.detach(), prog_bar=True,
                 on_step=stage == "train", on_epoch=stage != "train", batch_size=B, sync_dist=stage != "train")
        if stage == "train":
            self.log("train/loss_epoch", self.train_loss, on_step=False, on_epoch=True)
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=B)
        return loss

    def _logger_writes_this_step(self) -> bool:
        """Whether Lightning writes logged values this training step (every ``trainer.log_every_n_steps``).

        ``self.log`` costs ~1.5 ms a call however little is logged (measured: loss + metrics were 3.5 ms of
        a 27 ms step of the default run), so training steps in between log nothing; what they compute
        still reaches the epoch values through the Metric objects.
        """
        connector = getattr(self.trainer, "_logger_connector", None)
        return True if connector is None else bool(connector.should_update_logs)

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        self._training_rng = torch.get_rng_state()  # the backward pass draws nothing: the step's end
        return loss

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    # ---- nothing between training steps may move training's random stream -------------------------
    # Each validation run (the sanity check included) starts a DataLoader iterator, which draws its base
    # seed from the global torch RNG, so dropout masks after it differed from a run that validated less
    # often (and a run resumed at an epoch's end started one more). Every training step therefore starts
    # from the state the previous one ended with (or the fit, or its checkpoint, started with):
    # validation, checkpoints, diagnostics and loaders in between cannot change the trajectory.
    def on_fit_start(self) -> None:
        self._training_rng = torch.get_rng_state()

    def on_train_batch_start(self, batch, batch_idx) -> None:
        torch.set_rng_state(self._training_rng)

    def _reset_carry(self, stage: str) -> None:
        self._carried[stage] = None

    def on_train_epoch_start(self) -> None:
        self._reset_carry("train")

    def on_validation_epoch_start(self) -> None:
        self._reset_carry("val")

    def on_test_epoch_start(self) -> None:
        self._reset_carry("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Make the checkpoint self-describing (plain values only: it loads with weights_only=True)."""
        checkpoint["rnnlab"] = {"config": self.run_config, "spec": self.spec.to_dict(), "itos": self.spec.itos,
                                "torch_rng_state": torch.get_rng_state() if self._training_rng is None
                                else self._training_rng}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "torch_rng_state" in checkpoint.get("rnnlab", {}):  # dropout continues its random stream
            torch.set_rng_state(checkpoint["rnnlab"]["torch_rng_state"])

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Lightning's clipping; clipping by norm also keeps the total norm it measured before clipping,
        ``clip_norm = (global_step, norm)``, so the gradient diagnostics need not read every gradient again."""
        if gradient_clip_val and (gradient_clip_algorithm or "norm") == "norm":
            params = self.trainer.precision_plugin.main_params(optimizer)
            self.clip_norm = (self.trainer.global_step, torch.nn.utils.clip_grad_norm_(params, gradient_clip_val))
            return
        super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters())
        if self.lr_anneal is not None:  # word_language_model's rule: lr × factor when val/loss is not a new best
            anneal = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=self.lr_anneal, patience=0,
                                                                threshold=0.0)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": anneal, "monitor": "val/loss",
                                                             "interval": "epoch", "frequency": 1}}
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer), "interval": "step"}}
