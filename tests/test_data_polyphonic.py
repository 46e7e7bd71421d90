"""data=polyphonic: the Boulanger-Lewandowski music files in both layouts, on small files the tests write.

The music here is made up (a few pieces of a few frames); the same music is written as the original
pickle (frames of MIDI pitches) and as the MATLAB file (cell arrays of (T, 88) rolls).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.data.polyphonic import PolyphonicDataModule
from rnnlab.training.train import train

scipy_io = pytest.importorskip("scipy.io", reason="the MATLAB layout needs scipy (pip install 'rnnlab[music]')")

MAT_NAMES = {"train": "traindata", "valid": "validdata", "test": "testdata"}


def made_up_music() -> dict[str, list[list[tuple[int, ...]]]]:
    """split -> pieces -> frames of MIDI pitches, as in the original pickles (numpy ints, as some copies have)."""
    rng = np.random.default_rng(0)

    def piece(n_frames: int) -> list[tuple[int, ...]]:
        return [tuple(np.sort(rng.choice(np.arange(21, 109), size=rng.integers(0, 5), replace=False)))
                for _ in range(n_frames)]

    return {"train": [piece(n) for n in (9, 6, 12, 7, 5)], "valid": [piece(n) for n in (8, 4)],
            "test": [piece(n) for n in (6, 10, 3)]}


def to_roll(frames) -> np.ndarray:
    roll = np.zeros((len(frames), 88), dtype=np.uint8)
    for t, frame in enumerate(frames):
        roll[t, [p - 21 for p in frame]] = 1
    return roll


def write_pickle(path: Path, music: dict) -> Path:
    path.write_bytes(pickle.dumps(music, protocol=2))
    return path


def write_mat(path: Path, music: dict, rolls=None) -> Path:
    """The MATLAB layout: each split a 1 × N cell array of (T, 88) rolls (``rolls`` replaces the computed ones)."""
    content = {}
    for split, pieces in music.items():
        cells = np.empty((1, len(pieces)), dtype=object)
        for i, frames in enumerate(pieces):
            cells[0, i] = to_roll(frames)
        content[MAT_NAMES[split]] = cells
    content.update(rolls or {})
    scipy_io.savemat(path, content)
    return path


def cells(*rolls) -> np.ndarray:
    """A 1 × N MATLAB cell array of these arrays."""
    out = np.empty((1, len(rolls)), dtype=object)
    for i, roll in enumerate(rolls):
        out[0, i] = roll
    return out


def loaded(path: Path) -> PolyphonicDataModule:
    dm = PolyphonicDataModule(str(path), batch_size=2)
    dm.setup("fit")
    return dm


def test_both_layouts_give_identical_tensors_and_keep_the_splits(tmp_path):
    music = made_up_music()
    from_pickle = loaded(write_pickle(tmp_path / "music.pickle", music))
    from_mat = loaded(write_mat(tmp_path / "music.mat", music))
    assert from_pickle.stats["layout"] == "pickle" and from_mat.stats["layout"] == "mat"
    for split, ours in (("train", "train"), ("valid", "val"), ("test", "test")):
        for dm in (from_pickle, from_mat):  # the file's pieces, in the file's order, nothing re-split
            assert [r.numpy().astype(np.uint8).tolist() for r in dm.splits[ours].rolls] == \
                   [to_roll(p).tolist() for p in music[split]]
        for a, b in zip(from_pickle.splits[ours].rolls, from_mat.splits[ours].rolls, strict=True):
            assert torch.equal(a, b)
        for i in range(len(from_pickle.splits[ours])):  # whole batches too: x, y and lengths
            batch_a, batch_b = from_pickle.splits[ours][i], from_mat.splits[ours][i]
            assert all(torch.equal(batch_a[k], batch_b[k]) for k in ("x", "y", "lengths"))
    assert from_pickle.stats["pieces"] == from_mat.stats["pieces"] == {"train": 5, "val": 2, "test": 3}
    assert from_pickle.stats["frames"] == {"train": 39, "val": 12, "test": 19}
    assert from_pickle.stats["predicted_frames"] == {"train": 34, "val": 10, "test": 16}
    assert from_pickle.spec.baseline_loss == from_mat.spec.baseline_loss > 0
    assert (from_pickle.spec.input_size, from_pickle.spec.output_size, from_pickle.spec.task) == (88, 88, "multilabel")


def test_the_layout_is_read_from_the_content_not_the_name(tmp_path):
    music = made_up_music()
    dm = loaded(write_pickle(tmp_path / "music.mat", music))  # a pickle, whatever it is called
    assert dm.stats["layout"] == "pickle" and dm.stats["pieces"]["train"] == 5


def bad_music(change) -> dict:
    music = made_up_music()
    change(music)
    return music


def _drop_valid(music):
    del music["valid"]


# (what is wrong, how the file is written, the message it must give; {file} is the file's path)
BAD_FILES = [
    ("pitch out of range", lambda p: write_pickle(p, bad_music(lambda m: m["valid"][1].__setitem__(2, (60, 12)))),
     "{file}: split 'valid', piece 1, frame 2: pitch 12 is not a piano key's MIDI number (21…108)"),
    ("pitch above the piano", lambda p: write_pickle(p, bad_music(lambda m: m["test"][0].__setitem__(0, (109,)))),
     "{file}: split 'test', piece 0, frame 0: pitch 109 is not a piano key's MIDI number (21…108)"),
    ("empty piece", lambda p: write_pickle(p, bad_music(lambda m: m["train"].__setitem__(3, []))),
     "{file}: split 'train', piece 3 has 0 frames: an empty piece (next-frame prediction needs 2 or more)"),
    ("split missing", lambda p: write_pickle(p, bad_music(_drop_valid)),
     "{file}: no 'valid' split (it holds train, test); data=polyphonic reads a Boulanger-Lewandowski pickle"),
    ("not a dict", lambda p: p.write_bytes(pickle.dumps([[(60,)]])),
     "{file}: a pickle of a list, not of a dict with train/valid/test; data=polyphonic reads"),
    ("foreign pickle", lambda p: p.write_bytes(pickle.dumps({"train": Path("x")})),
     "{file}: not a readable music file (UnpicklingError: it references pathlib."),
    ("not a pickle", lambda p: p.write_bytes(b"\x00\x01 not music at all"),
     "{file}: not a readable music file (UnpicklingError:"),
    ("roll not 88 wide", lambda p: write_mat(p, made_up_music(), {"testdata": cells(np.zeros((5, 12)))}),
     "{file}: split 'testdata', piece 0: a roll of shape (5, 12), not (T, 88) (one column per piano key)"),
    ("roll not 0/1", lambda p: write_mat(p, made_up_music(), {"validdata": cells(np.full((4, 88), 2.0))}),
     "{file}: split 'validdata', piece 0: a roll with values other than 0 and 1 ([2.0]…)"),
    ("empty roll", lambda p: write_mat(p, made_up_music(), {"traindata": cells(np.zeros((0, 88)))}),
     "{file}: split 'traindata', piece 0 has 0 frames: an empty piece"),
    ("mat split missing", lambda p: scipy_io.savemat(p, {"traindata": cells(to_roll([(60,), (62,)]))}),
     "{file}: no 'validdata' split (it holds traindata); data=polyphonic reads"),
    ("broken mat", lambda p: p.write_bytes(b"MATLAB 5.0 MAT-file, but then nothing"),
     "{file}: an unreadable MATLAB file ("),
]


@pytest.mark.parametrize(("what", "write", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_file_fails_with_one_line_naming_file_split_and_piece(tmp_path, what, write, message):
    path = tmp_path / "music.bin"
    write(path)
    with pytest.raises(ValueError) as caught:
        loaded(path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(message.format(file=path)), text


def test_a_missing_file_or_a_folder_says_what_data_root_must_be(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"data.root={tmp_path / 'nope.pickle'} does not exist: "
                                                          "point it at a Boulanger-Lewandowski pickle (dict train/"
                                                          "valid/test → pieces → frames → MIDI pitches 21…108) "
                                                          "or its MATLAB .mat")):
        loaded(tmp_path / "nope.pickle")
    write_mat(tmp_path / "JSB_Chorales.mat", made_up_music())
    with pytest.raises(ValueError, match=re.escape(f"data.root={tmp_path} is a folder: point it at one file in "
                                                   "it (JSB_Chorales.mat)")):
        loaded(tmp_path)
    with pytest.raises(ValueError, match="data.root is not set: point it at one file"):
        PolyphonicDataModule(None).setup("fit")


def test_a_run_trains_on_a_file_and_reports_its_splits(make_config, tmp_path):
    path = write_mat(tmp_path / "music.mat", made_up_music())
    cfg = make_config(["data=polyphonic", f"data.root={path}", "data.batch_size=2", "logger=csv", "model=gru",
                       "trainer.max_steps=4"])
    results = train(cfg)
    assert results["status"] == "ok", results.get("traceback")
    assert results["steps"] == 4 and results["data"] == "polyphonic" and results["task"] == "multilabel"
    assert results["data_stats"]["pieces"] == {"train": 5, "val": 2, "test": 3}
    assert results["data_stats"]["frames"] == {"train": 39, "val": 12, "test": 19}
    assert 0 < results["metrics"]["test/loss"] == results["metrics"]["test/nll"] < 88 * np.log(2) + 1


def test_a_bad_file_fails_the_run_with_that_line(make_config, tmp_path):
    path = write_pickle(tmp_path / "music.pickle", bad_music(lambda m: m["valid"][0].__setitem__(1, (5,))))
    results = train(make_config(["data=polyphonic", f"data.root={path}", "logger=none"]))
    assert results["status"] == "failed"
    assert results["error"] == (f"{path}: split 'valid', piece 0, frame 1: pitch 5 is not a piano key's MIDI "
                                "number (21…108)")
