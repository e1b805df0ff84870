"""The crash-proof lab: levers that break a running lab, and the checks that prove it held.

It runs on the host (the `crashlab` command, `python -m crashlab`, the pytest plugin)
and speaks the services' own contracts, so it imports them from services/ rather
than copying them.

Where the lab's files are (LAB_HOME): beside this package in a checkout or an
editable install; inside it (crashlab/_lab, put there by the wheel's build) when
installed from a wheel. Either way LAB_HOME holds compose/ and services/, and
nothing depends on the current directory.
"""

import os
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
LAB_HOME = _PACKAGE / "_lab" if (_PACKAGE / "_lab").is_dir() else _PACKAGE.parent
INSTALLED = _PACKAGE.parent != LAB_HOME

# What the image builds download and stage (wheels, build contexts). A checkout keeps
# it in its build/; an installed lab in the user's cache, never in site-packages.
BUILD_DIR = Path(
    os.environ.get("LAB_BUILD_DIR")
    or (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "crashlab"
        if INSTALLED
        else LAB_HOME / "build"
    )
)

_SERVICES = str(LAB_HOME / "services")
if _SERVICES not in sys.path:
    sys.path.insert(0, _SERVICES)
