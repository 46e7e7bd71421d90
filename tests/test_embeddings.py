"""Embeddings: vector files in each format written here, coverage, OOV scale, freezing, word2vec, errors."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import rnnlab.training.train
from rnnlab.cells.gru import GRUCell
from rnnlab.data.adding import AddingDataModule
from rnnlab.data.base import DataSpec, SequenceDataModule
from rnnlab.data.copy_memory import CopyMemoryDataModule
from rnnlab.data.vector_files import VectorFileError, read_vectors
from rnnlab.data.vocab import Vocab
from rnnlab.model.embeddings import apply_embeddings, prepare_embeddings
from rnnlab.model.sequence_model import SequenceModel

ROOT = Path(__file__).resolve().parents[1]
FILE_WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog"]
VECTORS = np.random.default_rng(0).normal(0.3, 2.0, size=(len(FILE_WORDS), 5)).astype(np.float32)


class TinyText(SequenceDataModule):
    """A text data set in memory: the vocabulary and the training split's tokens are all embeddings need."""

    def __init__(self, sentences: list[list[str]], itos: list[str] | None = None, seed: int = 0) -> None:
        super().__init__(batch_size=4, seed=seed)
        self.sentences = sentences
        self.vocab = Vocab(itos) if itos else Vocab.build(sentences)

    @property
    def spec(self) -> DataSpec:
        return DataSpec(name="tiny_text", task="classification", readout="last", output_size=2,
                        vocab_size=len(self.vocab), pad_index=self.vocab.pad_index, itos=self.vocab.itos)

    def setup(self, stage: str | None = None) -> None:
        pass

    def train_tokens(self) -> list[list[str]]:
        return self.sentences


