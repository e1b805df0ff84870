"""`python -m crashlab.soak`: see crashlab/soak/__init__.py."""

import sys

from crashlab.soak.cli import main

sys.exit(main())
