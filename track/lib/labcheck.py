#!/usr/bin/env python3
"""What the hosted lab's check and solve scripts ask of the running lab.

    python3 labcheck.py check CHALLENGE        # crash-proof, crash-recovery, live-bug-fix,
                                               # compensation, network-partition
    python3 labcheck.py temporal-address       # host:port of Temporal's gRPC, from this machine
    python3 labcheck.py bank-url               # http://host:port of the bank, from this machine
    python3 labcheck.py worker-source          # the directory the worker runs its code from
    python3 labcheck.py wait-activity WORKFLOW_ID ACTIVITY [--min-attempt N] [--timeout S]
    python3 labcheck.py wait-status WORKFLOW_ID STATUS [--timeout S]

A check prints `FAIL: <what to do next>` and exits 1, or prints `PASS: ...` and
exits 0, within a minute. It looks at what really happened: the workflow
histories in Temporal (through the CLI inside the temporal container), the
bank's ledger, and Docker's record of the worker container.

Standard library only: it runs with the lab machine's own python3.
Environment: LAB_DIR (default: the repository this file is in) and
COMPOSE_PROJECT_NAME (default crashlab) say which lab to look at.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

LAB_DIR = Path(os.environ.get("LAB_DIR") or Path(__file__).resolve().parents[2])
PROJECT = os.environ.get("COMPOSE_PROJECT_NAME") or "crashlab"
COMPOSE_FILE = LAB_DIR / "compose" / "compose.yaml"
# Said to the learner: the commands they type, from the lab's directory.
DC = "docker compose -f compose/compose.yaml"

PRINT_NUMBERS_ID = "print-numbers-workflow"
TRANSFER_TYPE = "MoneyTransfer"
BUG_MESSAGE = "This deposit has failed."
# How many recent transfers a check looks at (each costs one history fetch).
RECENT = 25
# A silence this long in a transfer's history means Temporal and the worker lost touch.
PARTITION_GAP = 10.0  # seconds
COMMAND_TIMEOUT = 20  # seconds, for any one docker command

Event = dict[str, Any]


class Failed(Exception):
    """The check did not pass: the message says what to do next."""


def fail(message: str) -> NoReturn:
    raise Failed(message)


# --- the lab --------------------------------------------------------------------------------


def run(cmd: list[str], *, timeout: float = COMMAND_TIMEOUT) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        fail(f"`{' '.join(cmd[:6])} ...` did not answer within {timeout:g} s. Is the lab up?")
    except FileNotFoundError:
        fail(f"`{cmd[0]}` is not installed on this machine.")
    if out.returncode != 0:
        raise CommandError(cmd, (out.stderr or out.stdout).strip())
    return out.stdout


class CommandError(Exception):
    def __init__(self, cmd: list[str], output: str) -> None:
        super().__init__(f"`{' '.join(cmd)}` failed: {output}")
        self.output = output


def compose(*args: str, timeout: float = COMMAND_TIMEOUT) -> str:
    return run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "-p", PROJECT, *args], timeout=timeout
    )


@dataclass
class Container:
    id: str
    state: str  # running, paused, exited...
    started_at: datetime


def containers(service: str) -> list[Container]:
    ids = compose("ps", "--all", "--quiet", service).split()
    if not ids:
        return []
    found = json.loads(run(["docker", "inspect", *ids]))
    return [
        Container(c["Id"], c["State"]["Status"], parse_time(c["State"]["StartedAt"])) for c in found
    ]


def require_lab_up() -> None:
    """Fail with what to do when Temporal cannot be asked anything."""
    try:
        temporal = containers("temporal")
    except CommandError as err:
        fail(f"Docker Compose cannot see the lab ({err.output[:200]}). Start it: make up")
    if not temporal:
        fail("The lab is not running. Start it from the lab's directory: make up")
    if any(c.state == "paused" for c in temporal):
        fail(f"Temporal is paused. Resume it: {DC} unpause temporal")
    if not any(c.state == "running" for c in temporal):
        fail(f"Temporal is not running. Start it: {DC} start temporal (or make up)")


# The bank's port that Compose publishes: its control API (8000, the teller API, is for
# the lab's containers only and is not published).
BANK_CONTROL_PORT = 8001


def published(service: str, port: int) -> str:
    """host:port where this machine reaches a service's port."""
    try:
        address = compose("port", service, str(port)).strip()
    except CommandError:
        address = ""
    if not address:
        fail(f"The {service} service publishes no port {port}. Is the lab up? (make up)")
    host, _, number = address.rpartition(":")
    return f"{'127.0.0.1' if host in ('0.0.0.0', '::', '[::]') else host}:{number}"


