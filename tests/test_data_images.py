"""Sequential MNIST from tiny IDX files written here (gzipped and plain); Fashion-MNIST where Debian's is installed."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.data.seq_mnist import SeqMNISTDataModule, read_idx
from rnnlab.training.train import train

FASHION = Path("/usr/share/datasets/fashion-mnist")


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding: 0x0000, type code, number of dimensions, big-endian sizes, big-endian data."""
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[array.dtype]
    return struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


def write_mnist(root: Path, n_train: int = 60, n_test: int = 20, gz: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        x, y = images(n, seed)
        write_idx(root / f"{split}-images-idx3-ubyte", x, gz)
        write_idx(root / f"{split}-labels-idx1-ubyte", y, not gz)  # mixed on purpose
    return root


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    x, y = images(5, 0)
    assert np.array_equal(read_idx(write_idx(tmp_path / "train-images-idx3-ubyte", x, gz)), x)
    assert np.array_equal(read_idx(write_idx(tmp_path / "train-labels-idx1-ubyte", y, gz)), y)
    ints = np.arange(6, dtype=">i4").reshape(2, 3)
    assert np.array_equal(read_idx(write_idx(tmp_path / "ints", ints, gz)), ints)


def test_bad_idx_files_fail_naming_the_file(tmp_path):
    x, _ = images(3, 0)
    data = idx_bytes(x)
    (tmp_path / "cut").write_bytes(data[:-100])
    with pytest.raises(ValueError, match=r"cut: 2268 bytes, but its header .*2368: truncated"):
        read_idx(tmp_path / "cut")
    (tmp_path / "magic").write_bytes(b"\x00\x00\x07\x03" + data[4:])
    with pytest.raises(ValueError, match=r"magic: not an IDX file \(magic number 00000703"):
        read_idx(tmp_path / "magic")
    (tmp_path / "text.txt").write_text("the quick brown fox")
    with pytest.raises(ValueError, match=r"text\.txt: not an IDX file"):
        read_idx(tmp_path / "text.txt")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(data)[:-40])
    with pytest.raises(ValueError, match=r"cut\.gz: broken gzip data"):
        read_idx(tmp_path / "cut.gz")


def test_splits_scaling_and_carve(tmp_path):
    root = write_mnist(tmp_path / "mnist")
    dm = SeqMNISTDataModule(str(root), val_size=10, batch_size=8)
    dm.setup("fit")
    assert {s: len(d) for s, d in dm.splits.items()} == {"train": 50, "val": 10, "test": 20}
    row = dm.splits["test"][3]
    x, _ = images(20, 1)
    assert row["x"].shape == (784, 1) and row["y"] == 3
    assert torch.allclose(row["x"][:, 0], torch.from_numpy(x[3].reshape(-1) / 255.0).float())
    assert 0.0 <= float(dm.splits["train"][0]["x"].min()) and float(dm.splits["train"][0]["x"].max()) <= 1.0
    again = SeqMNISTDataModule(str(root), val_size=10, seed=5)  # the run seed does not move the carve
    again.setup("fit")
    assert torch.equal(again.splits["val"].labels, dm.splits["val"].labels)
    spec = dm.spec
    assert (spec.name, spec.task, spec.readout, spec.input_size, spec.output_size) == (
        "seq_mnist", "classification", "last", 1, 10)


def test_permutation_is_fixed_and_pixels_per_step_shapes(tmp_path):
    root = write_mnist(tmp_path / "mnist")
    plain = SeqMNISTDataModule(str(root), val_size=10)
    a = SeqMNISTDataModule(str(root), val_size=10, permute=True, seed=1)
    b = SeqMNISTDataModule(str(root), val_size=10, permute=True, seed=2, pixels_per_step=28)
    for dm in (plain, a, b):
        dm.setup("fit")
    order = a.permutation()
    assert torch.equal(order, b.permutation()) and not torch.equal(order, torch.arange(784))
    assert torch.equal(a.splits["test"][0]["x"][:, 0], plain.splits["test"][0]["x"][order, 0])
    assert b.splits["test"][0]["x"].shape == (28, 28)
    assert torch.equal(b.splits["test"][0]["x"].reshape(-1), a.splits["test"][0]["x"].reshape(-1))
    assert a.spec.name == "seq_mnist_permuted" and b.spec.input_size == 28
    with pytest.raises(ValueError, match=r"pixels_per_step must divide 784.*got 5"):
        SeqMNISTDataModule(str(root), pixels_per_step=5)


