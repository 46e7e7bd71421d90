"""Data sets. Each is one module + one ``conf/data/<name>.yaml`` whose ``_target_`` is its DataModule."""

from rnnlab.data.base import IGNORE_INDEX, DataSpec, SequenceDataModule

__all__ = ["IGNORE_INDEX", "DataSpec", "SequenceDataModule"]