def temporal_cli(*args: str) -> Any:
    """Runs the Temporal CLI inside the temporal container; its JSON output, parsed."""
    out = compose("exec", "-T", "temporal", "temporal", *args, "--output", "json")
    return json.loads(out) if out.strip() else None


def list_workflows(query: str, limit: int = RECENT) -> list[dict[str, Any]]:
    found = temporal_cli("workflow", "list", "--query", query, "--limit", str(limit))
    return found or []


def history(workflow_id: str, run_id: str) -> list[Event]:
    shown = temporal_cli("workflow", "show", "--workflow-id", workflow_id, "--run-id", run_id)
    return list(shown["events"]) if shown else []


def describe(workflow_id: str) -> dict[str, Any]:
    return dict(temporal_cli("workflow", "describe", "--workflow-id", workflow_id))


def ledger() -> list[dict[str, Any]]:
    url = f"http://{published('bank', BANK_CONTROL_PORT)}/ledger?limit=10000"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return list(json.load(answer)["movements"])
    except OSError as err:
        fail(f"The bank does not answer at {url} ({err}). Is the lab up? (make up)")


# --- reading workflows ----------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """RFC 3339 with up to nanoseconds (Docker's and Temporal's); Python reads microseconds."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def attributes(event: Event) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventAttributes"):
            return dict(value)
    return {}


def kind(event: Event) -> str:
    return str(event["eventType"]).removeprefix("EVENT_TYPE_")


def decode_payload(payload: dict[str, Any]) -> Any:
    return json.loads(base64.b64decode(payload["data"]))


def workflow_input(events: list[Event]) -> list[Any]:
    payloads = attributes(events[0]).get("input", {}).get("payloads", [])
    return [decode_payload(p) for p in payloads]


def worker_identities(events: list[Event]) -> set[str]:
    """Who did the work: the workers that completed workflow tasks or ran activities."""
    return {
        attributes(e)["identity"]
        for e in events
        if kind(e) in ("WORKFLOW_TASK_COMPLETED", "ACTIVITY_TASK_STARTED")
        and attributes(e).get("identity")
    }


@dataclass
class Step:
    """One activity of a transfer: its final attempt, and why the one before it failed."""

    name: str
    attempt: int
    last_failure: dict[str, Any]
    completed: bool


def activity_steps(events: list[Event]) -> dict[str, Step]:
    scheduled = {
        e["eventId"]: attributes(e)["activityType"]["name"]
        for e in events
        if kind(e) == "ACTIVITY_TASK_SCHEDULED"
    }
    found: dict[str, Step] = {}
    for e in events:
        a = attributes(e)
        if kind(e) == "ACTIVITY_TASK_STARTED":
            name = scheduled.get(a.get("scheduledEventId"), "?")
            found[name] = Step(name, int(a.get("attempt", 1)), a.get("lastFailure") or {}, False)
        elif kind(e) == "ACTIVITY_TASK_COMPLETED":
            name = scheduled.get(a.get("scheduledEventId"), "?")
            if name in found:
                found[name].completed = True
    return found


def longest_silence(events: list[Event]) -> float:
    times = [parse_time(e["eventTime"]) for e in events]
    return max(((b - a).total_seconds() for a, b in itertools.pairwise(times)), default=0)


