"""What machine a run trained on: the same seed gives the same numbers on one kind of CPU, not across kinds
(oneDNN and MKL pick kernels per instruction set, and thousands of updates amplify the last bit), so
results.json and a bundle's RUN.md name the CPU model, torch's CPU capability and the threads.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else the platform's processor string, else None."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def machine_facts() -> dict:
    """{cpu, cpu_capability, cpu_count, threads, torch, gpu}: results.json ``machine``."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__, "gpu": gpu}


def machine_line() -> str:
    """One line for RUN.md: CPU model and capability, cores, GPU, OS, Python and torch versions."""
    facts = machine_facts()
    gpu = f", GPU {facts['gpu']}" if facts["gpu"] else ""
    return (f"{facts['cpu'] or platform.machine()} ({facts['cpu_capability']}), {facts['cpu_count']} CPU cores{gpu}, "
            f"{platform.platform()}, Python {platform.python_version()}, torch {facts['torch']}")
