"""`python -m lab.soak`: see lab/soak/__init__.py."""

import sys

from lab.soak.cli import main

sys.exit(main())