@dataclass
class Transfer:
    workflow_id: str
    run_id: str
    status: str  # COMPLETED, FAILED, RUNNING...
    started: datetime
    closed: datetime | None
    events: list[Event]
    reference_id: str

    @property
    def steps(self) -> dict[str, Step]:
        return activity_steps(self.events)

    def worker_restarted_during(self, workers: list[Container]) -> bool:
        end = self.closed or datetime.now(UTC)
        return any(self.started < c.started_at < end for c in workers)


def transfers(status: str) -> list[Transfer]:
    """The most recent MoneyTransfer workflows with this status (COMPLETED, FAILED...)."""
    pretty = status.capitalize()
    found = []
    query = f"WorkflowType = '{TRANSFER_TYPE}' AND ExecutionStatus = '{pretty}'"
    for row in list_workflows(query):
        execution = row["execution"]
        events = history(execution["workflowId"], execution["runId"])
        if not events:
            continue
        inputs = workflow_input(events)
        details = inputs[0] if inputs and isinstance(inputs[0], dict) else {}
        found.append(
            Transfer(
                workflow_id=execution["workflowId"],
                run_id=execution["runId"],
                status=status,
                started=parse_time(row["startTime"]),
                closed=parse_time(row["closeTime"]) if row.get("closeTime") else None,
                events=events,
                reference_id=str(details.get("reference_id", "")),
            )
        )
    return found


def movements_of(transfer: Transfer, movements: list[dict[str, Any]]) -> dict[str, int]:
    """How many ledger movements each step of this transfer made: {"withdraw": 1, ...}."""
    counts: dict[str, int] = {}
    for m in movements:
        key = str(m["idempotency_key"])
        for step in ("withdraw", "deposit", "refund"):
            if transfer.reference_id and key == f"{transfer.reference_id}-{step}":
                counts[step] = counts.get(step, 0) + 1
    return counts


def each_step_once(transfer: Transfer, movements: list[dict[str, Any]]) -> None:
    counts = movements_of(transfer, movements)
    if counts != {"withdraw": 1, "deposit": 1}:
        fail(
            f"Transfer {transfer.workflow_id} completed, but the bank's ledger shows {counts} "
            "for it instead of one withdraw and one deposit. Look at GET /ledger on the bank, "
            "and tell the lab's authors."
        )


def timed_out(failure: dict[str, Any]) -> bool:
    return "timeoutFailureInfo" in failure


# --- the checks -----------------------------------------------------------------------------


def check_crash_proof() -> str:
    runs = list_workflows(f"WorkflowId = '{PRINT_NUMBERS_ID}'", limit=10)
    start = "In exercises/module01 run `uv run run_workflow.py`"
    if not runs:
        fail(
            f"{PRINT_NUMBERS_ID} has not run yet. {start}, press Ctrl+C after a few numbers, "
            "then run it again."
        )
    finished_without_break = False
    for row in runs:
        status = str(row["status"]).removeprefix("WORKFLOW_EXECUTION_STATUS_")
        if status != "COMPLETED":
            continue
        events = history(PRINT_NUMBERS_ID, row["execution"]["runId"])
        restarts = len(worker_identities(events)) > 1 or any(
            kind(e) in ("WORKFLOW_TASK_TIMED_OUT", "ACTIVITY_TASK_TIMED_OUT") for e in events
        )
        if restarts:
            return (
                f"{PRINT_NUMBERS_ID} completed, and its history shows it carried on in a "
                "new worker after the first one stopped."
            )
        finished_without_break = True
    latest = str(runs[0]["status"]).removeprefix("WORKFLOW_EXECUTION_STATUS_")
    if latest == "RUNNING":
        fail(
            f"{PRINT_NUMBERS_ID} is still running. Run `uv run run_workflow.py` again "
            "(in exercises/module01) and let it finish."
        )
    if finished_without_break:
        fail(
            f"{PRINT_NUMBERS_ID} ran from start to end in one go. {start} again, press "
            "Ctrl+C after a few numbers, then run it once more to finish."
        )
    fail(
        f"{PRINT_NUMBERS_ID} did not complete (it is {latest.lower()}). {start}, press "
        "Ctrl+C after a few numbers, then run it again until it prints 'Workflow completed'."
    )