def corpus(n_sentences: int = 1000, n_words: int = 60, seed: int = 0) -> list[list[str]]:
    """Sentences where word k is followed by words near k: enough structure for word2vec to learn."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_sentences):
        k = int(rng.integers(n_words))
        out.append([f"w{(k + int(step)) % n_words}" for step in rng.integers(0, 4, size=12).cumsum()])
    return out


def cfg(**keys):
    return OmegaConf.create({"source": "pretrained", "dim": None, "freeze": False, "path": None, **keys})


def w2v_cfg(cache_dir=None, **keys):
    return OmegaConf.create({"source": "word2vec", "dim": 16, "freeze": False, "path": None,
                             "algorithm": "skipgram", "window": 3, "epochs": 5, "min_count": 1, "negative": 5,
                             "seed": 0, "workers": 1,
                             "cache_dir": None if cache_dir is None else str(cache_dir), **keys})


def glove_text(words=FILE_WORDS, vectors=VECTORS) -> str:
    return "".join(w + " " + " ".join(repr(float(x)) for x in v) + "\n" for w, v in zip(words, vectors))


def write(path: Path, fmt: str, words=FILE_WORDS, vectors=VECTORS) -> Path:
    """``fmt``: glove | word2vec-text | word2vec-binary, whatever the file is called."""
    if fmt == "glove":
        path.write_text(glove_text(words, vectors))
    elif fmt == "word2vec-text":
        path.write_text(f"{len(words)} {vectors.shape[1]}\n" + glove_text(words, vectors))
    else:  # the word2vec C tool's layout: header, then "word " + float32 bytes + "\n" per entry
        path.write_bytes(f"{len(words)} {vectors.shape[1]}\n".encode() + b"".join(
            w.encode() + b" " + v.astype("<f4").tobytes() + b"\n" for w, v in zip(words, vectors)))
    return path


# --- reading files --------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, name", [("glove", "vectors.bin"), ("word2vec-text", "vectors.bin"),
                                       ("word2vec-binary", "vectors.txt"), ("glove", "glove.6B.5d.txt"),
                                       ("word2vec-binary", "model.vec")])
def test_each_format_is_read_from_its_content_not_its_extension(tmp_path, fmt, name):
    found = read_vectors(write(tmp_path / name, fmt), ["cat", "dog", "unicorn"])
    assert found.format == fmt and found.dim == 5 and found.rows == len(FILE_WORDS)
    assert sorted(found.vectors) == ["cat", "dog"]
    np.testing.assert_array_equal(found.vectors["cat"], VECTORS[1])  # repr() round-trips float32 exactly
    np.testing.assert_array_equal(found.vectors["dog"], VECTORS[6])


def test_gzipped_files_and_gensim_written_files_are_read(tmp_path):
    gensim = pytest.importorskip("gensim")
    kv = gensim.models.KeyedVectors(5)
    kv.add_vectors(FILE_WORDS, VECTORS)
    for binary in (True, False):
        path = tmp_path / f"gensim-{binary}.w2v"
        kv.save_word2vec_format(str(path), binary=binary)
        found = read_vectors(path)
        assert found.format == ("word2vec-binary" if binary else "word2vec-text")
        np.testing.assert_allclose(found.vectors["mat"], VECTORS[4], rtol=1e-6)
    packed = tmp_path / "glove.txt.gz"
    packed.write_bytes(gzip.compress(glove_text().encode()))
    assert read_vectors(packed).vectors.keys() == set(FILE_WORDS)


def test_quirks_of_real_files_are_read(tmp_path):
    """fastText .vec trailing spaces, CRLF, GloVe 840B words with spaces, Latin-1 words, repeated words."""
    path = tmp_path / "quirks.vec"
    path.write_bytes(b"4 2\r\n" + b"the 1 2 \r\n" + b". . . 3 4 \r\n" + "caf\u00e9 5 6 \r\n".encode("latin-1")
                     + b"the 7 8 \r\n")
    found = read_vectors(path)
    assert found.format == "word2vec-text" and found.rows == 4
    assert {w: v.tolist() for w, v in found.vectors.items()} == {"the": [1, 2], ". . .": [3, 4],
                                                                 "caf\ufffd": [5, 6]}  # first "the" wins


@pytest.mark.serial  # times the read
def test_a_100k_word_glove_file_reads_only_the_vocabulary(tmp_path):
    """Rows outside the vocabulary are skipped without parsing: ~0.5 s for 100k × 100 on one core."""
    rng = np.random.default_rng(0)
    path = tmp_path / "big.txt"
    row = " ".join(["0.12345"] * 99)
    with open(path, "w") as f:
        f.writelines(f"w{i} {rng.normal():.5f} {row}\n" for i in range(100_000))
    started = time.perf_counter()
    found = read_vectors(path, [f"w{i}" for i in range(0, 200_000, 100)])
    assert len(found.vectors) == 1000 and found.rows == 100_000 and found.dim == 100
    assert time.perf_counter() - started < 10


# --- coverage, scale, dimension -------------------------------------------------------------------

def test_coverage_is_exact_on_a_fixture_vocabulary(tmp_path, caplog):
    # 6 entries besides <pad>; found: the, cat, sat; missing: <unk>, Mat (case matters), unicorn
    itos = ["<pad>", "<unk>", "the", "cat", "sat", "Mat", "unicorn"]
    data = TinyText([["the"]], itos=itos)
    with caplog.at_level(logging.INFO, logger="rnnlab.model.embeddings"):
        weights, info = prepare_embeddings(cfg(path=str(write(tmp_path / "g.txt", "glove"))), data, seed=0)
    assert info["coverage"] == 0.5 and info["found"] == 3 and info["vocab_words"] == 6
    assert info["source"] == "pretrained" and info["format"] == "glove" and info["dim"] == 5
    assert "3 of 6 vocabulary words found, coverage 50.00%" in caplog.text
    assert weights.shape == (7, 5) and weights.dtype == torch.float32
    for i, word in enumerate(itos):
        if word in FILE_WORDS:
            assert torch.equal(weights[i], torch.from_numpy(VECTORS[FILE_WORDS.index(word)]))
    assert torch.equal(weights[0], torch.zeros(5))  # <pad>


def test_out_of_vocabulary_rows_have_the_scale_of_the_found_vectors(tmp_path):
    rng = np.random.default_rng(1)
    mean, std = np.linspace(-3, 3, 8), np.linspace(0.1, 4, 8)
    found = (mean + std * rng.normal(size=(2000, 8))).astype(np.float32)
    words = [f"in{i}" for i in range(2000)]
    itos = ["<pad>", "<unk>", *words, *(f"out{i}" for i in range(4000))]
    weights, info = prepare_embeddings(cfg(path=str(write(tmp_path / "v.txt", "glove", words, found))),
                                       TinyText([["in0"]], itos=itos), seed=3)
    oov = weights[2002:].numpy()
    np.testing.assert_allclose(oov.mean(0), found.mean(0), atol=0.15)
    np.testing.assert_allclose(oov.std(0), found.std(0), rtol=0.05)
    assert info["found"] == 2000
    again, _ = prepare_embeddings(cfg(path=str(tmp_path / "v.txt")), TinyText([["in0"]], itos=itos), seed=3)
    assert torch.equal(weights, again)  # seeded


def test_the_embedding_size_follows_the_file(tmp_path, caplog):
    data = TinyText([["the", "cat"]], itos=["<pad>", "<unk>", "the", "cat"])
    with caplog.at_level(logging.WARNING, logger="rnnlab.model.embeddings"):
        weights, info = prepare_embeddings(cfg(dim=8, path=str(write(tmp_path / "g", "glove"))), data)
    assert weights.shape == (4, 5) and info["dim"] == 5
    assert "embeddings.dim=8 but g holds 5-dimensional vectors: the embedding size follows the file" \
        in caplog.text
    model = SequenceModel(GRUCell, data.spec, hidden_size=4, embedding_dim=int(weights.shape[1]))
    apply_embeddings(model, weights)
    assert torch.equal(model.embedding.weight.detach(), weights)
    with pytest.raises(ValueError, match=r"do not fit the model's \(4, 8\): build it with embedding_dim=5"):
        apply_embeddings(SequenceModel(GRUCell, data.spec, hidden_size=4, embedding_dim=8), weights)


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_keeps_the_vectors_through_a_real_optimizer_step(tmp_path, freeze):
    data = TinyText([["the", "cat", "sat"]], itos=["<pad>", "<unk>", "the", "cat", "sat"])
    weights, _ = prepare_embeddings(cfg(path=str(write(tmp_path / "g", "glove")), freeze=freeze), data)
    model = SequenceModel(GRUCell, data.spec, hidden_size=4, embedding_dim=5)
    apply_embeddings(model, weights, freeze=freeze)
    assert model.embedding.weight.requires_grad is not freeze
    head_before = model.head.weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.1)
    out, _ = model(torch.tensor([[2, 3, 4], [4, 3, 0]]), torch.tensor([3, 2]))
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1])).backward()
    optimizer.step()
    assert torch.equal(model.embedding.weight.detach(), weights) is freeze
    assert not torch.equal(model.head.weight.detach(), head_before)
    assert torch.equal(model.embedding.weight[0].detach(), torch.zeros(5))  # <pad> never moves


# --- word2vec -------------------------------------------------------------------------------------

W2V_DIGEST = ("import hashlib, sys; sys.path.insert(0, 'tests'); from test_embeddings import *; "
              "w, _ = prepare_embeddings(w2v_cfg(), TinyText(corpus())); "
              "print(hashlib.sha256(w.numpy().tobytes()).hexdigest())")


@pytest.mark.serial  # times the cache hit
def test_word2vec_is_deterministic_under_any_hash_seed_and_cached(tmp_path):
    data = TinyText(corpus())
    first, info = prepare_embeddings(w2v_cfg(), data, seed=0)
    assert first.shape == (len(data.vocab), 16) and info["coverage"] == 60 / 61  # <unk> not in the corpus
    second, _ = prepare_embeddings(w2v_cfg(), data, seed=0)
    assert torch.equal(first, second)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # another str hash: gensim must not depend on it
    digest = subprocess.run([sys.executable, "-c", W2V_DIGEST], cwd=ROOT, env=env, capture_output=True,
                            text=True, check=True).stdout.split()[-1]
    assert digest == hashlib.sha256(first.numpy().tobytes()).hexdigest()

    unit = torch.nn.functional.normalize(first[[data.vocab.stoi[f"w{k}"] for k in range(60)]], dim=-1)
    similarity = unit @ unit.T  # words 1-3 apart share contexts, words 20-40 apart do not
    near, far = (torch.cat([similarity.diagonal(d) for d in ds]).mean() for ds in ((1, 2, 3), range(20, 41)))
    assert near > far + 0.5

    trained, info = prepare_embeddings(w2v_cfg(tmp_path), data, seed=0)
    assert not info["cache_hit"] and Path(info["cache"]).is_file() and torch.equal(trained, first)
    started = time.perf_counter()
    cached, info = prepare_embeddings(w2v_cfg(tmp_path), data, seed=0)
    assert info["cache_hit"] and torch.equal(cached, first) and time.perf_counter() - started < 1.0
    for change in ({"seed": 1}, {"algorithm": "cbow"}, {"window": 2}):
        other, info = prepare_embeddings(w2v_cfg(tmp_path, **change), data, seed=0)
        assert not info["cache_hit"] and not torch.equal(other, first), change
    assert len(list(tmp_path.glob("*.npz"))) == 4 and not list(tmp_path.glob("*.tmp"))


def test_word2vec_splits_long_token_streams_instead_of_cutting_them():
    """A language-modelling corpus may be one stream; gensim would silently drop all after token 10,000."""
    stream = [f"w{i % 60}" for i in range(20_000)] + ["late"] * 50
    _, info = prepare_embeddings(w2v_cfg(epochs=1), TinyText([stream]))
    assert info["found"] == 61 and info["train_tokens"] == 20_050


@pytest.mark.parametrize("keys, message", [
    ({"algorithm": "glove"}, r"embeddings.algorithm must be one of \('skipgram', 'cbow'\), got 'glove'"),
    ({"window": 0}, "embeddings.window must be an integer >= 1, got 0"),
    ({"dim": None}, "embeddings.dim must be an integer >= 1, got None"),
    ({"source": "fasttext"}, r"embeddings.source must be one of \('random', 'word2vec', 'pretrained'\)"),
])
def test_bad_word2vec_settings_are_named(keys, message):
    with pytest.raises(ValueError, match=message):
        prepare_embeddings(w2v_cfg(**keys), TinyText([["a", "b"]]))


# --- bad input ------------------------------------------------------------------------------------

def rows(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


@pytest.mark.parametrize("content, message", [
    (rows("the 1 2 3", "cat 1 x 3"), r"bad\.txt, line 2: component 2 of 'cat' is 'x', not a number"),
    (rows("the 1 2 3", "cat 1 2 3", "sat 1 2"), r"bad\.txt, line 3: 2 values where the first row has 3"),
    (rows("the 1 2 3", "cat 1 2 3 4"), r"bad\.txt, line 2: 4 values where the first row has 3"),
    (rows("2 3", "the 1 2 3", "cat 1 2"), r"bad\.txt, line 3: 2 values where the header has 3"),
    (rows("2 3", "the 1 x 3", "cat 1 2 3"), r"bad\.txt, line 2: component 2 of 'the' is 'x', not a number"),
    (rows("3 3", "the 1 2 3", "cat 1 2 3"), r"announces 3 vectors but the file holds 2 \(truncated\?\)"),
    (rows("the 1 nan 3"), r"bad\.txt, line 1: the vector of 'the' holds inf or nan"),
    (rows("the", "cat"), r"bad\.txt, line 1: 'the' is a word without a vector"),
    ("", r"bad\.txt is empty"),
])
def test_malformed_text_files_fail_with_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(VectorFileError, match=message):
        read_vectors(path, ["the", "cat", "sat"])


def test_truncated_or_misdeclared_binary_files_fail_clearly(tmp_path):
    good = write(tmp_path / "good.bin", "word2vec-binary").read_bytes()
    (tmp_path / "cut.bin").write_bytes(good[:-9])
    with pytest.raises(VectorFileError, match=r"cut\.bin, entry 7 of 7 \(byte \d+\): 12 of the 20 bytes of a "
                                              r"5-float32 vector: the file is truncated"):
        read_vectors(tmp_path / "cut.bin", ["dog"])
    (tmp_path / "short.bin").write_bytes(good.replace(b"7 5\n", b"8 5\n", 1))
    with pytest.raises(VectorFileError, match=r"short\.bin, entry 8 of 8 .*ends before this word: truncated"):
        read_vectors(tmp_path / "short.bin")
    (tmp_path / "nan.bin").write_bytes(good.replace(VECTORS[1].astype("<f4").tobytes(),
                                                    np.array([1, 2, np.inf, 4, 5], "<f4").tobytes()))
    with pytest.raises(VectorFileError, match=r"nan\.bin, entry 2 \(byte \d+\): the vector of 'cat' holds"):
        read_vectors(tmp_path / "nan.bin", ["cat"])
    (tmp_path / "dim.bin").write_bytes(good.replace(b"7 5\n", b"7 4\n", 1))  # vectors are 5 floats, not 4
    with pytest.raises(VectorFileError, match=r"dim\.bin, entry 2 \(byte \d+\): no word where one should "
                                              r"start: the vectors are not 4 float32 values as the header"):
        read_vectors(tmp_path / "dim.bin")


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04rest", r"is a zip archive: unzip it"),
    (b"\x80\x04\x95pickle", r"is a Python pickle .*save_word2vec_format"),
    (bytes(range(256)) * 4, r"is not a GloVe or word2vec file: binary content without a '<count> <dim>'"),
])
def test_files_of_another_format_get_a_clear_message(tmp_path, content, message):
    (tmp_path / "vectors.txt").write_bytes(content)
    with pytest.raises(VectorFileError, match=message):
        read_vectors(tmp_path / "vectors.txt")


def test_pretrained_needs_an_existing_path_and_vectors_that_cover_something(tmp_path):
    data = TinyText([["the"]])
    with pytest.raises(ValueError, match="embeddings=pretrained needs embeddings.path="):
        prepare_embeddings(cfg(), data)
    with pytest.raises(FileNotFoundError, match="embeddings file .*nope.txt not found"):
        prepare_embeddings(cfg(path=str(tmp_path / "nope.txt")), data)
    glove = write(tmp_path / "g.txt", "glove")
    with pytest.raises(ValueError, match="none of the 2 vocabulary words has a vector in .*g.txt: wrong "
                                         r"file, or a case mismatch \(data.lower\)\?"):
        prepare_embeddings(cfg(path=str(glove)), TinyText([["THE"]]))


@pytest.mark.parametrize("datamodule, what", [(CopyMemoryDataModule(seq_len=5), "symbols, not words"),
                                              (AddingDataModule(seq_len=5), "float inputs")])
@pytest.mark.parametrize("source", ["word2vec", "pretrained"])
def test_non_text_data_sets_take_random_embeddings_only(tmp_path, datamodule, what, source):
    embeddings = cfg(source=source, path=str(write(tmp_path / "g.txt", "glove")))
    with pytest.raises(ValueError, match=f"embeddings={source} needs a text data set; .* has {what}: "
                                         "use embeddings=random"):
        prepare_embeddings(embeddings, datamodule)
    assert prepare_embeddings(cfg(source="random", dim=8), datamodule) == (
        None, {"source": "random", "coverage": None, "dim": 8, "freeze": False})


# --- end to end -----------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["pretrained", "word2vec"])
def test_a_run_with_embeddings_reports_coverage_and_rebuilds(make_config, tmp_path, source):
    from rnnlab.training.checkpoint import load_model

    root = tmp_path / "SST-2"
    root.mkdir()
    lines = ["the cat sat on the mat \t1", "a dog sat \t0", "the unicorn sat \t1", "a cat on a mat \t0"] * 4
    for split in ("train", "dev"):
        (root / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(lines) + "\n")
    glove = write(tmp_path / "glove.bin", "glove")  # a GloVe text file, whatever its name says
    overrides = ["data=sst2", f"data.root={root}", "data.val_fraction=0.25", "logger=none",
                 f"embeddings={source}", "embeddings.freeze=true",
                 f"embeddings.path={glove}" if source == "pretrained" else f"embeddings.cache_dir={tmp_path}"]
    cfg_run = make_config(overrides)
    results = rnnlab.training.train.train(cfg_run)
    assert results["status"] == "ok", results["error"]
    saved = json.loads((Path(cfg_run.output_dir) / "results.json").read_text())["embeddings"]
    assert saved["source"] == source and 0 < saved["coverage"] <= 1
    model, rebuilt = load_model(cfg_run.output_dir)
    expected_dim = 5 if source == "pretrained" else 8  # the file's dimension / embeddings.dim (conftest: 8)
    assert model.embedding.weight.shape[1] == expected_dim == rebuilt.model.embedding_dim
    if source == "pretrained":  # frozen: the file's vectors survive training
        cat = model.spec.itos.index("cat")
        assert torch.equal(model.embedding.weight[cat].detach(), torch.from_numpy(VECTORS[1]))
        assert saved["coverage"] == 7 / 9  # the cat sat on mat a dog found, <unk> unicorn not; no <pad>


def test_a_run_on_non_text_data_with_word2vec_fails_clearly(make_config):
    results = rnnlab.training.train.train(make_config(["data=adding", "embeddings=word2vec", "logger=none"]))
    assert results["status"] == "failed"
    assert results["error"] == ("embeddings=word2vec needs a text data set; 'adding' has float inputs: "
                                "use embeddings=random")
