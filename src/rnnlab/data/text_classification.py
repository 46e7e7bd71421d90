"""Text classification from files in their official formats: the part IMDB, AG News and SST-2 share.

A subclass reads its files (:meth:`TextClassificationDataModule.read`: text and class index per
example); this base carves the validation split from the training split, tokenises
(:func:`rnnlab.data.vocab.tokenize`), builds the vocabulary on the training split only, and serves
padded batches ``x`` (B, T) ids, ``y`` (B,) class, ``lengths`` (B,).

Length bucketing (``bucketing=true``): each epoch the training examples are shuffled, cut into
chunks of 50 batches, sorted by length within a chunk, batched, and the batches shuffled; the
evaluation splits are sorted whole. Seeded from ``seed`` and the epoch: same seed, same batches.
``stats["padding_fraction"]`` is the share of padded positions in one training epoch (and
``padding_fraction_unbucketed`` what plain shuffled batches would waste).
"""

from __future__ import annotations

import logging
from array import array
from collections import defaultdict
from itertools import count
from pathlib import Path

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from rnnlab.data.base import DataSpec, SequenceDataModule, require_positive
from rnnlab.data.bucketing import (
    CHUNK_BATCHES,
    BucketBatchSampler,
    EpochPermutation,
    ResumableDataLoader,
    padding_fraction,
)
from rnnlab.data.download import Archive, download
from rnnlab.data.vocab import PAD, UNK, Vocab, VocabCheckpoint, tokenize

log = logging.getLogger(__name__)
VAL_SPLIT_SEED = 0  # the validation carve is the same for every run seed: a sweep validates on one set

# Official layouts we can recognise in a wrong data.root: (what it is, how to select it, files that mark it)
KNOWN_LAYOUTS = (
    ("IMDB (aclImdb)", "data=imdb", ("train/pos", "train/neg")),
    ("AG News (ag_news_csv)", "data=ag_news", ("train.csv", "test.csv")),
    ("GLUE SST-2", "data=sst2", ("train.tsv", "dev.tsv")),
    ("Penn Treebank", "its language-modelling data set", ("ptb.train.txt",)),
    ("WikiText", "its language-modelling data set", ("wiki.train.*",)),
    ("MNIST", "its sequential-image data set", ("train-images-idx3-ubyte*",)),
    ("polyphonic music (Boulanger-Lewandowski et al.)", "its music data set", ("*.pickle",)),
)


def identify(root: Path) -> tuple[str, str] | None:
    """(what, how to select it) of the first known layout whose marker files ``root`` holds."""
    for what, select, markers in KNOWN_LAYOUTS:
        if all(any(root.glob(m)) for m in markers):
            return what, select
    return None


class EncodedSplit(Dataset):
    """Token ids of every example in one flat tensor; rows served as (ids[:length], label)."""

    def __init__(self, ids: torch.Tensor, offsets: np.ndarray, labels: torch.Tensor,
                 max_len: int | None) -> None:
        self.ids, self.offsets, self.labels = ids, offsets, labels
        full = np.diff(offsets)
        self.lengths = np.minimum(full, max_len) if max_len else full  # (N,) after truncation
        self.truncated = int((self.lengths < full).sum())

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = int(self.offsets[i])
        return self.ids[start:start + int(self.lengths[i])], self.labels[i]

    def token_ids(self, i: int) -> torch.Tensor:
        """Example ``i`` whole, not truncated."""
        return self.ids[int(self.offsets[i]):int(self.offsets[i + 1])]