def test_missing_wrong_and_inconsistent_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist: MNIST expects train-images-idx3-ubyte.*download"):
        SeqMNISTDataModule(str(tmp_path / "nowhere")).setup("fit")
    ptb = tmp_path / "ptb"
    ptb.mkdir()
    (ptb / "ptb.train.txt").write_text(" a b \n")
    with pytest.raises(ValueError, match=r"holds Penn Treebank files, not MNIST"):
        SeqMNISTDataModule(str(ptb)).setup("fit")
    write_mnist(tmp_path / "MNIST" / "raw")  # torchvision's layout
    with pytest.raises(FileNotFoundError, match=r"further down: use data.root=.*MNIST/raw"):
        SeqMNISTDataModule(str(tmp_path)).setup("fit")
    root = write_mnist(tmp_path / "short")
    (root / "t10k-labels-idx1-ubyte").unlink()
    write_idx(root / "t10k-labels-idx1-ubyte", np.zeros(7, np.uint8), gz=True)  # 7 labels for 20 images
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz: expected 20 labels"):
        SeqMNISTDataModule(str(root), val_size=10).setup("fit")
    with pytest.raises(ValueError, match=r"val_size=60 must be smaller than the 60"):
        SeqMNISTDataModule(str(write_mnist(tmp_path / "ok")), val_size=60).setup("fit")


@pytest.mark.parametrize("extra", [[], ["data.permute=true"]])
def test_train_end_to_end(make_config, tmp_path, extra):
    root = write_mnist(tmp_path / "mnist")
    cfg = make_config(["data=seq_mnist", f"data.root={root}", "data.val_size=10", "data.batch_size=8",
                       "data.pixels_per_step=16", "logger=none", *extra])
    results = train(cfg)
    assert results["status"] == "ok", results["error"]
    assert results["task"] == "classification" and results["metrics"]["test/acc"] is not None


@pytest.mark.skipif(not FASHION.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_from_debian_package(make_config):
    cfg = make_config(["data=fashion_mnist", "data.pixels_per_step=28", "logger=none"])
    assert cfg.data.root == str(FASHION)
    results = train(cfg)
    assert results["status"] == "ok", results["error"]
    assert results["data"] == "seq_fashion_mnist"


def test_download_fetches_the_four_gz_files(tmp_path, monkeypatch):
    import hashlib

    from rnnlab.data import seq_mnist
    from rnnlab.data.download import Source

    server = write_mnist(tmp_path / "server", gz=True)
    for name in seq_mnist.NAMES:  # the server holds .gz files only
        plain = server / name
        if plain.exists():
            plain.with_name(name + ".gz").write_bytes(gzip.compress(plain.read_bytes()))
            plain.unlink()
    sources = {n: (Source((server / f"{n}.gz").as_uri(),
                          sha256=hashlib.sha256((server / f"{n}.gz").read_bytes()).hexdigest()),)
               for n in seq_mnist.NAMES}
    monkeypatch.setitem(seq_mnist.SETS, "mnist", ("MNIST", sources, "home"))
    dm = SeqMNISTDataModule(str(tmp_path / "mnist"), download=True, val_size=10)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.splits["test"]) == 20 and sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(
        f"{n}.gz" for n in seq_mnist.NAMES)
    monkeypatch.setitem(seq_mnist.SETS, "mnist", ("MNIST", {n: (Source(f"http://127.0.0.1:9/{n}.gz", sha256="0" * 64),)
                                                           for n in seq_mnist.NAMES}, "home"))
    with pytest.raises(ConnectionError, match=r"offline\? put train-images-idx3-ubyte\.gz, .* under data\.root="):
        SeqMNISTDataModule(str(tmp_path / "offline"), download=True).prepare_data()
