"""Sequential (and permuted) MNIST: an image read pixel by pixel, its class predicted after the last one.

Reads the official IDX files under ``data.root`` (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``; each may be gzipped, ``.gz``), so the same
loader reads Fashion-MNIST (``conf/data/fashion_mnist.yaml``; Debian's ``dataset-fashion-mnist``
installs it under /usr/share/datasets/fashion-mnist/). Pixels are scaled to [0, 1] and read in raster
order, ``pixels_per_step`` at a time (784 steps of 1 by default; 28 of 28 = row by row); with
``permute=true`` in one fixed random order drawn from ``permutation_seed`` (permuted MNIST, Le et al.
2015), the same for every run. The validation split is carved from train with ``split_seed``.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from rnnlab.data.base import DataSpec, SequenceDataModule, require_positive
from rnnlab.data.download import Source
from rnnlab.data.fetch import fetch_files
from rnnlab.data.text_classification import identify

log = logging.getLogger(__name__)
PIXELS = 28 * 28
# IDX type codes (http://yann.lecun.com/exdb/mnist/): the third byte of the magic number
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
NAMES = [name for pair in FILES.values() for name in pair]

_HF = "huggingface/datasets: datasets/{}/dataset_infos.json (download_checksums)"
_TV = "pytorch/vision: torchvision/datasets/mnist.py (MD5, no SHA-256 published for this mirror)"
MNIST_SOURCES = {  # (sha256 and size from Hugging Face, MD5 from torchvision)
    name: (Source(f"https://storage.googleapis.com/cvdf-datasets/mnist/{name}.gz", sha256=sha, size=size,
                  checksum_from=_HF.format("mnist")),
           Source(f"https://ossci-datasets.s3.amazonaws.com/mnist/{name}.gz", md5=md5, size=size,
                  checksum_from=_TV))
    for name, sha, md5, size in (
        ("train-images-idx3-ubyte", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
         "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
        ("train-labels-idx1-ubyte", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
         "d53e105ee54ea40749a09fcbcd1e9432", 28881),
        ("t10k-images-idx3-ubyte", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
         "9fb629c4189551a2d022fa330f9573f3", 1648877),
        ("t10k-labels-idx1-ubyte", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
         "ec29112dd5afa0611ce80d1b7f02629c", 4542))}
FASHION_SOURCES = {  # the files in the authors' repository (sha256 and size from Hugging Face)
    name: (Source(f"https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/{name}.gz",
                  sha256=sha, size=size, checksum_from=_HF.format("fashion_mnist")),)
    for name, sha, size in (
        ("train-images-idx3-ubyte", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
        ("train-labels-idx1-ubyte", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
        ("t10k-images-idx3-ubyte", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
        ("t10k-labels-idx1-ubyte", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148))}
SETS = {"mnist": ("MNIST", MNIST_SOURCES, "http://yann.lecun.com/exdb/mnist/"),
        "fashion_mnist": ("Fashion-MNIST", FASHION_SOURCES, "https://github.com/zalandoresearch/fashion-mnist")}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not, told by its first bytes) as an array; a wrong magic number, a size
    that disagrees with the header, or a broken gzip stream fails naming the file."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path}: broken gzip data ({error}): a truncated download?") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_TYPES or not 1 <= raw[3] <= 4:
        raise ValueError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}, expected "
                         "0000 + type 08-0e + 1-4 dimensions, e.g. 00000803 for images)")
    ndim, dtype = raw[3], np.dtype(IDX_TYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: {len(raw)} bytes, but its header (dimensions {dims}) says {expected}: "
                         f"{'truncated' if len(raw) < expected else 'trailing data'}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def find_file(root: Path, name: str) -> Path | None:
    """``name``, ``name.gz``, or the dotted spelling some mirrors use (``train-images.idx3-ubyte``)."""
    dotted = name.replace("-idx", ".idx")
    for candidate in (name, f"{name}.gz", dotted, f"{dotted}.gz"):
        if (root / candidate).is_file():
            return root / candidate
    return None


class PixelSequences(Dataset):
    """Rows {"x": (784 / p, p) float in [0, 1], "y": class}; images kept as uint8 (N, 784)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, pixels_per_step: int) -> None:
        self.images, self.labels, self.p = images, labels, pixels_per_step

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.images[i].view(-1, self.p).float().div_(255.0), "y": self.labels[i]}


