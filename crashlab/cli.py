"""``python -m crashlab <command>``: the learner's levers, and the screen that shows what they did.

Every lever is a real Docker operation on a Compose project of the lab (``crashlab``,
the one ``make up`` starts, unless ``--project`` says otherwise). Bad input changes
nothing: it gets a message on stderr and exit code 2.

Exit codes: 0 done, 1 ``check`` found a violation, 2 bad input or the lab cannot be
reached, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from types import FrameType

from bank.client import BankClient
from bank.exposure import is_exposed
from bank.models import Fault, FaultState
from crashlab import status as views
from crashlab.arguments import kbit, milliseconds, percent, rate, seconds, which
from crashlab.invariants import LedgerReport, check_bank
from crashlab.levers import (
    CATALOGUE,
    FAULT_MODES,
    FAULT_OPERATIONS,
    PAUSE_VS_DISCONNECT,
    PROG,
    BankFault,
    Disconnect,
    Kill,
    LabNow,
    Lever,
    LinkFault,
    Pause,
    describe_fault,
)
from crashlab.stack import (
    BANK_PORT,
    DEFAULT_PROJECT,
    SERVICES,
    TOKEN_FILE,
    Container,
    Stack,
    StackError,
    control_token_for_up,
)

# The argument types, importable from here as before they had a module of their own.
__all__ = ["kbit", "main", "milliseconds", "percent", "rate", "seconds", "which"]

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

# How long `start` waits for a service to become healthy (Temporal's start_period is 60 s).
START_TIMEOUT = 90.0
# A countdown that does not own a terminal prints a line this often.
COUNTDOWN_EVERY = 5.0

# How the countdowns tell and pass time (tests replace them).
clock = time.monotonic
sleep = time.sleep

# How the catalogue describes the bank's fault modes (one definition: crashlab/levers.py).
MODE_HELP = FAULT_MODES

# What a learner should see with a faulty link, by the server at its other end.
LINK_NOTES = {
    "temporal": (
        "Workflows move on more slowly (each poll and each command crosses the link), and "
        "nothing is lost: `make status` and the Temporal UI show them advancing."
    ),
    "bank": (
        "Bank calls slow down or time out; a timed-out step is retried by Temporal with the "
        "same idempotency key, so the ledger still moves each amount once: `make check`."
    ),
}

# What a learner should know after a disconnect and a kill, per service.
DISCONNECT_NOTES = Disconnect.AFTER
KILL_NOTES = Kill.AFTER


class Refused(Exception):
    """Stop with this message on stderr, having changed nothing."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def say(message: str = "") -> None:
    print(message, flush=True)


