"""Bach chorales as piano rolls: polyphonic next-frame prediction (the JSB Chorales task of Chung et al. 2014).

The chorales are the ones ``music21`` ships (``pip install rnnlab[corpora]``): the 371 of
Riemenschneider's edition that music21 lists, 350 distinct files. Each is sampled every ``frame``
quarter notes (1.0: quarter notes, as in Boulanger-Lewandowski et al. 2012's JSB Chorales; 0.5:
eighths) into an 88-key piano roll (A0 = MIDI 21 … C8 = 108): key k is on at frame t when a note of
that pitch sounds at time t·frame. Input ``x`` = frames 0…T−2, target ``y`` = frames 1…T−1 (B, T, 88),
with ``lengths``; the loss is the Bernoulli negative log-likelihood summed over the 88 keys, averaged
over frames. Chorales are split train/val/test whole, by ``split_seed``.

Parsing all 350 takes 30-60 s; the rolls are cached as ``.npz`` under ``cache_dir``, keyed by the music21
version and the settings. Music21 is BSD-3-Clause; its corpus files are distributed with the
encoders' permission (music21/corpus/license.txt); Bach's chorales are in the public domain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from rnnlab.data.base import DataSpec, SequenceDataModule, require_positive

log = logging.getLogger(__name__)
LOWEST, KEYS = 21, 88  # MIDI number of A0; piano keys
CACHE_FORMAT = 1  # bump when the rolls computed from the same settings change


def chorale_names() -> list[str]:
    """music21's Riemenschneider chorales ("bach/bwv269", …), each file once, in Riemenschneider order."""
    from music21 import corpus

    names = corpus.chorales.Iterator(1, 371, numberingSystem="riemenschneider", returnType="filename")
    return list(dict.fromkeys(names))


def piano_roll(score, frame: float) -> np.ndarray:
    """(T, 88) uint8: key k sounds at frame t when a note of MIDI pitch 21 + k holds at time t·frame."""
    notes = [n for n in score.flatten().notes if n.quarterLength > 0]  # grace notes have no duration
    end = float(score.flatten().highestTime)
    roll = np.zeros((max(math.ceil(end / frame - 1e-9), 1), KEYS), dtype=np.uint8)
    for n in notes:
        onset = float(n.offset)
        first = math.ceil(onset / frame - 1e-9)
        last = math.ceil((onset + float(n.quarterLength)) / frame - 1e-9)  # exclusive
        for pitch in n.pitches:
            key = pitch.midi - LOWEST
            if 0 <= key < KEYS:
                roll[first:last, key] = 1
    return roll


def load_rolls(cache_dir: Path, frame: float, max_chorales: int | None) -> tuple[list[str], list[np.ndarray]]:
    """(names, rolls), parsed with music21 once and then read from the .npz cache."""
    try:
        import music21
    except ImportError:
        raise ImportError("data=chorales needs music21, which ships the chorales: "
                          "pip install 'rnnlab[corpora]' (or pip install music21)") from None
    settings = {"music21": music21.__version__, "frame": frame, "max_chorales": max_chorales,
                "format": CACHE_FORMAT}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"chorales-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as saved:
            names, offsets, frames = list(saved["names"]), saved["offsets"], saved["frames"]
        return names, [frames[a:b] for a, b in pairwise(offsets)]
    started = time.perf_counter()
    names = chorale_names()[:max_chorales]
    rolls = []
    for name in names:
        try:
            rolls.append(piano_roll(music21.corpus.parse(name), frame))
        except Exception as error:  # noqa: BLE001 - name the file, whatever music21 raised
            raise ValueError(f"music21 could not read the chorale {name} "
                             f"({type(error).__name__}: {error})") from None
    offsets = np.cumsum([0] + [len(r) for r in rolls])
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".chorales-", suffix=".npz", dir=cache_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, names=np.array(names), offsets=offsets, frames=np.concatenate(rolls),
                                settings=json.dumps(settings))
        os.replace(tmp, path)  # whole or not at all: runs in parallel may race here harmlessly
    finally:
        Path(tmp).unlink(missing_ok=True)
    log.info("parsed %d chorales in %.1f s; cached in %s", len(names), time.perf_counter() - started, path)
    return names, rolls


KEY_FREQUENCY_BASELINE = "each key on with its training frequency, independent of the past"


def key_frequency_nll(key_rate: np.ndarray) -> float:
    """NLL per frame of the baseline that turns key k on with probability p_k (its share of training frames):
    Σ_k −p_k log p_k − (1 − p_k) log(1 − p_k), keys never on contributing 0."""
    p = np.clip(key_rate, 1e-12, 1 - 1e-12)
    return float(-(p * np.log(p) + (1 - p) * np.log(1 - p))[key_rate > 0].sum())


