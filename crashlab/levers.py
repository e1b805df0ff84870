"""The lever catalogue: every way the lab can be broken on purpose, each defined once.

A lever is one small class, as a testcontainers wait strategy is: how it is pulled
(``pull``), how it is undone (``undo``), how it is described to a person
(``summary``, ``describe``, ``undo_hint``), and how to find it on in a running lab
(``on_now``: what `status`, the panel and `restore` show and put back). It also carries
what each front end needs to offer it: its CLI command and options (``add_arguments``,
``from_args``), its make targets (``make_targets``), the panel's form (``from_form``),
and the soak's kinds of fault (``soak_kinds``, ``soak_settings``, ``soak_lever``).

A new kind of fault is a new class here and an entry in ``CATALOGUE``: the CLI, the
Makefile, `status`, the soak, the experiments and the panel read it, with no change of
their own, and tests/unit/test_levers.py fails until the new lever is complete.

Pulling and undoing are blocking Docker or HTTP calls; async callers run them in a
thread (``in_thread``) so their watchers keep watching.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import textwrap
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from bank.client import BankClient
from bank.faults import validate
from bank.models import Fault, FaultMode, FaultState
from crashlab.arguments import kbit, milliseconds, percent, rate, seconds, which
from crashlab.constants import LINK_ENDS, SERVICES
from crashlab.stack import Container, Stack, StackError

if TYPE_CHECKING:
    from crashlab.soak.plan import Draws, FaultSpec

T = TypeVar("T")

# How long `restore` waits for each service to be healthy again (Temporal's start_period
# is 60 s; a loaded machine takes longer).
HEALTHY_WITHIN = 120.0
# How long a bank call of a lever may take before the lever gives up.
BANK_TIMEOUT = 5.0

# The bank's fault modes as a learner meets them (the CLI's help, the panel, `status`).
FAULT_MODES: dict[FaultMode, str] = {
    FaultMode.ERROR: "the bank refuses the call at once (503 injected_fault); no money moves",
    FaultMode.LATENCY: "the bank waits --latency-ms (+/- --jitter-ms), then works normally",
    FaultMode.HANG: "the bank never answers and moves no money: the caller's timeout decides",
    FaultMode.DROP_RESPONSE: (
        "the bank moves the money, then never answers - the case that teaches idempotency"
    ),
    FaultMode.DOWN: "the bank answers 503 bank_down at once, as if it were down; no money moves",
}
FAULT_OPERATIONS = ("withdraw", "deposit", "all")

PROG = "crashlab"
PAUSE_VS_DISCONNECT = textwrap.fill(
    "pause vs disconnect: a PAUSED process (docker pause) is frozen but keeps its TCP "
    "connections open and answers nothing, so callers hang until their own timeouts fire. "
    "A DISCONNECTED one (docker network disconnect) is gone from the network: new "
    "connections fail at once (its name no longer resolves in DNS), and connections that "
    "were open go silent.",
    width=78,
)

Form = Mapping[str, Any]


@dataclass(frozen=True)
class MakeTarget:
    """`make <name> VAR=...`: the `python -m crashlab` command it runs, each make variable
    given becoming an argument or an option (crashlab/make.py; the Makefile's .DEFAULT)."""

    name: str
    command: tuple[str, ...]  # the CLI's words: ("kill",), ("fault", "clear")
    help: str  # its line in `make help`
    positional: tuple[str, ...] = ()  # variables given as the command's arguments, in order
    options: tuple[tuple[str, str], ...] = ()  # (VARIABLE, --option), when the variable is set
    flags: tuple[tuple[str, str], ...] = ()  # (VARIABLE, --flag), when the variable is set

    def argv(self, env: Mapping[str, str]) -> list[str]:
        words = [*self.command, *(env[v] for v in self.positional if env.get(v))]
        for variable, option in self.options:
            if env.get(variable):
                words += [option, env[variable]]
        return words + [flag for variable, flag in self.flags if env.get(variable)]


def describe_fault(fault: Fault) -> str:
    """'error on 50% of calls', 'latency (2000 ms +/- 500 ms)'."""
    text = str(fault.mode)
    if fault.rate < 1:
        text += f" on {fault.rate:.0%} of calls"
    if fault.latency_ms:
        jitter = f" +/- {fault.jitter_ms} ms" if fault.jitter_ms else ""
        text += f" ({fault.latency_ms} ms{jitter})"
    return text


class Lever(ABC):
    """One way to break the lab, and the way back."""

    # The lever's name, and the CLI command (`python -m crashlab <command>`) that pulls it.
    command: ClassVar[str]
    # The CLI command that undoes it.
    undo_command: ClassVar[str]
    # The Makefile targets that pull and undo it.
    make_target: ClassVar[str]
    make_undo: ClassVar[str]
    # One line for a person: what pulling it does.
    summary: ClassVar[str]
    # The CLI command's longer help (`python -m crashlab <command> --help`).
    description: ClassVar[str] = ""
    # The undo command's help, when it is a command of its own ("fault clear" is not).
    undo_summary: ClassVar[str] = ""
    undo_description: ClassVar[str] = ""
    # `make <target>` for the lever and its undo, with the variables each one takes.
    make_targets: ClassVar[tuple[MakeTarget, ...]] = ()
    # The soak's kinds of fault that pull it, with their help; or, when it has none, why
    # the soak leaves it out.
    soak_kinds: ClassVar[dict[str, str]] = {}
    soak_left_out: ClassVar[str] = ""

    # --- the CLI (crashlab/cli.py builds its parser from the catalogue) ---

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """The command's arguments and options (none by default)."""
        return

    @classmethod
    def add_undo_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """The undo command's arguments and options (none by default)."""
        return

    @classmethod
    @abstractmethod
    def from_args(cls, args: argparse.Namespace) -> Lever:
        """The lever the command's arguments ask for; ValueError says what is wrong."""

    # --- the panel (crashlab/panel/forms.py) ---

    @classmethod
    @abstractmethod
    def from_form(cls, form: Form) -> Lever:
        """The lever the panel's form asks for; ValueError says what is wrong."""

    # --- the soak (crashlab/soak/plan.py) ---

    @classmethod
    def soak_settings(cls, kind: str, draws: Draws) -> dict[str, Any]:
        """A soak fault's target and settings, chosen from the schedule's random draws."""
        raise NotImplementedError(f"{cls.__name__} has no soak kinds")

    @classmethod
    def soak_lever(cls, spec: FaultSpec, which: str) -> Lever:
        """The lever a planned soak fault pulls; ``which`` picks the container."""
        raise NotImplementedError(f"{cls.__name__} has no soak kinds")

    @classmethod
    def soak_describe(cls, spec: FaultSpec) -> str:
        """A planned soak fault, for the soak's log and report."""
        return f"{cls.soak_lever(spec, 'all').describe()} for {spec.hold:g} s"

    @classmethod
    def soak_service(cls, spec: FaultSpec) -> str | None:
        """The service a soak fault stops or cuts off (None: every container stays up)."""
        return None

    @abstractmethod
    def pull(self, stack: Stack) -> list[str]:
        """Break the lab; returns the names of what it broke (containers, operations)."""

    @abstractmethod
    def undo(self, stack: Stack) -> list[str]:
        """Put it back; returns what it put back (empty: nothing was on)."""

    @abstractmethod
    def describe(self) -> str:
        """What is broken, in a few words: 'worker killed (SIGKILL)'."""

    @abstractmethod
    def undo_hint(self) -> str:
        """The command that puts it back: 'make start SERVICE=worker'."""

    @classmethod
    @abstractmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        """The levers of this kind that are on in the lab now."""


@dataclass(frozen=True)
class ServiceLever(Lever):
    """A lever on one service's containers (all of them, one at random, or number N)."""

    service: str
    which: str = "all"
    # Held for --seconds (then undone by the CLI), or until its undo with --hold.
    held: ClassVar[bool] = False

    def _named(self, done: Sequence[Container]) -> list[str]:
        return [c.name for c in done]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        cls.add_undo_arguments(parser)
        if cls.held:
            held_for(parser, f"{cls.undo_command} SERVICE")
        parser.add_argument(
            "--which",
            type=which,
            default="all",
            help="with several containers (`docker compose up --scale worker=3`): all "
            "(default), random, or a number N for <project>-<service>-N",
        )

    @classmethod
    def add_undo_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "service", choices=SERVICES, metavar="SERVICE", help=" | ".join(SERVICES)
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Lever:
        return cls(args.service, getattr(args, "which", "all"))

    @classmethod
    def from_form(cls, form: Form) -> Lever:
        service = str(form.get("service", ""))
        if service not in SERVICES:
            raise ValueError(f"the service is one of {', '.join(SERVICES)}, not {service!r}")
        return cls(service)

    @classmethod
    def soak_settings(cls, kind: str, draws: Draws) -> dict[str, Any]:
        return {"target": draws.service}

    @classmethod
    def soak_lever(cls, spec: FaultSpec, which: str) -> Lever:
        return cls(spec.target.split("-")[0], which)

    @classmethod
    def soak_service(cls, spec: FaultSpec) -> str | None:
        return spec.target.split("-")[0]


def held_for(parser: argparse.ArgumentParser, undo: str) -> None:
    """--seconds N / --hold: how long a lever stays pulled before the CLI undoes it."""
    how_long = parser.add_mutually_exclusive_group()
    how_long.add_argument(
        "--seconds",
        type=seconds,
        default=30.0,
        help=f"how long (default 30); 0 holds until `{PROG} {undo}`",
    )
    how_long.add_argument(
        "--hold", action="store_true", help=f"hold until `{PROG} {undo}` (same as --seconds 0)"
    )


def service_targets(
    pull: str, undo: str, pull_help: str, undo_help: str, *options: tuple[str, str]
) -> tuple[MakeTarget, ...]:
    """`make <pull> SERVICE=... [options]` and `make <undo> SERVICE=...`."""
    return (
        MakeTarget(pull, (pull,), pull_help, ("SERVICE",), options),
        MakeTarget(undo, (undo,), undo_help, ("SERVICE",)),
    )


@dataclass(frozen=True)
class Kill(ServiceLever):
    command: ClassVar[str] = "kill"
    undo_command: ClassVar[str] = "start"
    make_target: ClassVar[str] = "kill"
    make_undo: ClassVar[str] = "start"
    summary: ClassVar[str] = "SIGKILL a service: a crash, no shutdown code runs"
    description: ClassVar[str] = (
        "SIGKILL the service's container(s), as `docker kill` does: no shutdown code runs, "
        "in-flight work is cut off mid-step. Exit code 137."
    )
    undo_summary: ClassVar[str] = "start a killed or stopped service and wait until it is healthy"
    undo_description: ClassVar[str] = (
        "Start the service's exited containers and wait until they pass their healthcheck."
    )
    make_targets: ClassVar[tuple[MakeTarget, ...]] = service_targets(
        "kill",
        "start",
        "SIGKILL a service: make kill SERVICE=worker [WHICH=random|2]",
        "Start a killed or stopped service again: make start SERVICE=worker",
        ("WHICH", "--which"),
    )
    soak_kinds: ClassVar[dict[str, str]] = {
        "worker-kill": "SIGKILL one worker container, start it again after the hold",
        "bank-kill": "SIGKILL the bank, start it again after the hold",
        "temporal-kill": "SIGKILL the Temporal server, start it again after the hold",
    }
    # What a learner should know once the service is killed.
    AFTER: ClassVar[dict[str, str]] = {
        "worker": (
            "Workflows keep their state in Temporal; start it again with "
            "`make start SERVICE=worker`."
        ),
        "temporal": (
            "Its state is on disk (the temporal-data volume); the worker and the starter keep "
            "retrying until it is back: `make start SERVICE=temporal`."
        ),
        "bank": (
            "The ledger is committed in SQLite (the bank-data volume); activities retry until "
            "it is back, and a restart clears the fault switch: `make start SERVICE=bank`."
        ),
    }

    @classmethod
    def soak_settings(cls, kind: str, draws: Draws) -> dict[str, Any]:
        return {"target": draws.worker if kind == "worker-kill" else kind.removesuffix("-kill")}

    @classmethod
    def soak_describe(cls, spec: FaultSpec) -> str:
        return f"kill {spec.target} (SIGKILL), start it again after {spec.hold:g} s"

    def pull(self, stack: Stack) -> list[str]:
        return self._named(stack.kill(self.service, self.which))

    def undo(self, stack: Stack) -> list[str]:
        return self._named(stack.start(self.service, wait=False))

    def describe(self) -> str:
        return f"{self.service} killed (SIGKILL)"

    def undo_hint(self) -> str:
        return f"make start SERVICE={self.service}"

    @classmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        return [cls(c.service, _number(c)) for c in lab.containers if _ours(c) and c.killed]


@dataclass(frozen=True)
class Stop(ServiceLever):
    command: ClassVar[str] = "stop"
    undo_command: ClassVar[str] = "start"
    make_target: ClassVar[str] = "stop"
    make_undo: ClassVar[str] = "start"
    summary: ClassVar[str] = "stop a service gracefully (SIGTERM)"
    description: ClassVar[str] = (
        "Stop the service gracefully (SIGTERM, then SIGKILL after its grace period): the "
        "worker finishes in-flight activities and tells Temporal it is leaving."
    )
    make_targets: ClassVar[tuple[MakeTarget, ...]] = service_targets(
        "stop",
        "start",
        "Stop a service gracefully (SIGTERM): make stop SERVICE=worker",
        "Start a killed or stopped service again: make start SERVICE=worker",
    )
    soak_left_out: ClassVar[str] = (
        "a graceful stop lets in-flight steps finish: the kills are the harder case"
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        cls.add_undo_arguments(parser)  # every container of the service: no --which

    def pull(self, stack: Stack) -> list[str]:
        running = [c for c in stack.containers(self.service) if c.state in ("running", "paused")]
        stack.stop(self.service)
        return self._named(running)

    def undo(self, stack: Stack) -> list[str]:
        return self._named(stack.start(self.service, wait=False))

    def describe(self) -> str:
        return f"{self.service} stopped"

    def undo_hint(self) -> str:
        return f"make start SERVICE={self.service}"

    @classmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        return [
            cls(c.service, _number(c))
            for c in lab.containers
            if _ours(c) and c.state in ("exited", "created", "dead") and not c.killed
        ]


@dataclass(frozen=True)
class Pause(ServiceLever):
    command: ClassVar[str] = "pause"
    undo_command: ClassVar[str] = "unpause"
    make_target: ClassVar[str] = "pause"
    make_undo: ClassVar[str] = "unpause"
    summary: ClassVar[str] = "freeze a service (docker pause) for a while: it answers nothing"
    description: ClassVar[str] = (
        "Freeze the service's processes (docker pause), count down, then unpause it by "
        "itself. Ctrl+C unpauses at once.\n\n" + PAUSE_VS_DISCONNECT
    )
    undo_summary: ClassVar[str] = "unfreeze a paused service"
    undo_description: ClassVar[str] = "Unpause the service's paused containers."
    make_targets: ClassVar[tuple[MakeTarget, ...]] = service_targets(
        "pause",
        "unpause",
        "Freeze a service: make pause SERVICE=temporal [SECONDS=30] (0: until unpause)",
        "Unfreeze a paused service: make unpause SERVICE=temporal",
        ("SECONDS", "--seconds"),
    )
    held: ClassVar[bool] = True
    soak_kinds: ClassVar[dict[str, str]] = {
        "pause": "docker pause Temporal, the bank or one worker for the hold",
    }

    @classmethod
    def soak_describe(cls, spec: FaultSpec) -> str:
        return f"pause {spec.target} for {spec.hold:g} s"

    def pull(self, stack: Stack) -> list[str]:
        return self._named(stack.pause(self.service, self.which))

    def undo(self, stack: Stack) -> list[str]:
        return self._named(stack.unpause(self.service))

    def describe(self) -> str:
        return f"{self.service} paused (frozen)"

    def undo_hint(self) -> str:
        return f"make unpause SERVICE={self.service}"

    @classmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        return [
            cls(c.service, _number(c)) for c in lab.containers if _ours(c) and c.state == "paused"
        ]


@dataclass(frozen=True)
class Disconnect(ServiceLever):
    command: ClassVar[str] = "disconnect"
    undo_command: ClassVar[str] = "reconnect"
    make_target: ClassVar[str] = "disconnect"
    make_undo: ClassVar[str] = "reconnect"
    summary: ClassVar[str] = "cut a service off the network for a while (a real partition)"
    description: ClassVar[str] = (
        "Disconnect the service from every network it shares with the other services "
        "(docker network disconnect), count down, then reconnect it under its service "
        "name. Ctrl+C reconnects at once. A disconnected Temporal loses its published "
        "ports too; the bank keeps its control network, so this machine still reaches "
        "its page and its fault switch while the worker cannot reach it.\n\n" + PAUSE_VS_DISCONNECT
    )
    undo_summary: ClassVar[str] = "plug a disconnected service back into the network"
    undo_description: ClassVar[str] = (
        "Reconnect the service's containers to the networks it shares with the other "
        "services, under the service's name so the others find it again."
    )
    make_targets: ClassVar[tuple[MakeTarget, ...]] = service_targets(
        "disconnect",
        "reconnect",
        "Cut a service off the network: make disconnect SERVICE=bank [SECONDS=30]",
        "Plug a disconnected service back in: make reconnect SERVICE=bank",
        ("SECONDS", "--seconds"),
    )
    held: ClassVar[bool] = True
    soak_kinds: ClassVar[dict[str, str]] = {
        "disconnect": "cut Temporal, the bank or one worker off the network for the hold",
    }
    # What a disconnect cuts, per service (Stack.links; compose/compose.yaml).
    AFTER: ClassVar[dict[str, str]] = {
        "worker": (
            "It reaches neither Temporal nor the bank: its polls and its bank calls fail, and "
            "Temporal times its activities out and retries them once it is back."
        ),
        "temporal": (
            "The worker and the starter cannot reach it, and neither can this machine: its "
            "published ports (the UI, gRPC) are gone until it is reconnected."
        ),
        "bank": (
            "The worker and the starter cannot reach it. This machine still can: its "
            "published port lands on its control network, which the disconnect leaves alone, "
            "so its page, `make status` and `make fault` keep working while the worker's "
            "calls fail."
        ),
    }

    @classmethod
    def soak_describe(cls, spec: FaultSpec) -> str:
        return f"cut {spec.target} off the network for {spec.hold:g} s"

    def pull(self, stack: Stack) -> list[str]:
        return self._named(stack.disconnect(self.service, self.which))

    def undo(self, stack: Stack) -> list[str]:
        cut = [
            c
            for c in stack.containers(self.service)
            if c.state == "running" and not stack.is_connected(c)
        ]
        stack.reconnect(self.service)
        return self._named(cut)

    def describe(self) -> str:
        return f"{self.service} cut off the network"

    def undo_hint(self) -> str:
        return f"make reconnect SERVICE={self.service}"

    @classmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        return [
            cls(c.service, _number(c))
            for c in lab.containers
            if _ours(c) and c.state == "running" and not lab.connected(c)
        ]


@dataclass(frozen=True)
class BankFault(Lever):
    """The bank's fault switch on withdraw, deposit or both (its HTTP API)."""

    command: ClassVar[str] = "fault"
    undo_command: ClassVar[str] = "fault clear"
    make_target: ClassVar[str] = "fault"
    make_undo: ClassVar[str] = "faults-clear"
    summary: ClassVar[str] = "set the bank's fault switch: error, latency, hang, drop, down"
    make_targets: ClassVar[tuple[MakeTarget, ...]] = (
        MakeTarget(
            "fault",
            ("fault",),
            "Break the bank: make fault OP=deposit MODE=error [RATE=0.5] [LATENCY_MS=2000]",
            ("OP", "MODE"),
            (("RATE", "--rate"), ("LATENCY_MS", "--latency-ms"), ("JITTER_MS", "--jitter-ms")),
        ),
        MakeTarget("faults", ("fault", "show"), "Show the bank's fault switch"),
        MakeTarget("faults-clear", ("fault", "clear"), "Clear every bank fault"),
    )
    # The soak's kinds, each a mode of the switch; the modes it leaves out, and why.
    soak_kinds: ClassVar[dict[str, str]] = {
        "bank-error": "the bank's switch: 503 injected_fault on some calls, nothing moves",
        "bank-latency": "the bank's switch: answers 0.5 to 3 s late (with jitter)",
        "bank-drop": "the bank's switch: drop_response, the money moves, the answer is lost",
        "bank-down": "the bank's switch: every withdraw and deposit answers 503 bank_down",
    }
    SOAK_MODES: ClassVar[dict[str, FaultMode]] = {
        "bank-error": FaultMode.ERROR,
        "bank-latency": FaultMode.LATENCY,
        "bank-drop": FaultMode.DROP_RESPONSE,
        "bank-down": FaultMode.DOWN,
    }
    MODES_LEFT_OUT: ClassVar[dict[FaultMode, str]] = {
        FaultMode.HANG: (
            "a call that never answers and moves nothing is bank-latency past the timeout; "
            "bank-drop is the harder no-answer case (the money moved)"
        ),
    }

    operation: str  # withdraw, deposit or all
    fault: Fault

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        modes = "\n".join(f"  {mode.value:<14} {text}" for mode, text in FAULT_MODES.items())
        parser.description = (
            "The bank's flakiness switch, through its HTTP API.\n\n"
            f"  {PROG} fault OPERATION MODE [--rate R] [--latency-ms N] [--jitter-ms N]\n"
            f"  {PROG} fault clear [OPERATION]\n"
            f"  {PROG} fault show\n\n"
            "OPERATION: withdraw, deposit, or all (both). MODE:\n" + modes + "\n\n"
            "Reads, the ledger and /health are never faulted. Restarting the bank clears "
            "every fault."
        )
        commands = parser.add_subparsers(
            dest="fault_command", required=True, metavar="OPERATION|clear|show"
        )
        for operation in FAULT_OPERATIONS:
            target = "withdraw and deposit" if operation == "all" else operation
            sub = commands.add_parser(
                operation,
                help=f"put a fault on {target}",
                formatter_class=argparse.RawDescriptionHelpFormatter,
                description=f"Put a fault on {target}. MODE:\n{modes}",
            )
            sub.add_argument(
                "mode",
                choices=[m.value for m in FaultMode],
                metavar="MODE",
                help=", ".join(FaultMode),
            )
            sub.add_argument(
                "--rate", type=rate, default=1.0, help="chance a call is hit, in (0, 1] (default 1)"
            )
            sub.add_argument(
                "--latency-ms", type=milliseconds, default=0, help="mode latency: the delay"
            )
            sub.add_argument(
                "--jitter-ms",
                type=milliseconds,
                default=0,
                help="mode latency: the delay varies by up to this much (at most --latency-ms)",
            )
        clear = commands.add_parser(
            "clear", help="clear one fault or all of them", description="Clear faults."
        )
        clear.add_argument(
            "operation",
            nargs="?",
            choices=FAULT_OPERATIONS,
            metavar="OPERATION",
            help="withdraw, deposit or all (default: all)",
        )
        commands.add_parser("show", help="show the switch", description="Show the switch.")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BankFault:
        if args.fault_command not in FAULT_OPERATIONS:
            raise ValueError(f"`fault {args.fault_command}` pulls no lever")
        mode = FaultMode(args.mode)
        if mode is not FaultMode.LATENCY and (args.latency_ms or args.jitter_ms):
            raise ValueError(f"--latency-ms and --jitter-ms go with mode latency, not {mode.value}")
        if mode is FaultMode.LATENCY and not args.latency_ms:
            raise ValueError("mode latency needs --latency-ms above 0, e.g. --latency-ms 2000")
        if args.jitter_ms > args.latency_ms:
            raise ValueError(
                f"--jitter-ms ({args.jitter_ms}) cannot be more than --latency-ms "
                f"({args.latency_ms}): the delay, latency +/- jitter, must not go below 0"
            )
        fault = Fault(mode, rate=args.rate, latency_ms=args.latency_ms, jitter_ms=args.jitter_ms)
        return cls(args.fault_command, validate(fault))  # FaultSpecError is a ValueError

    @classmethod
    def from_form(cls, form: Form) -> BankFault:
        operation = str(form.get("operation", "all"))
        if operation not in FAULT_OPERATIONS:
            raise ValueError(f"the operation is one of {', '.join(FAULT_OPERATIONS)}")
        try:
            mode = FaultMode(str(form.get("mode", "")))
        except ValueError:
            raise ValueError(f"not a fault mode: {form.get('mode')!r}") from None
        fault = Fault(
            mode,
            rate=form_number(form, "rate", float) or 1.0,
            latency_ms=form_number(form, "latency_ms"),
            jitter_ms=form_number(form, "jitter_ms"),
        )
        return cls(operation, validate(fault))

    @classmethod
    def soak_settings(cls, kind: str, draws: Draws) -> dict[str, Any]:
        if kind == "bank-latency":
            return {"target": draws.op, "latency_ms": draws.latency, "jitter_ms": draws.jitter}
        if kind == "bank-down":
            return {"target": "all"}
        return {"target": draws.op, "rate": draws.rate}  # bank-error, bank-drop

    @classmethod
    def soak_lever(cls, spec: FaultSpec, which: str) -> Lever:
        mode = cls.SOAK_MODES[spec.kind]
        fault = Fault(mode, rate=spec.rate, latency_ms=spec.latency_ms, jitter_ms=spec.jitter_ms)
        return cls(spec.target, fault)

    @classmethod
    def soak_describe(cls, spec: FaultSpec) -> str:
        hold = f"{spec.hold:g} s"
        if spec.kind == "bank-latency":
            return (
                f"bank {spec.target} answers {spec.latency_ms} ms +/- {spec.jitter_ms} ms "
                f"late for {hold}"
            )
        if spec.kind == "bank-down":
            return f"bank down for {hold}"
        share = "" if spec.rate >= 1 else f" ({spec.rate:.0%} of calls)"
        mode = "error" if spec.kind == "bank-error" else "drop_response"
        return f"bank {mode} on {spec.target}{share} for {hold}"

    def pull(self, stack: Stack) -> list[str]:
        asyncio.run(_bank(stack, lambda bank: bank.set_fault(self.operation, self.fault)))
        return [self.operation]

    def undo(self, stack: Stack) -> list[str]:
        before = asyncio.run(_bank(stack, lambda bank: bank.faults()))
        op = None if self.operation == "all" else self.operation
        asyncio.run(_bank(stack, lambda bank: bank.clear_faults(op)))
        return [name for name, f in _switch(before).items() if f and op in (None, name)]

    def describe(self) -> str:
        target = "withdraw and deposit" if self.operation == "all" else self.operation
        return f"bank {target}: {describe_fault(self.fault)}"

    def undo_hint(self) -> str:
        return "make faults-clear"

    @classmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        state = lab.faults
        return [] if state is None else [cls(op, f) for op, f in _switch(state).items() if f]


# The services that open connections, and those that answer them: a link joins one of each.
CLIENTS = ("worker", "starter")
SERVERS = ("temporal", "bank")
# How long a helper may take to put its rules in place.
LINK_READY_TIMEOUT = 30.0
LINK_LABEL = "crashlab.link"
DIRECTIONS = ("both", "there", "back")


@dataclass(frozen=True)
class LinkFault(Lever):
    """Delay (with jitter), loss, a bandwidth limit or resets on the link between a client
    (the worker, the starter) and a server (Temporal, the bank), both ways.

    Applied from outside: a short-lived helper container (crashlab/link, compose/link/)
    joins each end's network namespace with NET_ADMIN and puts tc and netfilter rules on
    the packets to the other end only; stopping it takes them away. The lab's containers
    gain no capability. The delay is a relay in the client end's helper (see
    compose/link/linkfault.py for why not netem).
    """

    command: ClassVar[str] = "link"
    undo_command: ClassVar[str] = "link-clear"
    make_target: ClassVar[str] = "link"
    make_undo: ClassVar[str] = "link-clear"
    summary: ClassVar[str] = (
        "slow down, lose packets on, narrow or reset the link between two services"
    )
    description: ClassVar[str] = (
        "Break the link between a client (worker, starter) and a server (temporal, bank), "
        "both ways, and only that link:\n\n"
        "  --delay-ms N [--jitter-ms J]  every packet N ms (+/- J) late each way: a round "
        "trip takes 2N ms more\n"
        "  --loss-pct P                  P% of the packets lost each way: TCP resends, "
        "calls slow down or time out\n"
        "  --rate-kbit K                 at most K kbit/s each way\n"
        "  --reset                       every TCP connection reset (RST), new ones "
        "refused\n\n"
        "A helper container joins each end's network namespace with NET_ADMIN for the "
        "length of the fault (the lab's containers gain nothing); `make link-clear` or "
        "the end of --seconds takes every rule away."
    )
    undo_summary: ClassVar[str] = "put every link back as it was"
    undo_description: ClassVar[str] = (
        "Stop every link-fault helper: each takes its rules away as it stops."
    )
    make_targets: ClassVar[tuple[MakeTarget, ...]] = (
        MakeTarget(
            "link",
            ("link",),
            "Slow, lose or reset one link: make link FROM=worker TO=bank DELAY_MS=300 "
            "[LOSS_PCT=5 RATE_KBIT=256 RESET=1 DIRECTION=back SECONDS=30]",
            ("FROM", "TO"),
            (
                ("DELAY_MS", "--delay-ms"),
                ("JITTER_MS", "--jitter-ms"),
                ("LOSS_PCT", "--loss-pct"),
                ("RATE_KBIT", "--rate-kbit"),
                ("DIRECTION", "--direction"),
                ("SECONDS", "--seconds"),
            ),
            (("RESET", "--reset"),),
        ),
        MakeTarget("link-clear", ("link-clear",), "Put every link back as it was"),
    )
    soak_kinds: ClassVar[dict[str, str]] = {
        "link-delay": "the link worker-Temporal or worker-bank 100 to 400 ms late each way",
        "link-loss": "the link worker-Temporal or worker-bank loses 5% to 30% of its packets",
        "link-reset": "every TCP connection on the link worker-Temporal or worker-bank reset",
    }

    client: str
    server: str
    delay_ms: int = 0
    jitter_ms: int = 0
    loss_pct: float = 0.0
    rate_kbit: int = 0
    reset: bool = False
    # Which packets the loss, the rate and the resets hit: both ways, only those going
    # there (client to server), or only those coming back (the server's answers).
    direction: str = "both"
    seconds: float = 0.0  # the helpers take the fault away by themselves after this; 0: never

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("a", choices=LINK_ENDS, metavar="FROM", help=" | ".join(LINK_ENDS))
        parser.add_argument("b", choices=LINK_ENDS, metavar="TO", help=" | ".join(LINK_ENDS))
        parser.add_argument("--delay-ms", type=milliseconds, default=0, help="delay each way")
        parser.add_argument(
            "--jitter-ms", type=milliseconds, default=0, help="the delay varies by this"
        )
        parser.add_argument("--loss-pct", type=percent, default=0.0, help="share of packets lost")
        parser.add_argument("--rate-kbit", type=kbit, default=0, help="bandwidth limit")
        parser.add_argument("--reset", action="store_true", help="reset every TCP connection")
        parser.add_argument(
            "--direction",
            choices=DIRECTIONS,
            default="both",
            help="the packets the loss, rate and resets hit: both ways (default), there "
            "(client to server) or back (the server's answers)",
        )
        held_for(parser, "link-clear")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LinkFault:
        hold_for = 0.0 if args.hold else args.seconds
        fault = cls.between(
            args.a,
            args.b,
            delay_ms=args.delay_ms,
            jitter_ms=args.jitter_ms,
            loss_pct=args.loss_pct,
            rate_kbit=args.rate_kbit,
            reset=args.reset,
            direction=args.direction,
            # The helpers end by themselves a little after the CLI's countdown: a safety
            # net should the command be killed before it clears the link.
            seconds=hold_for + 5 if hold_for else 0,
        )
        fault.check()
        return fault

    @classmethod
    def from_form(cls, form: Form) -> LinkFault:
        fault = cls.between(
            str(form.get("a", "")),
            str(form.get("b", "")),
            delay_ms=form_number(form, "delay_ms"),
            jitter_ms=form_number(form, "jitter_ms"),
            loss_pct=form_number(form, "loss_pct", float),
            rate_kbit=form_number(form, "rate_kbit"),
            reset=bool(form.get("reset")),
            direction=str(form.get("direction") or "both"),
        )
        fault.check()
        return fault

    @classmethod
    def soak_settings(cls, kind: str, draws: Draws) -> dict[str, Any]:
        if kind == "link-delay":
            return {
                "target": draws.server,
                "latency_ms": draws.delay,
                "jitter_ms": draws.delay // 5,
            }
        if kind == "link-loss":
            return {"target": draws.server, "loss_pct": draws.loss}
        return {"target": draws.server}  # link-reset

    @classmethod
    def soak_lever(cls, spec: FaultSpec, which: str) -> Lever:
        return cls(
            "worker",
            spec.target,
            delay_ms=spec.latency_ms,
            jitter_ms=spec.jitter_ms,
            loss_pct=spec.loss_pct,
            reset=spec.kind == "link-reset",
        )

    @classmethod
    def between(cls, a: str, b: str, **settings: Any) -> LinkFault:
        """The link between ``a`` and ``b`` in either order (FROM=bank TO=worker too)."""
        if a in SERVERS and b in CLIENTS:
            a, b = b, a
        return cls(a, b, **settings)

    def check(self) -> None:
        """Raises ValueError with a message for people when the link or a setting is wrong."""
        if self.client not in CLIENTS or self.server not in SERVERS:
            raise ValueError(
                f"no link between {self.client} and {self.server}: a link joins the worker or "
                "the starter to Temporal or the bank (they open every connection)"
            )
        if not (self.delay_ms or self.loss_pct or self.rate_kbit or self.reset):
            raise ValueError("say what to do to the link: a delay, a loss, a rate or resets")
        if self.jitter_ms > self.delay_ms:
            raise ValueError("the jitter cannot be more than the delay")
        if not 0 <= self.loss_pct <= 100:
            raise ValueError("the loss is a percentage, from 0 to 100")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"the direction is one of {', '.join(DIRECTIONS)}")

    @property
    def image(self) -> str:
        return f"crashlab/link:{os.environ.get('LAB_IMAGE_TAG') or 'latest'}"

    def pull(self, stack: Stack) -> list[str]:
        self.check()
        on = LinkFault.on_now(LabNow(stack))
        if on:
            raise StackError(
                f"a link fault is on already ({on[0].describe()}): `make link-clear` first"
            )
        if stack.docker("image", "inspect", self.image, check=False).returncode != 0:
            raise StackError(f"The image {self.image} is missing: `make build` builds it.")
        # Helpers left in the namespace of a container that restarted since hold nothing
        # any more, but still have the names the new ones take.
        _stop_helpers(stack, _link_helpers(stack))
        shared = set(stack.networks_of(self.client)) & set(stack.networks_of(self.server))
        clients = self._running(stack, self.client)
        servers = self._running(stack, self.server)
        # The client's helper shapes the packets going there (to the server), the server's
        # those coming back; the delay is the client's relay, both ways.
        there, back = self.direction in ("both", "there"), self.direction in ("both", "back")
        started = [
            *(self._helper(stack, c, servers, shared, delay=True, shape=there) for c in clients),
            *(self._helper(stack, c, clients, shared, delay=False, shape=back) for c in servers),
        ]
        started = [name for name in started if name]
        self._wait_on(stack, started)
        return [f"{c.name}" for c in clients + servers]

    def _running(self, stack: Stack, service: str) -> list[Container]:
        found = [c for c in stack.containers(service) if c.state == "running"]
        if not found:
            hint = " (it runs only during `make transfer`)" if service == "starter" else ""
            raise StackError(f"no {service} container is running{hint}: nothing to link")
        return found

    def _helper(
        self,
        stack: Stack,
        end: Container,
        peers: Sequence[Container],
        shared: set[str],
        *,
        delay: bool,
        shape: bool,
    ) -> str:
        """Starts the helper in ``end``'s network namespace; returns its name ("" when this
        end has nothing to do)."""
        settings = []
        if delay and self.delay_ms:
            settings += [f"--delay-ms={self.delay_ms}", f"--jitter-ms={self.jitter_ms}"]
        if shape and self.loss_pct:
            settings.append(f"--loss-pct={self.loss_pct:g}")
        if shape and self.rate_kbit:
            settings.append(f"--rate-kbit={self.rate_kbit}")
        if shape and self.reset:
            settings.append("--reset")
        if not settings:
            return ""
        addresses = [
            ip for peer in peers for net, ip in stack.addresses(peer).items() if net in shared
        ]
        settings += [f"--peer={ip}" for ip in addresses]
        if self.seconds:
            settings.append(f"--seconds={self.seconds:g}")
        name = f"{end.name}-link"
        stack.docker(
            "run", "--detach", "--rm", "--name", name,
            f"--network=container:{end.id}", "--cap-add=NET_ADMIN",
            f"--label={LINK_LABEL}.project={stack.project}",
            f"--label={LINK_LABEL}={json.dumps(asdict(self))}",
            # Which start of which container its rules are in: a restart wipes them.
            f"--label={LINK_LABEL}.end={end.id}",
            f"--label={LINK_LABEL}.started={_started_at(stack, end.id)}",
            self.image, *settings,
        )  # fmt: skip
        return name

    def _wait_on(self, stack: Stack, names: Sequence[str]) -> None:
        """Until every helper says its rules are in place (it prints "linkfault: on")."""
        deadline = time.monotonic() + LINK_READY_TIMEOUT
        waiting = list(names)
        while waiting:
            logs = stack.docker("logs", waiting[0], check=False)
            if "linkfault: on" in logs.stdout:
                waiting.pop(0)
                continue
            if logs.returncode != 0 or "linkfault: off" in logs.stdout:
                self.undo(stack)
                raise StackError(
                    f"the link fault could not be put in place ({waiting[0]}): "
                    f"{(logs.stderr or logs.stdout).strip() or 'it stopped at once'}"
                )
            if time.monotonic() > deadline:
                self.undo(stack)
                raise StackError(f"{waiting[0]} did not put its rules in place in time")
            time.sleep(0.1)

    def undo(self, stack: Stack) -> list[str]:
        helpers = _link_helpers(stack)
        _stop_helpers(stack, helpers)
        return [h["Names"] for h in helpers]

    def describe(self) -> str:
        parts = []
        if self.delay_ms:
            jitter = f" +/- {self.jitter_ms} ms" if self.jitter_ms else ""
            parts.append(f"{self.delay_ms} ms{jitter} delay each way")
        if self.loss_pct:
            parts.append(f"{self.loss_pct:g}% packet loss")
        if self.rate_kbit:
            parts.append(f"{self.rate_kbit} kbit/s")
        if self.reset:
            parts.append("every TCP connection reset")
        ways = {
            "both": "",
            "there": f" ({self.client} to {self.server} only)",
            "back": f" ({self.server} to {self.client} only)",
        }
        shaped = self.loss_pct or self.rate_kbit or self.reset
        return f"link {self.client} <-> {self.server}: {', '.join(parts)}" + (
            ways.get(self.direction, "") if shaped else ""
        )

    def undo_hint(self) -> str:
        return "make link-clear"

    @classmethod
    def on_now(cls, lab: LabNow) -> list[Lever]:
        found: list[Lever] = []
        for helper in lab.link_helpers:
            fault = cls(**json.loads(helper["fault"] or "{}"))
            if fault not in found:
                found.append(fault)
        return found


def _link_helpers(stack: Stack) -> list[dict[str, str]]:
    """The running link-fault helpers of this project: ID, Names, the fault (JSON), and
    the container whose namespace it shares (end) as it was when the helper started
    (started)."""
    labels = ("", ".end", ".started")
    out = stack.docker(
        "ps", "--filter", f"label={LINK_LABEL}.project={stack.project}",
        "--format", "\t".join(
            ("{{json .ID}}", "{{json .Names}}",
             *(f'{{{{json (.Label "{LINK_LABEL}{label}")}}}}' for label in labels))
        ),
    )  # fmt: skip
    keys = ("ID", "Names", "fault", "end", "started")
    rows = [line.split("\t") for line in out.stdout.splitlines() if line.strip()]
    return [dict(zip(keys, map(json.loads, row), strict=True)) for row in rows]


def _started_at(stack: Stack, container_id: str) -> str:
    """When the container last started; "" when it is not running (paused is running)."""
    out = stack.docker(
        "inspect", "--format", "{{.State.Running}} {{.State.StartedAt}}", container_id,
        check=False,
    )  # fmt: skip
    running, _, at = out.stdout.strip().partition(" ")
    return at if out.returncode == 0 and running == "true" else ""


def _holding(stack: Stack, helpers: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The helpers whose rules are still in place: a container that restarted (or stopped)
    since its helper started has a new network namespace, without the rules, while the
    helper lingers in the old one until it is stopped or its time is up."""
    started: dict[str, str] = {}
    found = []
    for helper in helpers:
        end = helper.get("end") or ""
        if end and end not in started:
            started[end] = _started_at(stack, end)
        if not end or started[end] == helper.get("started"):
            found.append(helper)
    return found


def _stop_helpers(stack: Stack, helpers: Sequence[dict[str, str]]) -> None:
    if helpers:
        # SIGTERM: each helper takes its rules away, then Docker removes it (--rm).
        stack.docker("stop", "--time", "10", *(h["ID"] for h in helpers), check=False)


class LabNow:
    """The lab as the levers' ``on_now`` look at it: each thing read once, when first
    asked. A caller that has read something already (`status` reads the fault switch)
    passes it in."""

    _UNREAD: ClassVar[object] = object()

    def __init__(
        self,
        stack: Stack,
        *,
        faults: FaultState | object | None = _UNREAD,
        containers: Sequence[Container] | None = None,
        connected: Mapping[str, bool] | None = None,
        bank_timeout: float = BANK_TIMEOUT,
    ) -> None:
        self.stack = stack
        self._faults = faults
        self._containers = None if containers is None else list(containers)
        self._connected = dict(connected or {})  # container id -> on all its networks
        self.bank_timeout = bank_timeout  # a frozen bank holds the question this long

    @functools.cached_property
    def containers(self) -> list[Container]:
        return self._containers if self._containers is not None else self.stack.containers()

    @functools.cached_property
    def link_helpers(self) -> list[dict[str, str]]:
        """The helpers whose rules are in place (not those a restart left holding none)."""
        return _holding(self.stack, _link_helpers(self.stack))

    def connected(self, c: Container) -> bool:
        if c.id in self._connected:
            return self._connected[c.id]
        try:
            return self.stack.is_connected(c)
        except StackError:
            return True  # gone while we looked: nothing to reconnect

    @property
    def faults(self) -> FaultState | None:
        """The bank's fault switch; None when the bank does not answer (a stopped bank has
        no switch on: a restart clears it)."""
        if self._faults is LabNow._UNREAD:
            bank = [c for c in self.containers if c.service == "bank"]
            self._faults = None
            if bank and bank[0].state == "running":
                # A paused or cut-off bank: nothing to say about its switch.
                with contextlib.suppress(Exception):
                    self._faults = asyncio.run(
                        _bank(self.stack, lambda b: b.faults(), self.bank_timeout)
                    )
        assert self._faults is None or isinstance(self._faults, FaultState)
        return self._faults


def form_number(form: Form, key: str, kind: type[int] | type[float] = int) -> Any:
    """A number from the panel's form (empty: 0); ValueError names the field."""
    raw = form.get(key) or 0
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{key} is a number, not {raw!r}") from None


CATALOGUE: tuple[type[Lever], ...] = (Kill, Stop, Pause, Disconnect, BankFault, LinkFault)


def levers_on(stack: Stack) -> list[Lever]:
    """Every lever on in the lab now, in the catalogue's order."""
    lab = LabNow(stack)
    return [found for kind in CATALOGUE for found in kind.on_now(lab)]


# The order levers come off in: link helpers first (a helper in a frozen container's
# namespace still stops), a frozen container cannot be reconnected or stopped, and the
# fault switch is reachable only once the bank runs again.
UNDO_ORDER: tuple[type[Lever], ...] = (LinkFault, Pause, Disconnect, Kill, Stop, BankFault)


async def in_thread(action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Pulls a lever (a blocking docker or HTTP call) from async code without blocking the
    event loop, so whatever watches the workflows keeps watching meanwhile."""
    return await asyncio.to_thread(action, *args, **kwargs)


async def restore(stack: Stack) -> list[str]:
    """Undoes every lever on, then waits until every service is healthy. Returns what it
    had to do, for people."""
    done = await in_thread(undo_all, stack)
    for service in SERVICES:
        await in_thread(stack.wait_healthy, service, timeout=HEALTHY_WITHIN)
    return done


def undo_all(stack: Stack) -> list[str]:
    """Puts back every lever that is on; returns what it did, a sentence each, for people.
    One service's containers come back together, so a service is undone once per kind."""
    done: list[str] = []
    for kind in UNDO_ORDER:
        seen: set[str] = set()
        for found in kind.on_now(LabNow(stack)):
            key = getattr(found, "service", None) or found.describe()
            if key in seen:
                continue
            seen.add(key)
            found.undo(stack)
            done.append(f"{found.describe()}: undone ({found.undo_hint()}).")
    # Link-fault helpers whose container restarted hold nothing, so no fault above was on
    # for them; they still linger until stopped.
    lingering = _link_helpers(stack)
    if lingering:
        _stop_helpers(stack, lingering)
        left = f"{len(lingering)} link-fault helper(s) left holding nothing by a restart"
        done.append(f"{left}: stopped.")
    return done


# --- helpers ------------------------------------------------------------------------------


def _ours(c: Container) -> bool:
    return c.service in SERVICES


def _number(c: Container) -> str:
    """worker-2's "2": the `which` that names this one container."""
    return c.name.rpartition("-")[2]


def _switch(state: FaultState) -> dict[str, Fault | None]:
    return {"withdraw": state.withdraw, "deposit": state.deposit}


async def _bank(
    stack: Stack, call: Callable[[BankClient], Awaitable[T]], within: float = BANK_TIMEOUT
) -> T:
    async with BankClient(stack.bank_url, timeout=within, token=stack.token) as bank:
        return await asyncio.wait_for(call(bank), within * 2)
