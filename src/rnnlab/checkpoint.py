"""A run directory is enough to rebuild its model: ``config.yaml`` (resolved) + ``model.pt``.

``model.pt`` holds only tensors and plain Python values (state dict, resolved config, data spec,
vocabulary), so it loads with ``torch.load(..., weights_only=True)``: no pickled objects.
"""

from __future__ import annotations

from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rnnlab.data.base import DataSpec
from rnnlab.model import SequenceModel

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
