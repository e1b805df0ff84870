"""Module 1's exercise as a learner runs it, for the stack tests.

The exercise runs in a copy of exercises/module01 (with services/ beside it,
as in the repository), so that `uv run` writes its .venv and uv.lock there and
not into the work tree. The tests take the learner's own path,
`uv run run_workflow.py`, with the uv that tests/requirements.txt installs in
.venv: uv makes the exercise's environment from its pyproject.toml, with
temporalio from PyPI (cached after the first time).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
UV = VENV_BIN / "uv"


def module01_copy() -> Path:
    """A fresh copy of exercises/module01, in <tmp>/exercises/module01 beside <tmp>/services."""
    root = Path(tempfile.mkdtemp(prefix="crashlab-module01-"))
    here = root / "exercises" / "module01"
    here.mkdir(parents=True)
    for name in ("pyproject.toml", "run_workflow.py", "python_print.py"):
        source = ROOT / "exercises" / "module01" / name
        if source.exists():
            shutil.copy2(source, here / name)
    (root / "services").symlink_to(ROOT / "services")
    return here


def run_workflow_command() -> list[str]:
    """How a learner starts the exercise: `uv run` (tests/requirements.txt installs uv)."""
    return [str(UV), "run", "run_workflow.py"]


def exercise_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a learner's terminal, with the venv's tools first on PATH.

    uv may download packages from PyPI (temporalio, the first time) but never a
    Python interpreter: it uses the one this test runs on.
    """
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_PYTHON": sys.executable,
        "UV_NO_PROGRESS": "1",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }
