"""Framework and diagnostics overhead, measured on real runs (part of ``python -m rnnlab.bench``).

Framework: ``rnnlab.training.train.train(cfg)`` on the real config (composed with Hydra's compose API, as
``run.py`` would; ``logger=none``, no progress bar, diagnostics off) against a bare PyTorch loop with
the same model, optimiser, gradient clipping and batches, the data already in memory. Both count the
same window per step, forward + loss + backward + clipping + optimiser step (the run's
``tokens_per_second`` in results.json counts the time from ``on_train_batch_start`` to
``on_train_batch_end``), so the ratio of steps/s excludes start-up, validation and testing; the whole
run's wall time is reported beside it. Runs alternate (framework, bare, framework, …). The figure is
the ratio of median step times (bare / framework) per pair, then the median over pairs: on a shared
machine a burst of load moves a run's mean step time, rarely its median. The ratio of means is
reported beside it.

Diagnostics: the same ``train(cfg)`` with ``diagnostics.every_n_steps`` = 0 (off), 50 and 1.
"""

from __future__ import annotations

import contextlib
import io
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

CONF = Path(__file__).resolve().parents[3] / "conf"
QUICK = ["data.n_train=512", "data.n_val=64", "data.n_test=64", "model.hidden_size=16",
         "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]


def compose_config(overrides: list[str]) -> DictConfig:
    """The real config, composed as ``run.py`` composes it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _train(overrides: list[str], workdir: Path) -> dict:
    from rnnlab.training.train import train

    base = ["logger=none", "progress_bar=false", "diagnostics.every_n_steps=0"]
    with tempfile.TemporaryDirectory(dir=workdir) as out, contextlib.redirect_stdout(io.StringIO()):
        return train(compose_config(base + overrides + [f"output_dir={out}"]))  # its summary is not ours to print


def bare_loop(overrides: list[str]) -> dict:
    """The same model, optimiser, clipping and batches as ``train(cfg)``, trained by a plain loop."""
    import lightning as L
    from hydra.utils import instantiate
    from torch.nn import functional as F

    cfg = compose_config(overrides)
    started = time.perf_counter()
    L.seed_everything(cfg.seed, verbose=False)
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if datamodule.spec.task != "regression":
        raise ValueError("the bare loop is written for the default (regression) task")
    model = instantiate(cfg.model, _partial_=True)(spec=datamodule.spec)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    train = datamodule.splits["train"]
    x_all, y_all = train.tensors["x"], train.tensors["y"]  # (N, T, I), (N, 1): in memory
    B, clip, steps = cfg.data.batch_size, cfg.trainer.get("gradient_clip_val"), cfg.trainer.max_steps
    generator = torch.Generator().manual_seed(cfg.seed)
    step_times, tokens, step = [], 0, 0
    while step < steps:
        order = torch.randperm(len(x_all), generator=generator)
        for start in range(0, len(order), B):
            if step == steps:
                break
            index = order[start:start + B]
            x, y = x_all[index], y_all[index]
            t0 = time.perf_counter()
            pred, _ = model(x)
            loss = F.mse_loss(pred, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            float(loss.detach())  # the framework reads the loss every step too (divergence guard)
            step_times.append(time.perf_counter() - t0)
            tokens += x.shape[0] * x.shape[1]
            step += 1
    return {"steps": step, "tokens_per_second": tokens / sum(step_times),
            "step_seconds_median": statistics.median(step_times), "wall_seconds": time.perf_counter() - started}


def overhead_section(quick: bool, steps: int | None = None, repeats: int | None = None) -> dict:
    """{"framework": …, "diagnostics": …} for the default config (model=gru, unrolled, adding T=50)."""
    steps = steps or (5 if quick else 300)
    repeats = repeats or (1 if quick else 5)
    common = [f"trainer.max_steps={steps}"] + (QUICK if quick else [])
    for name in ("lightning", "lightning.pytorch", "rnnlab.training.train"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as workdir:
        return _measure(common, steps, repeats, quick, Path(workdir))


def _measure(common: list[str], steps: int, repeats: int, quick: bool, workdir: Path) -> dict:
    print(f"[bench] framework overhead: train() vs a bare loop, {steps} steps × {repeats}", flush=True)
    pairs = []
    for _ in range(repeats):
        run = _train(common, workdir)
        if run["status"] != "ok":
            raise RuntimeError(f"train() failed during the benchmark: {run['error']}")
        bare = bare_loop(common)
        pairs.append((run, bare))
    ratios = [b["step_seconds_median"] / r["step_seconds_median"] for r, b in pairs]  # steps/s, by medians
    mean_ratios = [r["tokens_per_second"] / b["tokens_per_second"] for r, b in pairs]
    framework = {
        "config": "defaults (model=gru unrolled, data=adding T=50 B=64, adam, clip 1.0)" + (" shrunk" if quick else ""),
        "steps": steps, "repeats": repeats, "overrides": common,
        "train_tokens_per_s": statistics.median(r["tokens_per_second"] for r, _ in pairs),
        "bare_tokens_per_s": statistics.median(b["tokens_per_second"] for _, b in pairs),
        "steps_per_s_ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
        "mean_ratio": statistics.median(mean_ratios), "mean_ratio_min": min(mean_ratios),
        "mean_ratio_max": max(mean_ratios),
        "train_step_ms_median": 1e3 * statistics.median(r["step_seconds_median"] for r, _ in pairs),
        "bare_step_ms_median": 1e3 * statistics.median(b["step_seconds_median"] for _, b in pairs),
        "train_wall_s": statistics.median(r["wall_seconds"] for r, _ in pairs),
        "bare_wall_s": statistics.median(b["wall_seconds"] for _, b in pairs), "target": 0.95}
    print(f"[bench] diagnostics overhead: every_n_steps = 0, 50, 1; {steps} steps", flush=True)
    diag = {}
    for every in (0, 50, 1):
        runs = [_train(common + [f"diagnostics.every_n_steps={every}"], workdir) for _ in range(repeats)]
        if failed := [r for r in runs if r["status"] != "ok"]:
            raise RuntimeError(f"train() failed during the benchmark: {failed[0]['error']}")
        diag[str(every)] = statistics.median(r["tokens_per_second"] for r in runs)
    diagnostics = {"steps": steps, "repeats": repeats, "tokens_per_s": diag,
                   "relative_to_off": {k: v / diag["0"] for k, v in diag.items()}}
    return {"framework": framework, "diagnostics": diagnostics}
