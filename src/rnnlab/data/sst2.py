"""SST-2 (Socher et al. 2013, in its GLUE form): sentence sentiment, negative (0) vs positive (1).

Reads the official GLUE ``SST-2`` folder: ``train.tsv`` (67,349 rows) and ``dev.tsv`` (872 rows),
each with the header ``sentence<TAB>label``. GLUE's ``test.tsv`` (``index<TAB>sentence``) has no
labels, so the **dev set is our test set** and the validation split is carved from train. The
sentences come lower-cased and tokenised already; the training rows include phrases of the treebank.
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.data.download import Archive, Source
from rnnlab.data.text_classification import TextClassificationDataModule

CLASSES = ("negative", "positive")
HEADER = "sentence\tlabel"

ARCHIVE = Archive(
    filename="SST-2.zip", folder="SST-2", homepage="https://gluebenchmark.com/tasks",
    sources=(Source("https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
                    sha256="d67e16fb55739c1b32cdce9877596db1c127dc322d93c082281f64057c16deaa", size=7439277,
                    checksum_from="huggingface/datasets: datasets/glue/dataset_infos.json (the same "
                                  "SHA-256 and size in tensorflow/datasets url_checksums/glue.txt)"),))


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    """(sentences, labels) of a labelled GLUE SST-2 file; a malformed line fails with its line number."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    if not lines or lines[0].rstrip("\r") != HEADER:
        got = lines[0][:60] if lines else "an empty file"
        raise ValueError(f"{path}:1: expected the header 'sentence<TAB>label', got {got!r}"
                         + (" (GLUE's test.tsv has no labels: SST-2 uses dev.tsv as its test set)"
                            if got.startswith("index\t") else ""))
    texts, labels = [], []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected 2 tab-separated fields (sentence, label), "
                             f"got {len(fields)}")
        sentence, label = fields
        if label not in ("0", "1"):
            raise ValueError(f"{path}:{number}: label must be 0 or 1, got {label!r}")
        if not sentence.strip():
            raise ValueError(f"{path}:{number}: empty sentence")
        texts.append(sentence)
        labels.append(int(label))
    return texts, labels


class SST2DataModule(TextClassificationDataModule):
    name = "sst2"
    title = "GLUE SST-2"
    expected = "train.tsv and dev.tsv with the header 'sentence<TAB>label' (the GLUE SST-2 folder)"
    required = ("train.tsv", "dev.tsv")
    archive = ARCHIVE

    def read(self, root: Path) -> dict[str, tuple[list[str], list[int]]]:
        self.classes = list(CLASSES)
        return {"train": read_tsv(root / "train.tsv"), "test": read_tsv(root / "dev.tsv")}
