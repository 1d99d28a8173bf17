"""``python -m tui`` runs the same entry point as the ``llmdeck`` console script."""

import sys

from tui.cli.main import main

sys.exit(main())