def check_crash_recovery() -> str:
    done = transfers("COMPLETED")
    if not done:
        fail(
            "No transfer has completed yet. Start one (make transfer), kill the worker while it "
            f"runs ({DC} kill worker), start the worker again ({DC} start worker)."
        )
    workers = containers("worker")
    movements = ledger()
    for transfer in done:
        retried_after_crash = any(
            s.attempt > 1 and timed_out(s.last_failure) for s in transfer.steps.values()
        ) or any(kind(e) == "WORKFLOW_TASK_TIMED_OUT" for e in transfer.events)
        if retried_after_crash or transfer.worker_restarted_during(workers):
            each_step_once(transfer, movements)
            return (
                f"Transfer {transfer.workflow_id} lost its worker half-way and still "
                "completed, and the ledger has its withdraw and deposit exactly once."
            )
    fail(
        "Your transfers completed without losing their worker. Slow the bank down first so "
        "that you have time (see the assignment), start a transfer (make transfer), kill the "
        f"worker while it runs ({DC} kill worker), then start it again ({DC} start worker)."
    )


def check_live_bug_fix() -> str:
    done = transfers("COMPLETED")
    movements = ledger()
    for transfer in done:
        found = transfer.steps
        deposit, withdraw = found.get("deposit"), found.get("withdraw")
        if (
            deposit
            and withdraw
            and deposit.attempt > 1
            and BUG_MESSAGE in str(deposit.last_failure.get("message", ""))
        ):
            if withdraw.attempt != 1:
                continue  # withdraw retried too: not the clean story this challenge tells
            each_step_once(transfer, movements)
            return (
                f"Transfer {transfer.workflow_id}: the deposit failed "
                f"{deposit.attempt - 1} time(s) with '{BUG_MESSAGE}', the fix went live, "
                "withdraw ran once, and the transfer completed."
            )
    if bug_still_retrying():
        fail(
            "A transfer is retrying its failing deposit. Now fix the bug: change "
            "`self.deposit_that_fails` back to `self.bank.deposit` in "
            f"services/worker/activities.py and restart the worker ({DC} restart worker)."
        )
    fail(
        "No transfer has recovered from the deposit bug yet. In services/worker/activities.py "
        "change `self.bank.deposit` to `self.deposit_that_fails` in deposit(), restart the "
        f"worker ({DC} restart worker), start a transfer (make transfer), watch the deposit "
        "fail and retry, then undo the change and restart the worker again."
    )


def bug_still_retrying() -> bool:
    query = f"WorkflowType = '{TRANSFER_TYPE}' AND ExecutionStatus = 'Running'"
    for row in list_workflows(query, limit=5):
        for pending in describe(row["execution"]["workflowId"]).get("pendingActivities", []):
            if BUG_MESSAGE in str(pending.get("lastFailure", {}).get("message", "")):
                return True
    return False


def check_compensation() -> str:
    failed = transfers("FAILED")
    movements = ledger()
    for transfer in failed:
        counts = movements_of(transfer, movements)
        if counts == {"withdraw": 1, "refund": 1}:
            return (
                f"Transfer {transfer.workflow_id} failed on the deposit and was "
                "compensated: the ledger shows the withdraw and the refund, no deposit."
            )
    if failed:
        fail(
            f"Transfer {failed[0].workflow_id} failed, but not after a withdrawal: nothing "
            "needed a refund. Make the deposit fail, not the withdraw (see the assignment), "
            "then run make transfer ATTEMPTS=1."
        )
    fail(
        "No transfer has failed and been refunded yet. Make the deposit fail (see the "
        "assignment), then run make transfer ATTEMPTS=1 so that it is tried only once."
    )


