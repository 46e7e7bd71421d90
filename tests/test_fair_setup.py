"""The obvious spelling does the obvious thing (issue 13), and validation never changes training."""

import random
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from conftest import TINY
from rnnlab.training.train import train


def write_corpus(root: Path, seed: int = 0) -> Path:
    """A small corpus in the PTB file format: one sentence a line, words from a 40-word vocabulary."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(40)]
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 120), ("valid", 20), ("test", 20)):
        lines = [" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(n)]
        (root / f"ptb.{split}.txt").write_text("".join(f" {line} \n" for line in lines))
    return root


def lm_overrides(root: Path) -> list[str]:
    return ["data=ptb", f"data.root={root}", "data.bptt=8", "data.batch_size=4", "data.eval_batch_size=2",
            "model=lstm", "model.num_layers=2", "model.dropout=0.3", "logger=none", "trainer.max_steps=-1",
            "trainer.limit_val_batches=1.0"]


def test_sgd_is_plain_sgd(make_config):
    optimizer = instantiate(make_config(["optimizer=sgd"]).optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert optimizer.param_groups[0]["momentum"] == 0.0


def test_max_epochs_alone_trains_one_epoch_and_validates_in_it(make_config, tmp_path):
    root = write_corpus(tmp_path / "corpus")
    tiny_but_steps = [o for o in TINY if not o.startswith(("trainer.max_steps", "trainer.val_check"))]
    cfg = make_config([*tiny_but_steps, *lm_overrides(root)[:-2], "logger=csv", "trainer.max_epochs=1",
                       "trainer.limit_val_batches=1.0"], tiny=False)
    assert cfg.trainer.max_steps == -1  # the 1500-step default gives way to an epoch count
    results = train(cfg)
    assert results["status"] == "ok", results.get("traceback")
    assert results["epochs"] == 1.0 and results["steps"] == results["data_stats"]["chunks"]["train"] < 250
    # the loop's wall time holds the steps and what lies between them (not validation): slower, not by much
    assert 0.5 * results["tokens_per_second"] < results["loop_tokens_per_second"] <= results["tokens_per_second"]
    metrics = (Path(cfg.output_dir) / "csv" / "metrics.csv")
    metrics = metrics if metrics.is_file() else next(Path(cfg.output_dir).rglob("metrics.csv"))
    header, *rows = [line.split(",") for line in metrics.read_text().splitlines()]
    val_rows = [r for r in rows if r[header.index("val/loss")]]
    assert val_rows, "the 250-step interval, longer than the epoch, was clipped to it: validation ran in fit"
    assert make_config(["trainer.max_steps=7"], tiny=False).trainer.max_steps == 7
    assert make_config([], tiny=False).trainer.max_steps == 1500
    assert make_config(["trainer.max_epochs=3", "trainer.max_steps=7"], tiny=False).trainer.max_steps == 7


def test_model_embedding_dim_is_an_alias_of_embeddings_dim(make_config, tmp_path):
    root = write_corpus(tmp_path / "corpus")
    results = train(make_config([*lm_overrides(root), "trainer.max_steps=2", "model.embedding_dim=12"]))
    assert results["status"] == "ok", results.get("traceback")
    assert results["embeddings"]["dim"] == 12
    saved = torch.load(Path(results["output_dir"]) / "model.pt", weights_only=True)
    assert saved["state_dict"]["embedding.weight"].shape[1] == 12
    assert saved["config"]["embeddings"]["dim"] == saved["config"]["model"]["embedding_dim"] == 12


@pytest.mark.parametrize("history", [False, True])
def test_only_last_ckpt_is_kept_unless_history_is_asked_for(make_config, history):
    cfg = make_config(["logger=none", "trainer.max_steps=4", "checkpoint_every_n_steps=2",
                       f"checkpoint_history={str(history).lower()}", "data.n_train=256", "data.seq_len=6"])
    assert train(cfg)["status"] == "ok"
    kept = sorted(p.name for p in (Path(cfg.output_dir) / "checkpoints").iterdir())
    assert kept == (["last.ckpt", "step2.ckpt", "step4.ckpt"] if history else ["last.ckpt"])


@pytest.mark.parametrize("impl", ["unrolled", "fused"])
def test_validation_does_not_change_training(make_config, tmp_path, impl):
    """Same seed, dropout > 0, carried LM state: validating every 2 steps, or once an epoch without the
    sanity check, trains the very same weights (each validation used to draw from the global RNG)."""
    root = write_corpus(tmp_path / "corpus")
    base = [*lm_overrides(root), f"model.impl={impl}", "trainer.max_epochs=2", "checkpoint_every_n_steps=0"]
    runs = {name: train(make_config([*base, *extra], name=name)) for name, extra in (
        ("often", ["trainer.val_check_interval=2"]),
        ("epochly", ["trainer.val_check_interval=1000", "+trainer.num_sanity_val_steps=0"]))}
    weights = {}
    for name, results in runs.items():
        assert results["status"] == "ok", results.get("traceback")
        weights[name] = torch.load(Path(results["output_dir"]) / "model.pt", weights_only=True)["state_dict"]
    assert weights["often"].keys() == weights["epochly"].keys()
    for key, value in weights["often"].items():
        assert torch.equal(value, weights["epochly"][key]), f"{key} differs"
    assert runs["often"]["metrics"] == runs["epochly"]["metrics"]
    assert runs["often"]["steps"] == runs["epochly"]["steps"] > 2


LM_SPEC = {"name": "lm", "task": "language_modeling", "readout": "all", "output_size": 50, "vocab_size": 50}


@pytest.mark.parametrize("impl", ["unrolled", "fused"])
def test_dropout_placement_all_drops_embeddings_and_output_too(impl):
    from rnnlab.cells.lstm import LSTMCell
    from rnnlab.data.base import DataSpec
    from rnnlab.model.sequence_model import SequenceModel

    x = torch.randint(0, 50, (3, 7))
    outputs = {}
    for placement in ("all", "between_layers"):
        torch.manual_seed(0)
        model = SequenceModel(LSTMCell, DataSpec(**LM_SPEC), hidden_size=6, num_layers=1, dropout=0.5,
                              impl=impl, embedding_dim=5, dropout_placement=placement).train()
        outputs[placement] = model(x)[0], model.eval()(x)[0]
        assert model.fairness()["dropout_placement"] == placement
    trained, evaluated = outputs["between_layers"]  # one layer: no dropout anywhere
    assert torch.equal(trained, evaluated)
    trained, evaluated = outputs["all"]
    assert not torch.allclose(trained, evaluated)
    with pytest.raises(ValueError, match="model.dropout_placement must be one of"):
        SequenceModel(LSTMCell, DataSpec(**LM_SPEC), dropout_placement="everywhere")


def test_embedding_and_head_init_follow_their_keys():
    from rnnlab.cells.gru import GRUCell
    from rnnlab.data.base import DataSpec
    from rnnlab.model.sequence_model import SequenceModel

    torch.manual_seed(0)
    uniform = SequenceModel(GRUCell, DataSpec(**LM_SPEC), hidden_size=8, embedding_dim=300,
                            embedding_init="uniform")
    assert uniform.embedding.weight.abs().max() <= 0.1 and uniform.embedding.weight.std() > 0.05
    assert uniform.head.weight.abs().max() <= 0.1 and not uniform.head.bias.any()
    assert uniform.fairness()["embedding_init"] == "U(-0.1, 0.1)" and uniform.fairness()["forget_bias"] is None
    torch.manual_seed(0)
    legacy = SequenceModel(GRUCell, DataSpec(**LM_SPEC), hidden_size=8, embedding_dim=300,
                           embedding_init="normal", head_init="torch")
    assert 0.9 < float(legacy.embedding.weight.std()) < 1.1 and legacy.head.bias.any()


def test_loss_perplexity_equals_torchmetrics_perplexity():
    from torchmetrics.text import Perplexity

    from rnnlab.training.lightning_module import LossPerplexity

    ours, reference = LossPerplexity(), Perplexity()
    for T in (7, 3):  # a shorter last chunk weighs less
        logits, y = torch.randn(4, T, 11), torch.randint(0, 11, (4, T))
        ours.update(torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten()), weight=y.numel())
        reference.update(logits, y)
    assert float(ours.compute()) == pytest.approx(float(reference.compute()), rel=1e-5)


def test_results_record_the_fairness_defaults(make_config, tmp_path):
    root = write_corpus(tmp_path / "corpus")
    results = train(make_config([*lm_overrides(root), "trainer.max_steps=2", "optimizer=sgd"]))
    assert results["status"] == "ok", results.get("traceback")
    fair = results["fairness"]
    assert fair["dropout_placement"] == "all" and fair["dropout"] == 0.3
    assert fair["embedding_init"] == "U(-0.1, 0.1)" and fair["head_init"] == "U(-0.1, 0.1), bias 0"
    assert fair["optimizer"]["momentum"] == 0.0 and fair["gradient_clip_val"] == 1.0
    assert fair["forget_bias"] == make_config(["model=lstm"]).model.cell.forget_bias


@pytest.mark.parametrize("cell, block", [("lstm", 1), ("gru", 1)])  # torch's order: (i, f, c, o), (r, z, h)
def test_chrono_init_reaches_the_fused_kernel_and_the_results(make_config, tmp_path, cell, block):
    from rnnlab.data.base import DataSpec

    root = write_corpus(tmp_path / "corpus")
    cfg = make_config([*lm_overrides(root), f"model={cell}", "model.impl=auto", "model.cell.chrono_t_max=50",
                       "trainer.max_steps=2"])
    model = instantiate(cfg.model, spec=DataSpec(**LM_SPEC), embedding_dim=8, hidden_size=16)
    H, kernel = 16, model.recurrent.fused_module()
    keep = (kernel.bias_ih_l0 + kernel.bias_hh_l0)[block * H:(block + 1) * H]
    assert keep.min() >= 0.0 and keep.max() <= torch.log(torch.tensor(49.0)) and keep.std() > 0.3
    results = train(cfg)
    assert results["status"] == "ok", results.get("traceback")
    assert results["fairness"]["chrono_t_max"] == 50


def test_deterministic_runs_do_not_fill_every_fresh_buffer(make_config):
    """trainer.deterministic=true picks deterministic algorithms; torch's NaN-filling of fresh buffers under
    that flag is turned off (it cost a few % of a language model's step, and our kernels write what they
    read). The runs still repeat: test_validation_does_not_change_training compares two of them exactly."""
    results = train(make_config(["trainer.max_steps=2"]))
    assert results["status"] == "ok"
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory is False


def test_lr_anneal_divides_the_rate_after_each_epoch_without_a_new_best(make_config, tmp_path):
    """lr_anneal=0.25 is word_language_model's rule: lr ÷ 4 after every epoch whose val/loss is not below
    the best so far. The rate the run ends with (its checkpoint) is 20 × 0.25^(epochs without a new best)."""
    import csv

    root = write_corpus(tmp_path / "corpus")
    cfg = make_config([*lm_overrides(root), "trainer.max_epochs=5", "trainer.val_check_interval=1000",
                       "optimizer=sgd", "optimizer.lr=20", "lr_anneal=0.25"])
    results = train(cfg)
    assert results["status"] == "ok", results.get("traceback")
    with (Path(cfg.output_dir) / "val_curve.csv").open() as f:
        losses = [float(row["val/loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 5  # one validation an epoch
    misses = sum(loss >= min(losses[:i]) for i, loss in enumerate(losses) if i)
    assert misses >= 1, f"no epoch without a new best, nothing tested: {losses}"
    checkpoint = torch.load(Path(cfg.output_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(20 * 0.25 ** misses)
    assert results["fairness"]["lr_anneal"] == 0.25


def test_lr_anneal_is_checked_before_anything_is_built(make_config):
    from rnnlab.training.config_check import ConfigError, check_config

    with pytest.raises(ConfigError, match=r"lr_anneal must be null or a factor in \(0, 1\), got 4; e.g. lr_anneal=0.25"):
        check_config(make_config(["lr_anneal=4"]))


def test_the_fair_defaults_rule_flags_only_a_cell_worse_than_the_peer_beyond_seed_noise():
    """benchmarks/fair_defaults_table.py's rule on made-up runs: 2 standard errors of the difference of means,
    on each cell against the peer and on the LSTM/GRU ratio against the peer's."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from fair_defaults_table import gap_versus_peer, passes, versus_peer

    def runs(*ppl):
        return [{"seed": i, "valid_ppl": p} for i, p in enumerate(ppl)]

    peer = runs(100.0, 102.0, 104.0)  # mean 102, sd 2
    assert versus_peer(runs(103.0, 105.0, 107.0), peer)["verdict"] == "ok"  # +3 < 2·√(4/3 + 4/3) = 3.27
    worse = versus_peer(runs(104.0, 106.0, 108.0), peer)  # +4 > 3.27
    assert worse["verdict"] == "worse" and worse["delta"] == pytest.approx(4.0)
    assert worse["noise"] == pytest.approx(2 * (8 / 3) ** 0.5)
    assert versus_peer(runs(50.0, 51.0, 52.0), peer)["verdict"] == "ok"  # better is never a failure
    assert versus_peer(runs(200.0, 201.0), peer)["verdict"] == "pending"  # under 3 seeds: no verdict

    def cells(variant, lstm, gru):
        return [{"corpus": "c", "variant": variant, "cell": cell, "seed": i, "valid_ppl": p}
                for cell, ppl in (("lstm", lstm), ("gru", gru)) for i, p in enumerate(ppl)]

    # a variant that helps the LSTM alone: no cell worse than the peer, yet the cells move apart
    result = {"corpora": {"c": {}}, "runs": cells("peer", (61, 62, 61), (64, 64, 65))
              + cells("x", (48, 49, 48), (64, 65, 64))}
    assert passes(result, "x") == {"no_cell_worse": "yes", "ratio_kept": "no", "both": "no"}
    assert gap_versus_peer(result, "c", "x")["delta"] < 0


