"""Gradient diagnostics in real runs through rnnlab.training.train.train: gradients.npz, PNGs, the results.json block,
W&B offline records (read back with `wandb leet inspect`), CSV metrics, no logger, and the sweep overlay."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from conftest import compose_config
from rnnlab.bench.diagnostics import diagnostics_overhead, markdown
from rnnlab.diagnostics.plots import heatmap_figure, load_arrays
from rnnlab.training.train import train

WANDB = str(Path(sys.executable).parent / "wandb")
PNG = b"\x89PNG\r\n\x1a\n"
SMALL = ["data.n_train=64", "data.n_val=16", "data.n_test=16", "trainer.max_steps=3", "diagnostics.every_n_steps=2"]
RUNS = {  # name -> overrides: every logger, both implementations, a bidirectional stack, two data sets
    "gru_wandb": ["model=gru", "logger=wandb", "data.seq_len=6"],
    "rnn_none": ["model=rnn", "logger=none", "data.seq_len=6", "model.num_layers=2", "model.bidirectional=true"],
    "lstm_fused_csv": ["model=lstm", "model.impl=fused", "logger=csv", "data=copy", "data.seq_len=4"],
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Three tiny runs in one directory, as a multirun lays them out."""
    root = tmp_path_factory.mktemp("multirun")
    for name, overrides in RUNS.items():
        results = train(compose_config(SMALL + overrides, root / name))
        assert results["status"] == "ok", results.get("traceback")
    return root


def _results(sweep: Path, name: str) -> dict:
    return json.loads((sweep / name / "results.json").read_text())


@pytest.mark.parametrize("name", list(RUNS))
def test_a_run_writes_gradients_npz_pngs_and_the_results_block(sweep, name):
    run = sweep / name
    arrays = load_arrays(run)
    # step 0 (initialisation), every 2nd step, and the last step (max_steps - 1)
    assert arrays["step"].tolist() == [0, 2]
    unrolled = "fused" not in name
    T = 24 if name == "lstm_fused_csv" else 6  # copy: delay + 20
    LD = 4 if name == "rnn_none" else 1
    assert arrays["distance"].tolist() == list(range(T - 1, -1, -1))
    assert arrays["x_norm_mean"].shape == (2, T) and np.isfinite(arrays["x_norm_mean"]).all()
    if unrolled:
        assert arrays["h_norm_mean"].shape == arrays["h_norm_max"].shape == (2, LD, T)
        assert (arrays["h_norm_max"] >= arrays["h_norm_mean"]).all() and (arrays["h_norm_mean"] > 0).all()
    else:
        assert "h_norm_mean" not in arrays and "gate_i_mean" not in arrays
    assert arrays["param_grad_norm"].shape == (2, len(arrays["param_names"]))
    assert arrays["global_norm"].shape == arrays["clipped"].shape == (2,) and (arrays["global_norm"] > 0).all()
    if name == "gru_wandb":
        assert {"gate_r_mean", "gate_z_sat", "rho_W_hr", "rho_W_hz", "rho_W_hh"} <= set(arrays)
        assert {"l0/W_xr", "l0/W_hr", "l0/W_xz", "l0/W_hz", "l0/W_xh", "l0/W_hh", "l0/b_xr"} <= set(arrays["param_names"])
    for png in ("gradient_curves.png", "gradient_heatmap.png"):
        assert (run / png).read_bytes()[:8] == PNG

    block = _results(sweep, name)["gradients"]
    assert block["measured_on"] == ("h" if unrolled else "x") and block["end_step"] == 2 and block["init_step"] == 0
    for prefix in ("", "init_"):
        for key in ("h_norm_first", "h_norm_last", "log10_ratio_first_last", "slope_log10_per_step"):
            assert isinstance(block[prefix + key], float), (prefix + key, block)
    curve = arrays["h_norm_mean"][-1, 0] if unrolled else arrays["x_norm_mean"][-1]
    assert block["h_norm_first"] == pytest.approx(curve[0]) and block["h_norm_last"] == pytest.approx(curve[-1])
    assert block["log10_ratio_first_last"] == pytest.approx(np.log10(curve[0] / curve[-1]))


