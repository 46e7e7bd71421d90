"""Gradient behaviour through time during training: the :class:`GradientDiagnostics` callback.

Every ``diagnostics.every_n_steps`` training steps (always at step 0, i.e. at initialisation, and at
the last step), one training step is measured with :class:`~rnnlab.diagnostics.probe.GradientProbe`:

1. ‖∂L/∂h_t‖ per time step, layer and direction (``model.impl=unrolled`` or ``auto``), batch mean and max;
2. ‖∂L/∂x_t‖ at the input of the first recurrent layer (both implementations; the measure of record
   when the model is fused);
3. ‖∂L/∂W‖ split by gate (GRU W_xr, W_hr, W_xz, W_hz, W_xh, W_hh and biases; LSTM i, f, c̃, o;
   RNN W_x, W_h), the global gradient norm before clipping, whether clipping fired, and the
   fraction of steps clipped since the last measurement (counted on every step, without a sync);
4. gate means and saturation per time step (unrolled), and the spectral radius ρ(W_h<g>) of every
   recurrent block;
5. the decay summary (:mod:`rnnlab.diagnostics.decay`) at initialisation and at the end: the ``gradients``
   block of results.json, from :meth:`GradientDiagnostics.summary`.

"At the end" is the last training step, measured like the others (before its optimizer update):
same loss code, no extra forward pass, no logging outside Lightning's training hooks; if training
stops early (divergence) it is the last measured step. Other steps cost one ``%`` test and the
clip count. The observers are set only on measured steps and removed right after the forward.

Outputs: W&B (when the trainer has a WandbLogger) gets per measured step a line plot of
log10 ‖∂L/∂h_t‖ against the distance to the loss, scalars under ``grad/`` and ``gates/``, and every
``heatmap_every`` measurements a heatmap image; any other logger gets the scalars. At the end
``gradients.npz`` (per measured step, per layer, per t; see :meth:`GradientDiagnostics.arrays`) and the
PNGs of :mod:`rnnlab.diagnostics.plots` are written to ``output_dir``.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import torch

from rnnlab.diagnostics.decay import SUMMARY_KEYS, summarise
from rnnlab.diagnostics.log_record import log_images, norm_by_distance_plot, record_scalars, wandb_loggers
from rnnlab.diagnostics.probe import GradientProbe, gate_grad_norms, layer_names, spectral_radii

NPZ = "gradients.npz"
META_KEYS = ("distance", "layers", "param_names", "model", "impl", "cell", "data", "seed", "measured_on", "summary")
TIME_PREFIXES = ("h_norm_", "x_norm_", "gate_")  # per-record arrays whose last axis is time


def _stack(rows: list, time_axis: bool) -> np.ndarray:
    """Stack per-record arrays; time-axis arrays are left-padded with NaN to the longest T."""
    shape_of = next(r for r in rows if r is not None)
    T = max(np.shape(r)[-1] for r in rows if r is not None) if time_axis else None
    out = []
    for r in rows:
        r = np.full(np.shape(shape_of), np.nan) if r is None else np.asarray(r, dtype=np.float64)
        if time_axis and r.shape[-1] < T:
            r = np.pad(r, [(0, 0)] * (r.ndim - 1) + [(T - r.shape[-1], 0)], constant_values=np.nan)
        out.append(r)
    return np.stack(out)


class GradientDiagnostics(L.Callback):
    """Measures gradients through time every ``every_n_steps`` training steps (see the module docstring)."""

    def __init__(self, every_n_steps: int = 50, output_dir: str | Path = ".", heatmap_every: int = 10,
                 measure_last_step: bool = True, heatmap_log10_range: tuple[float, float] | None = None) -> None:
        if not isinstance(every_n_steps, int) or isinstance(every_n_steps, bool) or every_n_steps < 1:
            raise ValueError(f"diagnostics.every_n_steps must be a positive integer (0 turns diagnostics off, "
                             f"leaving the callback out), got {every_n_steps!r}")
        self.every_n_steps, self.output_dir = every_n_steps, Path(output_dir)
        self.heatmap_every, self.measure_last_step = max(int(heatmap_every), 1), measure_last_step
        self.heatmap_log10_range = heatmap_log10_range  # the heatmap's colour scale; None: each run's own
        self.history: dict[str, list] = {}  # key -> one entry per measured step
        self.layers: list[str] = []
        self.param_names: list[str] = []
        self.meta: dict[str, str] = {}
        self._probe: GradientProbe | None = None
        self._probe_step = -1
        self._clips: torch.Tensor | None = None  # steps clipped since the last measurement (no sync)
        self._window = 0
        self._counted_step = -1  # the last step counted in the clip fraction
        self._summary: dict | None = None

    # ---- when ------------------------------------------------------------------------------------
    def _due(self, trainer, batch_idx: int) -> bool:
        step = trainer.global_step
        if self.history.get("step") and self.history["step"][-1] == step:
            return False  # already measured (gradient accumulation: several batches per step)
        if step % self.every_n_steps == 0:
            return True
        if not self.measure_last_step:
            return False
        if trainer.max_steps is not None and trainer.max_steps > 0 and step == trainer.max_steps - 1:
            return True
        return (trainer.max_epochs not in (None, -1) and trainer.current_epoch == trainer.max_epochs - 1
                and batch_idx == trainer.num_training_batches - 1)

    @staticmethod
    def _model(pl_module):
        model = getattr(pl_module, "model", pl_module)
        if not hasattr(model, "recurrent") or not hasattr(model, "input_observer"):
            raise TypeError("GradientDiagnostics needs a LightningModule whose .model is an rnnlab SequenceModel")
        return model

    # ---- Lightning hooks -------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        model = self._model(pl_module)
        self.layers = layer_names(model.recurrent)
        self.meta = {"model": str(getattr(model, "name", "")), "impl": model.recurrent.impl,
                     "cell": model.recurrent.cell_type.__name__, "data": model.spec.name,
                     "seed": str((getattr(pl_module, "run_config", None) or {}).get("seed", "")),
                     "measured_on": "x" if model.recurrent.impl == "fused" else "h"}
        if trainer.global_step > 0 and (self.output_dir / NPZ).exists():  # resumed: keep what was measured
            with np.load(self.output_dir / NPZ) as saved:
                keep = saved["step"] < trainer.global_step
                self.history = {k: list(saved[k][keep]) for k in saved.files if k not in META_KEYS}
                self.param_names = [str(n) for n in saved["param_names"]]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._probe is not None and self._probe_step != trainer.global_step:
            self._discard()  # that step never reached its optimizer step
        if self._probe is None and self._due(trainer, batch_idx):
            lengths = batch.get("lengths") if isinstance(batch, dict) else None
            self._probe = GradientProbe(self._model(pl_module), lengths).attach()
            self._probe_step = trainer.global_step

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        if self._probe is not None:
            self._probe.stop_observing()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._probe is not None:
            self._probe.stop_observing()  # in case no backward ran

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # The clip fraction needs each step's norm before clipping: clipping by norm measured it (the module's
        # clip_norm, one step late: clipping runs after this hook); reading every gradient again cost 2 % of a step.
        clip, step = trainer.gradient_clip_val, trainer.global_step
        measured = self._probe is not None and self._probe_step == step
        if clip and trainer.gradient_clip_algorithm in (None, "norm") and hasattr(pl_module, "clip_norm"):
            previous = pl_module.clip_norm
            if previous is not None and previous[0] > self._counted_step:  # the last step, from its clipping
                self._count((previous[1] > clip).float())
                self._counted_step = previous[0]
            if not measured:
                return  # this step is counted at the next one, from its clipping
        elif not clip and not measured:
            self._count(None)
            return
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if not grads:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))  # before clipping
        if not clip:
            clipped = torch.zeros((), device=norm.device)
        elif trainer.gradient_clip_algorithm == "value":
            clipped = (torch.stack([g.abs().amax() for g in grads]).amax() > clip).float()
        else:
            clipped = (norm > clip).float()
        self._count(clipped)
        self._counted_step = step  # its clipping's own norm is not counted again next step
        if not measured:
            return
        scaler = getattr(getattr(trainer, "precision_plugin", None), "scaler", None)  # 16-mixed scales the loss
        loss_scale = float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else 1.0
        record = self._record(trainer.global_step, self._model(pl_module), float(norm), float(clipped), loss_scale)
        self._discard()
        self._append(record)
        if trainer.is_global_zero:
            self._log(trainer, record)

    def _count(self, clipped: torch.Tensor | None) -> None:
        """One more step in the clip fraction's window; ``clipped`` 1.0 if it was clipped (None: not clipping)."""
        if clipped is not None:
            self._clips = clipped if self._clips is None else self._clips + clipped
        self._window += 1

    def on_train_end(self, trainer, pl_module) -> None:
        self._discard()
        if not self.history.get("step"):
            return
        arrays = self.arrays()
        self._summary = summarise(arrays)
        if trainer.is_global_zero:
            from rnnlab.diagnostics.plots import save_run_plots

            self.output_dir.mkdir(parents=True, exist_ok=True)
            np.savez(self.output_dir / NPZ, **arrays, summary=np.array(json.dumps(self._summary)))
            pngs = save_run_plots(arrays, self.output_dir, self.heatmap_log10_range)
            log_images(trainer, {f"grad/{p.stem}": p for p in pngs}, int(arrays["step"][-1]))

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._discard()

    # ---- measuring -------------------------------------------------------------------------------
    def _discard(self) -> None:
        if self._probe is not None:
            self._probe.close()
        self._probe, self._probe_step = None, -1

    def _record(self, step: int, model, norm: float, clipped: float, loss_scale: float = 1.0) -> dict:
        results = {k: v.numpy().copy() for k, v in self._probe.results().items()}  # (L·D, T) / (T,), no views
        for key in ("h_mean", "h_max", "x_mean", "x_max"):
            if key in results:
                results[key] /= loss_scale  # hooks see the gradient of the scaled loss
        record = {"step": step, "global_norm": norm, "clipped": clipped,
                  "clip_fraction": (0.0 if self._clips is None else float(self._clips)) / max(self._window, 1)}
        self._clips, self._window = None, 0
        for key, value in results.items():
            name = f"{key[0]}_norm_{key[2:]}" if key in ("h_mean", "h_max", "x_mean", "x_max") else f"gate_{key}"
            record[name] = value
        for name, radii in spectral_radii(model.recurrent).items():
            record[f"rho_{name}"] = np.array(radii)  # (L·D,)
        norms = gate_grad_norms(model.recurrent)
        self.param_names = list(norms)
        record["param_grad_norm"] = np.array(list(norms.values()))
        return record

    def _append(self, record: dict) -> None:
        n = len(self.history.get("step", []))
        for key in set(self.history) | set(record):
            self.history.setdefault(key, [None] * n).append(record.get(key))

    def arrays(self) -> dict[str, np.ndarray]:
        """What ``gradients.npz`` holds. K measured steps, L·D layers·directions, T time steps:

        ``step`` (K,); ``distance`` (T,) = T−1−t; ``layers`` (L·D,) names (``l0``, ``l0_rev``, …);
        ``h_norm_mean``/``h_norm_max`` (K, L·D, T) (unrolled); ``x_norm_mean``/``x_norm_max`` (K, T);
        ``gate_<g>_mean``/``gate_<g>_sat`` (K, L·D, T) (unrolled, gated cells); ``rho_W_h<g>`` (K, L·D);
        ``param_grad_norm`` (K, P) with ``param_names`` (P,); ``global_norm``, ``clipped``,
        ``clip_fraction`` (K,); and the strings ``model``, ``impl``, ``cell``, ``data``, ``seed``, ``measured_on``.
        Batches of different lengths are right-aligned (left-padded with NaN).
        """
        out = {k: _stack(v, k.startswith(TIME_PREFIXES)) for k, v in self.history.items()}
        out["step"] = out["step"].astype(np.int64)
        T = max((v.shape[-1] for k, v in out.items() if k.startswith(TIME_PREFIXES)), default=0)
        out["distance"] = np.arange(T - 1, -1, -1)
        out["layers"], out["param_names"] = np.array(self.layers), np.array(self.param_names)
        out.update({k: np.array(v) for k, v in self.meta.items()})
        return out

    def summary(self) -> dict:
        """The results.json ``gradients`` block (see :func:`summarise`); read from ``gradients.npz`` when
        training ran in other processes (ddp_spawn), all None when nothing was measured."""
        if self._summary is None and self.history.get("step"):
            self._summary = summarise(self.arrays())
        if self._summary is None and (self.output_dir / NPZ).exists():
            with np.load(self.output_dir / NPZ) as saved:
                self._summary = json.loads(str(saved["summary"]))
        if self._summary is None:
            return {**dict.fromkeys(SUMMARY_KEYS), "measured_on": None}
        return dict(self._summary)

    # ---- logging ---------------------------------------------------------------------------------
    def _log(self, trainer, record: dict) -> None:
        scalars = record_scalars(record, self.layers, self.param_names)
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=record["step"])
        for logger in wandb_loggers(trainer):
            logger.log_metrics({"grad/norm_by_distance": norm_by_distance_plot(record, self.layers)},
                               step=record["step"])
        if wandb_loggers(trainer) and (len(self.history["step"]) - 1) % self.heatmap_every == 0:
            from rnnlab.diagnostics.plots import figure_to_array, heatmap_figure

            heatmap = heatmap_figure(self.arrays(), self.heatmap_log10_range)
            log_images(trainer, {"grad/gradient_heatmap": figure_to_array(heatmap)}, record["step"])
