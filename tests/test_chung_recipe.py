"""Chung et al. 2014's recipe as run options: weight noise, early stopping on the best validation, their sizes."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from conftest import compose_config
from rnnlab.model.param_budget import build_model
from rnnlab.training.checkpoint import CHECKPOINT_DIR, LAST, load_model
from rnnlab.training.config_check import ConfigError, check_config
from rnnlab.training.lightning_module import SequenceLightningModule
from rnnlab.training.train import train
from rnnlab.training.weight_noise import WeightNoise, noisy_parameters

SMALL = ["model=gru", "model.hidden_size=8", "data.seq_len=10", "data.n_train=256", "data.n_val=64",
         "data.n_test=64", "logger=none", "diagnostics.every_n_steps=0", "trainer.max_steps=5"]


def weights(run_dir) -> dict[str, torch.Tensor]:
    return load_model(run_dir)[0].state_dict()


def validate(model, cfg, callbacks=()) -> float:
    """val/loss of these weights in a fresh Trainer, with the run's validation batches."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    module = SequenceLightningModule(model, optimizer=instantiate(cfg.optimizer))
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                        limit_val_batches=cfg.trainer.limit_val_batches, callbacks=list(callbacks))
    return trainer.validate(module, datamodule=datamodule, verbose=False)[0]["val/loss"]


