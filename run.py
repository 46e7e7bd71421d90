"""Train one configuration: ``python run.py model=gru``; sweep: ``python run.py -m model=rnn,lstm,gru``."""

import math
import os
import sys

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
            sys.exit(f"error: {error}")
    results = train(cfg)
    if results["status"] == "failed" and single:
        sys.exit(f"error: {results['error']}")  # one line, exit code 1; the traceback is in results.json
    if results["status"] == "diverged":
        return math.inf  # the worst objective: hyper-parameter sweepers steer away from it
    return results["metrics"].get("val/loss")  # the objective for hyper-parameter sweepers


def cli() -> None:
    """``main()``, with Hydra's composition errors (a typo in a key, an unknown option) as one line."""
    full_trace = bool(os.environ.get("HYDRA_FULL_ERROR"))
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
