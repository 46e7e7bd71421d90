"""Config resolvers: packing sweep jobs onto one machine, and the trainer's step limit.

``${rnnlab.packed_jobs:2}``: jobs at once; ``${rnnlab.job_device:}``: this job's GPU, round-robin;
``${rnnlab.steps_unless_epochs:1500,${.max_epochs}}``: 1500 steps unless an epoch count is set.

Registered when ``rnnlab`` is imported (run.py imports it before Hydra composes; launcher workers
import it when they unpickle the task), so configs may use them anywhere.
The CPU thread budget needs no resolver: joblib's loky workers start with
``OMP_NUM_THREADS = cores // n_jobs`` unless the parent's environment sets it;
``threads=N`` wins over both.
"""

from __future__ import annotations

import os

from omegaconf import OmegaConf


def visible_gpus() -> int:
    """CUDA devices this process may use (honours CUDA_VISIBLE_DEVICES); 0 without CUDA."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def packed_jobs(per_gpu: int = 2) -> int:
    """How many sweep jobs run at once: ``per_gpu`` × visible GPUs, else one per usable CPU core."""
    gpus = visible_gpus()
    return int(per_gpu) * gpus if gpus else usable_cores()


def job_device() -> int | list[int]:
    """Lightning ``devices`` for this job: ``[job.num % GPUs]`` in a multirun with GPUs, else 1.

    Round-robin over the visible GPUs, so k × GPUs jobs running at once put k on each device.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    gpus = visible_gpus()
    if not gpus or not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return 1
    return [int(HydraConfig.get().job.num) % gpus]


def steps_unless_epochs(steps: int, max_epochs: int | None) -> int:
    """Lightning ``max_steps``: ``steps`` when no epoch count is set (``max_epochs`` null or -1), else -1 (no
    step limit), so ``trainer.max_epochs=1`` alone trains exactly one epoch."""
    return int(steps) if max_epochs in (None, -1) else -1


def register() -> None:
    for name, function in (("rnnlab.packed_jobs", packed_jobs), ("rnnlab.job_device", job_device),
                           ("rnnlab.steps_unless_epochs", steps_unless_epochs)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)


register()
