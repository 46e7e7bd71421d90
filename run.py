"""Train one configuration: ``python run.py model=gru``; sweep: ``python run.py -m model=rnn,lstm,gru``."""

import logging
import math
import os
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from rnnlab.training.config_check import ConfigError, check_config, composition_error
from rnnlab.training.train import train


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    single = not (HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN)
    if single:  # a bad value: one line, before anything is built (in a sweep, train records it and goes on)
        try:
            check_config(cfg)
        except ConfigError as error:
            forget_run_dir(Path(HydraConfig.get().runtime.output_dir))
            sys.exit(f"error: {error}")
    results = train(cfg, caller_prints_error=single)
    if results["status"] == "failed" and single:
        sys.exit(f"error: {results['error']}")  # one line, exit code 1; the traceback is in results.json
    if results["status"] == "diverged":
        return math.inf  # the worst objective: hyper-parameter sweepers steer away from it
    return results["metrics"].get("val/loss")  # the objective for hyper-parameter sweepers


def forget_run_dir(run_dir: Path) -> None:
    """Remove the folder Hydra made for a run that stopped at the check (it holds only ``.hydra/`` and the
    log), so that no empty run is left for a sweep's report to meet; its date folder too, if now empty."""
    if not run_dir.is_dir() or {p.name for p in run_dir.iterdir()} - {".hydra", "run.log"}:
        return
    logging.shutdown()  # closes run.log
    shutil.rmtree(run_dir)
    if run_dir.parent.is_dir() and not any(run_dir.parent.iterdir()):
        run_dir.parent.rmdir()


def cli() -> None:
    """``main()``, with Hydra's composition errors (a typo in a key, an unknown option) as one line."""
    full_trace = os.environ.get("HYDRA_FULL_ERROR") == "1"  # as Hydra reads it: only "1" is on
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises them to us instead of printing a stack
    try:
        main()
    except Exception as error:
        message = None if full_trace else composition_error(error)
        if message is None:
            raise
        sys.exit(f"error: {message}")


if __name__ == "__main__":
    cli()