def pad_batch(rows: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Rows -> {"x": (B, T) ids padded with 0 at the end, "y": (B,), "lengths": (B,)}."""
    ids, labels = zip(*rows)
    return {"x": pad_sequence(list(ids), batch_first=True, padding_value=0), "y": torch.stack(labels),
            "lengths": torch.tensor([len(t) for t in ids], dtype=torch.long)}


class TextClassificationDataModule(VocabCheckpoint, SequenceDataModule):
    """Base of the file-based text classification sets. Subclasses set the class attributes below and
    implement :meth:`read`."""

    name: str = ""  # the data set's name in results.json
    title: str = ""  # for messages: "IMDB (aclImdb)"
    expected: str = ""  # the files data.root must hold, for messages
    required: tuple[str, ...] = ()  # paths under data.root that must exist
    archive: Archive

    def __init__(self, root: str, batch_size: int = 64, seed: int = 0, num_workers: int = 0,
                 lower: bool = True, min_freq: int = 1, max_size: int | None = None,
                 max_len: int | None = None, val_fraction: float = 0.1, bucketing: bool = True,
                 download: bool = False, cache_dir: str | None = None, vocab_path: str | None = None) -> None:
        super().__init__(batch_size, seed, num_workers)
        if max_len is not None:
            require_positive(max_len=max_len)
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must lie in (0, 1), got {val_fraction!r}")
        self.root = Path(root).expanduser()
        self.lower, self.min_freq, self.max_size, self.max_len = lower, min_freq, max_size, max_len
        self.val_fraction, self.bucketing, self.download = val_fraction, bucketing, download
        self.cache_dir, self.vocab_path = cache_dir, vocab_path
        self.classes: list[str] = []
        self.vocab: Vocab | None = None
        self.stats: dict = {}

    # -- what a subclass provides ---------------------------------------------------------------
    def read(self, root: Path) -> dict[str, tuple[list[str], list[int]]]:
        """{"train": (texts, labels), "test": (texts, labels)}; labels index ``self.classes`` (set here)."""
        raise NotImplementedError

    # -- files ------------------------------------------------------------------------------------
    def _missing(self) -> list[str]:
        return [p for p in self.required if not (self.root / p).exists()]

    def check_root(self) -> None:
        """Raise a one-line error naming what is wrong with ``data.root`` and how to fix it."""
        missing = self._missing()
        if not missing:
            return
        how = (f"{self.title} expects {self.expected} under data.root; get it with data.download=true "
               f"or from {self.archive.urls} (see {self.archive.homepage})")
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} does not exist: {how}")
        found = identify(self.root)
        if found and found[1] != f"data={self.name}":
            raise ValueError(f"data.root={self.root} holds {found[0]} files, not {self.title}: "
                             f"use {found[1]}, or point data.root at {self.title}. {how}")
        nested = [d for d in sorted(self.root.iterdir()) if d.is_dir()
                  and all((d / p).exists() for p in self.required)]
        if nested:
            raise FileNotFoundError(f"data.root={self.root} holds {self.title} one folder down: "
                                    f"use data.root={nested[0]}")
        raise FileNotFoundError(f"data.root={self.root} lacks {', '.join(missing)}: {how}")

    def prepare_data(self) -> None:
        """With ``download=true`` and no files under ``root``: fetch, verify and unpack the archive."""
        if self.download and self._missing():
            if self.root.is_dir() and any(self.root.iterdir()):
                self.check_root()  # something else is there: say what, download nothing
            download(self.archive, self.root, self.cache_dir, expected=self.expected)

    # -- building the splits ----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self._build()
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.is_global_zero:  # Lightning's call, inside a run
            path = Path(trainer.default_root_dir) / "vocab.json"
            if not path.exists():
                self.save_vocab(path)  # with the run, beside config.yaml: evaluation can reuse it

    def _build(self) -> None:
        self.check_root()
        raw = self.read(self.root)
        for split, (texts, _) in raw.items():
            if not texts:
                raise ValueError(f"the {self.title} {split} split under data.root={self.root} is empty")
        raw = self._carve_validation(raw)
        table: dict[str, int] = defaultdict(count().__next__)  # token -> provisional id, first seen first
        encoded = {split: self._tokenise(texts, table) for split, (texts, _) in raw.items()}
        if self.vocab_path:
            self.vocab = Vocab.load(self.vocab_path)
        else:
            self.vocab = self._build_vocab(encoded["train"][0], table)
        if self.vocab.pad_index != 0 or self.vocab.unk_index is None:
            raise ValueError(f"a classification vocabulary needs {PAD} at index 0 and an {UNK} entry")
        get, unk = self.vocab.stoi.get, self.vocab.unk_index
        lookup = np.fromiter((get(t, unk) for t in table), np.int64, len(table))  # provisional -> vocab id
        for split, (ids, offsets) in encoded.items():
            labels = torch.tensor(raw[split][1], dtype=torch.long)
            self.splits[split] = EncodedSplit(torch.from_numpy(lookup[ids]), offsets, labels, self.max_len)
        self._measure()

    def _carve_validation(self, raw: dict) -> dict:
        texts, labels = raw["train"]
        n = len(texts)
        n_val = round(n * self.val_fraction)
        if not 0 < n_val < n:
            raise ValueError(f"data.val_fraction={self.val_fraction} of {n} training examples leaves no "
                             "validation or no training examples")
        order = np.random.default_rng(VAL_SPLIT_SEED).permutation(n)
        val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
        return {"train": ([texts[i] for i in train], [labels[i] for i in train]),
                "val": ([texts[i] for i in val], [labels[i] for i in val]), "test": raw["test"]}

    def _tokenise(self, texts: list[str], table: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """Flat provisional ids (one per token) and example offsets (N + 1,)."""
        ids, offsets, lookup, lower = array("q"), array("q", [0]), table.__getitem__, self.lower
        for text in texts:
            ids.extend(map(lookup, tokenize(text, lower)))  # a new token gets the next id
            offsets.append(len(ids))
        return np.frombuffer(ids, dtype=np.int64), np.frombuffer(offsets, dtype=np.int64)

    def _build_vocab(self, train_ids: np.ndarray, table: dict[str, int]) -> Vocab:
        counts = np.bincount(train_ids, minlength=len(table))
        # Vocab.build counts token lists; hand it each kept token as often as the training split has it
        kept = ([t] * int(c) for t, c in zip(table, counts) if c >= self.min_freq)
        return Vocab.build(kept, min_freq=self.min_freq, max_size=self.max_size)

    def _measure(self) -> None:
        """Sizes, out-of-vocabulary rates, truncation and padding; logged and kept in ``self.stats``."""
        train = self.splits["train"]
        labels = train.labels.numpy()
        stats = {"classes": self.classes, "vocab_size": len(self.vocab),
                 "examples": {s: len(d) for s, d in self.splits.items()},
                 "tokens": {s: int(d.lengths.sum()) for s, d in self.splits.items()},
                 "unk_rate": {s: round(float((d.ids == self.vocab.unk_index).float().mean()), 4)
                              for s, d in self.splits.items()},
                 "truncated": {s: d.truncated for s, d in self.splits.items()},
                 "class_counts": np.bincount(labels, minlength=len(self.classes)).tolist()}
        for bucketing in (True, False):
            sampler = self._batch_sampler(train, shuffle=True, bucketing=bucketing)
            key = "padding_fraction" if bucketing == self.bucketing else (
                "padding_fraction_bucketed" if bucketing else "padding_fraction_unbucketed")
            stats[key] = round(padding_fraction(sampler.batches(), train.lengths), 4)
        self.stats = stats
        other = stats.get("padding_fraction_unbucketed", stats.get("padding_fraction_bucketed"))
        log.info("%s: %s examples, vocabulary %d, <unk> in test %.1f%%, training batches %.1f%% padding "
                 "(%.1f%% %s bucketing)", self.name, stats["examples"], len(self.vocab),
                 100 * stats["unk_rate"]["test"], 100 * stats["padding_fraction"], 100 * other,
                 "without" if self.bucketing else "with")

    # -- what the rest of rnnlab uses -------------------------------------------------------------
    @property
    def padding_fraction(self) -> float:
        return self.stats["padding_fraction"]

    @property
    def spec(self) -> DataSpec:
        if self.vocab is None:
            self.setup("fit")
        p = np.array(self.stats["class_counts"], dtype=float)
        p = p[p > 0] / p.sum()
        return DataSpec(name=self.name, task="classification", readout="last", output_size=len(self.classes),
                        vocab_size=len(self.vocab), pad_index=0, baseline_loss=float(-(p * np.log(p)).sum()),
                        baseline_what="predict the training split's class frequencies", itos=self.vocab.itos)

    def save_vocab(self, path: str | Path) -> None:
        self.vocab.save(path)

    def train_tokens(self) -> list[list[str]]:
        """The training split, each example as vocabulary tokens (rare ones as <unk>), not truncated."""
        if self.vocab is None:
            self.setup("fit")
        itos, train = self.vocab.itos, self.splits["train"]
        return [[itos[i] for i in train.token_ids(k).tolist()] for k in range(len(train))]


    def _batch_sampler(self, data: EncodedSplit, shuffle: bool, bucketing: bool) -> BucketBatchSampler:
        sampler = EpochPermutation(len(data), self.seed) if shuffle else SequentialSampler(data)
        chunk = CHUNK_BATCHES if shuffle else None  # evaluation: sorted whole
        return BucketBatchSampler(sampler, self.batch_size, False, data.lengths, bucketing=bucketing,
                                  shuffle=shuffle, seed=self.seed, chunk_batches=chunk)

    def _loader(self, split: str) -> DataLoader:
        if split not in self.splits:
            self.setup("fit")
        data, train = self.splits[split], split == "train"
        return (ResumableDataLoader if train else DataLoader)(
            data, batch_sampler=self._batch_sampler(data, train, self.bucketing), collate_fn=pad_batch,
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
            **({"datamodule": self} if train else {}))
