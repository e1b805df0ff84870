"""``python -m crashlab``: the learner's levers and status screen (see crashlab/cli.py)."""

from crashlab.cli import main
from worker.config import exit_now

if __name__ == "__main__":
    exit_now(main())