# --- the parser -------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    names = [name for name, _ in _lever_commands()]
    parser = argparse.ArgumentParser(
        prog=PROG,
        formatter_class=raw,
        description=(
            "Break the lab on purpose, and watch Temporal carry on.\n\n"
            + textwrap.fill(
                "Levers: " + ", ".join(names) + ".", width=78, subsequent_indent="        "
            )
            + "\n"
            "Views:  status (one screen: services, open workflows, pollers, ledger), check.\n\n"
            + PAUSE_VS_DISCONNECT
        ),
        epilog=(
            "Exit codes: 0 done, 1 check found a violation, 2 bad input or the lab "
            "cannot be reached."
        ),
    )
    parser.add_argument(
        "--project",
        default=DEFAULT_PROJECT,
        help=f"the Compose project of the lab (default {DEFAULT_PROJECT}, the one `make up` "
        "starts)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Every lever of the catalogue, and its undo when that is a command of its own.
    for name, (kind, undoes) in _lever_commands():
        sub = commands.add_parser(
            name,
            help=kind.undo_summary if undoes else kind.summary,
            description=kind.undo_description if undoes else kind.description,
            formatter_class=raw,
        )
        (kind.add_undo_arguments if undoes else kind.add_arguments)(sub)

    view = commands.add_parser(
        "status",
        help="one screen: services, open workflows and where they wait, pollers, ledger",
        description=(
            "Each service's state and health, its network connection, every open workflow "
            "and where it waits, who polls each task queue, the balances, and the ledger "
            "invariants. Each part that does not answer within a few seconds says so; the "
            "rest still shows."
        ),
    )
    view.add_argument("--json", action="store_true", help="machine-readable output")
    commands.add_parser(
        "check",
        help="check the ledger invariants once everything has finished; exit 1 on a violation",
        description=(
            "Check the bank's ledger: money conserved, no negative balance, no step applied "
            "twice, every transfer completed or compensated (nothing may be in flight, so "
            "run it once every transfer has finished). Exit code 1 on any violation."
        ),
    )
    token = commands.add_parser(
        "token",
        help="print the control token an exposed lab's fault switch needs",
        formatter_class=raw,
        description=(
            "A lab published beyond this machine (LAB_BIND_ADDRESS other than 127.0.0.1) "
            "needs a token to change the bank's fault switch: LAB_TOKEN if you set one when "
            f"you ran `make up`, otherwise one it made and saved in {_shown(TOKEN_FILE)}. The "
            "levers send it for you; by hand:\n\n"
            f'  curl -X DELETE -H "Authorization: Bearer $({PROG} token)" '
            "http://localhost:8081/faults\n\n"
            "Prints nothing (and says why on stderr) when no token is in use."
        ),
    )
    how = token.add_mutually_exclusive_group()
    how.add_argument(
        "--for-up",
        action="store_true",
        help="what `make up` runs: the token to start the bank with (made and saved if the "
        "lab is exposed and has none), or nothing",
    )
    how.add_argument(
        "--explain",
        action="store_true",
        help="what `make up` prints for an exposed lab: the page's link with the token",
    )
    return parser


def _shown(path: os.PathLike[str]) -> str:
    """A path relative to the current directory when it is under it (build/...)."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return os.fspath(path)


# --- the commands -----------------------------------------------------------


def main(
    argv: Sequence[str] | None = None, *, stack_factory: Callable[[str], Stack] = Stack
) -> int:
    """The whole CLI. Tests pass their own ``stack_factory`` (it gets the project name)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or argparse's "error:" on stderr
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    stack = stack_factory(args.project)
    try:
        with _sigterm_as_interrupt():
            return _dispatch(stack, args)
    except Refused as err:
        print(f"{PROG} {args.command}: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    except StackError as err:
        print(f"{PROG} {args.command}: {err}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _lever_commands() -> list[tuple[str, tuple[type[Lever], bool]]]:
    """Each lever command of the catalogue, in its order: (name, (lever, is its undo)).
    Two levers may share an undo (kill and stop: start); "fault clear" is an option of
    `fault`, not a command of its own."""
    found: dict[str, tuple[type[Lever], bool]] = {}
    for kind in CATALOGUE:
        found.setdefault(kind.command, (kind, False))
        if " " not in kind.undo_command:
            found.setdefault(kind.undo_command, (kind, True))
    return list(found.items())


def _service_lever(
    run: Callable[[Stack, str, list[Container], argparse.Namespace], int],
) -> Callable[[Stack, argparse.Namespace], int]:
    def command(stack: Stack, args: argparse.Namespace) -> int:
        return run(stack, args.service, _lab_containers(stack, args.service), args)

    return command


def _held(args: argparse.Namespace) -> float:
    return 0.0 if args.hold else args.seconds


# The lever commands that tell a learner more than the catalogue's own words (what
# happened, what to look at, a countdown). Any other lever of the catalogue, and its
# undo, goes through cmd_pull and cmd_undo.
TOLD: dict[str, Callable[[Stack, argparse.Namespace], int]] = {
    "kill": _service_lever(lambda stack, s, found, a: cmd_kill(stack, s, found, a.which)),
    "start": _service_lever(lambda stack, s, found, a: cmd_start(stack, s, found)),
    "stop": _service_lever(lambda stack, s, found, a: cmd_stop(stack, s, found)),
    "pause": _service_lever(
        lambda stack, s, found, a: cmd_pause(stack, s, found, a.which, _held(a))
    ),
    "unpause": _service_lever(lambda stack, s, found, a: cmd_unpause(stack, s, found)),
    "disconnect": _service_lever(
        lambda stack, s, found, a: cmd_disconnect(stack, s, found, a.which, _held(a))
    ),
    "reconnect": _service_lever(lambda stack, s, found, a: cmd_reconnect(stack, s, found)),
    "fault": lambda stack, args: cmd_fault(stack, args),
    "link": lambda stack, args: cmd_link(stack, args),
    "link-clear": lambda stack, args: cmd_link_clear(stack),
}


def _dispatch(stack: Stack, args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "status":
        return cmd_status(stack, as_json=args.json)
    if command == "check":
        return cmd_check(stack)
    if command == "token":
        return cmd_token(stack, for_up=args.for_up, explain=args.explain)
    if command in TOLD:
        return TOLD[command](stack, args)
    kind, undoes = dict(_lever_commands())[command]
    return cmd_undo(stack, kind, args) if undoes else cmd_pull(stack, kind, args)


def cmd_pull(stack: Stack, kind: type[Lever], args: argparse.Namespace) -> int:
    """Any lever of the catalogue, in its own words."""
    try:
        lever = kind.from_args(args)
    except ValueError as err:
        raise Refused(str(err)) from None
    if not stack.containers():
        raise Refused(_not_running(stack))
    touched = lever.pull(stack)
    what = lever.describe()
    say(f"{what[:1].upper()}{what[1:]}" + (f" ({', '.join(touched)})." if touched else "."))
    say(f"Undo it with `{lever.undo_hint()}`.")
    _next_steps(stack)
    return EXIT_OK


def cmd_undo(stack: Stack, kind: type[Lever], args: argparse.Namespace) -> int:
    """Undoes the levers of this kind that are on (of the service named, if one is)."""
    service = getattr(args, "service", None)
    on = [
        lever
        for lever in kind.on_now(LabNow(stack))
        if service is None or getattr(lever, "service", service) == service
    ]
    if not on:
        say(f"No {kind.command} is on{f' ({service})' if service else ''}: nothing to do.")
        return EXIT_OK
    for lever in on:
        lever.undo(stack)
        say(f"Undone: {lever.describe()}.")
    _next_steps(stack)
    return EXIT_OK


def _lab_containers(stack: Stack, service: str) -> list[Container]:
    """The service's containers; Refused when the lab (or the service) does not exist."""
    everything = stack.containers()
    if not everything:
        raise Refused(_not_running(stack))
    found = [c for c in everything if c.service == service]
    if not found:
        raise Refused(
            f"the lab has no {service} container (project {stack.project}): run `make up`"
        )
    return found


def _not_running(stack: Stack) -> str:
    return f"the lab is not running (project {stack.project}): run `make up`"


def _label(c: Container) -> str:
    if c.killed:
        return "killed (exit 137)"
    if c.state == "exited":
        return f"stopped (exit {c.exit_code})"
    return f"{c.state} ({c.health})" if c.health else c.state


def _pick(service: str, found: list[Container], choice: str, states: Sequence[str]) -> str:
    """The ``which`` for a Stack lever: random is chosen here, among containers in ``states``
    (Stack would pick among all of them, dead ones too)."""
    candidates = [c for c in found if c.state in states]
    if not candidates:
        now = ", ".join(f"{c.name} {_label(c)}" for c in found)
        raise Refused(f"no {service} container is {' or '.join(states)} ({now}): nothing to do")
    if choice != "random":
        return choice
    return random.choice(candidates).name.rpartition("-")[2]


def _next_steps(stack: Stack) -> None:
    try:
        ui = f"the Temporal UI at {stack.ui_url}"
    except StackError:
        ui = "the Temporal UI (once Temporal runs again)"
    say(f"Look: `make status`, and {ui}.")


def cmd_kill(stack: Stack, service: str, found: list[Container], choice: str) -> int:
    number = _pick(service, found, choice, ("running", "paused"))
    names = ", ".join(Kill(service, number).pull(stack))
    say(f"Killed {names} (SIGKILL: no shutdown code ran). {KILL_NOTES[service]}")
    _next_steps(stack)
    return EXIT_OK


def cmd_start(stack: Stack, service: str, found: list[Container]) -> int:
    paused = [c.name for c in found if c.state == "paused"]
    if paused:
        raise Refused(
            f"{', '.join(paused)} is paused, not stopped: `make unpause SERVICE={service}` instead"
        )
    started = stack.start(service, wait=False)
    if started:
        say(f"Starting {', '.join(c.name for c in started)}; waiting until healthy...")
    else:
        say(f"{service} is already running; waiting until it is healthy...")
    _wait_healthy(stack, service)
    _next_steps(stack)
    return EXIT_OK


def _wait_healthy(stack: Stack, service: str, timeout: float = START_TIMEOUT) -> None:
    """Stack.wait_healthy, saying each change of state as it happens."""
    begin = clock()
    shown: dict[str, str] = {}
    last_line = begin
    while True:
        found = stack.containers(service)
        elapsed = clock() - begin
        for c in found:
            label = _label(c)
            if shown.get(c.name) != label:
                say(f"  {c.name}: {label} ({elapsed:.1f} s)")
                shown[c.name] = label
                last_line = clock()
        if found and all(c.state == "running" and c.health in ("healthy", "") for c in found):
            say(f"{service} is healthy.")
            return
        if elapsed > timeout:
            raise StackError(
                f"{service} did not become healthy within {timeout:.0f} s. "
                f"See `docker compose -p {stack.project} logs {service}`"
                + (" (the worker needs Temporal and the bank)." if service == "worker" else ".")
            )
        if clock() - last_line > 10:
            say(f"  still waiting ({elapsed:.0f} s)...")
            last_line = clock()
        sleep(0.25)


def cmd_stop(stack: Stack, service: str, found: list[Container]) -> int:
    running = [c for c in found if c.state in ("running", "paused")]
    if not running:
        now = ", ".join(f"{c.name} {_label(c)}" for c in found)
        raise Refused(f"no {service} container is running ({now}): nothing to stop")
    if any(c.state == "paused" for c in running):
        say(f"Unpausing {service} first (a frozen process cannot handle SIGTERM)...")
        stack.unpause(service)
    say(f"Stopping {', '.join(c.name for c in running)} gracefully (SIGTERM)...")
    stack.stop(service)
    after = {c.name: c for c in stack.containers(service)}
    for c in running:
        stopped = after.get(c.name)
        say(f"  {c.name}: {_label(stopped) if stopped else 'gone'}")
    say(f"Start it again with `make start SERVICE={service}`.")
    _next_steps(stack)
    return EXIT_OK


def cmd_pause(
    stack: Stack, service: str, found: list[Container], choice: str, hold_for: float
) -> int:
    if all(c.state == "paused" for c in found):
        raise Refused(f"{service} is already paused: `make unpause SERVICE={service}` unfreezes it")
    number = _pick(service, found, choice, ("running",))
    names = ", ".join(Pause(service, number).pull(stack))
    say(
        f"Paused {names}: frozen, its TCP connections stay open and nothing answers; "
        "callers hang until their own timeouts."
    )
    if hold_for == 0:
        say(f"It stays paused until `make unpause SERVICE={service}`.")
        _next_steps(stack)
        return EXIT_OK
    _next_steps(stack)
    _hold(f"{service} paused", hold_for, "unpause", lambda: _undo_pause(stack, service))
    return EXIT_OK


def _undo_pause(stack: Stack, service: str) -> None:
    done = stack.unpause(service)
    say(f"Unpaused {', '.join(c.name for c in done) or service}.")


def cmd_unpause(stack: Stack, service: str, found: list[Container]) -> int:
    if not any(c.state == "paused" for c in found):
        say(f"{service} is not paused: nothing to do.")
        return EXIT_OK
    _undo_pause(stack, service)
    _next_steps(stack)
    return EXIT_OK


def cmd_disconnect(
    stack: Stack, service: str, found: list[Container], choice: str, hold_for: float
) -> int:
    number = _pick(service, found, choice, ("running",))
    targets = [c for c in found if c.state == "running"]
    if number != "all":
        targets = [c for c in targets if c.name.endswith(f"-{number}")]
    already = [c.name for c in targets if not stack.is_connected(c)]
    if already:
        raise Refused(
            f"{', '.join(already)} is already disconnected: `make reconnect SERVICE={service}` "
            "plugs it back in"
        )
    cut = Disconnect(service, number).pull(stack)
    say(
        f"Disconnected {', '.join(cut)} from {_networks(stack, service)}. "
        f"New connections to it fail at once ('{service}' no longer resolves), open ones go "
        f"silent. {DISCONNECT_NOTES[service]}"
    )
    if hold_for == 0:
        say(f"It stays disconnected until `make reconnect SERVICE={service}`.")
        _next_steps(stack)
        return EXIT_OK
    _next_steps(stack)
    _hold(
        f"{service} disconnected", hold_for, "reconnect", lambda: _undo_disconnect(stack, service)
    )
    return EXIT_OK


def _undo_disconnect(stack: Stack, service: str) -> None:
    done = stack.reconnect(service)
    say(
        f"Reconnected {', '.join(c.name for c in done) or service} to "
        f"{_networks(stack, service)} as '{service}'."
    )


def _networks(stack: Stack, service: str) -> str:
    """ "network crashlab_bank" or "networks crashlab_bank and crashlab_temporal"."""
    names = stack.links(service)
    return ("network " if len(names) == 1 else "networks ") + " and ".join(names)


def cmd_reconnect(stack: Stack, service: str, found: list[Container]) -> int:
    if all(stack.is_connected(c) for c in found):
        say(f"{service} is connected: nothing to do.")
        return EXIT_OK
    _undo_disconnect(stack, service)
    _next_steps(stack)
    return EXIT_OK


def _hold(what: str, duration: float, undo: str, restore: Callable[[], None]) -> None:
    """Count down ``duration`` seconds, then ``restore``, whatever happens (Ctrl+C too)."""
    tty = sys.stdout.isatty()
    deadline = clock() + duration
    try:
        say(f"{what} for {duration:g} s (Ctrl+C to {undo} now)...")
        every = COUNTDOWN_EVERY if duration > 3 * COUNTDOWN_EVERY else 1.0
        next_line = duration - every  # seconds left at the next line
        while (left := deadline - clock()) > 0:
            if tty:
                sys.stdout.write(f"\r  {what}: {math.ceil(left):>4} s left ")
                sys.stdout.flush()
            elif left <= next_line:
                say(f"  {what}: {math.ceil(left)} s left")
                next_line -= every
            sleep(min(left, 1.0 if tty else 0.2))
        if tty:
            sys.stdout.write("\n")
    except KeyboardInterrupt:
        say(f"\nStopped early (Ctrl+C): {undo} now.")
    finally:
        with _no_interrupts():
            restore()


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Ctrl+C is ignored while the lever is undone: half an unpause helps no one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a closed terminal, `kill`) undoes a held lever as Ctrl+C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- the bank's fault switch ------------------------------------------------


def cmd_fault(stack: Stack, args: argparse.Namespace) -> int:
    sub: str = args.fault_command
    fault: Fault | None = None
    if sub in FAULT_OPERATIONS:
        fault = _fault_from(args)
    url = _bank_url(stack)
    operation = getattr(args, "operation", None)
    bank_said = asyncio.run(_fault_call(url, sub, fault, operation, stack.token))
    if sub in FAULT_OPERATIONS:
        assert fault is not None
        target = "withdraw and deposit" if sub == "all" else sub
        say(f"Fault set on {target}: {describe_fault(fault)}.")
        say(f"  {fault.mode.value}: {MODE_HELP[fault.mode]}.")
    elif sub == "clear":
        say(f"Cleared {'every fault' if args.operation in (None, 'all') else args.operation}.")
    say(f"The switch now: {_switch(bank_said)}")
    if sub in FAULT_OPERATIONS:
        say(
            "Clear it with `make faults-clear`. Watch a transfer go through it: "
            "`make transfer`, then `make status`."
        )
    elif sub == "clear":
        say("Transfers retrying against it go through now: `make status` shows them.")
    return EXIT_OK


def _fault_from(args: argparse.Namespace) -> Fault:
    try:
        return BankFault.from_args(args).fault
    except ValueError as err:  # FaultSpecError too
        raise Refused(getattr(err, "message", None) or str(err)) from None


def _bank_url(stack: Stack) -> str:
    found = [c for c in stack.containers() if c.service in SERVICES]
    if not found:
        raise Refused(_not_running(stack))
    bank = [c for c in found if c.service == "bank"]
    if not bank or bank[0].state != "running":
        now = _label(bank[0]) if bank else "missing"
        raise Refused(f"the bank is not running ({now}): `make start SERVICE=bank` first")
    try:
        return stack.bank_url
    except StackError:
        raise Refused(
            "the bank publishes no port: is the lab up? `make up`, or `make ps` to see it"
        ) from None


async def _fault_call(
    url: str, sub: str, fault: Fault | None, operation: str | None, token: str | None
) -> FaultState:
    bank = BankClient(url, timeout=views.CALL_TIMEOUT, token=token)
    try:
        if fault is not None:
            return await bank.set_fault(sub, fault)
        if sub == "clear":
            return await bank.clear_faults(None if operation in (None, "all") else operation)
        return await bank.faults()
    except Exception as err:  # no answer (paused?), or an error answer
        raise Refused(f"{views.BANK_SILENT} at {url}: {err or type(err).__name__}") from err
    finally:
        await bank.aclose()


def _switch(state: FaultState) -> str:
    parts = [
        f"{op}: {describe_fault(f) if f else 'normal'}"
        for op, f in (("withdraw", state.withdraw), ("deposit", state.deposit))
    ]
    return "; ".join(parts)


# --- link faults ------------------------------------------------------------


def cmd_link(stack: Stack, args: argparse.Namespace) -> int:
    hold_for = _held(args)
    try:
        fault = LinkFault.from_args(args)
    except ValueError as err:
        raise Refused(str(err)) from None
    if not stack.containers():
        raise Refused(_not_running(stack))
    ends = fault.pull(stack)
    say(f"{fault.describe()[0].upper()}{fault.describe()[1:]} ({' and '.join(ends)}).")
    say(LINK_NOTES[fault.server])
    if hold_for == 0:
        say("It stays until `make link-clear`.")
        _next_steps(stack)
        return EXIT_OK
    _next_steps(stack)
    _hold(
        f"link {fault.client}-{fault.server} faulty",
        hold_for,
        "clear it",
        lambda: None if _clear(stack) else say("The link fault had ended by itself."),
    )
    return EXIT_OK


def cmd_link_clear(stack: Stack) -> int:
    if not _clear(stack):
        say("No link fault is on: nothing to do.")
    return EXIT_OK


def _clear(stack: Stack) -> list[str]:
    on = LinkFault.on_now(LabNow(stack))
    for fault in on:
        fault.undo(stack)
        say(f"Cleared: {fault.describe()}.")
    return [fault.describe() for fault in on]


# --- the views --------------------------------------------------------------


def cmd_status(stack: Stack, *, as_json: bool) -> int:
    if not stack.containers():
        raise Refused(_not_running(stack))
    report = asyncio.run(views.collect(stack))
    if as_json:
        data = asdict(report)
        data["warnings"] = report.warnings()
        say(json.dumps(data, default=_json_default, indent=2))
        return EXIT_OK
    for line in views.render(report):
        say(line)
    say()
    say("Next: break something (`make help`); `make check` once every transfer has finished.")
    return EXIT_OK


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


def cmd_check(stack: Stack) -> int:
    url = _bank_url(stack)
    report = asyncio.run(_check(url))
    for line in report.lines():
        say(line)
    counts = ", ".join(f"{n} {what}" for what, n in sorted(report.counts().items()))
    say(f"Transfers: {counts or 'none yet'}. The bank holds ${report.total}.")
    if report.ok:
        say("The ledger holds: no money lost, none created, no step applied twice.")
        return EXIT_OK
    say(
        "VIOLATION. If transfers are still running, their withdrawals show as unfinished: "
        f"`make status` shows what is open. Otherwise, money went wrong: the ledger "
        f"(GET {url}/ledger) says where."
    )
    return EXIT_VIOLATION


async def _check(url: str) -> LedgerReport:
    bank = BankClient(url, timeout=views.CALL_TIMEOUT)
    try:
        return await check_bank(bank, settled=True)
    except Exception as err:
        raise Refused(f"{views.BANK_SILENT} at {url}: {err or type(err).__name__}") from err
    finally:
        await bank.aclose()


# --- the control token ------------------------------------------------------


def cmd_token(stack: Stack, *, for_up: bool, explain: bool) -> int:
    if for_up:
        say(control_token_for_up() or "")
        return EXIT_OK
    if explain:
        # The token `make up` just gave the bank, not a saved one from an earlier run.
        given = os.environ.get("BANK_CONTROL_TOKEN", "").strip()
        if given:
            for line in _exposure_lines(stack, given):
                say(line)
        return EXIT_OK
    token = stack.token
    if token:
        say(token)
    else:
        print(
            "No control token is in use: the lab is published on this machine only "
            "(LAB_BIND_ADDRESS unset or 127.0.0.1), and its fault switch needs none.",
            file=sys.stderr,
            flush=True,
        )
    return EXIT_OK


def _exposure_lines(stack: Stack, token: str) -> list[str]:
    """What `make up` says about an exposed lab: where the page is, with its token."""
    address = os.environ.get("LAB_BIND_ADDRESS", "").strip()
    # 0.0.0.0 is every interface: name this machine as others reach it.
    exposed = is_exposed(address)
    host = address if address and address not in ("0.0.0.0", "::", "[::]") else None
    host = (host or socket.gethostname()) if exposed else "localhost"
    try:
        port = stack.published("bank", BANK_PORT).rpartition(":")[2]
    except StackError:
        port = os.environ.get("BANK_PORT") or "8081"
    return [
        "",
        (
            f"The lab is published on {address}, beyond this machine: the bank's fault "
            "switch needs a token, and this one opens it."
            if exposed
            else "The bank's fault switch needs a token (LAB_TOKEN):"
        ),
        f"  Bank page     http://{host}:{port}/#token={token}",
        "  The page keeps the token for the browser tab; share the link only with whoever",
        "  may break the bank.",
        f"  The levers (make fault, make faults-clear, the experiments) read it from "
        f"{_shown(TOKEN_FILE)};",
        f'  `.venv/bin/{PROG} token` prints it for curl (-H "Authorization: Bearer <token>").',
    ]
