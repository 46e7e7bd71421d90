"""One run: compose data × model × training setup from the config, train, test, write ``results.json``.

``train(cfg)`` never raises for a bad run: a config error or an exception is recorded as
``status: "failed"`` (with the error) and a non-finite loss as ``status: "diverged"``, so a sweep
goes on; ``run.py`` turns a failed single run into a non-zero exit.
"""

from __future__ import annotations

import json
import logging
import math
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from rnnlab.cells.base import RecurrentCell
from rnnlab.diagnostics.callback import GradientDiagnostics
from rnnlab.model.embeddings import apply_embeddings, canonical_embedding_dim, prepare_embeddings
from rnnlab.model.param_budget import build_model
from rnnlab.training.allocator import keep_freed_memory
from rnnlab.training.best_weights import BestWeights
from rnnlab.training.callbacks import (
    DivergenceGuard,
    EpochValidation,
    ThroughputTimer,
    ValidationCurve,
    build_early_stopping,
)
from rnnlab.training.checkpoint import MODEL_FILE, StepCheckpoint, resume_checkpoint, save_model
from rnnlab.training.config_check import check_config, check_devices
from rnnlab.training.console import FILE_ONLY, StepProgressBar, ignore_known_warnings
from rnnlab.training.lightning_module import SequenceLightningModule
from rnnlab.training.loggers import build_logger, finish_wandb
from rnnlab.training.machine import machine_facts
from rnnlab.training.summary import print_summary
from rnnlab.training.sweep_resume import completed_results
from rnnlab.training.weight_noise import build_weight_noise

log = logging.getLogger(__name__)
METRIC_KEYS = ("val/loss", "test/loss", "test/acc", "test/ppl")  # always present; others added when logged


def run_context(cfg: DictConfig) -> tuple[Path, str | None]:
    """(output directory, W&B group): from Hydra when it runs us, else from ``cfg.output_dir``."""
    if cfg.get("output_dir"):
        output_dir, group = Path(cfg.output_dir), None
    elif HydraConfig.initialized():
        output_dir, group = Path(HydraConfig.get().runtime.output_dir), None
    else:
        raise ValueError("output_dir is not set and Hydra is not running: pass output_dir=<dir>")
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        group = Path(HydraConfig.get().sweep.dir).name
    return output_dir, group


