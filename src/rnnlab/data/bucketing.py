"""Length bucketing: batches of sequences of similar length, so little of a padded batch is padding.

Each epoch the examples are shuffled (:class:`EpochPermutation`, drawn from seed and epoch), cut
into chunks of ``chunk_batches`` batches, sorted by length within each chunk, batched, and the
batches shuffled (:class:`BucketBatchSampler`). The chunks keep some randomness in which examples
meet in a batch; the final shuffle keeps short and long batches mixed through the epoch.
Same seed, same epoch: same batches. :class:`ResumableDataLoader` lets a resumed run leave out
the batches of the current epoch it had trained on before it was interrupted.
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import BatchSampler, DataLoader, Sampler

CHUNK_BATCHES = 50


class EpochPermutation(Sampler[int]):
    """A permutation of range(n) drawn from (seed, epoch); Lightning calls :meth:`set_epoch` every epoch."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


class BucketBatchSampler(BatchSampler):
    """Batches of similar lengths: the indices ``sampler`` yields, cut into chunks of ``chunk_batches``
    batches, sorted by length within each chunk (stable), batched; then the batch order is shuffled
    (``shuffle``) from (seed, epoch). ``bucketing=False`` batches in the sampler's order.

    Takes ``sampler`` like torch's BatchSampler, so Lightning can put a DistributedSampler in its place.
    ``chunk_batches=None`` sorts everything at once (evaluation).
    """

    def __init__(self, sampler, batch_size: int, drop_last: bool, lengths: np.ndarray, bucketing: bool = True,
                 shuffle: bool = True, seed: int = 0, chunk_batches: int | None = CHUNK_BATCHES) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.lengths, self.bucketing, self.shuffle, self.seed = np.asarray(lengths), bucketing, shuffle, seed
        self.chunk_batches = chunk_batches
        self.skip = 0  # batches to leave out of the next epoch: those a resumed run trained on

    def batches(self) -> list[np.ndarray]:
        order = np.fromiter(iter(self.sampler), dtype=np.int64)
        bs = self.batch_size
        chunk = len(order) if not self.chunk_batches else bs * self.chunk_batches
        batches = []
        for start in range(0, len(order), max(chunk, 1)):
            part = order[start:start + chunk]
            if self.bucketing:
                part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[i:i + bs] for i in range(0, len(part), bs)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == bs]
        if self.shuffle:
            rng = np.random.default_rng([self.seed, getattr(self.sampler, "epoch", 0), 1])
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self):
        batches, self.skip = self.batches()[self.skip:], 0
        for batch in batches:
            yield batch.tolist()

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


def padding_fraction(batches: list[np.ndarray], lengths: np.ndarray) -> float:
    """Share of the (B, T_max) positions of these batches that are padding."""
    sizes = sum(len(b) * int(lengths[b].max()) for b in batches)
    return 1.0 - float(sum(int(lengths[b].sum()) for b in batches)) / sizes if sizes else 0.0


class ResumableDataLoader(DataLoader):
    """Resumes mid-epoch: Lightning keeps :meth:`state_dict` in checkpoints and calls :meth:`load_state_dict`
    on resume; the batch sampler then leaves out the batches the interrupted run had trained on."""

    def __init__(self, *args, datamodule=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.datamodule = datamodule  # an argument, so Lightning keeps it when it rebuilds the loader (DDP)

    def state_dict(self) -> dict:
        trainer = getattr(self.datamodule, "trainer", None)
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed if trainer is not None else 0
        return {"batches_trained": int(done) % max(len(self), 1)}

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.skip = int(state.get("batches_trained", 0))
