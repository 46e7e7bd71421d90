"""Resume a sweep: ``skip_completed=true`` returns the saved results of a run that already finished.

Rerun the sweep's command with ``hydra.sweep.dir=<its directory> skip_completed=true``: a job whose
directory holds a ``results.json`` with status ``ok`` or ``diverged`` (a finding, which a rerun repeats)
and a ``config.yaml`` equal to this job's config is not trained again; ``failed`` runs, runs killed
before they wrote results, and runs whose config changed are trained again.
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


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in IGNORED_KEYS}


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
    if _comparable(saved) != _comparable(OmegaConf.to_container(cfg, resolve=True)):
        log.info("%s: config changed since the finished run, training again", output_dir)
        return None
    log.info("%s: already %s, skipped (skip_completed=true)", output_dir, results["status"])
    return results
