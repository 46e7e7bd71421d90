"""Shared test helpers: compose the real Hydra configs and shrink them to a few steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# No test may need the network or an account: W&B writes real offline runs.
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.pop("WANDB_API_KEY", None)

# Tiny models run fastest on one thread, and OpenMP threads that spin-wait for a busy core slow tiny
# ops by 50x (measured: 300 steps in 2.2 s on 1 thread, 110 s on 2 threads beside another process).
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"  # for the subprocesses tests start

# A few steps of everything: tiny data, tiny model, no progress bar.
TINY = [
    "trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2", "trainer.log_every_n_steps=1", "progress_bar=false",
    "model.hidden_size=8", "embeddings.dim=8",
]


def options(group: str) -> list[str]:
    """Every selectable option of a config group: each file in it (shared bases live outside, conf/model_base.yaml)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_config(overrides: list[str] | None = None, output_dir: Path | None = None,
                   tiny: bool = True) -> DictConfig:
    """The real config, composed as run.py would, shrunk by TINY unless ``tiny=False``."""
    overrides = list(overrides or [])
    if tiny:
        overrides = TINY + overrides
    if output_dir is not None:
        overrides.append(f"output_dir={output_dir}")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.fixture
def make_config(tmp_path):
    """make_config(["model=lstm", ...]) -> a tiny composed config writing under tmp_path/run."""

    def make(overrides: list[str] | None = None, tiny: bool = True, name: str = "run") -> DictConfig:
        return compose_config(overrides, tmp_path / name, tiny)

    return make


# Tests marked `serial` time something (a cache hit, a busy neighbour) and need the cores to themselves: with
# pytest-xdist's workers (pyproject's addopts) they are left out of the workers' share and run one by one in
# a second pytest after the parallel tests, from the same command, which fails if either part fails.
def _parallel(config) -> bool:
    return bool(getattr(config.option, "numprocesses", 0)) and not config.option.markexpr


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput") and not config.option.markexpr:
        serial = [item for item in items if item.get_closest_marker("serial")]
        if serial:
            config.hook.pytest_deselected(items=serial)
            items[:] = [item for item in items if not item.get_closest_marker("serial")]


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput") or not _parallel(config) or exitstatus not in (0, 1, 5):
        return
    import subprocess
    import sys

    print("\n\nserial tests (they time something), after the parallel ones:", flush=True)
    serial = subprocess.run([sys.executable, "-m", "pytest", *config.invocation_params.args, "-n", "0",
                             "-m", "serial", "-p", "no:cacheprovider"], cwd=config.invocation_params.dir,
                            check=False)
    if serial.returncode not in (0, 5):  # 5: none of the selected tests is serial
        session.exitstatus = 1
    elif serial.returncode == 0 and exitstatus == 5:  # only serial tests were selected, and they passed
        session.exitstatus = 0