def test_the_fair_defaults_script_resumes_from_the_committed_runs_of_the_same_setting_only():
    """Another session adds only the missing runs: the committed fair_defaults.json counts as done when every
    setting key is the script's, and not at all when one differs (other seeds, another corpus)."""
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from fair_defaults import committed_runs

    committed = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "fair_defaults.json").read_text())
    assert committed_runs(dict(committed))["runs"] == committed["runs"]
    assert committed_runs({**committed, "seeds": [1, 2, 3]}) == {}
    assert committed_runs({**committed, "corpora": {**committed["corpora"], "kjv_char": {}}}) == {}


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_fair_defaults_are_word_language_models_values(make_config, cell):
    """The values benchmarks/fair_defaults.md chose, pinned as values: U(-0.1, 0.1) embeddings and head
    (bias 0), dropout on embeddings, between layers and on the output, LSTM forget bias 0 in the config and
    in LSTMCell's own default alike, recurrent weights torch's U(-1/√H, 1/√H)."""
    import inspect

    from rnnlab.cells.lstm import LSTMCell
    from rnnlab.data.base import DataSpec
    from rnnlab.model.sequence_model import SequenceModel

    model_cfg = make_config([f"model={cell}"]).model
    assert (model_cfg.embedding_init, model_cfg.head_init, model_cfg.dropout_placement) == ("uniform", "uniform", "all")
    assert model_cfg.init_range == 0.1
    assert inspect.signature(LSTMCell).parameters["forget_bias"].default == 0.0
    if cell == "lstm":
        assert model_cfg.cell.forget_bias == 0.0
    model = instantiate(model_cfg, spec=DataSpec(**LM_SPEC), embedding_dim=300, hidden_size=16)
    assert model.embedding.weight.abs().max() <= 0.1 and model.embedding.weight.std() > 0.05
    assert model.head.weight.abs().max() <= 0.1 and not model.head.bias.any()
    recurrent = [p for n, p in model.recurrent.named_parameters() if "weight" in n]
    assert recurrent and all(p.abs().max() <= 1 / 16 ** 0.5 for p in recurrent)
    fair = model.fairness()
    assert fair["forget_bias"] == (0.0 if cell == "lstm" else None) and fair["dropout_placement"] == "all"
    if cell == "lstm":
        H = 16
        assert not model.recurrent.cells[0].bias_ih[H:2 * H].any() and not model.recurrent.cells[0].bias_hh[H:2 * H].any()
    default_cell = SequenceModel(LSTMCell, DataSpec(**LM_SPEC), hidden_size=8)
    assert default_cell.fairness()["embedding_init"] == "U(-0.1, 0.1)" and default_cell.fairness()["forget_bias"] == 0.0
