"""AG News (Zhang, Zhao & LeCun 2015): news topic, 4 classes, 120,000 training and 7,600 test articles.

Reads the official ``ag_news_csv`` folder: ``train.csv`` / ``test.csv`` without a header, rows
``"<class index 1-4>","<title>","<description>"`` (quoted fields, commas and doubled quotes
inside), and ``classes.txt`` (one class name per line: World, Sports, Business, Sci/Tech). The
text of an example is its title and description. The validation split is carved from train.
"""

from __future__ import annotations

import csv
from pathlib import Path

from rnnlab.data.download import Archive, Source
from rnnlab.data.text_classification import TextClassificationDataModule

CLASSES = ("World", "Sports", "Business", "Sci/Tech")  # when classes.txt is absent

ARCHIVE = Archive(
    filename="ag_news_csv.tgz", folder="ag_news_csv", homepage="https://arxiv.org/abs/1509.01626",
    sources=(
        # the authors' own archive (Xiang Zhang's Google Drive folder of the paper's data sets)
        Source("https://drive.google.com/uc?export=download&id=0Bz8a_Dbh9QhbUDNpeUdjb0wxRms",
               sha256="4e2fc37d369e6e317a8b62d0d2f11d379f8c3dde60c07c35a46b069a246498ad", size=11784327,
               checksum_from="tensorflow/datasets: "
                             "tensorflow_datasets/datasets/ag_news_subset/checksums.tsv"),
        # the fast.ai mirror: a re-packed archive (other size); only MD5 + size are published for it
        Source("https://s3.amazonaws.com/fast-ai-nlp/ag_news_csv.tgz",
               md5="b86f328f4dbd072486591cb7a5644dcd", size=11784419,
               checksum_from="fastai/fastai: fastai/data/checks.txt (MD5, no SHA-256 published)"),
    ))


def read_classes(path: Path) -> list[str]:
    if not path.is_file():
        return list(CLASSES)
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) < 2:
        raise ValueError(f"{path}: expected one class name per line, at least two, got {names}")
    return names


def read_csv(path: Path, n_classes: int) -> tuple[list[str], list[int]]:
    """(texts, 0-based labels); a malformed row fails with its file and line number."""
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        try:
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if len(row) != 3:
                    raise ValueError(f"{where}: expected 3 comma-separated fields (class index, title, "
                                     f"description), got {len(row)}")
                if not row[0].strip().isdigit() or not 1 <= int(row[0]) <= n_classes:
                    raise ValueError(f"{where}: class index must be 1-{n_classes} (classes.txt), "
                                     f"got {row[0]!r}")
                text = f"{row[1]} {row[2]}"
                if not text.strip():
                    raise ValueError(f"{where}: empty title and description")
                texts.append(text)
                labels.append(int(row[0]) - 1)
        except csv.Error as error:
            raise ValueError(f"{path}:{reader.line_num}: {error}") from None
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    return texts, labels


class AGNewsDataModule(TextClassificationDataModule):
    name = "ag_news"
    title = "AG News (ag_news_csv)"
    expected = "train.csv, test.csv and classes.txt (the ag_news_csv folder)"
    required = ("train.csv", "test.csv")
    archive = ARCHIVE

    def read(self, root: Path) -> dict[str, tuple[list[str], list[int]]]:
        self.classes = read_classes(root / "classes.txt")
        return {split: read_csv(root / f"{split}.csv", len(self.classes)) for split in ("train", "test")}
