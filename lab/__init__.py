"""The lab's control panel: levers that break the stack, and the checks that prove it held.

It runs on the host (`python -m lab ...` from .venv) and speaks the services'
own contracts, so it imports them from services/ rather than copying them.
"""

import sys
from pathlib import Path

_SERVICES = str(Path(__file__).resolve().parents[1] / "services")
if _SERVICES not in sys.path:
    sys.path.insert(0, _SERVICES)
