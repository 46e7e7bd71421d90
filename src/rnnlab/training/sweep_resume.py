"""Resume a sweep: ``skip_completed=true`` returns the saved results of a run that already finished.

Rerun the sweep's command with ``hydra.sweep.dir=<its directory> skip_completed=true``: a job whose
directory holds a ``results.json`` with status ``ok`` or ``diverged`` (a finding, which a rerun repeats)
and a ``config.yaml`` equal to this job's config is not trained again; ``failed`` runs, runs killed
before they wrote results, and runs whose config changed are trained again. A key added to the configs
since a run was recorded (:data:`ADDED_KEYS`) counts as the value it had before it existed; values the build
settles (a hidden size from ``model.param_budget``, an embedding size from pretrained vectors) are compared
through the keys that settle them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)
DONE = ("ok", "diverged")
# keys that change how a run is executed, not what it computes
IGNORED_KEYS = ("skip_completed", "progress_bar", "threads", "output_dir")


# keys added to the configs after runs were recorded, each with the value that reproduces the behaviour before
# it existed: a finished run whose config lacks the key counts as having run at that value (and only that)
ADDED_KEYS = {"data.every": 1, "model.cell.chrono_t_max": None}


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in IGNORED_KEYS}


def _without_settled_keys(config: dict, current: dict) -> dict:
    """``config`` without the values the build settles after this check and writes into the saved config:
    ``model.hidden_size`` when ``model.param_budget`` sets it, ``embeddings.dim`` (and its alias
    ``model.embedding_dim``) when pretrained vectors decide it. Both follow from the rest of the config."""
    config = {**config, "model": dict(config.get("model") or {}), "embeddings": dict(config.get("embeddings") or {})}
    if (current.get("model") or {}).get("param_budget") is not None:
        config["model"].pop("hidden_size", None)
    if (current.get("embeddings") or {}).get("source") == "pretrained":
        config["embeddings"].pop("dim", None)
        config["model"].pop("embedding_dim", None)
    return config


def _with_added_keys(saved: dict, current: dict) -> dict:
    """``saved`` with each :data:`ADDED_KEYS` key it lacks set to its value from before the key existed,
    where ``current`` has that section (so a data set without the key is left as it is)."""
    for dotted, before in ADDED_KEYS.items():
        *parents, key = dotted.split(".")
        old, new = saved, current
        for part in parents:
            old, new = old.get(part), new.get(part)
            if not isinstance(old, dict) or not isinstance(new, dict):
                break
        else:
            if key not in old and key in new:
                old[key] = before
    return saved


def completed_results(cfg: DictConfig, output_dir: str | Path) -> dict | None:
    """The saved results when ``output_dir`` holds a finished run of the same config, else None."""
    output_dir = Path(output_dir)
    try:
        results = json.loads((output_dir / "results.json").read_text())
        saved = OmegaConf.to_container(OmegaConf.load(output_dir / "config.yaml"))
    except Exception:  # noqa: BLE001 - missing, partial or unreadable files
        return None  # no finished run here (or an unreadable one): train
    if results.get("status") not in DONE:
        log.info("%s: previous run %s, training again", output_dir, results.get("status"))
        return None
    current = OmegaConf.to_container(cfg, resolve=True)
    saved = _without_settled_keys(_with_added_keys(saved, current), current)
    if _comparable(saved) != _comparable(_without_settled_keys(current, current)):
        log.info("%s: config changed since the finished run, training again", output_dir)
        return None
    log.info("%s: already %s, skipped (skip_completed=true)", output_dir, results["status"])
    return results
