"""rnnlab: vanilla RNN, LSTM and GRU side by side, with gradient diagnostics through time."""

import os

# OpenMP threads that spin-wait for a core another process holds slow a run by 5-50x (benchmarks/threads.md);
# sleeping at once costs little when the cores are free. OpenMP reads this once, when torch loads it, so it is
# set here, before anything of ours imports torch (run.py imports rnnlab first). An explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from rnnlab.training import resolvers as _resolvers  # noqa: F401 - registers the ${rnnlab.*} config resolvers
