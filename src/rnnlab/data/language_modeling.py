"""Language modelling on contiguous token streams: the part PTB, WikiText-2 and the KJV corpus share.

The layout of pytorch/examples ``word_language_model``: every line of a split (blank lines too)
becomes its tokens followed by ``<eos>``; the split's ids form one stream, trimmed to a multiple of
the batch size B and folded into B contiguous streams (B, N), row b holding tokens [b·N, (b+1)·N).
Batch i is the chunk ``x = streams[:, i·bptt : i·bptt + n]``, ``y`` the same shifted by one token
(n = bptt, or less for the last chunk), served in order: the LightningModule carries the recurrent
state from one chunk to the next (truncated BPTT) and resets it each epoch. Validation and test use
``eval_batch_size`` streams (10, as there).

The vocabulary is built on the training split only (most frequent first, ties alphabetical) and
saved as ``vocab.json`` beside the run's ``config.yaml``; PTB and WikiText-2 come with ``<unk>``
already in their text, so it is exactly their published 10,000 and 33,278 words.
"""

from __future__ import annotations

import logging
import math
import time
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable
from itertools import count
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from rnnlab.data.base import DataSpec, SequenceDataModule, require_positive
from rnnlab.data.download import Archive, Source, download
from rnnlab.data.fetch import fetch_files
from rnnlab.data.text_classification import identify
from rnnlab.data.vocab import UNK, Vocab, VocabCheckpoint

log = logging.getLogger(__name__)
EOS = "<eos>"
SPLITS = ("train", "val", "test")


def batchify(ids: torch.Tensor, n_streams: int) -> torch.Tensor:
    """(N,) -> (B, N // B): B contiguous streams; the last N mod B tokens are dropped."""
    n = len(ids) // n_streams
    return ids[: n * n_streams].view(n_streams, n)


class StreamChunks(Dataset):
    """Whole batches, in order: chunk i = {"x": streams[:, s:s+n], "y": streams[:, s+1:s+1+n]}, s = i·bptt."""

    def __init__(self, streams: torch.Tensor, bptt: int) -> None:
        self.streams, self.bptt = streams, bptt  # (B, N)

    def __len__(self) -> int:
        return math.ceil((self.streams.shape[1] - 1) / self.bptt)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        start = i * self.bptt
        n = min(self.bptt, self.streams.shape[1] - 1 - start)
        return {"x": self.streams[:, start:start + n], "y": self.streams[:, start + 1:start + 1 + n]}

    @property
    def tokens(self) -> int:
        """Target tokens per epoch."""
        return self.streams.shape[0] * (self.streams.shape[1] - 1)


