"""PTB and WikiText-2 read from tiny files written here in each official format; no network."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from rnnlab.data import ptb as ptb_module
from rnnlab.data.download import ChecksumError, Source
from rnnlab.data.language_modeling import EOS, StreamChunks, batchify
from rnnlab.data.ptb import PTBDataModule
from rnnlab.data.vocab import UNK
from rnnlab.data.wikitext2 import WikiText2DataModule
from rnnlab.training.train import train

UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: refused at once

PTB_TRAIN = [" aer banknote berlitz calloway centrust <unk> <unk> \n",
             " pierre <unk> N years old will join the board as a nonexecutive director nov. N \n",
             " mr. <unk> is chairman of <unk> n.v. the dutch publishing group \n"] * 4
PTB_VALID = [" consumers may want to move their telephones a little closer to the tv set \n",
             " the board will join mr. pierre \n"]
PTB_TEST = [" no it was n't black monday \n", " the dutch group is old \n"]


def write_ptb(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, lines in (("train", PTB_TRAIN), ("valid", PTB_VALID), ("test", PTB_TEST)):
        (root / f"ptb.{name}.txt").write_text("".join(lines))
    return root


WIKI = """ \n = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : 戦場のヴァルキュリア3 ) , \
commonly referred to as Valkyria Chronicles III outside Japan , is a tactical role @-@ playing video game . \n \n \
 = = Gameplay = = \n \n The game began development in 2010 , carrying over a large portion of the work , \
