# /// script
# requires-python = ">=3.11"
# dependencies = []
# ///
"""Module 1, step 1: what a crash looks like without Temporal.

Prints Step 1 to Step 10 with a pause between steps. Stop it with Ctrl+C and
run it again: it starts over from Step 1, because nothing remembers how far the
last run got.

    uv run python_print.py        (or: python python_print.py)

PRINT_SLEEP_SECONDS changes the pause (default 3), so a test need not wait.
"""

import os
import sys
import time


def print_step(number: int) -> None:
    print(f"Step {number}", flush=True)


def main() -> int:
    pause = float(os.environ.get("PRINT_SLEEP_SECONDS", "3"))
    try:
        for counter in range(1, 11):
            print_step(counter)
            if counter < 10:
                time.sleep(pause)
    except KeyboardInterrupt:  # Ctrl+C: stop quietly, like the process simply died
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
