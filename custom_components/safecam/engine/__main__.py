"""`python -m custom_components.safecam.engine ...` (see cli.py)."""

import sys

from .cli import main

sys.exit(main())