def test_the_heatmap_names_the_run_and_spans_the_configured_log10_range(sweep):
    run = sweep / "gru_wandb"
    arrays, config = load_arrays(run), OmegaConf.load(run / "config.yaml")
    log10_range = tuple(config.diagnostics.heatmap_log10_range)
    assert log10_range == (-20, 0)  # the default: every run on one scale, so two heatmaps compare by eye
    fixed = heatmap_figure(arrays, log10_range)
    assert fixed.get_suptitle() == f"gru (unrolled) on adding, T = 6, seed {config.seed}: log10 gradient norm through time"
    panels = fixed.axes[:2]  # ‖∂L/∂h_t‖ and ‖∂L/∂x_t‖; their colour bars follow
    assert [ax.collections[0].get_clim() for ax in panels] == [log10_range] * 2
    own = heatmap_figure(arrays, None)  # diagnostics.heatmap_log10_range=null: the run's own range
    h = np.log10(arrays["h_norm_mean"][:, 0])
    assert own.axes[0].collections[0].get_clim() == pytest.approx((h.min(), h.max()))
    subprocess.run([sys.executable, "-m", "rnnlab.diagnostics", str(run)], check=True, capture_output=True)
    assert (run / "gradient_heatmap.png").read_bytes()[:8] == PNG  # redrawn from the run directory


def _inspect(run_dir: Path, *flags: str) -> str:
    return subprocess.run([WANDB, "leet", "inspect", *flags, "--json", str(run_dir)], capture_output=True,
                          text=True, timeout=120, check=True).stdout


def test_wandb_run_holds_grad_and_gate_keys_a_curve_per_step_and_the_heatmap(sweep):
    (run,) = (sweep / "gru_wandb" / "wandb").glob("offline-run-*")
    summary = json.dumps(json.loads(_inspect(run, "--summary")))
    for key in ("grad/global_norm", "grad/clip_fraction", "grad/l0/W_hr", "grad/l0/W_hz", "grad/h_log10_ratio_first_last",
                "grad/x_slope_log10_per_step", "gates/l0/z_mean", "gates/l0/r_sat", "gates/l0/rho_W_hz"):
        assert key in summary, key
    assert '"seq_len"' in summary and '"gru"' in summary  # the resolved config, to group runs by
    assert "gradients/init_log10_ratio_first_last" in summary  # the results.json block, for sweep scatter plots
    history = [line for line in _inspect(run).splitlines() if '"history"' in line[:300]]
    curves = [line for line in history if "grad/norm_by_distance" in line]
    assert len(curves) == 2  # one line plot (a W&B table) per measured step
    assert any("grad/gradient_heatmap" in line for line in history)
    assert any("grad/gradient_curves" in line for line in history)  # the final PNGs


