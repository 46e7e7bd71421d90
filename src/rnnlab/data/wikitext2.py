"""WikiText-2 (Merity et al. 2016, arXiv:1609.07843), the tokenised word-level version (v1).

Reads ``wiki.train.tokens``, ``wiki.valid.tokens``, ``wiki.test.tokens`` (the ``wikitext-2`` folder
of ``wikitext-2-v1.zip``) as they are: ``<unk>``, the ``@-@`` / ``@,@`` / ``@.@`` joiners and the
`` = Heading = `` lines are tokens like any other, and blank lines give an ``<eos>`` each, as in
pytorch/examples word_language_model: 2,088,628 training tokens, vocabulary 33,278.
Licence: CC BY-SA 3.0 (the text is from Wikipedia's Good and Featured articles).
"""

from __future__ import annotations

from typing import ClassVar

from rnnlab.data.download import Archive, Source
from rnnlab.data.language_modeling import LanguageModelingDataModule

_SHA256 = "92675f1d63015c1c8b51f1656a52d5bdbc33aafa60cc47a218a66e7ee817488c"
_FROM = ("huggingface/datasets: datasets/wikitext/dataset_infos.json; the same SHA-256 in "
         "ml-explore/mlx-data: python/mlx/data/datasets/wikitext.py")
ARCHIVE = Archive(
    filename="wikitext-2-v1.zip", folder="wikitext-2",
    homepage="https://blog.salesforceairesearch.com/the-wikitext-long-term-dependency-language-modeling-dataset/",
    sources=(
        Source("https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-2-v1.zip", sha256=_SHA256,
               size=4475746, checksum_from=_FROM),
        # where the authors moved the files; assumed to be the same bytes, and verified like the first
        Source("https://wikitext.smerity.com/wikitext-2-v1.zip", sha256=_SHA256, size=4475746,
               checksum_from=_FROM + " (recorded for the s3 URL)"),
    ))


class WikiText2DataModule(LanguageModelingDataModule):
    name = "wikitext2"
    title = "WikiText-2"
    files: ClassVar[dict[str, str]] = {"train": "wiki.train.tokens", "val": "wiki.valid.tokens",
                                       "test": "wiki.test.tokens"}
    expected = "wiki.train.tokens, wiki.valid.tokens and wiki.test.tokens (the wikitext-2 folder)"
    homepage = ARCHIVE.homepage
    archive = ARCHIVE

    def check_variant(self) -> None:
        train = self.root / "wiki.train.tokens"
        # WikiText-2's training file is 10.9 MB, WikiText-103's 539 MB
        if train.is_file() and train.stat().st_size > 100_000_000:
            raise ValueError(f"data.root={self.root} holds WikiText-103 ({train} is "
                             f"{train.stat().st_size / 1e6:.0f} MB), not WikiText-2 (10.9 MB)")
        if not train.is_file() and (self.root / "wiki.train.raw").is_file():
            raise ValueError(f"data.root={self.root} holds WikiText's raw variant (wiki.*.raw, "
                             f"wikitext-2-raw-v1.zip): data=wikitext2 reads the tokenised wiki.*.tokens "
                             f"of wikitext-2-v1.zip ({ARCHIVE.sources[0].url})")
