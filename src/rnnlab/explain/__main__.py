"""``python -m rnnlab.explain``: see :mod:`rnnlab.explain.cli`."""

import sys

from rnnlab.explain.cli import main

sys.exit(main())