def test_csv_logger_gets_the_scalars(sweep):
    (metrics,) = (sweep / "lstm_fused_csv").rglob("metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    assert {"grad/global_norm", "grad/l0/W_hf", "grad/x_log10_ratio_first_last", "gates/l0/rho_W_hf"} <= set(rows[0])
    assert sorted({r["step"] for r in rows if r["grad/global_norm"]}) == ["0", "2"]


def test_overlay_command_draws_one_png_per_data_set_and_length(sweep):
    out = subprocess.run([sys.executable, "-m", "rnnlab.diagnostics", str(sweep)], capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert sorted(Path(p).name for p in out) == ["adding_T6_gradients.png", "copy_T24_gradients.png"]
    for path in out:
        assert Path(path).read_bytes()[:8] == PNG


def test_diagnostics_off_leaves_the_block_empty(make_config):
    results = train(make_config(["diagnostics.every_n_steps=0", "logger=none", "data.seq_len=4", *SMALL[:3]]))
    assert results["status"] == "ok" and results["gradients"]["h_norm_first"] is None
    assert not (Path(results["output_dir"]) / "gradients.npz").exists()


def test_a_negative_every_n_steps_fails_the_run_with_a_clear_error(make_config):
    results = train(make_config(["diagnostics.every_n_steps=-5", "logger=none"]))
    assert results["status"] == "failed" and results["error"].startswith(
        "diagnostics.every_n_steps must be a positive integer or 0 (off), got -5")


def test_overhead_benchmark_reports_steps_per_second():
    rows = diagnostics_overhead(("rnn",), (0, 1), seq_len=5, hidden_size=4, batch_size=4, timed=3, warmup=1)
    assert [(r["model"], r["every_n_steps"]) for r in rows] == [("rnn", 0), ("rnn", 1)]
    assert all(r["steps_per_s"] > 0 for r in rows) and rows[1]["slowdown"] is not None
    assert "| rnn | off |" in markdown(rows)


def test_a_resumed_run_keeps_the_steps_measured_before(make_config):
    first = make_config(["logger=none", "data.seq_len=4", *SMALL[:3], "trainer.max_steps=4", "diagnostics.every_n_steps=2"])
    assert train(first)["status"] == "ok"
    assert load_arrays(first.output_dir)["step"].tolist() == [0, 2, 3]
    resumed = train(make_config(["logger=none", "data.seq_len=4", *SMALL[:3], "trainer.max_steps=6",
                                 "diagnostics.every_n_steps=2", f"resume={first.output_dir}"], name="again"))
    assert resumed["status"] == "ok" and resumed["gradients"]["init_step"] == 0
    arrays = load_arrays(first.output_dir)
    assert arrays["step"].tolist() == [0, 2, 3, 4, 5] and arrays["h_norm_mean"].shape[0] == 5
    assert resumed["gradients"]["end_step"] == 5 and len(arrays["param_names"]) == arrays["param_grad_norm"].shape[1]


class _PreClipNorms(__import__("lightning").Callback):
    """The truth: every step's gradient norm before clipping, read from the gradients themselves."""

    def __init__(self):
        self.norms = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        grads = [p.grad.detach().norm() for p in pl_module.parameters() if p.grad is not None]
        self.norms.append(float(torch.stack(grads).norm()))


@pytest.mark.parametrize("clip", [2.7, 1e-9, 1e9, None])
def test_the_clip_fraction_counts_every_step_between_measurements(clip, tmp_path):
    """Clipping by norm hands its norm to the diagnostics (no second pass over the gradients); the fraction of
    clipped steps per measurement must equal the one counted from each step's own pre-clipping norm."""
    import lightning as L
    from hydra.utils import instantiate

    from rnnlab.diagnostics.callback import GradientDiagnostics
    from rnnlab.training.lightning_module import SequenceLightningModule

    cfg = compose_config(["data.n_train=256", "data.batch_size=16", "data.seq_len=8", "model.hidden_size=8"],
                         tmp_path / "run")
    L.seed_everything(0, verbose=False)
    data = instantiate(cfg.data)
    data.prepare_data()
    data.setup("fit")
    model = instantiate(cfg.model, _partial_=True)(spec=data.spec)
    module = SequenceLightningModule(model, optimizer=instantiate(cfg.optimizer))
    truth, diagnostics = _PreClipNorms(), GradientDiagnostics(every_n_steps=4, output_dir=tmp_path)
    trainer = L.Trainer(max_steps=13, gradient_clip_val=clip, callbacks=[truth, diagnostics], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=data)
    arrays = diagnostics.arrays()
    steps, measured = arrays["step"].tolist(), arrays["clip_fraction"].tolist()
    assert steps == [0, 4, 8, 12] and len(truth.norms) == 13
    clipped = [bool(clip) and n > clip for n in truth.norms]
    expected = [float(np.mean(clipped[a + 1 if i else 0: b + 1])) for i, (a, b) in enumerate(zip([0] + steps, steps))]
    assert measured == pytest.approx(expected)
    if clip == 2.7:
        assert 0 < sum(clipped) < len(clipped), truth.norms  # a mix, so a window off by one would show