def test_sigma_zero_is_bit_identical_to_no_noise(make_config):
    plain = train(make_config(SMALL, name="plain"))
    zero = train(make_config(SMALL + ["weight_noise.sigma=0"], name="zero"))
    assert plain["status"] == zero["status"] == "ok"
    assert zero["fairness"]["weight_noise"]["sigma"] == 0.0 and plain["fairness"]["weight_noise"]["sigma"] is None
    a, b = weights(plain["output_dir"]), weights(zero["output_dir"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert plain["metrics"] == zero["metrics"]


def test_weight_noise_changes_training_and_never_evaluation(make_config):
    plain = train(make_config(SMALL, name="plain"))
    cfg = make_config(SMALL + ["weight_noise.sigma=0.075"], name="noisy")
    noisy = train(cfg)
    assert noisy["status"] == "ok" and noisy["fairness"]["weight_noise"] == {
        "sigma": 0.075, "applies_to": "weights: parameters of 2+ dimensions, not biases"}
    clean, trained = weights(plain["output_dir"]), weights(noisy["output_dir"])
    assert any(not torch.equal(clean[k], trained[k]) for k in clean)  # another trajectory
    # the run's own validation (its Trainer still held the noise callback) is that of the clean weights
    model = load_model(noisy["output_dir"])[0]
    assert validate(model, cfg) == noisy["metrics"]["val/loss"]
    assert validate(model, cfg, [WeightNoise(0.5, seed=1)]) == noisy["metrics"]["val/loss"]
    assert torch.equal(model.state_dict()["head.weight"], trained["head.weight"])  # validating left them clean
    ckpt = torch.load(Path(noisy["output_dir"]) / CHECKPOINT_DIR / LAST, weights_only=True)["state_dict"]
    assert all(torch.equal(ckpt[f"model.{k}"], v) for k, v in trained.items())  # no noise saved either


def test_the_gradient_is_taken_at_the_noisy_weights_and_applied_to_the_clean_ones(make_config):
    cfg = make_config(SMALL + ["optimizer=sgd", "optimizer.lr=0.1", "trainer.gradient_clip_val=null"])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    model, _ = build_model(cfg.model, datamodule.spec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    module = SequenceLightningModule(model, optimizer=instantiate(cfg.optimizer))
    L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
              max_steps=1, limit_val_batches=0, callbacks=[WeightNoise(0.3, seed=4)]).fit(module, datamodule=datamodule)
    after = {k: v.clone() for k, v in model.state_dict().items()}

    model.zero_grad(set_to_none=True)
    model.load_state_dict(before)  # by hand: the same noise (the same generator), the first batch, one SGD step
    generator = torch.Generator().manual_seed(4 * 1_000_003 + 7)
    with torch.no_grad():
        for p in noisy_parameters(model):
            p.add_(torch.randn(p.shape, generator=generator), alpha=0.3)
    fresh = instantiate(cfg.data)  # the first training batch, as the fit drew it (its order is seeded)
    fresh.setup("fit")
    batch = next(iter(fresh.train_dataloader()))
    loss = torch.nn.functional.mse_loss(model(batch["x"])[0], batch["y"])
    loss.backward()
    names = dict(model.named_parameters())
    for key, value in before.items():
        assert torch.allclose(after[key], value - 0.1 * names[key].grad, atol=1e-6), key


def test_noise_resumes_where_it_stopped(make_config):
    plain = train(make_config(SMALL + ["trainer.max_steps=6"], name="plain"))
    whole = train(make_config(SMALL + ["weight_noise.sigma=0.1", "trainer.max_steps=6"], name="whole"))
    half = train(make_config(SMALL + ["weight_noise.sigma=0.1", "trainer.max_steps=3"], name="half"))
    ckpt = torch.load(Path(half["output_dir"]) / CHECKPOINT_DIR / LAST, weights_only=True)
    assert [s["sigma"] for k, s in ckpt["callbacks"].items() if k.startswith("WeightNoise")] == [0.1]
    resumed = train(make_config(SMALL + ["weight_noise.sigma=0.1", "trainer.max_steps=6",
                                         f"resume={half['output_dir']}"], name="unused"))
    assert resumed["status"] == "ok" and resumed["steps"] == 6
    # the same noise after the restart: as close to the uninterrupted run as a resumed run without noise
    # comes (rel. 1e-5 on CPU here), and 100 times closer than to the run without noise
    for key in ("val/loss", "test/loss"):
        gap, noise = abs(resumed["metrics"][key] - whole["metrics"][key]), abs(plain["metrics"][key] - whole["metrics"][key])
        assert gap <= 1e-4 * abs(whole["metrics"][key]) and gap * 100 < noise, key


def test_patience_stops_and_the_best_validation_is_what_is_tested(make_config):
    # min_delta 100: no validation after the first counts as better, so patience 2 stops at the third
    results = train(make_config(SMALL + ["trainer.max_steps=20", "trainer.val_check_interval=2",
                                         "optimizer.lr=0.05", "early_stopping.patience=2",
                                         "+early_stopping.min_delta=100", "early_stopping.restore_best=true"]))
    assert results["status"] == "ok" and results["steps"] == 6
    with (Path(results["output_dir"]) / "val_curve.csv").open(newline="") as f:
        curve = [(int(r["step"]), float(r["val/loss"])) for r in csv.DictReader(f)]
    best_step, best = min(curve, key=lambda row: row[1])
    block = results["early_stopping"]
    assert block["stopped"] and block["reason"] == "patience_exhausted" and block["restored_best"]
    assert (block["best_step"], block["best_score"]) == (best_step, pytest.approx(best))
    assert results["metrics"]["val/loss"] == pytest.approx(best, rel=1e-6)


@pytest.mark.parametrize(("model", "units"), [("rnn", 100), ("gru", 46), ("lstm", 36)])
def test_the_recipe_is_one_override(model, units):
    cfg = compose_config([f"model={model}", "+recipe=chung2014", "data=polyphonic"], tiny=False)
    check_config(cfg)
    assert cfg.model.hidden_size == units and cfg.model.param_budget is None
    assert cfg.optimizer._target_ == "torch.optim.RMSprop"
    assert (cfg.trainer.gradient_clip_val, cfg.trainer.gradient_clip_algorithm) == (1.0, "norm")
    assert cfg.weight_noise.sigma == 0.075
    assert cfg.early_stopping.patience > 0 and cfg.early_stopping.restore_best
    assert cfg.trainer.max_steps == -1 and cfg.trainer.max_epochs > 0  # bounded by epochs: validation every epoch


def test_a_bad_sigma_fails_with_the_key(make_config):
    with pytest.raises(ConfigError, match=r"^weight_noise.sigma must be null \(off\) or a number ≥ 0, got -1; "
                                          r"e.g. weight_noise.sigma=0.075$"):
        check_config(compose_config(["weight_noise.sigma=-1"]))
    results = train(make_config(SMALL + ["+weight_noise.sigm=0.1"]))
    assert results["status"] == "failed" and results["error"] == "weight_noise.sigm is not a key; the key is sigma"
