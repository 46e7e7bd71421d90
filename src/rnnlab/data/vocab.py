"""Tokenisation and vocabulary, in place of torchtext (abandoned upstream).

The tokenizer is ours, a dozen lines: the corpora we read are either pre-tokenised (PTB,
WikiText: split on whitespace) or plain English sentences (IMDB, AG News, SST-2), for which
torchtext's "basic_english" rule — lower-case, split words from punctuation — is the common
baseline. A subword library (tokenizers, sentencepiece) would add a trained model to every run
for no gain on word-level RNN baselines.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?|[^\sA-Za-z0-9]", re.UNICODE)


def tokenize(text: str, lower: bool = True) -> list[str]:
    """Words and single punctuation marks: "Don't stop!" -> ["don't", "stop", "!"]."""
    return _WORD.findall(text.lower() if lower else text)


class Vocab:
    """index <-> token. Index 0 is ``<pad>`` and 1 is ``<unk>`` unless ``specials`` says otherwise."""

    def __init__(self, itos: list[str], unk: str | None = UNK, pad: str | None = PAD) -> None:
        if len(set(itos)) != len(itos):
            raise ValueError("a vocabulary lists each token once")
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.unk_index = self.stoi.get(unk) if unk else None
        self.pad_index = self.stoi.get(pad) if pad else None

    @classmethod
    def build(cls, token_lists: Iterable[list[str]], min_freq: int = 1, max_size: int | None = None,
              specials: tuple[str, ...] = (PAD, UNK)) -> Vocab:
        """Count tokens (the training split only), keep those seen ``min_freq`` times, most frequent first.

        ``max_size`` counts the specials too. Ties are broken alphabetically, so the mapping is the
        same on every machine.
        """
        if min_freq < 1:
            raise ValueError(f"data.min_freq must be >= 1, got {min_freq}")
        counts = Counter(t for tokens in token_lists for t in tokens)
        words = sorted((t for t, c in counts.items() if c >= min_freq and t not in specials),
                       key=lambda t: (-counts[t], t))
        if max_size is not None:
            if max_size <= len(specials):
                raise ValueError(f"data.max_size must exceed the {len(specials)} special tokens, got {max_size}")
            words = words[: max_size - len(specials)]
        return cls([*specials, *words], unk=UNK if UNK in specials else None, pad=PAD if PAD in specials else None)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Token ids; unknown tokens map to ``<unk>`` (a vocabulary without one raises KeyError)."""
        if self.unk_index is None:
            return [self.stoi[t] for t in tokens]
        get, unk = self.stoi.get, self.unk_index
        return [get(t, unk) for t in tokens]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"itos": self.itos}, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        itos = json.loads(Path(path).read_text())["itos"]
        return cls(itos, unk=UNK if UNK in itos else None, pad=PAD if PAD in itos else None)


class VocabCheckpoint:
    """For DataModules with a ``self.vocab``: checkpoints carry the vocabulary, and a resume refuses a
    checkpoint whose vocabulary is not the one built from the data now."""

    vocab: Vocab | None

    def state_dict(self) -> dict:
        return {"itos": self.vocab.itos} if self.vocab is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if "itos" in state and self.vocab is not None and state["itos"] != self.vocab.itos:
            raise ValueError(f"the checkpoint's vocabulary ({len(state['itos'])} tokens) differs from the one "
                             f"built from the data now ({len(self.vocab)}): different files or data.* settings")
