"""model.param_budget: the hidden size per cell that matches a parameter count (Chung et al. 2014's ≈20K)."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import compose_config
from rnnlab.data.base import DataSpec
from rnnlab.model.param_budget import count_parameters, hidden_size_for_budget
from rnnlab.training.train import train

# Chung et al. 2014's music task: 88 piano keys in, 88 Bernoulli outputs per step
MUSIC = DataSpec(name="music", task="multilabel", readout="all", input_size=88, output_size=88)


def model_config(name: str, *overrides: str):
    return compose_config([f"model={name}", *overrides], tiny=False).model


@pytest.mark.parametrize(("name", "chung_units"), [("lstm", 36), ("gru", 46), ("rnn", 100)])
def test_a_20k_budget_on_music_lands_near_chungs_sizes(name, chung_units):
    hidden, params = hidden_size_for_budget(model_config(name), MUSIC, 20000)
    assert params == count_parameters(model_config(name), MUSIC, hidden)  # the real model's count
    assert abs(params - 20000) <= 600  # ±3 %
    # our count holds both bias vectors (torch's layout) and the 88×H+88 output layer, which Chung et al.'s
    # "≈20K" seems not to (their sizes count 21,400 / 22,904 / 27,888 here): gated cells land within
    # 12 % of their sizes (LSTM 34, GRU 41), the tanh RNN lower (78 vs 100); the order RNN > GRU > LSTM holds
    assert {"lstm": 34, "gru": 41, "rnn": 78}[name] == hidden
    assert count_parameters(model_config(name), MUSIC, chung_units) > params
    assert hidden <= chung_units and (name == "rnn" or hidden >= 0.88 * chung_units)


def test_every_closer_size_is_further_from_the_budget():
    for name in ("rnn", "lstm", "gru"):
        cfg = model_config(name, "model.num_layers=2", "model.bidirectional=true")
        hidden, params = hidden_size_for_budget(cfg, MUSIC, 50000)
        for other in (hidden - 1, hidden + 1):
            assert abs(count_parameters(cfg, MUSIC, other) - 50000) >= abs(params - 50000)


def test_an_impossible_budget_names_the_key():
    words = DataSpec(name="words", task="language_modeling", readout="all", vocab_size=5000, output_size=5000)
    with pytest.raises(ValueError, match=r"model.param_budget=20000 cannot be met .* hidden_size 1 already has"):
        hidden_size_for_budget(model_config("gru"), words, 20000)
    with pytest.raises(ValueError, match="model.param_budget must be a positive integer"):
        hidden_size_for_budget(model_config("gru"), MUSIC, -5)


def test_a_budgeted_run_records_its_size_and_trains_like_that_size_given_directly(make_config):
    budgeted = train(make_config(["model=lstm", "model.param_budget=3000", "logger=none"], name="budget"))
    assert budgeted["status"] == "ok", budgeted["error"]
    block = budgeted["param_budget"]
    assert block["budget"] == 3000 and block["params"] == budgeted["params"] and abs(block["params"] - 3000) <= 90
    saved = OmegaConf.load(Path(budgeted["output_dir"]) / "config.yaml")
    assert saved.model.hidden_size == block["hidden_size"]
    direct = train(make_config(["model=lstm", f"model.hidden_size={block['hidden_size']}", "logger=none"],
                               name="direct"))
    assert direct["param_budget"] == {"budget": None, "hidden_size": block["hidden_size"], "params": block["params"]}
    assert direct["metrics"] == budgeted["metrics"]  # trial builds did not move the seeded random stream
    assert json.loads((Path(direct["output_dir"]) / "results.json").read_text())["param_budget"]["budget"] is None
