"""A run directory is enough to rebuild its model: ``config.yaml`` (resolved) + ``model.pt``.

``model.pt`` holds only tensors and plain Python values (state dict, resolved config, data spec,
vocabulary), so it loads with ``torch.load(..., weights_only=True)``: no pickled objects.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from rnnlab.data.base import DataSpec
from rnnlab.model.sequence_model import SequenceModel

MODEL_FILE = "model.pt"


def save_model(model: SequenceModel, cfg: DictConfig, path: str | Path) -> None:
    torch.save({"state_dict": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True),
                "spec": model.spec.to_dict(), "itos": model.spec.itos}, path)


def load_model(run_dir: str | Path, impl: str | None = None) -> tuple[SequenceModel, DictConfig]:
    """Rebuild a trained model from its run directory (optionally in the other implementation).

    Pass ``impl="unrolled"`` to inspect a fused model through our cells: the weights convert.
    """
    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} the directory of a finished rnnlab run?")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    cfg = OmegaConf.create(saved["config"])
    spec = DataSpec(**saved["spec"], itos=saved["itos"])
    if impl is not None:
        cfg.model.impl = impl
    model = instantiate(cfg.model, _partial_=True)(spec=spec)  # see train.py
    model.load_state_dict(saved["state_dict"])
    return model.eval(), cfg


# ---- training checkpoints and resume ------------------------------------------------------------
CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
# the config groups that decide what is trained: a checkpoint only resumes a run that agrees on them
MUST_MATCH = ("model", "data", "embeddings")


class StepCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint writing ``checkpoints/last.ckpt`` every N steps, and at the end of training.

    Only ``last.ckpt`` is kept (a 2 × 200 LSTM on a 12k vocabulary writes ≈27 MB a checkpoint);
    ``history=True`` (``checkpoint_history=true``) also keeps every ``stepNNNN.ckpt``.
    """

    def __init__(self, output_dir: Path, every_n_steps: int, history: bool = False) -> None:
        super().__init__(dirpath=Path(output_dir) / CHECKPOINT_DIR, filename="step{step}", save_last=True,
                         save_top_k=-1 if history else 0, every_n_train_steps=every_n_steps or None,
                         every_n_epochs=0, auto_insert_metric_name=False)

    def on_train_end(self, trainer, pl_module) -> None:
        super().on_train_end(trainer, pl_module)
        if not trainer.sanity_checking and trainer.global_step > 0:
            trainer.save_checkpoint(Path(self.dirpath) / LAST, weights_only=False)  # optimizer state too: resumable


def _differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}={a!r} (checkpoint) vs {b!r} (now)")
    return out


def resume_checkpoint(run_dir: str | Path, cfg: DictConfig) -> Path:
    """The checkpoint to continue ``run_dir`` from, checked against this run's config.

    Raises ValueError naming the problem and the fix: no checkpoint, an unreadable (corrupt or
    truncated) file, or a checkpoint of another model or data set.
    """
    path = Path(run_dir) / CHECKPOINT_DIR / LAST
    if not Path(run_dir).is_dir():
        raise ValueError(f"resume={run_dir}: no such run directory; pass the directory of the run to continue")
    if not path.is_file():
        raise ValueError(f"resume={run_dir}: no {CHECKPOINT_DIR}/{LAST} in it; runs write one every "
                         f"checkpoint_every_n_steps steps (was it 0, or did the run stop before the first?)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        saved_config = saved["rnnlab"]["config"]
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"resume={run_dir}: {path} is not a readable rnnlab checkpoint ({type(error).__name__}: "
                         f"{str(error).splitlines()[0][:200]}); it may be truncated: start a fresh run") from None
    current = OmegaConf.to_container(cfg, resolve=True)
    diffs = [d for group in MUST_MATCH
             for d in _differences(saved_config.get(group, {}), current.get(group, {}), f"{group}.")]
    if diffs:
        raise ValueError(f"resume={run_dir}: the checkpoint was trained with other settings: {'; '.join(diffs[:4])}"
                         f"; resume with the original run's options (see {run_dir}/config.yaml)")
    return path
