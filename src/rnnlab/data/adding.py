"""The adding problem (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015 / Arjovsky et al. 2016).

Each step is a pair (value ~ U[0, 1], marker ∈ {0, 1}); exactly two markers are set, one in each
half of the sequence; the target is the sum of the two marked values. Always predicting 1 gives an
MSE of Var(u₁ + u₂) = 2/12 ≈ 0.167: the baseline a model must beat. Generated from the seed.
"""

from __future__ import annotations

import torch

from rnnlab.data.base import DataSpec, SequenceDataModule, TensorDictDataset, require_positive

BASELINE_MSE = 1 / 6


def make_adding(n: int, seq_len: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n sequences: x (n, T, 2) = (value, marker), y (n, 1) = sum of the two marked values."""
    values = torch.rand(n, seq_len, generator=generator)  # (n, T)
    half = seq_len // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, seq_len, (n,), generator=generator)
    markers = torch.zeros(n, seq_len)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # (n, T, 2)
    y = (values * markers).sum(dim=1, keepdim=True)  # (n, 1)
    return x, y


class AddingDataModule(SequenceDataModule):
    """Adding problem of length ``seq_len`` (T ≥ 2), split sizes in sequences."""

    def __init__(self, seq_len: int = 50, n_train: int = 20000, n_val: int = 1000, n_test: int = 2000,
                 batch_size: int = 64, seed: int = 0, num_workers: int = 0) -> None:
        super().__init__(batch_size, seed, num_workers)
        if not isinstance(seq_len, int) or seq_len < 2:
            raise ValueError(f"data.seq_len must be an integer >= 2 for the adding problem (one marker in each "
                             f"half), got {seq_len!r}")
        require_positive(n_train=n_train, n_val=n_val, n_test=n_test)
        self.seq_len, self.sizes = seq_len, {"train": n_train, "val": n_val, "test": n_test}

    @property
    def spec(self) -> DataSpec:
        return DataSpec(name="adding", task="regression", readout="last", output_size=1, input_size=2,
                        baseline_loss=BASELINE_MSE, baseline_what="always predict 1")

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        for offset, (split, n) in enumerate(self.sizes.items()):
            # each split has its own stream, so changing n_train leaves val and test unchanged
            generator = torch.Generator().manual_seed(self.seed * 1000 + offset)
            x, y = make_adding(n, self.seq_len, generator)
            self.splits[split] = TensorDictDataset(x=x, y=y)
