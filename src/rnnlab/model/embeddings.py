"""Initial token embeddings: ``random`` (the model's own init), ``word2vec`` (trained here) or ``pretrained``.

:func:`prepare_embeddings` runs after the data set is set up and before the model is built, so the
model's ``embedding_dim`` can follow the vectors; :func:`apply_embeddings` copies them in and
freezes them on request.

- ``word2vec``: gensim's skip-gram or CBOW on the training split, one worker, seeded: the same
  vectors on every machine. Cached by SHA-256 of (corpus, settings, gensim version) as a
  pickle-free ``.npz`` under ``embeddings.cache_dir``, so a sweep trains once.
- ``pretrained``: a GloVe, word2vec text or word2vec binary file (see :mod:`rnnlab.data.vector_files`).

Coverage = vocabulary entries found in the vectors / vocabulary entries (``<pad>`` not counted).
Rows not found are drawn from N(mean, std) of the found vectors (per dimension); ``<pad>`` is zero.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from rnnlab.data.base import SequenceDataModule
from rnnlab.data.vector_files import read_vectors

log = logging.getLogger(__name__)
SOURCES = ("random", "word2vec", "pretrained")
ALGORITHMS = {"skipgram": 1, "cbow": 0}
_MAX_SENTENCE = 10_000  # gensim silently cuts longer sentences: we split them instead
CACHE_VERSION = 1  # bump when the cached content changes meaning


def canonical_embedding_dim(cfg) -> None:
    """``embeddings.dim`` is the embedding size; ``model.embedding_dim`` is its alias (conf/model/_base.yaml
    links it there). A value set on the alias moves to ``embeddings.dim`` and the link is restored, so the
    model, config.yaml and results.json all carry the size the model was built with."""
    if OmegaConf.is_interpolation(cfg.model, "embedding_dim") or cfg.model.get("embedding_dim") is None:
        return
    alias = cfg.model.embedding_dim
    if alias != cfg.embeddings.get("dim"):
        log.info("model.embedding_dim=%s is an alias: embeddings.dim=%s", alias, alias)
        cfg.embeddings.dim = alias
    cfg.model.embedding_dim = "${embeddings.dim}"


def prepare_embeddings(cfg, datamodule: SequenceDataModule, seed: int = 0) -> tuple[Tensor | None, dict]:
    """(weights (V, D) float32 or None for ``random``, info for ``results.json["embeddings"]``)."""
    source = cfg.get("source", "random")
    if source not in SOURCES:
        raise ValueError(f"embeddings.source must be one of {SOURCES}, got {source!r}")
    info = {"source": source, "coverage": None, "dim": cfg.get("dim"),
            "freeze": bool(cfg.get("freeze", False))}
    if source == "random":
        return None, info
    spec = datamodule.spec
    text = type(datamodule).train_tokens is not SequenceDataModule.train_tokens  # text data sets define it
    if spec.vocab_size is None or spec.itos is None or not text:
        what = "float inputs" if spec.vocab_size is None else "symbols, not words"
        raise ValueError(f"embeddings={source} needs a text data set; {spec.name!r} has {what}: "
                         "use embeddings=random")
    started = time.perf_counter()
    if source == "word2vec":
        vectors, extra = _word2vec(cfg, datamodule, seed)
        dim = int(cfg.get("dim"))
    else:
        if not cfg.get("path"):
            raise ValueError("embeddings=pretrained needs embeddings.path=<a GloVe .txt, word2vec .txt or "
                             ".bin file>")
        found = read_vectors(cfg.get("path"), spec.itos)
        vectors, dim = found.vectors, found.dim
        extra = {"path": str(found.path), "format": found.format, "file_rows": found.rows}
        if cfg.get("dim") not in (None, dim):
            log.warning("embeddings.dim=%s but %s holds %d-dimensional vectors: the embedding size follows "
                        "the file (%d)", cfg.get("dim"), found.path.name, dim, dim)
    weights, found_rows = embedding_matrix(spec.itos, vectors, dim, spec.pad_index, seed)
    words = max(len(spec.itos) - (spec.pad_index is not None), 1)
    info.update(dim=dim, coverage=found_rows / words, found=found_rows, vocab_words=words, **extra,
                seconds=round(time.perf_counter() - started, 3))
    where = f", {extra['format']} {extra['path']}" if source == "pretrained" else ""
    log.info("embeddings %s (%d dims%s): %d of %d vocabulary words found, coverage %.2f%%; the other rows "
             "drawn at the found vectors' scale%s", source, dim, where, found_rows, words,
             100 * info["coverage"], ", frozen" if info["freeze"] else "")
    if found_rows == 0:
        raise ValueError(f"none of the {words} vocabulary words has a vector"
                         + (f" in {extra['path']}: wrong file, or a case mismatch (data.lower)?"
                            if source == "pretrained" else ""))
    return weights, info


def embedding_matrix(itos: list[str], vectors: dict[str, np.ndarray], dim: int, pad_index: int | None,
                     seed: int = 0) -> tuple[Tensor, int]:
    """(V, dim) float32: found rows copied, the others N(mean, std) of the found ones, ``<pad>`` zero."""
    rows = [i for i, w in enumerate(itos) if w in vectors and i != pad_index]
    weights = torch.zeros(len(itos), dim)
    if rows:
        found = torch.from_numpy(np.stack([vectors[itos[i]] for i in rows]))  # (F, dim)
        mean = found.mean(dim=0)
        std = found.std(dim=0) if len(rows) > 1 else found.std().expand(dim)
        generator = torch.Generator().manual_seed(seed)
        weights = mean + std * torch.randn(len(itos), dim, generator=generator)
        weights[rows] = found
    if pad_index is not None:
        weights[pad_index] = 0.0
    return weights, len(rows)


def apply_embeddings(model: nn.Module, weights: Tensor | None, freeze: bool = False) -> None:
    """Copy ``weights`` into ``model.embedding`` (if given) and freeze it on request."""
    embedding = getattr(model, "embedding", None)
    if not isinstance(embedding, nn.Embedding):
        if weights is not None:
            raise ValueError("the model has no token embedding (its data set has float inputs)")
        return
    if weights is not None:
        if tuple(weights.shape) != tuple(embedding.weight.shape):
            raise ValueError(f"embedding weights of shape {tuple(weights.shape)} do not fit the model's "
                             f"{tuple(embedding.weight.shape)}: build it with "
                             f"embedding_dim={weights.shape[1]}")
        with torch.no_grad():
            embedding.weight.copy_(weights)
    embedding.weight.requires_grad_(not freeze)


def _stable_hash(text: str) -> int:
    """For gensim's ``hashfxn``: unlike ``hash``, the same under every PYTHONHASHSEED."""
    return zlib.crc32(text.encode())


