"""Read word vectors from GloVe text, word2vec text or word2vec binary files, keeping only the words wanted.

The format comes from the content, never the extension: a first line ``<count> <dim>`` is a word2vec
header, then the bytes after it are either text (word2vec text, also fastText ``.vec``) or raw
float32 (word2vec binary); text without such a header is GloVe (``word v1 … vd`` per line). gzip
files are read as they are. Rows whose word is not wanted are checked for their field count only,
so a 400k-word GloVe file costs little memory. Every error names the file and the line (text) or
the entry and byte offset (binary).
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMATS = ("glove", "word2vec-text", "word2vec-binary")
_HEADER = re.compile(rb"^\s*(\d+)[ \t]+(\d+)\s*$")
_SNIFF = 1 << 16  # bytes looked at to tell text from binary
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 13))
_CHUNK = 1 << 20


class VectorFileError(ValueError):
    """A malformed vector file; the message names the file and where."""


@dataclass
class Vectors:
    path: Path
    format: str  # one of FORMATS
    dim: int
    rows: int  # vectors in the file
    vectors: dict[str, np.ndarray] = field(repr=False)  # the wanted words found, float32 (dim,)


def _open(path: Path):
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    known = {b"PK\x03\x04": "a zip archive: unzip it and set embeddings.path to the vector file inside",
             b"\x93NUMPY": "a numpy array, not a vector file", b"\x80": "a Python pickle (e.g. a gensim .kv/"
             ".model): export it with model.wv.save_word2vec_format(path, binary=True)"}
    for prefix, what in known.items():
        if magic.startswith(prefix):
            raise VectorFileError(f"{path} is {what}")
    if not magic:
        raise VectorFileError(f"{path} is empty")
    return open(path, "rb")


def _is_text(first_row: bytes, data: bytes, dim: int | None) -> bool:
    """Text if the first row reads as ``word v1 … vd``, or if no control byte (but tab and line ends) occurs:
    float32 blocks fail both tests, a text file with a bad row passes the second (and gets a line-numbered
    error when read), a text file in another encoding than UTF-8 passes too."""
    fields = first_row.split()
    n = len(fields) - 1 if dim is None else dim
    if n >= 1 and len(fields) > n and all(_is_float(v) for v in fields[-n:]):
        return True
    return len(data.translate(None, _CONTROL)) == len(data)


def detect_format(path: str | Path) -> tuple[str, int | None, int | None]:
    """(format, rows, dim) from the header, or (``"glove"``, None, None): rows and dim are counted later."""
    path = Path(path)
    with _open(path) as f:
        first = f.readline(_CHUNK)
        rest = f.read(_SNIFF)
    header = _HEADER.match(first)
    if header:
        rows, dim = int(header[1]), int(header[2])
        if dim < 1:
            raise VectorFileError(f"{path}, line 1: the word2vec header announces {dim}-dimensional vectors")
        text = _is_text(rest.split(b"\n", 1)[0], rest, dim)
        return ("word2vec-text" if text else "word2vec-binary"), rows, dim
    if not _is_text(first, first + rest, None):
        raise VectorFileError(f"{path} is not a GloVe or word2vec file: binary content without a "
                              "'<count> <dim>' word2vec header on its first line")
    return "glove", None, None


def _parse(values: list[bytes], path: Path, lineno: int, word: bytes) -> np.ndarray:
    try:
        vector = np.array([float(v) for v in values], dtype=np.float32)
    except ValueError:
        j = next(j for j, v in enumerate(values) if not _is_float(v))
        word_, value = word.decode(errors="replace"), values[j].decode(errors="replace")
        raise VectorFileError(f"{path}, line {lineno}: component {j + 1} of {word_!r} is {value!r}, "
                              "not a number") from None
    if not np.isfinite(vector).all():
        raise VectorFileError(f"{path}, line {lineno}: the vector of {word.decode(errors='replace')!r} "
                              "holds inf or nan")
    return vector


def _is_float(value: bytes) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _read_text(path: Path, fmt: str, rows: int | None, dim: int | None, wanted: set[bytes] | None):
    found: dict[bytes, np.ndarray] = {}
    n, first_row = 0, 2 if fmt == "word2vec-text" else 1
    with _open(path) as f:
        if fmt == "word2vec-text":
            f.readline()
        for lineno, line in enumerate(f, start=first_row):
            line = line.rstrip()
            if not line:
                continue
            if dim is None:  # GloVe: the first row sets the dimension
                dim = len(line.split()) - 1
                if dim < 1:
                    head = line[:40].decode(errors="replace")
                    raise VectorFileError(f"{path}, line {lineno}: {head!r} is a word without a vector")
            parts = line.rsplit(None, dim)  # the word may hold spaces (a few rows of GloVe 840B do)
            spaced = b" " in parts[0] or b"\t" in parts[0]
            if len(parts) != dim + 1 or (spaced and _is_float(parts[0].split()[-1])):
                where = "header" if fmt == "word2vec-text" else "first row"
                raise VectorFileError(f"{path}, line {lineno}: {len(line.split()) - 1} values where the "
                                      f"{where} has {dim}: rows of inconsistent dimension")
            n += 1
            word = parts[0]
            if (wanted is None or word in wanted) and word not in found:
                found[word] = _parse(parts[1:], path, lineno, word)
    if rows is not None and n != rows:
        raise VectorFileError(f"{path}: the header announces {rows} vectors but the file holds {n}"
                              + (" (truncated?)" if n < rows else ""))
    if n == 0:
        raise VectorFileError(f"{path} holds no vectors")
    return dim, n, found


def _read_binary(path: Path, rows: int, dim: int, wanted: set[bytes] | None):
    found: dict[bytes, np.ndarray] = {}
    size = 4 * dim
    with _open(path) as f:
        offset = len(f.readline())  # file offset of buf[0]
        buf, pos = b"", 0
        for entry in range(1, rows + 1):
            while True:
                end = buf.find(b" ", pos)
                if end != -1 and end + 1 + size <= len(buf):
                    break
                if end == -1 and len(buf) - pos > _CHUNK:
                    raise VectorFileError(f"{path}, entry {entry} (byte {offset + pos}): no word ends within "
                                          f"{_CHUNK} bytes: the file is corrupt")
                more = f.read(_CHUNK)
                if not more:
                    where = f"{path}, entry {entry} of {rows} (byte {offset + pos})"
                    if end == -1:
                        raise VectorFileError(f"{where}: the file ends before this word: truncated")
                    raise VectorFileError(f"{where}: {len(buf) - end - 1} of the {size} bytes of a "
                                          f"{dim}-float32 vector: the file is truncated")
                buf, offset, pos = buf[pos:] + more, offset + pos, 0
            word = buf[pos:end].lstrip(b"\r\n")  # the word2vec C tool ends each vector with a newline
            if not word or any(b < 32 for b in word):
                raise VectorFileError(f"{path}, entry {entry} (byte {offset + pos}): no word where one "
                                      f"should start: the vectors are not {dim} float32 values as the header "
                                      "says, or the file is corrupt")
            if (wanted is None or word in wanted) and word not in found:
                vector = np.frombuffer(buf, dtype="<f4", count=dim, offset=end + 1).astype(np.float32)
                if not np.isfinite(vector).all():
                    raise VectorFileError(f"{path}, entry {entry} (byte {offset + end + 1}): the vector of "
                                          f"{word.decode(errors='replace')!r} holds inf or nan")
                found[word] = vector
            pos = end + 1 + size
        if buf[pos:].strip() or f.read(_CHUNK).strip():
            raise VectorFileError(f"{path}: data after the {rows} vectors the header announces: is the "
                                  f"header ({rows} {dim}) right?")
    return dim, rows, found


def read_vectors(path: str | Path, words=None) -> Vectors:
    """The vectors of ``words`` (all words if None) found in ``path``, whatever its format."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file {path} not found")
    fmt, rows, dim = detect_format(path)
    wanted = None if words is None else {w.encode() for w in words}
    if fmt == "word2vec-binary":
        dim, rows, found = _read_binary(path, rows, dim, wanted)
    else:
        dim, rows, found = _read_text(path, fmt, rows, dim, wanted)
    vectors = {w.decode(errors="replace"): v for w, v in found.items()}
    return Vectors(path=path, format=fmt, dim=dim, rows=rows, vectors=vectors)
