"""The copy-memory task (Hochreiter & Schmidhuber 1997, in the form of Arjovsky et al. 2016).

Tokens: 0 = blank, 1–8 = the eight symbols, 9 = delimiter. Input (length T + 20): ten random
symbols, T − 1 blanks, the delimiter, ten blanks. Target: blanks for T + 10 steps, then the ten
symbols. The loss is the cross-entropy over every step. Predicting blanks and then a uniform guess
over the 8 symbols gives 10·ln 8 / (T + 20): the baseline a model must beat.
"""

from __future__ import annotations

import math

import torch

from rnnlab.data.base import DataSpec, SequenceDataModule, TensorDictDataset, require_positive

BLANK, DELIMITER, N_SYMBOLS, N_COPY = 0, 9, 8, 10


def make_copy(n: int, delay: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences of length delay + 20: x (n, T+20) long, y (n, T+20) long."""
    symbols = torch.randint(1, N_SYMBOLS + 1, (n, N_COPY), generator=generator)
    length = delay + 2 * N_COPY
    x = torch.full((n, length), BLANK, dtype=torch.long)
    x[:, :N_COPY] = symbols
    x[:, N_COPY + delay - 1] = DELIMITER
    y = torch.full((n, length), BLANK, dtype=torch.long)
    y[:, -N_COPY:] = symbols
    return x, y


class CopyMemoryDataModule(SequenceDataModule):
    """Copy memory with delay ``seq_len`` (T ≥ 1); the sequences are T + 20 steps long."""

    def __init__(self, seq_len: int = 50, n_train: int = 20000, n_val: int = 1000, n_test: int = 2000,
                 batch_size: int = 64, seed: int = 0, num_workers: int = 0) -> None:
        super().__init__(batch_size, seed, num_workers)
        if not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(f"data.seq_len (the delay) must be an integer >= 1 for the copy task, got {seq_len!r}")
        require_positive(n_train=n_train, n_val=n_val, n_test=n_test)
        self.seq_len, self.sizes = seq_len, {"train": n_train, "val": n_val, "test": n_test}

    @property
    def spec(self) -> DataSpec:
        return DataSpec(name="copy", task="classification", readout="all", output_size=N_SYMBOLS + 2,
                        vocab_size=N_SYMBOLS + 2, baseline_loss=N_COPY * math.log(N_SYMBOLS) / (self.seq_len + 20),
                        baseline_what="blanks, then a uniform guess over the 8 symbols",
                        itos=["_", *map(str, range(1, N_SYMBOLS + 1)), ":"])

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for offset, (split, n) in enumerate(self.sizes.items()):
            generator = torch.Generator().manual_seed(self.seed * 1000 + offset)
            x, y = make_copy(n, self.seq_len, generator)
            self.splits[split] = TensorDictDataset(x=x, y=y)