def _word2vec(cfg, datamodule: SequenceDataModule, seed: int) -> tuple[dict[str, np.ndarray], dict]:
    try:
        import gensim
        from gensim.models import Word2Vec
    except ImportError:
        raise ImportError("embeddings=word2vec needs gensim: pip install 'rnnlab[embeddings]'") from None
    algorithm = cfg.get("algorithm", "skipgram")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"embeddings.algorithm must be one of {tuple(ALGORITHMS)}, got {algorithm!r}")
    w2v_seed = cfg.get("seed")
    settings = {"algorithm": algorithm, "dim": cfg.get("dim"), "window": cfg.get("window", 5),
                "epochs": cfg.get("epochs", 5), "min_count": cfg.get("min_count", 1),
                "negative": cfg.get("negative", 5), "seed": seed if w2v_seed is None else w2v_seed}
    for key, value in settings.items():
        least = 0 if key == "seed" else 1
        if key != "algorithm" and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise ValueError(f"embeddings.{key} must be an integer >= {least}, got {value!r}")
    workers = int(cfg.get("workers", 1))
    corpus = datamodule.train_tokens()
    corpus = corpus if isinstance(corpus, list) else list(corpus)
    digest = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "gensim": gensim.__version__, **settings},
                                       sort_keys=True).encode())
    n_tokens = 0
    for tokens in corpus:
        digest.update("\x1f".join(tokens).encode() + b"\x1e")
        n_tokens += len(tokens)
    if n_tokens == 0:
        raise ValueError(f"the training split of {datamodule.spec.name!r} has no tokens to train word2vec on")
    name = f"{algorithm}-d{settings['dim']}-{digest.hexdigest()[:20]}.npz"
    cache = Path(cfg.get("cache_dir")).expanduser() / name if cfg.get("cache_dir") else None
    extra = {"algorithm": algorithm, "train_tokens": n_tokens, "cache": str(cache) if cache else None,
             "cache_hit": False}
    if cache is not None and cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as saved:
                words, matrix = json.loads(bytes(saved["words"])), saved["vectors"]
            return dict(zip(words, matrix)), {**extra, "cache_hit": True}
        except (OSError, ValueError, KeyError) as error:
            log.warning("word2vec cache %s unreadable (%s): training again", cache, error)
    if workers != 1:
        log.warning("embeddings.workers=%d: word2vec training is faster but no longer reproducible", workers)
    if any(len(tokens) > _MAX_SENTENCE for tokens in corpus):
        corpus = [tokens[i:i + _MAX_SENTENCE] for tokens in corpus
                  for i in range(0, len(tokens), _MAX_SENTENCE)]
    started = time.perf_counter()
    gensim_log = logging.getLogger("gensim")
    level = gensim_log.level
    gensim_log.setLevel(logging.WARNING)  # gensim logs every epoch at INFO
    try:
        model = Word2Vec(sentences=corpus, vector_size=settings["dim"], window=settings["window"],
                         min_count=settings["min_count"], sg=ALGORITHMS[algorithm],
                         negative=settings["negative"], epochs=settings["epochs"], seed=settings["seed"],
                         workers=workers, hashfxn=_stable_hash)
    finally:
        gensim_log.setLevel(level)
    words, matrix = list(model.wv.index_to_key), model.wv.vectors.astype(np.float32)
    extra["train_seconds"] = round(time.perf_counter() - started, 3)
    log.info("word2vec %s trained on %d tokens in %.1f s", algorithm, n_tokens, extra["train_seconds"])
    if cache is not None:
        _save_atomically(cache, words, matrix)
    return dict(zip(words, matrix)), extra


def _save_atomically(path: Path, words: list[str], matrix: np.ndarray) -> None:
    """Write then rename, so runs of a parallel sweep never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
        np.savez(f, vectors=matrix, words=np.frombuffer(json.dumps(words).encode(), dtype=np.uint8))
    os.replace(f.name, path)
