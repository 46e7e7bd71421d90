"""IMDB movie reviews (Maas et al. 2011): positive vs negative, 25,000 training and 25,000 test reviews.

Reads the official ``aclImdb`` folder: ``train|test/pos|neg/<id>_<rating>.txt``, one review per
file; ``train/unsup/`` (unlabelled) and the bag-of-words files are ignored. The HTML line breaks
(``<br />``) in the reviews are replaced by spaces. The validation split is carved from train.
"""

from __future__ import annotations

import re
from pathlib import Path

from rnnlab.data.download import Archive, Source
from rnnlab.data.text_classification import TextClassificationDataModule

BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
CLASSES = ("neg", "pos")

ARCHIVE = Archive(
    filename="aclImdb_v1.tar.gz", folder="aclImdb", homepage="https://ai.stanford.edu/~amaas/data/sentiment/",
    sources=(Source("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
                    sha256="c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe", size=84125825,
                    checksum_from="tensorflow/datasets: "
                                  "tensorflow_datasets/datasets/imdb_reviews/checksums.tsv"),))


def read_review(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}:1: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not text.strip():
        raise ValueError(f"{path}:1: empty review")
    return BREAK.sub(" ", text)


class IMDBDataModule(TextClassificationDataModule):
    name = "imdb"
    title = "IMDB (aclImdb)"
    expected = "train/pos/*.txt, train/neg/*.txt, test/pos/*.txt, test/neg/*.txt (the aclImdb folder)"
    required = tuple(f"{split}/{c}" for split in ("train", "test") for c in CLASSES)
    archive = ARCHIVE

    def read(self, root: Path) -> dict[str, tuple[list[str], list[int]]]:
        self.classes = list(CLASSES)
        splits = {}
        for split in ("train", "test"):
            texts, labels = [], []
            for label, name in enumerate(CLASSES):
                for path in sorted((root / split / name).glob("*.txt")):
                    texts.append(read_review(path))
                    labels.append(label)
            splits[split] = (texts, labels)
        return splits