def check_network_partition() -> str:
    done = transfers("COMPLETED")
    workers = containers("worker")
    movements = ledger()
    for transfer in done:
        if longest_silence(transfer.events) < PARTITION_GAP:
            continue
        if transfer.worker_restarted_during(workers):
            continue  # a worker restart, not a partition
        final_failures = [s.last_failure for s in transfer.steps.values() if s.last_failure]
        if not all(timed_out(f) for f in final_failures):
            continue  # the bank failed (a fault), not the link to Temporal
        each_step_once(transfer, movements)
        return (
            f"Transfer {transfer.workflow_id} went silent for "
            f"{longest_silence(transfer.events):.0f} s while Temporal was out of reach, "
            "then completed with each step once in the ledger."
        )
    fail(
        "No transfer has lived through a pause of Temporal yet. Slow the bank down, start a "
        f"transfer, pause Temporal while it runs ({DC} pause temporal), wait 30 s, resume it "
        f"({DC} unpause temporal) and let the transfer finish (see the assignment)."
    )


CHECKS = {
    "crash-proof": check_crash_proof,
    "crash-recovery": check_crash_recovery,
    "live-bug-fix": check_live_bug_fix,
    "compensation": check_compensation,
    "network-partition": check_network_partition,
}


# --- waits for the solve scripts ------------------------------------------------------------


def wait_activity(workflow_id: str, activity: str, min_attempt: int, timeout: float) -> None:
    """Until the workflow's `activity` is running (or retrying) at attempt >= min_attempt."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pending = describe(workflow_id).get("pendingActivities", [])
        except CommandError:
            pending = []  # not started yet
        for p in pending:
            if (
                p.get("activityType", {}).get("name") == activity
                and int(p.get("attempt", 1)) >= min_attempt
                and (min_attempt > 1 or p.get("state") == "PENDING_ACTIVITY_STATE_STARTED")
            ):
                return
        time.sleep(0.2)
    fail(f"{workflow_id}: {activity} did not reach attempt {min_attempt} within {timeout:g} s.")


def wait_status(workflow_id: str, status: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    want = f"WORKFLOW_EXECUTION_STATUS_{status.upper()}"
    now = ""
    while time.monotonic() < deadline:
        try:
            now = describe(workflow_id)["workflowExecutionInfo"]["status"]
        except CommandError:
            now = "not started"
        if now == want:
            return
        time.sleep(0.2)
    fail(f"{workflow_id} is {now}, not {status}, after {timeout:g} s.")


def worker_source() -> str:
    """Where the worker's /app/worker comes from (WORKER_SOURCE, or services/worker)."""
    for c in containers("worker"):
        for mount in json.loads(run(["docker", "inspect", c.id]))[0]["Mounts"]:
            if mount["Destination"] == "/app/worker":
                return str(mount["Source"])
    fail("No worker container mounts /app/worker. Is the lab up? (make up)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check")
    check.add_argument("challenge", choices=sorted(CHECKS))
    commands.add_parser("temporal-address")
    commands.add_parser("bank-url")
    commands.add_parser("worker-source")
    activity = commands.add_parser("wait-activity")
    activity.add_argument("workflow_id")
    activity.add_argument("activity")
    activity.add_argument("--min-attempt", type=int, default=1)
    activity.add_argument("--timeout", type=float, default=60)
    status = commands.add_parser("wait-status")
    status.add_argument("workflow_id")
    status.add_argument("status")
    status.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            require_lab_up()
            print(f"PASS: {CHECKS[args.challenge]()}")
        elif args.command == "temporal-address":
            print(published("temporal", 7233))
        elif args.command == "bank-url":
            print(f"http://{published('bank', BANK_CONTROL_PORT)}")
        elif args.command == "worker-source":
            print(worker_source())
        elif args.command == "wait-activity":
            wait_activity(args.workflow_id, args.activity, args.min_attempt, args.timeout)
        elif args.command == "wait-status":
            wait_status(args.workflow_id, args.status, args.timeout)
    except Failed as err:
        print(f"FAIL: {err}")
        return 1
    except CommandError as err:
        print(f"FAIL: {err}"[:2000])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
