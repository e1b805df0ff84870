"""The soak's two clocks: seconds since it began (for the log and the records), and the
schedule's planned time, which stands still while services restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

Say = Callable[[str], None]


class Timeline:
    """Seconds since the soak began, and log lines stamped with them."""

    def __init__(self, say: Say) -> None:
        self.say = say
        self.start()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.epoch = time.time()  # the same moment, to place Temporal's timestamps

    def since_start(self, epoch_seconds: float) -> float:
        return epoch_seconds - self.epoch

    def now(self) -> float:
        return time.monotonic() - self.t0

    def log(self, text: str) -> None:
        self.say(f"[{self.now():6.1f}s] {text}")


class PlannedClock:
    """The schedule's own time: it runs during the gaps and the holds, and stands still
    while services restart, so the transfers keep pace with the faults, not the wall."""

    def __init__(self) -> None:
        self.segment(0.0, 0.0)

    def segment(self, base: float, length: float) -> None:
        self.base, self.length, self.since = base, max(0.0, length), time.monotonic()

    def now(self) -> float:
        return self.base + min(time.monotonic() - self.since, self.length)

    async def reach(self, planned: float, stop: Callable[[], bool]) -> None:
        """Until this clock reaches ``planned`` (or ``stop()``)."""
        # Polling: the clock stands still during restarts, so no timer can say when.
        while self.now() < planned and not stop():  # noqa: ASYNC110
            await asyncio.sleep(0.1)
