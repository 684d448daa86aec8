"""``python -m rnnkit``: the same command line as ``rnnkit``."""

import sys

from rnnkit.cli import main

sys.exit(main())