def error_message(error: BaseException) -> str:
    """The innermost cause's message: Hydra wraps constructor errors in InstantiationException."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error) if isinstance(error, ValueError) else f"{type(error).__name__}: {error}"


def _chosen_option(group: str) -> str | None:
    """The option picked for a config group (``data=adding`` -> "adding") when Hydra runs us."""
    return HydraConfig.get().runtime.choices.get(group) if HydraConfig.initialized() else None


def new_results(cfg: DictConfig) -> dict:
    """The results.json skeleton (docs/results.md), filled as the run goes."""
    return {"status": "failed", "error": None, "model": cfg.model.get("name"), "impl": cfg.model.get("impl"),
            "data": None, "data_option": _chosen_option("data"), "task": None, "params": None, "seed": cfg.seed, "steps": 0, "epochs": 0,
            "train_seconds": None, "tokens_per_second": None, "step_seconds_median": None,
            "metrics": dict.fromkeys(METRIC_KEYS), "baseline_loss": None,
            "embeddings": {"source": cfg.embeddings.get("source"), "coverage": None},
            "gradients": {"h_norm_first": None, "h_norm_last": None, "log10_ratio_first_last": None}}


def compile_unused(layer, precision) -> str | None:
    """Why ``compile=True`` (which compiles the step loop) would not run for this layer, or None if it will."""
    if layer.impl == "fused":
        return "model.impl=fused runs torch.nn's kernels"
    has_scan = layer.cell_type.scan is not RecurrentCell.scan
    if has_scan and not layer.step_loop and "mixed" not in str(precision or ""):
        return (f"{layer.cell_type.__name__} trains on its scan, which is faster than the compiled step loop "
                "on CPU (benchmarks/cpu.md); compile applies to cells without a scan, model.scan=false and autocast")
    return None


def _finite_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class Built:
    """What ``build`` made from the config: everything ``fit`` and ``record`` use."""

    datamodule: L.LightningDataModule
    model: torch.nn.Module
    module: SequenceLightningModule
    trainer: L.Trainer
    early_stopping: L.Callback | None
    best: BestWeights | None
    diagnostics: GradientDiagnostics | None
    ckpt_path: str | None


def train(cfg: DictConfig, caller_prints_error: bool = False) -> dict:
    """Train and test one configuration; return (and write) its results: compose → check → build → fit →
    record. ``caller_prints_error``: the caller (run.py, for a single run) ends with the error line, so the
    summary leaves it out."""
    output_dir, group = run_directory(cfg)
    if cfg.get("skip_completed") and (done := completed_results(cfg, output_dir)) is not None:
        return done  # a resumed sweep: this run already finished with this config
    output_dir.mkdir(parents=True, exist_ok=True)
    canonical_embedding_dim(cfg)  # model.embedding_dim=N is an alias of embeddings.dim=N
    results, config_written = new_results(cfg), False
    ignore_known_warnings()
    started = time.perf_counter()
    try:
        check(cfg, results)
        built = build(cfg, output_dir, group, results)
        write_config(cfg, output_dir)  # the final config: build settled embeddings.dim and hidden_size
        config_written = True
        fit(built)
        record(cfg, built, output_dir, results)
    except Exception as error:  # noqa: BLE001 - recorded, not lost: the sweep goes on
        results.update(status="failed", error=error_message(error), traceback=traceback.format_exc())
        log.error("run failed: %s", results["error"], extra=FILE_ONLY)  # the terminal gets it once, below
    finally:
        if not config_written:  # stopped before the build was done: the config as it stood
            write_config(cfg, output_dir)
        results["train_seconds"] = round(results.pop("fit_seconds", 0.0), 3)
        results["tokens_per_second"] = _finite_or_none(results["tokens_per_second"])
        results.update(wall_seconds=round(time.perf_counter() - started, 3), output_dir=str(output_dir))
        (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        _summarise_to_wandb(results)
        finish_wandb()
    print_summary(results, with_error=not caller_prints_error)
    return results


def run_directory(cfg: DictConfig) -> tuple[Path, str | None]:
    """Where this run writes (a resumed run continues in its own directory) and its W&B group."""
    output_dir, group = run_context(cfg)
    if cfg.get("resume") and Path(cfg.resume).is_dir():
        output_dir = Path(cfg.resume)
    return output_dir, group


def write_config(cfg: DictConfig, output_dir: Path) -> None:
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)


def check(cfg: DictConfig, results: dict) -> None:
    """Types, ranges, unknown keys and devices, before anything is built; then the process settings."""
    check_config(cfg)
    check_devices(cfg.trainer)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    results["keep_freed_memory"] = bool(cfg.get("keep_freed_memory", True)) and keep_freed_memory()
    results["machine"] = machine_facts()  # numbers repeat on one kind of CPU, not across kinds
    L.seed_everything(cfg.seed, workers=True, verbose=False)


def build(cfg: DictConfig, output_dir: Path, group: str | None, results: dict) -> Built:
    """Data, embeddings, model, logger, callbacks and trainer. The vectors may set ``embeddings.dim`` and
    ``model.param_budget`` sets ``model.hidden_size``: the config is final only after this step."""
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    spec = datamodule.spec
    if getattr(datamodule, "stats", None):  # file-based sets: sizes, vocabulary, <unk> rate, padding
        results["data_stats"] = datamodule.stats
    vectors, results["embeddings"] = prepare_embeddings(cfg.embeddings, datamodule, cfg.seed)
    if spec.vocab_size is not None and results["embeddings"]["dim"] != cfg.embeddings.dim:
        cfg.embeddings.dim = results["embeddings"]["dim"]  # the vectors decide; model.embedding_dim follows
    model, results["param_budget"] = build_model(cfg.model, spec)  # model.param_budget may set hidden_size
    if results["param_budget"]["budget"] is not None:
        log.info("model.param_budget=%d: hidden_size %d, %d parameters", *results["param_budget"].values())
    if cfg.model.get("compile") and (why := compile_unused(model.recurrent, cfg.trainer.get("precision"))):
        log.warning("model.compile=true changes nothing in this run: %s", why)
    apply_embeddings(model, vectors, results["embeddings"]["freeze"])
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    run_config = OmegaConf.to_container(cfg, resolve=True)
    module = SequenceLightningModule(model, optimizer=instantiate(cfg.optimizer), scheduler=scheduler,
                                     run_config=run_config, lr_anneal=cfg.get("lr_anneal"))
    ckpt_path = resume_checkpoint(cfg.resume, cfg) if cfg.get("resume") else None
    results.update(data=spec.name, task=spec.task, params=model.num_parameters, baseline_loss=spec.baseline_loss)
    weight_noise = build_weight_noise(cfg.get("weight_noise"), cfg.seed)
    results["fairness"] = {**model.fairness(), "optimizer": OmegaConf.to_container(cfg.optimizer, resolve=True),
                           "gradient_clip_val": cfg.trainer.get("gradient_clip_val"), "lr_anneal": cfg.get("lr_anneal"),
                           "weight_noise": {"sigma": weight_noise.sigma if weight_noise else None,
                                            "applies_to": "weights: parameters of 2+ dimensions, not biases"}}
    max_steps = cfg.trainer.get("max_steps") or -1
    length = f"{max_steps} steps" if max_steps > 0 else f"{cfg.trainer.get('max_epochs')} epochs"
    log.info("training %s (%s, %s parameters) on %s for %s -> %s", results["model"], results["impl"],
             f"{model.num_parameters:,}", spec.name, length, output_dir)

    logger = build_logger(cfg.get("logger"), output_dir, f"{results['model']}-{spec.name}-s{cfg.seed}", group)
    if logger:
        # the data set's name and size are logged too, so W&B can group runs by them
        logger.log_hyperparams({**run_config,
                                "data_name": spec.name, "params": model.num_parameters})
    callbacks = [ThroughputTimer(), *([weight_noise] if weight_noise else []), DivergenceGuard(), EpochValidation(),
                 StepCheckpoint(output_dir, cfg.checkpoint_every_n_steps, cfg.get("checkpoint_history", False))]
    callbacks += [StepProgressBar()] if cfg.progress_bar else []
    callbacks += [ValidationCurve(output_dir)]
    early_stopping = build_early_stopping(cfg.get("early_stopping"), spec.baseline_loss)
    callbacks += [early_stopping] if early_stopping else []
    stopping = cfg.get("early_stopping") or {}
    best = BestWeights(stopping.get("monitor") or "val/loss", stopping.get("mode") or "min") \
        if stopping.get("restore_best") else None
    callbacks += [best] if best else []
    every = (cfg.get("diagnostics") or {}).get("every_n_steps") or 0  # 0: off
    log10_range = (cfg.get("diagnostics") or {}).get("heatmap_log10_range")
    diagnostics = GradientDiagnostics(every, output_dir, heatmap_log10_range=tuple(log10_range) if log10_range
                                      else None) if every != 0 else None
    callbacks += [diagnostics] if diagnostics else []
    trainer = instantiate(cfg.trainer, logger=logger, callbacks=callbacks, default_root_dir=str(output_dir),
                          enable_progress_bar=bool(cfg.progress_bar), enable_checkpointing=True)
    if torch.are_deterministic_algorithms_enabled():  # trainer.deterministic=true
        # Runs repeat because torch picks deterministic algorithms. Its other default under that flag,
        # filling every fresh buffer with NaN, only exposes ops that read memory they never wrote (ours
        # write every buffer they read), and costs a few % of a language model's step: 700 × V logits.
        torch.utils.deterministic.fill_uninitialized_memory = False
    return Built(datamodule, model, module, trainer, early_stopping, best, diagnostics, ckpt_path)


def fit(built: Built) -> None:
    if built.ckpt_path:
        log.info("resuming from %s", built.ckpt_path)
    built.trainer.fit(built.module, datamodule=built.datamodule, ckpt_path=built.ckpt_path, weights_only=True)


def record(cfg: DictConfig, built: Built, output_dir: Path, results: dict) -> None:
    """What the fit measured; unless it diverged, validate and test, and save the model."""
    trainer = built.trainer
    results.update(ThroughputTimer.read(trainer))
    if built.early_stopping:
        results["early_stopping"] = built.early_stopping.read(trainer)
    if built.best:
        results.setdefault("early_stopping", {}).update(built.best.read())
    if built.diagnostics is not None:
        results["gradients"].update(built.diagnostics.summary())
    divergence = DivergenceGuard.read(trainer)
    if divergence is not None:
        results.update(status="diverged", divergence=divergence,
                       error=f"non-finite training loss at step {divergence['step']}")
        return
    evaluator = trainer
    if trainer.world_size > 1:  # evaluate here, in one process: a second spawn costs seconds, and
        # Lightning's CSVLogger rewrites its file wrongly when reused by new processes
        evaluator = instantiate(cfg.trainer, devices=1, strategy="auto", logger=False, callbacks=[],
                                enable_progress_bar=False, enable_checkpointing=False)
    val = evaluator.validate(built.module, datamodule=built.datamodule, verbose=False)[0]
    test = evaluator.test(built.module, datamodule=built.datamodule, verbose=False)[0]
    results["metrics"].update({k: _finite_or_none(v) for k, v in {**val, **test}.items()
                               if k in METRIC_KEYS or k.startswith(("val/", "test/"))})
    results["status"] = "ok"
    save_model(built.model, cfg, output_dir / MODEL_FILE)


def _summarise_to_wandb(results: dict) -> None:
    import wandb

    if wandb.run is not None:
        wandb.run.summary.update({k: v for k, v in results.items()
                                  if k in ("status", "error", "params", "steps", "train_seconds",
                                           "tokens_per_second", "baseline_loss")})
        wandb.run.summary.update({f"final/{k}": v for k, v in results["metrics"].items() if v is not None})
        wandb.run.summary.update({f"gradients/{k}": v for k, v in results["gradients"].items() if v is not None})
