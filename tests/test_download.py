"""Downloads without a network: archives built here, served from file:// URLs; an unreachable URL."""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from rnnlab.data.download import Archive, ChecksumError, Source, download
from rnnlab.data.imdb import IMDBDataModule
from rnnlab.training.train import train
from test_data_classification import write_imdb

UNREACHABLE = "http://127.0.0.1:9/aclImdb_v1.tar.gz"  # the discard port: refused at once


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def imdb_archive(tmp_path: Path, *, sha: str | None = None, url: str | None = None) -> Archive:
    """A real aclImdb_v1.tar.gz of tiny reviews, and an Archive pointing at it."""
    write_imdb(tmp_path / "src" / "aclImdb", 16)
    path = tmp_path / "server" / "aclImdb_v1.tar.gz"
    path.parent.mkdir()
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tmp_path / "src" / "aclImdb", arcname="aclImdb")
    source = Source(url or path.as_uri(), sha256=sha or sha256(path))
    return Archive("aclImdb_v1.tar.gz", "aclImdb", (source,), homepage="https://ai.stanford.edu/~amaas/data/sentiment/")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".part")


def test_a_verified_archive_is_unpacked_into_root(tmp_path):
    archive = imdb_archive(tmp_path)
    root = tmp_path / "data" / "aclImdb"
    assert download(archive, root) == root
    assert len(list((root / "train" / "pos").glob("*.txt"))) == 16
    assert (tmp_path / "data" / "aclImdb_v1.tar.gz").is_file() and leftovers(tmp_path / "data") == []


def test_a_zip_archive_and_a_cache_dir(tmp_path):
    (tmp_path / "server").mkdir()
    path = tmp_path / "server" / "SST-2.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("SST-2/train.tsv", "sentence\tlabel\ngood\t1\n")
        z.writestr("SST-2/dev.tsv", "sentence\tlabel\nbad\t0\n")
    source = Source(path.as_uri(), sha256=sha256(path), size=path.stat().st_size)
    archive = Archive("SST-2.zip", "SST-2", (source,), homepage="https://gluebenchmark.com/tasks")
    download(archive, tmp_path / "data" / "SST-2", cache_dir=tmp_path / "cache")
    assert (tmp_path / "data" / "SST-2" / "dev.tsv").read_text().endswith("bad\t0\n")
    assert (tmp_path / "cache" / "SST-2.zip").is_file()


def test_a_wrong_checksum_fails_and_leaves_nothing(tmp_path):
    archive = imdb_archive(tmp_path, sha="0" * 64)
    (tmp_path / "data").mkdir()
    with pytest.raises(ChecksumError, match="does not match the recorded 0000") as error:
        download(archive, tmp_path / "data" / "aclImdb", expected="train/pos/*.txt")
    assert "removed" in str(error.value) and "train/pos/*.txt" in str(error.value)
    assert list((tmp_path / "data").iterdir()) == []  # no partial archive, no root, no temporary folder


def test_the_md5_of_a_mirror_is_checked_when_no_sha256_is_published(tmp_path):
    good = imdb_archive(tmp_path)
    path = tmp_path / "server" / "aclImdb_v1.tar.gz"
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    bad = Archive(good.filename, good.folder, (Source(path.as_uri(), md5="f" * 32),), good.homepage)
    with pytest.raises(ChecksumError, match="MD5"):
        download(bad, tmp_path / "a" / "aclImdb")
    sources = (Source(UNREACHABLE, sha256="0" * 64), Source(path.as_uri(), md5=md5))
    ok = Archive(good.filename, good.folder, sources, good.homepage)
    download(ok, tmp_path / "b" / "aclImdb")  # the first source is unreachable: the mirror serves
    assert (tmp_path / "b" / "aclImdb" / "test" / "neg").is_dir()


@pytest.mark.serial  # times the failure
def test_an_unreachable_url_fails_fast_with_the_files_to_get(tmp_path):
    archive = Archive("aclImdb_v1.tar.gz", "aclImdb", (Source(UNREACHABLE, sha256="0" * 64),), "https://example.org")
    started = time.perf_counter()
    with pytest.raises(ConnectionError) as error:
        download(archive, tmp_path / "aclImdb", expected="train/pos/*.txt, test/neg/*.txt")
    assert time.perf_counter() - started < 5
    message = str(error.value)
    assert "\n" not in message and "offline?" in message and UNREACHABLE in message
    assert "train/pos/*.txt, test/neg/*.txt" in message and f"data.root={tmp_path / 'aclImdb'}" in message
    assert list(tmp_path.iterdir()) == []


def test_a_verified_archive_in_the_cache_is_not_fetched_again(tmp_path):
    archive = imdb_archive(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "server" / "aclImdb_v1.tar.gz").rename(tmp_path / "data" / "aclImdb_v1.tar.gz")
    download(archive, tmp_path / "data" / "aclImdb")  # the file:// URL is gone: served from the cache
    assert (tmp_path / "data" / "aclImdb" / "train" / "pos").is_dir()


def test_an_archive_escaping_its_folder_is_refused(tmp_path):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    archive = Archive("evil.tar.gz", "aclImdb", (Source(path.as_uri(), sha256=sha256(path)),), "x")
    (tmp_path / "data").mkdir()
    with pytest.raises(tarfile.TarError):
        download(archive, tmp_path / "data" / "aclImdb")
    assert not (tmp_path / "escaped.txt").exists() and leftovers(tmp_path / "data") == []


def test_download_does_not_touch_a_root_holding_another_data_set(tmp_path, monkeypatch):
    from test_data_classification import write_sst2

    root = write_sst2(tmp_path / "SST-2")
    monkeypatch.setattr(IMDBDataModule, "archive", imdb_archive(tmp_path))
    with pytest.raises(ValueError, match="holds GLUE SST-2 files"):
        IMDBDataModule(str(root), download=True).prepare_data()
    assert not (tmp_path / "aclImdb_v1.tar.gz").exists()


def test_data_download_true_runs_end_to_end(make_config, tmp_path, monkeypatch):
    monkeypatch.setattr(IMDBDataModule, "archive", imdb_archive(tmp_path))
    root = tmp_path / "data" / "aclImdb"
    results = train(make_config(["data=imdb", f"data.root={root}", "data.download=true", "data.batch_size=4",
                                 "data.val_fraction=0.25", "data.min_freq=1", "logger=none"]))
    assert results["status"] == "ok", results.get("traceback")
    assert (root / "train" / "neg").is_dir()
