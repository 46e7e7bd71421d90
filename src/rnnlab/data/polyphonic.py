"""The polyphonic-music files of Boulanger-Lewandowski et al. 2012, as they come (Chung et al. 2014, Table 2).

Four sets share one layout: Nottingham, JSB Chorales, MuseData and Piano-midi.de, each split by the
authors into train / valid / test whole pieces (JSB Chorales: 229 / 76 / 77). ``data.root`` is one file
in either layout in circulation, told apart by its content:

- the original pickle (``JSB Chorales.pickle``, …): a dict ``{"train", "valid", "test"}``, each a list of
  pieces, each a list of frames, each the MIDI pitches sounding in it (21 … 108 on a piano);
- the MATLAB file public reimplementations ship (``JSB_Chorales.mat``, …): ``traindata``, ``validdata``,
  ``testdata``, cell arrays of (T, 88) 0/1 piano rolls (read with scipy's ``loadmat``: ``.[music]``).

Frames become 88-key rolls (key k = MIDI 21 + k) served as the ``chorales`` data set serves its own:
``x`` = frames 0…T−2, ``y`` = frames 1…T−1, the loss the Bernoulli NLL summed over the 88 keys and
averaged over predicted frames. The splits are the file's; nothing is re-split or dropped.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from pathlib import Path

import numpy as np
import torch

from rnnlab.data.base import DataSpec, SequenceDataModule
from rnnlab.data.chorales import KEY_FREQUENCY_BASELINE, KEYS, LOWEST, RollBatches, key_frequency_nll

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
PICKLE_KEYS = {"train": "train", "val": "valid", "test": "test"}
MAT_KEYS = {"train": "traindata", "val": "validdata", "test": "testdata"}
LAYOUTS = ("a Boulanger-Lewandowski pickle (dict train/valid/test → pieces → frames → MIDI pitches 21…108) "
           "or its MATLAB .mat (traindata/validdata/testdata: cell arrays of (T, 88) 0/1 rolls)")
# Pickles run code named in the file when loaded: only numpy's own reconstructors of arrays and scalars
# (frames of numpy ints, rolls as arrays) are let through, and the bytes decoder Python 3 writes into
# protocol-2 pickles of them; anything else is another kind of file.
NUMPY_GLOBALS = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
                 for name in ("scalar", "_reconstruct")} | {("numpy", "dtype"), ("numpy", "ndarray"),
                                                            ("_codecs", "encode")}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"it references {module}.{name}")
        return super().find_class(module, name)


def read_pickle(path: Path) -> dict[str, list]:
    """split -> pieces, each a list of frames of MIDI pitches."""
    try:
        with path.open("rb") as f:
            content = _PlainUnpickler(f, encoding="latin1").load()  # latin1: the originals are Python 2 pickles
    except Exception as error:  # noqa: BLE001 - whatever the bytes were, the line names the file
        raise ValueError(f"{path}: not a readable music file ({type(error).__name__}: {error}); "
                         f"data=polyphonic reads {LAYOUTS}") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: a pickle of a {type(content).__name__}, not of a dict with train/valid/test; "  # noqa: TRY004
                         f"data=polyphonic reads {LAYOUTS}")
    return {split: _split(path, content, key) for split, key in PICKLE_KEYS.items()}


def read_mat(path: Path) -> dict[str, list]:
    """split -> pieces, each a (T, 88) array."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError("data=polyphonic reads .mat files with scipy: pip install 'rnnlab[music]' "
                          "(or pip install scipy)") from None
    try:
        content = loadmat(path)
    except Exception as error:  # noqa: BLE001 - v7.3 (HDF5) files and broken ones alike
        raise ValueError(f"{path}: an unreadable MATLAB file ({type(error).__name__}: {error}); "
                         f"data=polyphonic reads {LAYOUTS} (v7.3 files: save them again with -v7)") from None
    content = {k: v for k, v in content.items() if not k.startswith("__")}
    return {split: _split(path, content, key).ravel().tolist() for split, key in MAT_KEYS.items()}


def _split(path: Path, content: dict, key: str):
    if key not in content:
        raise ValueError(f"{path}: no '{key}' split (it holds {', '.join(map(str, content)) or 'nothing'}); "
                         f"data=polyphonic reads {LAYOUTS}")
    return content[key]


def roll_from_pitches(frames, where: str) -> np.ndarray:
    """(T, 88) uint8 from a list of frames of MIDI pitches; ``where`` names the piece in errors."""
    if not isinstance(frames, (list, tuple)):
        raise ValueError(f"{where}: a {type(frames).__name__}, not a list of frames")  # noqa: TRY004
    roll = np.zeros((len(frames), KEYS), dtype=np.uint8)
    for t, frame in enumerate(frames):
        if not isinstance(frame, (list, tuple, set, frozenset, np.ndarray)):
            raise ValueError(f"{where}, frame {t}: a {type(frame).__name__}, not a list of MIDI pitches")  # noqa: TRY004
        for pitch in frame:
            if not isinstance(pitch, (int, np.integer)) or not LOWEST <= pitch < LOWEST + KEYS:
                raise ValueError(f"{where}, frame {t}: pitch {pitch!r} is not a piano key's MIDI number "
                                 f"({LOWEST}…{LOWEST + KEYS - 1})")
            roll[t, pitch - LOWEST] = 1
    return roll


