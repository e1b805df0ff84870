"""``python -m lab``: the learner's levers and status screen (see lab/cli.py)."""

import sys
from pathlib import Path

# The lab's code imports the services' packages (bank, worker), as the tests do.
_SERVICES = str(Path(__file__).resolve().parents[1] / "services")
if _SERVICES not in sys.path:
    sys.path.insert(0, _SERVICES)

from lab.cli import exit_now, main  # noqa: E402

if __name__ == "__main__":
    exit_now(main())
