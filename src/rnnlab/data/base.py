"""The data contract every data set fulfils, and the DataModule base class they share.

A batch is a dict:
- ``x``: (B, T, I) float features, or (B, T) long token ids (when ``spec.vocab_size`` is set);
- ``y``: regression (B, output_size) float; ``readout="last"`` classification (B,) long;
  ``readout="all"`` (per-step targets, language modelling included) (B, T) long, ``IGNORE_INDEX``
  where a step has no target; multilabel (B, T, output_size) float in {0, 1} (e.g. piano rolls:
  which notes sound in the next frame), padded frames excluded through ``lengths``;
- ``lengths`` (optional): (B,) long valid lengths when sequences are padded at the end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

TASKS = ("classification", "language_modeling", "regression", "multilabel")
READOUTS = ("last", "all")
IGNORE_INDEX = -100  # targets that count for nothing (padding, the blanks of the copy task's input phase)


@dataclass(frozen=True)
class DataSpec:
    """What a data set tells the model and the training loop about itself."""

    name: str
    task: str  # one of TASKS: picks the loss and the metrics
    readout: str  # "last": one prediction per sequence; "all": one per step
    output_size: int  # regression targets, classes, or vocabulary size
    input_size: int | None = None  # float features per step (None when inputs are token ids)
    vocab_size: int | None = None  # token ids lie in [0, vocab_size) (None for float inputs)
    pad_index: int | None = None  # token id used for padding, if any
    baseline_loss: float | None = None  # the loss of a trivial predictor, printed beside test/loss
    baseline_what: str = ""  # what that trivial predictor is
    itos: list[str] | None = field(default=None, repr=False)  # vocabulary, index -> token

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"data task must be one of {TASKS}, got {self.task!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"data readout must be one of {READOUTS}, got {self.readout!r}")
        if (self.input_size is None) == (self.vocab_size is None):
            raise ValueError("a DataSpec sets exactly one of input_size (float inputs) and vocab_size (tokens)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("itos")
        return d


class TensorDictDataset(Dataset):
    """Rows of equally long tensors, served as batch dicts."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        sizes = {len(t) for t in tensors.values()}
        if len(sizes) != 1:
            raise ValueError(f"all tensors need the same first dimension, got {sizes}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}


def require_positive(**values: int) -> None:
    """Raise a ValueError naming ``data.<key>`` for any value that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"data.{name} must be a positive integer, got {value!r}")


class ResumableLoader:
    """A shuffling DataLoader whose order is a function of (seed, epoch), and which resumes mid-epoch.

    Lightning saves ``state_dict()`` in checkpoints and calls ``load_state_dict()`` on resume (its
    ``_Stateful`` protocol); the next iteration then skips the batches the killed run had already
    trained on, so a resumed run sees exactly the batches an uninterrupted one would.
    """

    def __init__(self, loader: DataLoader, generator: torch.Generator, seed: int, datamodule) -> None:
        self.loader, self.generator, self.seed, self.datamodule = loader, generator, seed, datamodule
        self.dataset = loader.dataset  # Lightning inspects these two
        self.sampler = loader.sampler
        self._epoch_counter, self._skip = 0, 0

    def _epoch(self) -> int:
        trainer = getattr(self.datamodule, "trainer", None)
        return trainer.current_epoch if trainer is not None else self._epoch_counter

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        epoch = self._epoch()
        self.generator.manual_seed(self.seed * 1_000_003 + epoch)
        if hasattr(self.sampler, "set_epoch"):  # DistributedSampler: its own per-epoch shuffle
            self.sampler.set_epoch(epoch)
        iterator = iter(self.loader)
        # Skip the batches trained before the interruption. This body runs at the first next(), so an
        # iterator Lightning creates and drops unused does not use up the skip.
        for _ in range(self._skip):
            next(iterator)
        self._skip = 0
        self._epoch_counter = epoch + 1
        yield from iterator

    def state_dict(self) -> dict:
        trainer = getattr(self.datamodule, "trainer", None)
        if trainer is None or trainer.fit_loop.epoch_loop.done:  # saved at the end: a resume starts a new epoch
            return {"epoch": self._epoch(), "batches_trained": 0}
        trained = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": self._epoch(), "batches_trained": int(trained) % max(len(self), 1)}

    def load_state_dict(self, state: dict) -> None:
        self._skip = int(state["batches_trained"])


class SequenceDataModule(L.LightningDataModule):
    """Base for every data set: subclasses build ``self.splits`` in :meth:`setup` and define :attr:`spec`.

    ``self.splits`` maps "train" / "val" / "test" to a Dataset yielding batch-dict rows (or, for
    data sets that batch themselves, a Dataset yielding whole batches: set ``prebatched = True``).
    Loaders shuffle the training split with a generator seeded from ``seed``, so runs repeat exactly.
    """

    prebatched = False

    def __init__(self, batch_size: int = 64, seed: int = 0, num_workers: int = 0) -> None:
        super().__init__()
        require_positive(batch_size=batch_size)
        self.batch_size, self.seed, self.num_workers = batch_size, seed, num_workers
        self.splits: dict[str, Dataset] = {}

    @property
    def spec(self) -> DataSpec:
        raise NotImplementedError

    def train_tokens(self):
        """The training split as lists of tokens (data sets with a vocabulary): what word2vec trains on."""
        raise ValueError(f"data set {self.spec.name!r} has no text to train word embeddings on: "
                         "use embeddings=random")

    def _loader(self, split: str) -> DataLoader:
        if split not in self.splits:
            self.setup("fit" if split != "test" else "test")
        data = self.splits[split]
        if self.prebatched:
            return DataLoader(data, batch_size=None, shuffle=False, num_workers=self.num_workers)
        generator = torch.Generator().manual_seed(self.seed)
        workers = {"num_workers": self.num_workers, "persistent_workers": self.num_workers > 0}
        if split != "train":  # Lightning shards these itself under DDP
            return DataLoader(data, batch_size=self.batch_size, shuffle=False, **workers)
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:  # our loader is not a DataLoader: shard it here
            sampler = DistributedSampler(data, trainer.world_size, trainer.global_rank, shuffle=True, seed=self.seed)
            loader = DataLoader(data, batch_size=self.batch_size, sampler=sampler, **workers)
        else:
            loader = DataLoader(data, batch_size=self.batch_size, shuffle=True, generator=generator, **workers)
        return ResumableLoader(loader, generator, self.seed, self)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
