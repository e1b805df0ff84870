"""``python -m lab``: the learner's levers and status screen (see lab/cli.py)."""

from lab.cli import main
from worker.config import exit_now

if __name__ == "__main__":
    exit_now(main())
