"""``model.param_budget=N``: the hidden size that brings a model closest to N parameters.

Cells are compared at a matched parameter count (Chung et al. 2014: ≈20K parameters, LSTM 36 /
GRU 46 / tanh 100 units on music), not at a matched hidden size: an LSTM holds four gate blocks
(i, f, c̃, o), a GRU three (r, z, h̃), a tanh RNN one, so at equal H the LSTM has ~4/3 the GRU's weights.

The count is the real model's: every candidate hidden size is built (``SequenceModel`` with the data's
input/output sizes, embeddings, layers, directions) and its parameters counted, so whatever the model
holds (embeddings, both bias vectors, the head) is in it. Parameters grow with H, so a bisection finds
the closest size in a few builds.
"""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rnnlab.data.base import DataSpec
from rnnlab.model.sequence_model import SequenceModel

TOLERANCE = 0.03  # the closest size must land within ±3 % of the budget
MAX_HIDDEN = 1 << 16


def model_factory(model_cfg: DictConfig | dict):
    """``(spec, hidden_size) -> SequenceModel`` from the ``model`` config."""
    settings = model_cfg if isinstance(model_cfg, dict) else OmegaConf.to_container(model_cfg, resolve=True)

    def build(spec: DataSpec, hidden_size: int | None = None) -> SequenceModel:
        extra = {} if hidden_size is None else {"hidden_size": hidden_size}
        return instantiate(settings, _partial_=True)(spec=spec, **extra)

    return build


def count_parameters(model_cfg, spec: DataSpec, hidden_size: int) -> int:
    return model_factory(model_cfg)(spec, hidden_size).num_parameters


def hidden_size_for_budget(model_cfg, spec: DataSpec, budget: int) -> tuple[int, int]:
    """(hidden size, its parameter count) closest to ``budget``; ValueError naming the key if none is within
    ±3 %."""
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ValueError(f"model.param_budget must be a positive integer (parameters), got {budget!r}")
    build = model_factory(model_cfg)

    def params(h: int) -> int:
        with torch.random.fork_rng(devices=[]):  # trial builds leave the seeded stream to the real model
            return build(spec, h).num_parameters

    low, high = 1, 2
    while params(high) < budget and high < MAX_HIDDEN:
        low, high = high, high * 2
    while high - low > 1:  # params(low) < budget <= params(high), or low = 1 already above it
        middle = (low + high) // 2
        low, high = (middle, high) if params(middle) < budget else (low, middle)
    best = min((low, high), key=lambda h: abs(params(h) - budget))
    count = params(best)
    if abs(count - budget) > TOLERANCE * budget:
        smallest = params(1)
        why = (f"hidden_size 1 already has {smallest} (embeddings and head included)" if smallest > budget
               else f"the closest, hidden_size {best}, has {count}")
        raise ValueError(f"model.param_budget={budget} cannot be met within ±{TOLERANCE:.0%} for "
                         f"model {model_cfg.get('name')!r} on {spec.name!r}: {why}; raise model.param_budget, "
                         "or set it to null and choose model.hidden_size")
    return best, count


def build_model(model_cfg: DictConfig, spec: DataSpec) -> tuple[SequenceModel, dict]:
    """The model of ``cfg.model``; with ``param_budget`` set, sized to it and ``model_cfg.hidden_size`` updated
    (so the saved config records the size the budget chose). Trial builds do not move the random stream:
    a budgeted run starts from the same weights as a run given that hidden size directly.

    Returns (model, results.json's ``param_budget`` block: {"budget", "hidden_size", "params"}).
    """
    budget = model_cfg.get("param_budget")
    if budget is not None:
        model_cfg.hidden_size = hidden_size_for_budget(model_cfg, spec, budget)[0]
    model = model_factory(model_cfg)(spec)
    return model, {"budget": budget, "hidden_size": model_cfg.hidden_size, "params": model.num_parameters}