class RollBatches(Dataset):
    """Whole padded batches {"x", "y": (B, T, 88) float, "lengths": (B,)}. Training batches are drawn
    afresh each epoch from (seed, epoch); evaluation batches are fixed, chorales sorted by length."""

    def __init__(self, rolls: list[torch.Tensor], batch_size: int, shuffle: bool, seed: int = 0,
                 datamodule=None) -> None:
        self.rolls, self.batch_size, self.shuffle, self.seed = rolls, batch_size, shuffle, seed
        self.datamodule = datamodule
        self._order: tuple[int, list[list[int]]] | None = None

    def __len__(self) -> int:
        return math.ceil(len(self.rolls) / self.batch_size)

    def _epoch(self) -> int:
        trainer = getattr(self.datamodule, "trainer", None)
        return trainer.current_epoch if trainer is not None else 0

    def batches(self, epoch: int) -> list[list[int]]:
        if not self.shuffle:
            order = sorted(range(len(self.rolls)), key=lambda i: len(self.rolls[i]))
        else:
            order = torch.randperm(len(self.rolls), generator=torch.Generator().manual_seed(
                self.seed * 1_000_003 + epoch)).tolist()
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        epoch = self._epoch() if self.shuffle else 0
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, self.batches(epoch))
        rows = [self.rolls[j] for j in self._order[1][i]]
        lengths = torch.tensor([len(r) - 1 for r in rows])
        x = torch.zeros(len(rows), int(lengths.max()), KEYS)  # (B, T, 88), zero past each length
        y = torch.zeros_like(x)
        for b, r in enumerate(rows):
            x[b, : len(r) - 1], y[b, : len(r) - 1] = r[:-1], r[1:]
        return {"x": x, "y": y, "lengths": lengths}


class ChoralesDataModule(SequenceDataModule):
    """Bach chorales (music21's corpus) as 88-key piano rolls; next-frame prediction."""

    prebatched = True

    def __init__(self, cache_dir: str = "~/.cache/rnnlab", frame: float = 1.0,
                 max_chorales: int | None = None, val_fraction: float = 0.2, test_fraction: float = 0.2,
                 split_seed: int = 0, batch_size: int = 16, seed: int = 0, num_workers: int = 0) -> None:
        super().__init__(batch_size, seed, num_workers)
        if not (isinstance(frame, (int, float)) and frame > 0):
            raise ValueError(f"data.frame must be a positive number of quarter notes (1.0, 0.5), got {frame!r}")
        if max_chorales is not None:
            require_positive(max_chorales=max_chorales)
        if not (0 < val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
            raise ValueError(f"data.val_fraction and data.test_fraction must be positive and sum below 1, "
                             f"got {val_fraction} and {test_fraction}")
        self.cache_dir, self.frame = Path(cache_dir).expanduser(), float(frame)
        self.max_chorales, self.split_seed = max_chorales, split_seed
        self.fractions = (val_fraction, test_fraction)
        self.names: dict[str, list[str]] = {}
        self.key_rate: np.ndarray | None = None  # (88,) share of training frames each key sounds in

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        names, rolls = load_rolls(self.cache_dir, self.frame, self.max_chorales)
        rolls = [(n, r) for n, r in zip(names, rolls) if len(r) >= 2]
        n = len(rolls)
        n_val, n_test = (round(n * f) for f in self.fractions)
        if min(n_val, n_test, n - n_val - n_test) < 1:
            raise ValueError(f"{n} chorales cannot be split {self.fractions} into non-empty train/val/test sets: "
                             "raise data.max_chorales")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed)).tolist()
        parts = {"val": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}
        for split, index in parts.items():
            chosen = [rolls[i] for i in sorted(index)]
            self.names[split] = [name for name, _ in chosen]
            tensors = [torch.from_numpy(r.astype(np.float32)) for _, r in chosen]
            self.splits[split] = RollBatches(tensors, self.batch_size, shuffle=split == "train", seed=self.seed,
                                             datamodule=self)
        train = np.concatenate([rolls[i][1] for i in parts["train"]])
        self.key_rate = train.mean(axis=0)
        log.info("chorales: %s chorales, %s frames, frame = %g quarter notes",
                 {s: len(v) for s, v in self.names.items()},
                 {s: sum(len(r) for r in d.rolls) for s, d in self.splits.items()}, self.frame)

    @property
    def spec(self) -> DataSpec:
        if self.key_rate is None:
            self.setup("fit")
        return DataSpec(name="chorales", task="multilabel", readout="all", output_size=KEYS, input_size=KEYS,
                        baseline_loss=key_frequency_nll(self.key_rate), baseline_what=KEY_FREQUENCY_BASELINE)
