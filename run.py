"""Train one configuration: ``python run.py model=gru``; sweep: ``python run.py -m model=rnn,lstm,gru``."""

import math
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from rnnlab.training.train import train


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    results = train(cfg)
    if results["status"] == "failed" and HydraConfig.get().mode != RunMode.MULTIRUN:
        sys.exit(f"error: {results['error']}")  # one line, exit code 1; the traceback is in results.json
    if results["status"] == "diverged":
        return math.inf  # the worst objective: hyper-parameter sweepers steer away from it
    return results["metrics"].get("val/loss")  # the objective for hyper-parameter sweepers


if __name__ == "__main__":
    main()
