"""``python -m rnnlab.report``: see :mod:`rnnlab.report.sweep_table`."""

from rnnlab.report.sweep_table import main

main()
