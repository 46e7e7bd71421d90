"""IMDB, AG News and SST-2 read from tiny files written here in each official format, quirks included."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY
from rnnlab.data.ag_news import AGNewsDataModule
from rnnlab.data.imdb import IMDBDataModule
from rnnlab.data.sst2 import SST2DataModule
from rnnlab.data.text_classification import BucketBatchSampler, EpochPermutation, padding_fraction
from rnnlab.data.vocab import Vocab
from rnnlab.training.train import train

WORDS = ["good", "bad", "plot", "actor", "scene", "music", "story", "film", "boring", "great", "awful", "fun",
         "dull", "moving"]


def sentence(i: int, n: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n))


def write_imdb(root: Path, n: int = 8) -> Path:
    """aclImdb: train|test/pos|neg/<id>_<rating>.txt with <br /> breaks, plus unsup/ and the extra files."""
    for split in ("train", "test"):
        for label, rating in (("pos", 8), ("neg", 2)):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                (folder / f"{i}_{rating}.txt").write_text(f"{label.upper()} {sentence(i, 3 + 5 * (i % 4))}."
                                                          f"<br /><br />The End, {split}only{i}.")
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("unsupervisedonly words here")
    (root / "train" / "labeledBow.feat").write_text("0 0:1\n")
    (root / "imdb.vocab").write_text("the\n")
    return root


def write_ag_news(root: Path, n: int = 8) -> Path:
    """ag_news_csv: quoted CSV without header, class index 1-4, commas and doubled quotes inside fields."""
    root.mkdir(parents=True)
    (root / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    for split, m in (("train", n), ("test", n // 2)):
        rows = [f'"{1 + i % 4}","Title {i}, with ""quotes""","{sentence(i, 2 + i % 9)}, said {split}."'
                for i in range(m)]
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    (root / "readme.txt").write_text("AG's News Topic Classification Dataset\n")
    return root


