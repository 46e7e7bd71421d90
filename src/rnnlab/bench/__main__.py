"""``python -m rnnlab.bench``: see :mod:`rnnlab.bench.speed`."""

from rnnlab.bench.speed import main

main()