1 @,@ 000 copies and 2 @.@ 5 million . \n"""


def write_wikitext2(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "wiki.train.tokens").write_text(WIKI * 3, encoding="utf-8")
    (root / "wiki.valid.tokens").write_text(" \n = Tactical = \n \n The role @-@ playing game is new . \n")
    (root / "wiki.test.tokens").write_text(" \n = Japan = \n \n The game , 2010 . \n")
    return root


def test_batchify_layout_is_word_language_models():
    """Rows are contiguous streams; targets are inputs shifted by one; chunks continue each other."""
    ids = torch.arange(23)
    streams = batchify(ids, 3)  # 23 // 3 = 7 tokens per stream, the last 2 dropped
    assert streams.tolist() == [list(range(7)), list(range(7, 14)), list(range(14, 21))]
    chunks = StreamChunks(streams, bptt=4)
    assert len(chunks) == 2  # (7 - 1) / 4 -> a chunk of 4 and one of 2
    batches = [chunks[i] for i in range(len(chunks))]
    assert [b["x"].shape for b in batches] == [(3, 4), (3, 2)]
    x, y = torch.cat([b["x"] for b in batches], 1), torch.cat([b["y"] for b in batches], 1)
    assert torch.equal(x, streams[:, :-1]) and torch.equal(y, streams[:, 1:])
    assert torch.equal(batches[1]["x"][:, 0], batches[0]["y"][:, -1])  # chunk 2 starts where chunk 1's targets end
    assert chunks.tokens == 3 * 6
    with pytest.raises(IndexError):
        chunks[2]


def test_ptb_keeps_eos_and_unk_and_builds_vocab_on_train_only(tmp_path):
    dm = PTBDataModule(str(write_ptb(tmp_path / "ptb")), bptt=5, batch_size=2, eval_batch_size=2)
    dm.setup("fit")
    train_words = {w for line in PTB_TRAIN for w in line.split()}
    assert set(dm.vocab.itos) == train_words | {EOS}  # <unk> and N are the text's own
    assert "consumers" not in dm.vocab and "monday" not in dm.vocab  # val/test words are not added
    n_train = sum(len(line.split()) + 1 for line in PTB_TRAIN)
    assert dm.stats["tokens"]["train"] == len(dm.ids["train"]) == n_train
    itos = dm.vocab.itos
    first = [itos[i] for i in dm.ids["train"][: len(PTB_TRAIN[0].split()) + 1]]
    assert first == [*PTB_TRAIN[0].split(), EOS]
    val = [itos[i] for i in dm.ids["val"]]
    assert val[:3] == [UNK, UNK, UNK] and val.count(EOS) == 2  # consumers may want: unseen in train
    assert dm.stats["unk_rate"]["val"] > 0.5
    spec = dm.spec
    assert (spec.task, spec.readout, spec.output_size, spec.vocab_size) == ("language_modeling", "all",
                                                                           len(itos), len(itos))
    assert 0 < spec.baseline_loss < torch.log(torch.tensor(float(len(itos))))
    batch = next(iter(dm.train_dataloader()))
    assert batch["x"].shape == (2, 5) and torch.equal(batch["x"][:, 1:], batch["y"][:, :-1])
    assert dm.train_tokens()[0] == PTB_TRAIN[0].split()


def test_wikitext2_keeps_headings_joiners_and_blank_lines(tmp_path):
    dm = WikiText2DataModule(str(write_wikitext2(tmp_path / "wikitext-2")), bptt=8, batch_size=2, eval_batch_size=1)
    dm.setup("fit")
    lines = (WIKI * 3).split("\n")[:-1]
    assert dm.stats["tokens"]["train"] == sum(len(line.split()) + 1 for line in lines)  # blank lines: <eos> alone
    for token in ("=", "@-@", "@,@", "@.@", UNK, "戦場のヴァルキュリア3", "Valkyria"):  # case kept, nothing dropped
        assert token in dm.vocab
    itos = dm.vocab.itos
    assert [itos[i] for i in dm.ids["train"][:8]] == [EOS, "=", "Valkyria", "Chronicles", "III", "=", EOS, EOS]


def test_lm_errors_name_the_file(tmp_path):
    root = write_ptb(tmp_path / "ptb")
    (root / "ptb.valid.txt").write_bytes(b" a line \n another line \n bad \xff byte \n")
    with pytest.raises(ValueError, match=r"ptb\.valid\.txt:3: not UTF-8"):
        PTBDataModule(str(root), batch_size=2, eval_batch_size=2).setup("fit")
    (root / "ptb.valid.txt").write_text("\n\n")  # only blank lines: no tokens
    with pytest.raises(ValueError, match=r"val split .*ptb\.valid\.txt.* is empty"):
        PTBDataModule(str(root), batch_size=2, eval_batch_size=2).setup("fit")
    write_ptb(root)
    with pytest.raises(ValueError, match=r"test split has 13 tokens: too few for data.eval_batch_size=7"):
        PTBDataModule(str(root), batch_size=2, eval_batch_size=7).setup("fit")
    with pytest.raises(ValueError, match="data.bptt must be a positive integer"):
        PTBDataModule(str(root), bptt=0)


def test_wrong_or_missing_data_set_is_named(tmp_path):
    ptb_root, wiki_root = write_ptb(tmp_path / "ptb"), write_wikitext2(tmp_path / "wikitext-2")
    with pytest.raises(ValueError, match=r"holds Penn Treebank files, not WikiText-2"):
        WikiText2DataModule(str(ptb_root)).setup("fit")
    with pytest.raises(ValueError, match=r"holds WikiText files, not Penn Treebank"):
        PTBDataModule(str(wiki_root)).setup("fit")
    raw = tmp_path / "wikitext-2-raw"
    raw.mkdir()
    for split in ("train", "valid", "test"):
        (raw / f"wiki.{split}.raw").write_text(" = Raw = \n")
    with pytest.raises(ValueError, match=r"raw variant .*wiki\.\*\.tokens"):
        WikiText2DataModule(str(raw)).setup("fit")
    with pytest.raises(FileNotFoundError, match=r"use data.root=.*ptb"):
        PTBDataModule(str(tmp_path)).setup("fit")  # one folder up
    with pytest.raises(FileNotFoundError, match=r"does not exist: .*ptb\.train\.txt.*data\.download=true.*"
                                                r"raw\.githubusercontent\.com/wojzaremba"):
        PTBDataModule(str(tmp_path / "nowhere")).setup("fit")
    with pytest.raises(FileNotFoundError, match=r"does not exist: .*wiki\.train\.tokens.*wikitext-2-v1\.zip"):
        WikiText2DataModule(str(tmp_path / "nowhere")).setup("fit")


def _file_sources(monkeypatch, server: Path, corrupt: str | None = None) -> None:
    files = {}
    for name in ptb_module.FILES:
        data = (server / name).read_bytes()
        sha = hashlib.sha256(data + (b"!" if name == corrupt else b"")).hexdigest()
        files[name] = (Source((server / name).as_uri(), sha256=sha, size=None),)
    monkeypatch.setattr(ptb_module.PTBDataModule, "loose_files", files)


def test_download_verifies_and_fails_offline_with_the_file_names(tmp_path, monkeypatch):
    server = write_ptb(tmp_path / "server")
    _file_sources(monkeypatch, server, corrupt="ptb.valid.txt")
    dm = PTBDataModule(str(tmp_path / "ptb"), download=True, batch_size=2, eval_batch_size=2)
    with pytest.raises(ChecksumError, match="ptb.valid.txt"):
        dm.prepare_data()
    assert not (tmp_path / "ptb" / "ptb.valid.txt").exists()  # nothing unverified is left
    _file_sources(monkeypatch, server)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.stats["tokens"]["train"] == sum(len(line.split()) + 1 for line in PTB_TRAIN)
    monkeypatch.setattr(ptb_module.PTBDataModule, "loose_files",
                        {n: (Source(UNREACHABLE + n, sha256="0" * 64),) for n in ptb_module.FILES})
    with pytest.raises(ConnectionError, match=r"offline\? put ptb\.train\.txt, ptb\.valid\.txt, ptb\.test\.txt "
                                              r"under data\.root="):
        PTBDataModule(str(tmp_path / "elsewhere"), download=True).prepare_data()


def test_recorded_checksums_are_well_formed():
    from rnnlab.data.wikitext2 import ARCHIVE

    for sources in [*ptb_module.FILES.values(), ARCHIVE.sources]:
        for source in sources:
            assert len(source.sha256) == 64 and int(source.sha256, 16) >= 0 and source.checksum_from


@pytest.mark.parametrize("name, write", [("ptb", write_ptb), ("wikitext2", write_wikitext2)])
def test_train_end_to_end_saves_the_vocabulary(name, write, make_config, tmp_path):
    root = write(tmp_path / name)
    cfg = make_config([f"data={name}", f"data.root={root}", "data.bptt=6", "data.batch_size=2",
                       "data.eval_batch_size=2", "logger=none", "model=lstm"])
    results = train(cfg)
    assert results["status"] == "ok", results["error"]
    assert results["task"] == "language_modeling" and results["metrics"]["test/ppl"] > 1
    saved = json.loads((Path(cfg.output_dir) / "vocab.json").read_text())["itos"]
    assert EOS in saved and UNK in saved
    reused = make_config([f"data={name}", f"data.root={root}", f"data.vocab_path={Path(cfg.output_dir) / 'vocab.json'}",
                          "data.batch_size=2", "data.eval_batch_size=2", "logger=none"], name="reuse")
    assert train(reused)["status"] == "ok"


def test_wikitext2_download_unpacks_the_verified_archive(tmp_path, monkeypatch):
    import zipfile

    from rnnlab.data import wikitext2 as wikitext2_module
    from rnnlab.data.download import Archive

    write_wikitext2(tmp_path / "src" / "wikitext-2")
    archive = tmp_path / "server" / "wikitext-2-v1.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted((tmp_path / "src" / "wikitext-2").iterdir()):
            z.write(path, f"wikitext-2/{path.name}")
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(wikitext2_module.WikiText2DataModule, "archive",
                        Archive("wikitext-2-v1.zip", "wikitext-2", (Source(archive.as_uri(), sha256=sha),), "home"))
    dm = WikiText2DataModule(str(tmp_path / "data" / "wikitext-2"), download=True, batch_size=2, eval_batch_size=1)
    dm.prepare_data()
    dm.setup("fit")
    assert "@-@" in dm.vocab and (tmp_path / "data" / "wikitext-2-v1.zip").is_file()
    monkeypatch.setattr(wikitext2_module.WikiText2DataModule, "archive", Archive(
        "wikitext-2-v1.zip", "wikitext-2", (Source(UNREACHABLE + "wikitext-2-v1.zip", sha256=sha),), "home"))
    with pytest.raises(ConnectionError, match=r"offline\? put wiki\.train\.tokens, wiki\.valid\.tokens and "
                                              r"wiki\.test\.tokens .*under data\.root="):
        WikiText2DataModule(str(tmp_path / "other" / "wikitext-2"), download=True).prepare_data()