def read_lines(path: Path) -> list[str]:
    """The file's lines (``\\n`` or ``\\r\\n``); a file that is not UTF-8 text fails with its line number."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text ({error.reason} at byte {error.start}): "
                         "is this the tokenised text file?") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ValueError(f"{path}:{line}: a NUL byte: a binary file, not tokenised text")
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


class LanguageModelingDataModule(VocabCheckpoint, SequenceDataModule):
    """Base of the language-modelling sets. A file-based subclass sets the class attributes below;
    one whose text comes from elsewhere overrides :meth:`lines` and :meth:`check_root`."""

    prebatched = True
    name: str = ""  # the data set's name in results.json
    title: str = ""  # for messages
    files: ClassVar[dict[str, str]] = {}  # split -> file name under data.root
    expected: str = ""  # what data.root must hold, for messages
    homepage: str = ""
    archive: Archive | None = None  # data.download fetches this archive ...
    loose_files: ClassVar[dict[str, tuple[Source, ...]] | None] = None  # ... or these files

    def __init__(self, root: str | None = None, bptt: int = 35, batch_size: int = 20,
                 eval_batch_size: int = 10, seed: int = 0, num_workers: int = 0, min_freq: int = 1,
                 max_size: int | None = None, download: bool = False, cache_dir: str | None = None, vocab_path: str | None = None) -> None:
        super().__init__(batch_size, seed, num_workers)
        require_positive(bptt=bptt, eval_batch_size=eval_batch_size, min_freq=min_freq)
        if max_size is not None:
            require_positive(max_size=max_size)
        self.root = Path(root).expanduser() if root else None
        self.bptt, self.eval_batch_size = bptt, eval_batch_size
        self.min_freq, self.max_size = min_freq, max_size
        self.download, self.cache_dir, self.vocab_path = download, cache_dir, vocab_path
        self.vocab: Vocab | None = None
        self.ids: dict[str, torch.Tensor] = {}  # split -> (N,) the whole stream
        self.stats: dict = {}

    # -- where the text comes from ------------------------------------------------------------------
    def tokens_of(self) -> Callable[[str], list[str]]:
        """Line -> tokens. PTB and WikiText are tokenised already: split on whitespace."""
        return str.split

    def lines(self, split: str) -> Iterable[str]:
        return read_lines(self.root / self.files[split])

    def source(self, split: str) -> str:
        """Where a split comes from, for messages."""
        return str(self.root / self.files[split])

    def _missing(self) -> list[str]:
        return [f for f in self.files.values() if not (self.root / f).is_file()]

    def check_root(self) -> None:
        """Raise a one-line error naming what is wrong with ``data.root`` and how to fix it."""
        if self.root is None:
            raise ValueError(f"data.root is not set: point it at the folder holding {self.expected}")
        urls = (self.archive.urls if self.archive  # loose files: the folder they are in
                else " or ".join(sorted({s[0].url.rsplit("/", 1)[0] + "/" for s in self.loose_files.values()})))
        how = (f"{self.title} expects {self.expected} under data.root; get it with data.download=true "
               f"or from {urls} (see {self.homepage})")
        if not self.root.is_dir():
            raise FileNotFoundError(f"data.root={self.root} does not exist: {how}")
        self.check_variant()
        missing = self._missing()
        if not missing:
            return
        found = identify(self.root) if len(missing) == len(self.files) else None  # none of ours: whose?
        if found:
            raise ValueError(f"data.root={self.root} holds {found[0]} files, not {self.title}: use "
                             f"{found[1]}, or point data.root at {self.title}. {how}")
        nested = [d for d in sorted([*self.root.glob("*"), *self.root.glob("*/*")]) if d.is_dir()
                  and all((d / f).is_file() for f in self.files.values())]
        if nested:
            raise FileNotFoundError(f"data.root={self.root} holds {self.title} further down: "
                                    f"use data.root={nested[0]}")
        raise FileNotFoundError(f"data.root={self.root} lacks {', '.join(missing)}: {how}")

    def check_variant(self) -> None:
        """Subclasses: raise if ``data.root`` holds a known other variant of this data set."""

    def prepare_data(self) -> None:
        """With ``download=true`` and files missing under ``root``: fetch, verify and unpack them."""
        if not self.download or self.root is None or not self._missing():
            return
        if self.archive is not None:
            if self.root.is_dir() and any(self.root.iterdir()):
                self.check_root()  # something else is there: say what, download nothing
            download(self.archive, self.root, self.cache_dir, expected=self.expected)
        else:
            fetch_files({f: self.loose_files[f] for f in self._missing()}, self.root, self.homepage)

    # -- building the streams -------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self._build()
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.is_global_zero:  # Lightning's call, inside a run
            path = Path(trainer.default_root_dir) / "vocab.json"
            if not path.exists():
                self.vocab.save(path)  # with the run, beside config.yaml

    def _build(self) -> None:
        started = time.perf_counter()
        self.check_root()
        table: dict[str, int] = defaultdict(count().__next__)  # token -> provisional id, first seen first
        eos = table[EOS]
        tokens_of, provisional = self.tokens_of(), {}
        for split in SPLITS:
            ids, lookup = array("q"), table.__getitem__
            for line in self.lines(split):
                ids.extend(map(lookup, tokens_of(line)))
                ids.append(eos)
            provisional[split] = np.frombuffer(ids, dtype=np.int64)
            if not (provisional[split] != eos).any():
                raise ValueError(f"the {self.title} {split} split ({self.source(split)}) is empty: no tokens")
        tokenise_s = time.perf_counter() - started
        train_counts = np.bincount(provisional["train"], minlength=len(table))
        if self.vocab_path:
            self.vocab = Vocab.load(self.vocab_path)
        else:
            self.vocab = self._build_vocab(table, train_counts)
        stoi, unk = self.vocab.stoi, self.vocab.unk_index
        lookup = np.array([stoi.get(t, -1 if unk is None else unk) for t in table], dtype=np.int64)
        for split in SPLITS:
            ids = lookup[provisional[split]]
            if (ids < 0).any():
                token = next(t for t, i in zip(table, lookup)
                             if i < 0 and (provisional[split] == table[t]).any())
                raise ValueError(f"{self.source(split)}: token {token!r} is not in the vocabulary "
                                 f"{self.vocab_path} and it has no {UNK}")
            self.ids[split] = torch.from_numpy(ids)
            n_streams = self.batch_size if split == "train" else self.eval_batch_size
            key = "batch_size" if split == "train" else "eval_batch_size"
            if len(ids) < 2 * n_streams:
                raise ValueError(f"the {self.title} {split} split has {len(ids)} tokens: too few for "
                                 f"data.{key}={n_streams} streams of 2 tokens or more")
            self.splits[split] = StreamChunks(batchify(self.ids[split], n_streams), self.bptt)
        self.stats = {
            "vocab_size": len(self.vocab), "tokens": {s: len(t) for s, t in self.ids.items()},
            "unk_rate": {s: round(float((t == unk).float().mean()), 4) if unk is not None else 0.0
                         for s, t in self.ids.items()},
            "chunks": {s: len(d) for s, d in self.splits.items()},
            "tokenise_seconds": round(tokenise_s, 3), "load_seconds": round(time.perf_counter() - started, 3)}
        log.info("%s: %s tokens, vocabulary %d, <unk> %s, loaded in %.2f s", self.name, self.stats["tokens"],
                 len(self.vocab), self.stats["unk_rate"], self.stats["load_seconds"])

    def _build_vocab(self, table: dict[str, int], counts: np.ndarray) -> Vocab:
        words = sorted((t for t, c in zip(table, counts) if c >= self.min_freq),
                       key=lambda t: (-counts[table[t]], t))
        if self.max_size is not None and len(words) > self.max_size:
            words = [w for w in words if w != UNK][: self.max_size - 1]
        if UNK not in words:  # PTB and WikiText have theirs; other texts get one, last
            words.append(UNK)
        return Vocab(words, unk=UNK, pad=None)

    # -- what the rest of rnnlab uses ---------------------------------------------------------------
    @property
    def spec(self) -> DataSpec:
        if self.vocab is None:
            self.setup("fit")
        p = torch.bincount(self.ids["train"], minlength=len(self.vocab)).double()
        p = p[p > 0] / p.sum()
        return DataSpec(name=self.name, task="language_modeling", readout="all", output_size=len(self.vocab),
                        vocab_size=len(self.vocab), baseline_loss=float(-(p * p.log()).sum()),
                        baseline_what="predict the training split's unigram frequencies", itos=self.vocab.itos)

    def train_tokens(self) -> list[list[str]]:
        """The training split, one token list per line (``<eos>`` left out): what word2vec trains on."""
        if self.vocab is None:
            self.setup("fit")
        itos, ids = self.vocab.itos, self.ids["train"].numpy()
        ends = np.flatnonzero(ids == self.vocab.stoi[EOS])
        starts = np.concatenate([[0], ends[:-1] + 1])
        return [[itos[i] for i in ids[a:b]] for a, b in zip(starts, ends) if b > a]