class SeqMNISTDataModule(SequenceDataModule):
    """MNIST-format images as pixel sequences; ``name`` "mnist" or "fashion_mnist" picks the download."""

    def __init__(self, root: str, name: str = "mnist", permute: bool = False, pixels_per_step: int = 1,
                 permutation_seed: int = 0, val_size: int = 5000, split_seed: int = 0, batch_size: int = 64,
                 seed: int = 0, num_workers: int = 0, download: bool = False,
                 cache_dir: str | None = None) -> None:
        super().__init__(batch_size, seed, num_workers)
        if name not in SETS:
            raise ValueError(f"data.name must be one of {sorted(SETS)}, got {name!r}")
        require_positive(pixels_per_step=pixels_per_step, val_size=val_size)
        if PIXELS % pixels_per_step:
            divisors = [d for d in range(1, PIXELS + 1) if PIXELS % d == 0]
            raise ValueError(f"data.pixels_per_step must divide 784, one of {divisors}; got {pixels_per_step}")
        self.root, self.name, self.permute = Path(root).expanduser(), name, permute
        self.pixels_per_step, self.permutation_seed = pixels_per_step, permutation_seed
        self.val_size, self.split_seed, self.download = val_size, split_seed, download
        self.title, self.sources, self.homepage = SETS[name]
        self.class_counts: np.ndarray | None = None

    def permutation(self) -> torch.Tensor | None:
        """The fixed pixel order of permuted MNIST (None without ``permute``)."""
        if not self.permute:
            return None
        return torch.randperm(PIXELS, generator=torch.Generator().manual_seed(self.permutation_seed))

    def _paths(self) -> dict[str, Path | None]:
        return {name: find_file(self.root, name) for name in NAMES}

    def check_root(self) -> dict[str, Path]:
        paths = self._paths()
        missing = [n for n, p in paths.items() if p is None]
        if not missing:
            return paths
        how = (f"{self.title} expects {', '.join(NAMES)} (each may end in .gz) under data.root; get them with "
               f"data.download=true or from {self.homepage}")
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} does not exist: {how}")
        found = identify(self.root) if len(missing) == len(NAMES) else None  # none of ours: whose?
        if found:
            raise ValueError(f"data.root={self.root} holds {found[0]} files, not {self.title}: use {found[1]}, "
                             f"or point data.root at {self.title}. {how}")
        nested = [d for d in sorted([*self.root.glob("*"), *self.root.glob("*/*")]) if d.is_dir()
                  and find_file(d, NAMES[0])]
        if nested:  # torchvision keeps them in <root>/MNIST/raw/
            raise FileNotFoundError(f"data.root={self.root} holds {self.title} further down: "
                                    f"use data.root={nested[0]}")
        raise FileNotFoundError(f"data.root={self.root} lacks {', '.join(missing)}: {how}")

    def prepare_data(self) -> None:
        if self.download and any(p is None for p in self._paths().values()):
            missing = [n for n, p in self._paths().items() if p is None]
            fetch_files({f"{n}.gz": self.sources[n] for n in missing}, self.root, self.homepage)

    def _read(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        image_name, label_name = FILES[split]
        paths = self.check_root()
        images, labels = read_idx(paths[image_name]), read_idx(paths[label_name])
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise ValueError(f"{paths[image_name]}: expected 28×28 unsigned-byte images, got {images.dtype} "
                             f"{images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"{paths[label_name]}: expected {len(images)} labels (one per image in "
                             f"{paths[image_name].name}), got shape {labels.shape}")
        if len(labels) == 0:
            raise ValueError(f"{paths[image_name]}: the {split} split is empty (0 images)")
        if labels.max() > 9:
            raise ValueError(f"{paths[label_name]}: labels must be 0-9, found {int(labels.max())}")
        images = torch.from_numpy(images.reshape(len(images), PIXELS).copy())  # (N, 784) uint8
        return images, torch.from_numpy(labels.astype(np.int64))

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        order = self.permutation()
        data = {}
        for split in FILES:
            images, labels = self._read(split)
            data[split] = (images[:, order] if order is not None else images, labels)
        images, labels = data["train"]
        if not 0 < self.val_size < len(labels):
            raise ValueError(f"data.val_size={self.val_size} must be smaller than the {len(labels)} "
                             "training images")
        carve = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.split_seed))
        val, train = carve[: self.val_size].sort().values, carve[self.val_size:].sort().values
        splits = {"train": (images[train], labels[train]), "val": (images[val], labels[val]),
                  "test": data["test"]}
        self.splits = {s: PixelSequences(x, y, self.pixels_per_step) for s, (x, y) in splits.items()}
        self.class_counts = np.bincount(splits["train"][1].numpy(), minlength=10)
        log.info("%s: %s images, %d steps of %d pixels%s", self.spec.name,
                 {s: len(d) for s, d in self.splits.items()}, PIXELS // self.pixels_per_step,
                 self.pixels_per_step, ", permuted" if self.permute else "")

    @property
    def spec(self) -> DataSpec:
        if self.class_counts is None:
            self.setup("fit")
        p = self.class_counts[self.class_counts > 0] / self.class_counts.sum()
        name = "seq_mnist" if self.name == "mnist" else f"seq_{self.name}"
        return DataSpec(name=f"{name}_permuted" if self.permute else name, task="classification",
                        readout="last", output_size=10, input_size=self.pixels_per_step,
                        baseline_loss=float(-(p * np.log(p)).sum()),
                        baseline_what="predict the training split's class frequencies")