def write_sst2(root: Path, n: int = 8) -> Path:
    """GLUE SST-2: train.tsv / dev.tsv with the header sentence<TAB>label; test.tsv without labels."""
    root.mkdir(parents=True)
    for split, m in (("train", n), ("dev", n // 2)):
        rows = [f"{sentence(i, 1 + i % 6)} \t{i % 2}" for i in range(m)]
        (root / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    (root / "test.tsv").write_text("index\tsentence\n0\tan unlabelled sentence\n")
    return root


WRITERS = {"imdb": (write_imdb, IMDBDataModule, "aclImdb"),
           "ag_news": (write_ag_news, AGNewsDataModule, "ag_news_csv"),
           "sst2": (write_sst2, SST2DataModule, "SST-2")}


def make(name: str, tmp_path: Path, n: int = 8, **kwargs):
    write, cls, folder = WRITERS[name]
    root = write(tmp_path / folder, n)
    dm = cls(str(root), **{"batch_size": 4, "val_fraction": 0.25, **kwargs})
    dm.setup("fit")
    return dm


def test_imdb_reads_the_acl_layout_strips_breaks_and_ignores_unsup(tmp_path):
    dm = make("imdb", tmp_path)
    assert dm.classes == ["neg", "pos"] and dm.stats["examples"] == {"train": 12, "val": 4, "test": 16}
    itos = dm.vocab.itos
    assert itos[:2] == ["<pad>", "<unk>"] and "br" not in itos and "<" not in itos
    assert "unsupervisedonly" not in itos and "pos" in itos  # unsup/ unread; lower-cased
    spec = dm.spec
    assert (spec.task, spec.readout, spec.output_size, spec.pad_index) == ("classification", "last", 2, 0)
    assert spec.vocab_size == len(itos) and spec.itos == itos
    assert spec.baseline_loss == pytest.approx(np.log(2))
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape[0] == 4 and batch["x"].shape[1] == int(batch["lengths"].max())
    for row, n in zip(batch["x"], batch["lengths"]):
        assert (row[:n] != 0).all() and (row[n:] == 0).all()  # padded at the end with <pad> = 0


def test_ag_news_reads_quoted_csv_and_classes_file(tmp_path):
    dm = make("ag_news", tmp_path, n=16)
    assert dm.classes == ["World", "Sports", "Business", "Sci/Tech"] and dm.spec.output_size == 4
    assert sum(dm.stats["class_counts"]) == 12 and len(dm.stats["class_counts"]) == 4
    assert dm.stats["examples"]["test"] == 8
    tokens = dm.train_tokens()
    assert all(t[:2] == ["title", t[1]] and t[2:6] == [",", "with", '"', "quotes"] for t in tokens)
    labels = sorted(int(y) for batch in dm.test_dataloader() for y in batch["y"])
    assert labels == [0, 0, 1, 1, 2, 2, 3, 3]  # class index 1-4 -> 0-3


def test_sst2_uses_dev_as_test_and_ignores_unlabelled_test_tsv(tmp_path):
    dm = make("sst2", tmp_path, n=16)
    assert dm.stats["examples"] == {"train": 12, "val": 4, "test": 8}
    assert "unlabelled" not in dm.vocab.itos


def test_vocabulary_comes_from_the_training_split_with_its_options(tmp_path):
    dm = make("imdb", tmp_path)
    assert "testonly0" not in dm.vocab.itos and dm.stats["unk_rate"]["test"] > 0  # test words are <unk>
    assert dm.stats["unk_rate"]["train"] == 0
    small = IMDBDataModule(str(tmp_path / "aclImdb"), batch_size=4, val_fraction=0.25, min_freq=3, max_size=6)
    small.setup("fit")
    assert len(small.vocab) == 6 and "trainonly0" not in small.vocab.itos
    cased = IMDBDataModule(str(tmp_path / "aclImdb"), batch_size=4, val_fraction=0.25, lower=False)
    cased.setup("fit")
    assert "POS" in cased.vocab.itos and "pos" not in cased.vocab.itos


def test_vocab_saved_and_reused_gives_the_same_mapping(tmp_path):
    dm = make("sst2", tmp_path, n=16)
    dm.save_vocab(tmp_path / "vocab.json")
    assert Vocab.load(tmp_path / "vocab.json").itos == dm.vocab.itos
    again = SST2DataModule(str(tmp_path / "SST-2"), batch_size=4, val_fraction=0.25, max_size=5,
                           vocab_path=str(tmp_path / "vocab.json"))
    again.setup("fit")
    assert again.vocab.itos == dm.vocab.itos
    assert all((a["x"] == b["x"]).all() for a, b in zip(dm.test_dataloader(), again.test_dataloader()))
    dm.load_state_dict(dm.state_dict())
    with pytest.raises(ValueError, match="vocabulary"):
        dm.load_state_dict({"itos": dm.vocab.itos[:-1]})


def test_max_len_truncates(tmp_path):
    dm = make("imdb", tmp_path, max_len=5)
    assert max(int(b["lengths"].max()) for b in dm.train_dataloader()) == 5
    assert dm.stats["truncated"]["train"] > 0


@pytest.mark.parametrize("name, file, content, message", [
    ("ag_news", "train.csv", '"1","a title","text"\n"2","only two"\n', r"train\.csv:2: expected 3 comma-"),
    ("ag_news", "train.csv", '"1","t","d"\n"1","t","d"\n"5","t","d"\n', r"train\.csv:3: class index must be"),
    ("ag_news", "test.csv", 'label,title,description\n"1","t","d"\n', r"test\.csv:1: class index must be"),
    ("ag_news", "train.csv", '"1","a\nmultiline","d"\n"2","t","d","x"\n', r"train\.csv:3: expected 3"),
    ("sst2", "train.tsv", "sentence\tlabel\ngood film\t1\nno label here\n", r"train\.tsv:3: expected 2 tab-"),
    ("sst2", "dev.tsv", "sentence\tlabel\ngood film\t2\n", r"dev\.tsv:2: label must be 0 or 1, got '2'"),
    ("sst2", "train.tsv", "good film\t1\n", r"train\.tsv:1: expected the header"),
    ("sst2", "dev.tsv", "index\tsentence\n0\tgood film\n", r"dev\.tsv:1: .*test\.tsv has no labels"),
    ("imdb", "train/pos/3_8.txt", "  \n", r"3_8\.txt:1: empty review"),
])
def test_malformed_lines_fail_with_file_and_line(tmp_path, name, file, content, message):
    write, cls, folder = WRITERS[name]
    root = write(tmp_path / folder, 8)
    (root / file).write_text(content)
    with pytest.raises(ValueError, match=message):
        cls(str(root), val_fraction=0.25).setup("fit")


@pytest.mark.parametrize("name, empty", [("imdb", ["test/pos", "test/neg"]), ("sst2", ["dev.tsv"])])
def test_an_empty_split_fails_clearly(tmp_path, name, empty):
    write, cls, folder = WRITERS[name]
    root = write(tmp_path / folder, 8)
    for path in empty:
        if (root / path).is_dir():
            for f in (root / path).iterdir():
                f.unlink()
        else:
            (root / path).write_text("sentence\tlabel\n")
    with pytest.raises(ValueError, match="test split .* is empty"):
        cls(str(root), val_fraction=0.25).setup("fit")


@pytest.mark.parametrize("name, other, names", [
    ("imdb", "ag_news", "AG News .*use data=ag_news"), ("ag_news", "sst2", "GLUE SST-2.*use data=sst2"),
    ("sst2", "imdb", r"IMDB \(aclImdb\).*use data=imdb")])
def test_a_root_holding_another_data_set_is_named(tmp_path, name, other, names):
    write, _, folder = WRITERS[other]
    root = write(tmp_path / folder, 4)
    with pytest.raises(ValueError, match=f"data.root={root} holds {names}"):
        WRITERS[name][1](str(root)).setup("fit")


def test_a_missing_root_names_the_layout_and_the_download(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        IMDBDataModule(str(tmp_path / "nowhere")).setup("fit")
    message = str(error.value)
    assert "\n" not in message and "does not exist" in message and "train/pos/*.txt" in message
    assert "data.download=true" in message and "aclImdb_v1.tar.gz" in message
    write_imdb(tmp_path / "aclImdb", 2)
    with pytest.raises(FileNotFoundError, match=f"use data.root={tmp_path / 'aclImdb'}"):
        IMDBDataModule(str(tmp_path)).setup("fit")  # the parent folder


def test_bucketing_cuts_padding_and_repeats_with_the_seed():
    lengths = np.random.default_rng(0).integers(1, 400, 5000)

    def batches(seed, bucketing, epoch=0):
        sampler = EpochPermutation(len(lengths), seed)
        sampler.set_epoch(epoch)
        return BucketBatchSampler(sampler, 32, False, lengths, bucketing=bucketing, seed=seed)

    bucketed, plain = batches(0, True), batches(0, False)
    assert padding_fraction(bucketed.batches(), lengths) < 0.05
    assert padding_fraction(plain.batches(), lengths) > 0.3
    assert list(bucketed) == list(batches(0, True)) and list(bucketed) != list(batches(1, True))
    assert list(bucketed) != list(batches(0, True, epoch=1))
    assert len(list(bucketed)) == len(bucketed) == 157
    assert sorted(i for b in bucketed for i in b) == list(range(5000))  # every example once an epoch


def test_padding_fraction_is_reported_with_and_without_bucketing(tmp_path):
    dm = make("ag_news", tmp_path, n=64)
    assert 0 <= dm.padding_fraction == dm.stats["padding_fraction"] <= dm.stats["padding_fraction_unbucketed"]
    plain = AGNewsDataModule(str(tmp_path / "ag_news_csv"), batch_size=4, val_fraction=0.25, bucketing=False)
    plain.setup("fit")
    assert plain.padding_fraction == dm.stats["padding_fraction_unbucketed"]


@pytest.mark.parametrize("name", ["imdb", "ag_news", "sst2"])
def test_each_loader_trains_end_to_end(make_config, tmp_path, name):
    write, _, folder = WRITERS[name]
    root = write(tmp_path / folder, 16)
    cfg = make_config([f"data={name}", f"data.root={root}", "data.batch_size=4", "data.val_fraction=0.25",
                       "data.min_freq=1", "logger=none"])
    results = train(cfg)
    assert results["status"] == "ok", results.get("traceback")
    run = Path(cfg.output_dir)
    saved = json.loads((run / "results.json").read_text())
    assert saved["data"] == name and saved["task"] == "classification" and saved["steps"] == 2
    assert saved["metrics"]["test/acc"] is not None and saved["baseline_loss"] > 0
    itos = json.loads((run / "vocab.json").read_text())["itos"]
    assert itos[:2] == ["<pad>", "<unk>"]
    assert torch.load(run / "model.pt", weights_only=True)["itos"] == itos  # the mapping travels with the run


def test_a_bad_root_fails_the_run_with_one_line(make_config, tmp_path):
    results = train(make_config(["data=sst2", f"data.root={tmp_path / 'missing'}", "logger=none"]))
    assert results["status"] == "failed" and "\n" not in results["error"]
    assert "train.tsv and dev.tsv" in results["error"] and "SST-2.zip" in results["error"]


def test_the_training_loader_skips_the_batches_a_resumed_run_trained_on(tmp_path):
    dm = make("sst2", tmp_path, n=64)
    loader = dm.train_dataloader()
    epoch = [batch["x"] for batch in loader]
    assert loader.state_dict() == {"batches_trained": 0}  # no trainer: nothing trained
    loader.load_state_dict({"batches_trained": 3})
    assert [b["x"].tolist() for b in loader] == [x.tolist() for x in epoch[3:]]
    assert len([b for b in loader]) == len(epoch)  # the next epoch is whole again


@pytest.mark.slow
def test_a_killed_text_run_resumes_to_the_same_metrics(make_config, tmp_path):
    root = write_sst2(tmp_path / "SST-2", 400)
    run = ["data=sst2", f"data.root={root}", "data.batch_size=4", "data.val_fraction=0.25", "logger=none",
           "checkpoint_every_n_steps=5", "trainer.max_steps=150", "trainer.val_check_interval=50",
           "trainer.limit_val_batches=1.0", "trainer.limit_test_batches=1.0", "model.hidden_size=16"]
    reference = train(make_config(run, name="uninterrupted"))
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *TINY, *run, f"hydra.run.dir={run_dir}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(ckpt, weights_only=True)["global_step"]
    assert 0 < killed_at < 150  # 300 training examples: 75 batches an epoch, so most likely mid-epoch
    resumed = train(make_config([*run, f"resume={run_dir}"], name="unused"))
    assert resumed["status"] == "ok" and resumed["steps"] == 150
    for key in ("val/loss", "test/loss"):
        assert resumed["metrics"][key] == pytest.approx(reference["metrics"][key], rel=1e-6, abs=1e-9), key
