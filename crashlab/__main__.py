"""``crashlab`` and ``python -m crashlab``: the learner's levers and status screen
(see crashlab/cli.py)."""

from typing import NoReturn

from crashlab.cli import main
from worker.config import exit_now


def run() -> NoReturn:
    exit_now(main())


if __name__ == "__main__":
    run()