def checked_roll(roll, where: str) -> np.ndarray:
    """A (T, 88) 0/1 array as uint8; ``where`` names the piece in errors."""
    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != KEYS:
        raise ValueError(f"{where}: a roll of shape {roll.shape}, not (T, {KEYS}) (one column per piano key)")
    if not np.isin(roll, (0, 1)).all():
        raise ValueError(f"{where}: a roll with values other than 0 and 1 ({np.unique(roll)[:5].tolist()}…)")
    return roll.astype(np.uint8)


def read_rolls(path: Path) -> tuple[str, dict[str, list[np.ndarray]]]:
    """(layout, split -> pieces as (T, 88) uint8 rolls) of a file in either layout, checked piece by piece."""
    with path.open("rb") as f:
        layout = "mat" if f.read(6) == b"MATLAB" else "pickle"  # MAT files open with a text header
    content = read_mat(path) if layout == "mat" else read_pickle(path)
    names = MAT_KEYS if layout == "mat" else PICKLE_KEYS
    rolls = {}
    for split, pieces in content.items():
        if not isinstance(pieces, (list, tuple)):
            raise ValueError(f"{path}: split '{names[split]}' is a {type(pieces).__name__}, not a list of pieces")  # noqa: TRY004
        rolls[split] = []
        for i, piece in enumerate(pieces):
            where = f"{path}: split '{names[split]}', piece {i}"
            roll = checked_roll(piece, where) if layout == "mat" else roll_from_pitches(piece, where)
            if len(roll) < 2:
                raise ValueError(f"{where} has {len(roll)} frame{'s' * (len(roll) != 1)}: an empty piece "
                                 "(next-frame prediction needs 2 or more)")
            rolls[split].append(roll)
        if not rolls[split]:
            raise ValueError(f"{path}: split '{names[split]}' holds no pieces")
    return layout, rolls


class PolyphonicDataModule(SequenceDataModule):
    """One Boulanger-Lewandowski file (pickle or .mat) as 88-key piano rolls; next-frame prediction."""

    prebatched = True

    def __init__(self, root: str | None = None, name: str = "polyphonic", batch_size: int = 16, seed: int = 0,
                 num_workers: int = 0) -> None:
        super().__init__(batch_size, seed, num_workers)
        self.root = Path(root).expanduser() if root else None
        self.name = name
        self.key_rate: np.ndarray | None = None  # (88,) share of training frames each key sounds in
        self.stats: dict = {}

    def check_root(self) -> Path:
        """The file ``data.root`` names, or a one-line error saying what to point it at."""
        if self.root is None:
            raise ValueError(f"data.root is not set: point it at one file, {LAYOUTS}")
        if self.root.is_dir():
            found = sorted(p.name for p in self.root.iterdir() if p.suffix in (".pickle", ".pkl", ".mat"))
            raise ValueError(f"data.root={self.root} is a folder: point it at one file in it"
                             + (f" ({', '.join(found)})" if found else f", {LAYOUTS}"))
        if not self.root.is_file():
            raise FileNotFoundError(f"data.root={self.root} does not exist: point it at {LAYOUTS}; "
                                    "README, 'Data sets', says where to get them")
        return self.root

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        path = self.check_root()
        layout, rolls = read_rolls(path)
        for split in SPLITS:
            tensors = [torch.from_numpy(r.astype(np.float32)) for r in rolls[split]]
            self.splits[split] = RollBatches(tensors, self.batch_size, shuffle=split == "train", seed=self.seed,
                                             datamodule=self)
        self.key_rate = np.concatenate(rolls["train"]).mean(axis=0)
        self.stats = {"file": str(path), "layout": layout,
                      "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                      "pieces": {s: len(rolls[s]) for s in SPLITS},
                      "frames": {s: sum(len(r) for r in rolls[s]) for s in SPLITS},
                      "predicted_frames": {s: sum(len(r) - 1 for r in rolls[s]) for s in SPLITS}}
        log.info("%s: %s pieces, %s frames from %s (%s)", self.name, self.stats["pieces"], self.stats["frames"],
                 path, layout)

    @property
    def spec(self) -> DataSpec:
        if self.key_rate is None:
            self.setup("fit")
        return DataSpec(name=self.name, task="multilabel", readout="all", output_size=KEYS, input_size=KEYS,
                        baseline_loss=key_frequency_nll(self.key_rate), baseline_what=KEY_FREQUENCY_BASELINE)
