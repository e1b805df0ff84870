"""``python -m crashlab.track``: the hosted track's setups and checks (track/NN-slug/).

    python -m crashlab.track setup SLUG      # the lab as the challenge assumes it; window starts
    python -m crashlab.track check SLUG      # PASS: ... (exit 0) or FAIL: <what to do> (exit 1)
    python -m crashlab.track wait-activity WORKFLOW_ID ACTIVITY [--min-attempt N]  # solve scripts
    python -m crashlab.track change-workflow new-step|patched  # the versioning challenge's edit
    python -m crashlab.track wait-stuck WORKFLOW_ID  # until it meets a non-determinism error
    python -m crashlab.track temporal-address  # host:port of Temporal's gRPC from this machine
    python -m crashlab.track worker-source   # the directory the worker container runs code from
    python -m crashlab.track stop-recording  # stop the Docker recorder (a lab going away)

COMPOSE_PROJECT_NAME (default crashlab) says which lab.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from datetime import timedelta

from crashlab.experiments import versioning
from crashlab.stack import SERVICES, Stack, StackError
from crashlab.track import lab_state, record
from crashlab.track.checks import CHALLENGES, DC, Challenge, Fail, gather, nondeterminism
from worker.config import exit_now

# The platform gives a check a minute; ours gives up well before, with a hint.
CHECK_DEADLINE = 45.0  # seconds


def say(message: str) -> None:
    print(message, flush=True)


def setup(stack: Stack, challenge: Challenge) -> None:
    lab_state.bring_up(stack, say)
    lab_state.clear_faults(stack, say)
    lab_state.restore_code(stack, say)
    lab_state.refill(stack, say)
    lab_state.hosted_links(say)
    challenge.prepare(stack, say)
    record.Recorder(stack.project).ensure()
    started = record.begin(stack.project, challenge.slug)
    say(f"Ready for {challenge.slug}: its check looks at what happens from {started:%H:%M:%S} UTC.")


def lab_answers(stack: Stack) -> None:
    """Fail with what to do when Temporal or the bank cannot be asked anything."""
    found = {c.service: c for c in stack.containers() if c.service in SERVICES}
    for service in ("temporal", "bank"):
        c = found.get(service)
        if c is None:
            raise Fail(f"The lab is not running (no {service} container). Start it: make up")
        if c.state == "paused":
            raise Fail(f"{service} is paused. Resume it ({DC} unpause {service}), then Check.")
        if c.state != "running":
            raise Fail(f"{service} is not running. Start it ({DC} start {service}), then Check.")


async def check(stack: Stack, challenge: Challenge) -> str:
    lab_answers(stack)
    since = record.window_start(stack.project, challenge.slug)
    evidence = await gather(stack, challenge, since)
    return await challenge.check(evidence)


async def wait_activity(
    stack: Stack, workflow_id: str, activity: str, min_attempt: int, within: float
) -> None:
    """Until the workflow's activity runs (attempt 1) or retries at attempt >= min_attempt."""
    from temporalio.api.enums.v1 import PendingActivityState
    from temporalio.service import RPCError

    client = await stack.temporal()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        try:
            description = await client.get_workflow_handle(workflow_id).describe(
                rpc_timeout=timedelta(seconds=5)
            )
        except RPCError:
            await asyncio.sleep(0.2)  # not started yet
            continue
        for p in description.raw_description.pending_activities:
            started = p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            right = p.activity_type.name == activity and p.attempt >= min_attempt
            if right and (min_attempt > 1 or started):
                return
        await asyncio.sleep(0.2)
    raise Fail(f"{workflow_id}: {activity} did not reach attempt {min_attempt} in {within:g} s.")


def change_workflow(stack: Stack, form: str) -> None:
    """The versioning challenge's change to MoneyTransfer, in the worker's own copy."""
    path = lab_state.workflows_file(stack)
    original = versioning.without_change(path.read_text())
    edit = versioning.with_new_step if form == "new-step" else versioning.with_patched_step
    path.write_text(edit(original))
    say(f"{path}: MoneyTransfer with the cooling-off step ({form}).")


async def wait_stuck(stack: Stack, workflow_id: str, within: float) -> None:
    """Until the workflow's history records a non-determinism error."""
    from crashlab.track.history import runs

    client = await stack.temporal()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        found = await runs(client, f"WorkflowId = '{workflow_id}'")
        if any(nondeterminism(run) for run in found):
            return
        await asyncio.sleep(0.2)
    raise Fail(f"{workflow_id} met no non-determinism error in {within:g} s.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crashlab.track", description=__doc__)
    parser.add_argument("--project", default=os.environ.get("COMPOSE_PROJECT_NAME") or "crashlab")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("setup", "check"):
        commands.add_parser(name).add_argument("challenge", choices=sorted(CHALLENGES))
    wait = commands.add_parser("wait-activity")
    wait.add_argument("workflow_id")
    wait.add_argument("activity")
    wait.add_argument("--min-attempt", type=int, default=1)
    wait.add_argument("--timeout", type=float, default=60)
    change = commands.add_parser("change-workflow")
    change.add_argument("form", choices=("new-step", "patched"))
    stuck = commands.add_parser("wait-stuck")
    stuck.add_argument("workflow_id")
    stuck.add_argument("--timeout", type=float, default=60)
    commands.add_parser("temporal-address")
    commands.add_parser("worker-source")
    commands.add_parser("stop-recording")
    args = parser.parse_args(argv)
    stack = Stack(args.project)
    try:
        if args.command == "setup":
            setup(stack, CHALLENGES[args.challenge])
        elif args.command == "check":
            challenge = CHALLENGES[args.challenge]
            verdict = asyncio.run(asyncio.wait_for(check(stack, challenge), CHECK_DEADLINE))
            say(f"PASS: {verdict}")
        elif args.command == "wait-activity":
            asyncio.run(
                wait_activity(
                    stack, args.workflow_id, args.activity, args.min_attempt, args.timeout
                )
            )
        elif args.command == "change-workflow":
            change_workflow(stack, args.form)
        elif args.command == "wait-stuck":
            asyncio.run(wait_stuck(stack, args.workflow_id, args.timeout))
        elif args.command == "temporal-address":
            say(stack.temporal_address)
        elif args.command == "worker-source":
            say(str(lab_state.activities_file(stack).parent))
        elif args.command == "stop-recording":
            record.Recorder(stack.project).stop()
    except Fail as err:
        say(f"FAIL: {err}")
        return 1
    except TimeoutError:
        say(
            f"FAIL: The lab did not answer within {CHECK_DEADLINE:g} s. Is something paused or "
            "stopped? `make status` shows it; `make up` starts what is missing."
        )
        return 1
    except StackError as err:
        say(f"FAIL: {' '.join(str(err).split())}")
        return 1
    return 0


if __name__ == "__main__":
    exit_now(main())
