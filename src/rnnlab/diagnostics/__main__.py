"""``python -m rnnlab.diagnostics``: see :mod:`rnnlab.diagnostics.plots`."""

from rnnlab.diagnostics.plots import main

main()
