"""Putting the lab where a challenge starts, whatever the learner left behind.

`make down` or `make clean`, a service paused, cut off or killed, faults left on
the bank, the deposit bug left in services/worker/activities.py, a transfer
source run dry: a challenge's setup undoes each of them, and says what it did.
Running it twice changes nothing the second time.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from crashlab.experiments import versioning
from crashlab.experiments.bugfix import DEPOSIT_METHOD, FAILING_CALL, WORKING_CALL
from crashlab.experiments.kit import Narrator, Outcome, ensure_funds, worker_source
from crashlab.levers import restore
from crashlab.stack import COMPOSE_FILE, SERVICES, Stack, control_token_for_up

Say = Callable[[str], None]

# The Compose file's directory: Compose reads `.env` there for every command run on the
# file (`make transfer`, the learner's `docker compose -f compose/compose.yaml ...`).
COMPOSE_ENV_FILE = COMPOSE_FILE.parent / ".env"
# The hosted platform's name for the VM (track/config.yml) and the UI's port there.
TRACK_HOST = "workshop-host"
UI_TAB_PORT = 8080


def bring_up(stack: Stack, say: Say) -> None:
    """Every service running, unfrozen, connected and healthy.

    Missing containers (after `make down` or `make clean`) are created as `make up`
    does, with the bank's control token; the rest is undone lever by lever.
    """
    missing = [s for s in SERVICES if not stack.containers(s)]
    if missing:
        say(f"The lab is not all there (no {', '.join(missing)} container): starting it.")
        token = os.environ.get("LAB_TOKEN", "").strip() or control_token_for_up() or ""
        up = Stack(stack.project, {**stack.env, "BANK_CONTROL_TOKEN": token})
        up.compose("up", "--detach", "--wait")
    for done in asyncio.run(restore(stack)):
        say(done)


def clear_faults(stack: Stack, say: Say) -> None:
    async def clear() -> bool:
        async with stack.bank() as bank:
            faults = await bank.faults()
            if faults.withdraw or faults.deposit:
                await bank.clear_faults()
                return True
            return False

    if asyncio.run(clear()):
        say("The bank had faults switched on: cleared them.")


def deposit_has_bug(source: str) -> bool:
    """deposit() calls the failing method (the tutorial's bug, challenge 3)."""
    body = re.search(DEPOSIT_METHOD, source, re.S)
    return bool(body and FAILING_CALL in body.group(0))


def without_bug(source: str) -> str:
    body = re.search(DEPOSIT_METHOD, source, re.S)
    if not body:
        return source
    fixed = body.group(0).replace(FAILING_CALL, WORKING_CALL)
    return source[: body.start()] + fixed + source[body.end() :]


def activities_file(stack: Stack) -> Path:
    return worker_source(stack) / "activities.py"


def worker_started_at(stack: Stack) -> datetime | None:
    """When the (first) worker container last started."""
    found = stack.containers("worker")
    if not found:
        return None
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.StartedAt}}", found[0].id],
        capture_output=True,
        text=True,
        check=False,
    )
    return parse_docker_time(out.stdout.strip())


def parse_docker_time(text: str) -> datetime | None:
    """RFC 3339 with nanoseconds, as Docker writes it; Python reads microseconds."""
    match = re.fullmatch(r"(.*?\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not match:
        return None
    head, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    parsed = datetime.fromisoformat(f"{head}.{(fraction or '0')[:6].ljust(6, '0')}{zone}")
    return parsed.astimezone(UTC)


def workflows_file(stack: Stack) -> Path:
    return worker_source(stack) / "workflows.py"


def code_loaded(stack: Stack) -> bool:
    """The running worker started after its code last changed: it runs what is on disk."""
    started = worker_started_at(stack)
    changed = max(
        datetime.fromtimestamp(path.stat().st_mtime, UTC)
        for path in (activities_file(stack), workflows_file(stack))
    )
    return started is not None and started > changed


def restore_code(stack: Stack, say: Say) -> None:
    """deposit() and MoneyTransfer as they ship, and a worker that runs them."""
    path = activities_file(stack)
    source = path.read_text()
    if deposit_has_bug(source):
        path.write_text(without_bug(source))
        say(f"deposit() in {path} still called {FAILING_CALL.rstrip('(')}: put it back.")
    path = workflows_file(stack)
    source = path.read_text()
    if versioning.without_change(source) != source:
        path.write_text(versioning.without_change(source))
        say(f"MoneyTransfer in {path} still had the versioning challenge's step: took it out.")
    if not code_loaded(stack):
        say("Restarting the worker so that it runs the code on disk.")
        stack.compose("restart", "worker")
        stack.wait_healthy("worker", timeout=60)


def refill(stack: Stack, say: Say) -> None:
    """85-150 can pay the tutorial's $250 again and again: after many tries it runs dry,
    and an ordinary transfer brings the money back from 43-812."""

    async def top_up() -> None:
        client = await stack.temporal()
        async with stack.bank() as bank:
            outcome = Outcome("track")
            await ensure_funds(client, bank, Narrator(say, outcome), "85-150", "43-812", 1000)

    asyncio.run(top_up())


def hosted_links(say: Say, environ: dict[str, str] | None = None) -> None:
    """The starter's links go where the learner's browser reaches the Temporal UI.

    On the hosted platform that is the UI tab's address, made of the VM's name, the
    port and INSTRUQT_PARTICIPANT_ID; TEMPORAL_UI_URL, when set, wins. Written to
    compose/.env, which Compose reads for `make transfer` and the learner's own
    `docker compose` commands alike. Elsewhere nothing is written.
    """
    env = os.environ if environ is None else environ
    url = env.get("TEMPORAL_UI_URL", "").strip()
    participant = env.get("INSTRUQT_PARTICIPANT_ID", "").strip()
    if not url and participant:
        host = env.get("TRACK_HOST", "").strip() or TRACK_HOST
        url = f"https://{host}-{UI_TAB_PORT}-{participant}.env.play.instruqt.com"
    if not url:
        return
    old = COMPOSE_ENV_FILE.read_text() if COMPOSE_ENV_FILE.exists() else ""
    kept = [x for x in old.splitlines(keepends=True) if not x.startswith("TEMPORAL_UI_URL=")]
    new = "".join(kept) + f"TEMPORAL_UI_URL={url}\n"
    if new == old:
        return
    COMPOSE_ENV_FILE.write_text(new)
    say(f"The starter's links point at {url} ({COMPOSE_ENV_FILE}).")
