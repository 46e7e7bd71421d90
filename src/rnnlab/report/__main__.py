"""``python -m rnnlab.report``: see :mod:`rnnlab.report.cli`."""

import sys

from rnnlab.report.cli import main

sys.exit(main())
