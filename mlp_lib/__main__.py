"""``python -m mlp_lib``: the command line (``mlp_lib.apps.cli``)."""

import sys

from .apps.cli import main

sys.exit(main())
