"""The lever catalogue (crashlab/levers.py) is the one place a lever is defined: these tests
fail when a lever or a bank fault mode is missing anywhere it must appear (the CLI, the
Makefile, the soak, `status`), and when the host's constants disagree with
compose/compose.yaml.

The `on_now` and `undo_all` tests run the real lever code on ``FakeStack``, the Stack
whose docker commands update a list of containers (tests/unit/test_cli.py);
tests/integration/test_levers.py pulls the same levers on real containers.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import pytest

from bank.models import Fault, FaultMode, FaultState
from crashlab import cli, make, soak
from crashlab.constants import (
    BANK_PORT,
    DEFAULT_PROJECT,
    SERVICES,
    SOURCE,
    SPARE_ACCOUNTS,
    TARGET,
    TEMPORAL_PORT,
    TEMPORAL_UI_PORT,
)
from crashlab.levers import (
    CATALOGUE,
    FAULT_MODES,
    UNDO_ORDER,
    BankFault,
    Disconnect,
    Kill,
    LabNow,
    Lever,
    LinkFault,
    Pause,
    ServiceLever,
    Stop,
    levers_on,
    undo_all,
)
from crashlab.stack import COMPOSE_FILE, ROOT
from tests.unit.test_cli import FakeStack, container

MAKEFILE = (ROOT / "Makefile").read_text()
LEVERS = pytest.mark.parametrize("kind", CATALOGUE, ids=lambda k: k.command)
MODES = pytest.mark.parametrize("mode", list(FaultMode), ids=str)


def cli_parsers() -> dict[str, argparse.ArgumentParser]:
    """`python -m crashlab`'s commands and their parsers."""
    parser = cli.build_parser()
    [top] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(top.choices)


def cli_commands() -> set[str]:
    """Every `python -m crashlab` command, with the fault switch's own ("fault clear")."""
    top = cli_parsers()
    found = set(top)
    for name, sub in top.items():
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                found |= {f"{name} {choice}" for choice in action.choices}
    return found


def make_targets() -> set[str]:
    """The lever targets `make` answers to (its .DEFAULT rule: crashlab/make.py)."""
    return set(make.targets())


# --- every lever everywhere --------------------------------------------------------------


@LEVERS
def test_each_lever_is_a_cli_command_with_its_undo(kind: type[Lever]) -> None:
    assert {kind.command, kind.undo_command} <= cli_commands()


@LEVERS
def test_each_lever_is_a_make_target_with_its_undo(kind: type[Lever]) -> None:
    assert {kind.make_target, kind.make_undo} <= make_targets()


@LEVERS
def test_each_make_target_runs_its_command_with_the_variables_given(kind: type[Lever]) -> None:
    for target in kind.make_targets:
        env = dict.fromkeys((*target.positional, *(v for v, _ in target.options)), "1")
        env |= dict.fromkeys((v for v, _ in target.flags), "1")
        argv = target.argv(env)
        assert argv[: len(target.command)] == list(target.command)
        assert " ".join(target.command) in cli_commands()
        assert f"make {target.name}" in make.help_lines()[list(make.targets()).index(target.name)]


def test_the_makefile_leaves_the_levers_to_the_catalogue() -> None:
    """A rule of its own would shadow the catalogue's target (and its variables)."""
    ruled = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.MULTILINE))
    assert not ruled & make_targets()
    assert "python -m crashlab.make $@" in MAKEFILE


def test_make_turns_its_variables_into_the_levers_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[list[str]] = []

    def main(argv: list[str]) -> int:
        ran.append(argv)
        return 0

    monkeypatch.setattr(cli, "main", main)
    env = {"SERVICE": "worker", "SECONDS": "10", "WHICH": "", "PATH": "/bin"}
    assert make.main(["pause"], env) == 0
    assert make.main(["link"], {"FROM": "worker", "TO": "bank", "LOSS_PCT": "5", "RESET": "1"}) == 0
    assert make.main(["faults-clear"], {}) == 0
    assert ran == [
        ["pause", "worker", "--seconds", "10"],
        ["link", "worker", "bank", "--loss-pct", "5", "--reset"],
        ["fault", "clear"],
    ]
    assert make.main(["explode"], {}) == cli.EXIT_BAD_INPUT


@LEVERS
def test_the_soak_pulls_each_lever_or_says_why_not(kind: type[Lever]) -> None:
    pulled = kind in soak.LEVER_OF_KIND.values()
    assert pulled != (kind in soak.LEFT_OUT), "in the schedule, or left out with a reason"


@LEVERS
def test_each_lever_is_undone_by_restore(kind: type[Lever]) -> None:
    assert kind in UNDO_ORDER


@LEVERS
def test_each_lever_says_what_it_does(kind: type[Lever]) -> None:
    assert kind.summary.strip()


@MODES
def test_each_bank_fault_mode_is_described(mode: FaultMode) -> None:
    assert FAULT_MODES[mode].strip()
    # `make fault` prints the mode's text once set: a mode without one crashed it.
    assert cli.MODE_HELP[mode] == FAULT_MODES[mode]


@MODES
def test_the_soak_sets_each_bank_fault_mode_or_says_why_not(mode: FaultMode) -> None:
    set_ = mode in soak.BANK_MODE_OF_KIND.values()
    assert set_ != (mode in soak.LEFT_OUT), "in the schedule, or left out with a reason"


@MODES
def test_the_banks_page_offers_each_fault_mode(mode: FaultMode) -> None:
    page = (ROOT / "services" / "bank" / "page.html").read_text()
    [listed] = re.findall(r"^const MODES = \[(.*)\];$", page, re.MULTILINE)
    assert f'"{mode.value}"' in listed


@MODES
def test_the_cli_help_lists_each_bank_fault_mode(mode: FaultMode) -> None:
    assert mode.value in (cli_parsers()["fault"].description or "")


def test_every_soak_kind_pulls_a_catalogue_lever() -> None:
    assert set(soak.FAULT_KINDS) == set(soak.KIND_HELP)
    for kind in soak.FAULT_KINDS:
        assert soak.LEVER_OF_KIND[kind] in CATALOGUE
        if soak.LEVER_OF_KIND[kind] is BankFault:
            assert kind in soak.BANK_MODE_OF_KIND


def test_an_unknown_soak_kind_is_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        soak.parse_kinds("bank-hang")
    spec = soak.FaultSpec(1, 1.0, "reset", target="worker-1", hold=1.0)
    with pytest.raises(KeyError):
        spec.lever()


def test_a_soak_fault_names_its_catalogue_lever() -> None:
    schedule = soak.make_schedule(7, soak.FAULT_KINDS, len(soak.FAULT_KINDS), workers=2)
    for spec in schedule.faults:
        pulled = spec.lever("2")
        assert isinstance(pulled, soak.LEVER_OF_KIND[spec.kind])
        if isinstance(pulled, ServiceLever):
            assert pulled.service == spec.service
        elif isinstance(pulled, LinkFault):
            assert (pulled.client, pulled.server) == ("worker", spec.target)
        else:
            assert isinstance(pulled, BankFault)
            assert pulled.fault == spec.fault()


# --- one definition of each constant ----------------------------------------------------


def test_the_constants_agree_with_compose() -> None:
    compose = COMPOSE_FILE.read_text()
    assert re.findall(r"^name: (\S+)$", compose, re.MULTILINE) == [DEFAULT_PROJECT]
    services = re.findall(r"^  ([a-z]+):$", compose, re.MULTILINE)
    assert set(SERVICES) < set(services)
    # "- "${LAB_BIND_ADDRESS:-127.0.0.1}:${BANK_PORT-8081}:8001"": the port inside.
    published = {int(p) for p in re.findall(r'^ +- ".*:(\d+)"$', compose, re.MULTILINE)}
    assert {TEMPORAL_PORT, TEMPORAL_UI_PORT, BANK_PORT} <= published


def test_the_accounts_are_the_banks() -> None:
    from bank.ledger import SEED_ACCOUNTS

    seeded = dict(SEED_ACCOUNTS)
    assert (SOURCE, TARGET) == ("85-150", "43-812")  # the tutorial's
    assert SPARE_ACCOUNTS and all(seeded[a] > 0 for a in SPARE_ACCOUNTS)
    assert soak.ACCOUNTS == SPARE_ACCOUNTS


# --- on now, and undone ------------------------------------------------------------------


def broken_lab() -> FakeStack:
    return FakeStack(
        fake=[
            container("temporal", state="paused"),
            container("bank"),
            container("worker", 1, state="exited", exit_code=137),
            container("worker", 2, state="exited", exit_code=0),
            container("worker", 3),
        ]
    )


def test_on_now_finds_each_lever_that_is_on() -> None:
    lab = broken_lab()
    lab.cut[container("worker", 3).id] = {"crashlab_bank"}
    switch = FaultState(deposit=Fault(FaultMode.ERROR, rate=0.5))
    found = [lever for kind in CATALOGUE for lever in kind.on_now(LabNow(lab, faults=switch))]
    assert found == [
        Kill("worker", "1"),
        Stop("worker", "2"),
        Pause("temporal", "1"),
        Disconnect("worker", "3"),
        BankFault("deposit", Fault(FaultMode.ERROR, rate=0.5)),
    ]
    assert [lever.describe() for lever in found] == [
        "worker killed (SIGKILL)",
        "worker stopped",
        "temporal paused (frozen)",
        "worker cut off the network",
        "bank deposit: error on 50% of calls",
    ]


def test_each_undo_hint_is_the_make_target_that_undoes_it() -> None:
    levers: list[Lever] = [
        Kill("worker"),
        Stop("bank"),
        Pause("temporal"),
        Disconnect("bank"),
        BankFault("all", Fault(FaultMode.DOWN)),
    ]
    for lever in levers:
        assert lever.undo_hint().startswith(f"make {type(lever).make_undo}")


def test_undo_all_puts_every_container_lever_back() -> None:
    lab = broken_lab()
    lab.cut[container("worker", 3).id] = {"crashlab_bank"}
    done = undo_all(lab)
    assert not [lever for kind in CATALOGUE[:-1] for lever in kind.on_now(LabNow(lab))]
    # Unfrozen before anything else, and each service's containers started once.
    assert done[0] == "temporal paused (frozen): undone (make unpause SERVICE=temporal)."
    # The killed and the stopped worker come back with one start.
    assert sum("make start SERVICE=worker" in line for line in done) == 1
    assert lab.fake and all(c.state == "running" for c in lab.fake)


def test_undo_all_on_a_healthy_lab_does_nothing() -> None:
    lab = FakeStack()
    assert undo_all(lab) == []
    assert lab.levers_pulled == []


# --- link faults -------------------------------------------------------------------------


def test_a_link_joins_a_client_to_a_server_whichever_end_comes_first() -> None:
    assert LinkFault.between("bank", "worker", delay_ms=300) == LinkFault(
        "worker", "bank", delay_ms=300
    )
    assert LinkFault.between("starter", "temporal", reset=True).server == "temporal"


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (LinkFault("worker", "worker", delay_ms=10), "no link between worker and worker"),
        (LinkFault("temporal", "bank", delay_ms=10), "no link between temporal and bank"),
        (LinkFault("worker", "bank"), "say what to do to the link"),
        (LinkFault("worker", "bank", delay_ms=10, jitter_ms=20), "jitter cannot be more"),
        (LinkFault("worker", "bank", loss_pct=150), "a percentage"),
    ],
)
def test_a_link_fault_that_makes_no_sense_is_refused(fault: LinkFault, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fault.check()


def test_a_link_fault_says_each_thing_it_does() -> None:
    fault = LinkFault("worker", "temporal", delay_ms=300, jitter_ms=50, loss_pct=5, rate_kbit=256)
    assert fault.describe() == (
        "link worker <-> temporal: 300 ms +/- 50 ms delay each way, 5% packet loss, 256 kbit/s"
    )
    assert LinkFault("worker", "bank", reset=True).describe().endswith("connection reset")


def test_the_cli_refuses_a_bad_link_before_touching_docker() -> None:
    lab = FakeStack()
    assert cli.main(["link", "worker", "bank"], stack_factory=lambda _: lab) == cli.EXIT_BAD_INPUT
    assert cli.main(["link", "worker", "disk", "--reset"], stack_factory=lambda _: lab) == 2
    assert lab.levers_pulled == []


# --- a new lever: its catalogue entry, and nothing else ---------------------------------

# A toy lever, added to the catalogue before anything reads it, as a new class in
# crashlab/levers.py would be; the CLI, make, the panel and the soak are imported after,
# unchanged, and must offer it.
TOY_LEVER = """
from dataclasses import dataclass
from typing import ClassVar

from crashlab import levers


@dataclass(frozen=True)
class Nudge(levers.ServiceLever):
    command: ClassVar[str] = "nudge"
    undo_command: ClassVar[str] = "unnudge"
    make_target: ClassVar[str] = "nudge"
    make_undo: ClassVar[str] = "unnudge"
    summary: ClassVar[str] = "nudge a service (a toy lever)"
    undo_summary: ClassVar[str] = "stop nudging a service"
    make_targets: ClassVar[tuple[levers.MakeTarget, ...]] = levers.service_targets(
        "nudge", "unnudge", "Nudge a service: make nudge SERVICE=bank", "Stop nudging it"
    )
    soak_kinds: ClassVar[dict[str, str]] = {"nudge": "nudge Temporal, the bank or a worker"}

    def pull(self, stack):
        return [f"{stack.project}-{self.service}-1"]

    def undo(self, stack):
        return []

    def describe(self):
        return f"{self.service} nudged"

    def undo_hint(self):
        return f"make unnudge SERVICE={self.service}"

    @classmethod
    def on_now(cls, lab):
        return []


@dataclass(frozen=True)
class Honk(levers.Lever):  # another shape: no service, a setting of its own, no soak kind

    command: ClassVar[str] = "honk"
    undo_command: ClassVar[str] = "unhonk"
    make_target: ClassVar[str] = "honk"
    make_undo: ClassVar[str] = "unhonk"
    summary: ClassVar[str] = "honk at the lab (a toy lever)"
    make_targets: ClassVar[tuple[levers.MakeTarget, ...]] = (
        levers.MakeTarget(
            "honk", ("honk",), "Honk: make honk LOUDNESS=3", (), (("LOUDNESS", "--loudness"),)
        ),
        levers.MakeTarget("unhonk", ("unhonk",), "Stop honking"),
    )
    soak_left_out: ClassVar[str] = "a toy"

    loudness: int = 1

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--loudness", type=int, default=1)

    @classmethod
    def from_args(cls, args):
        return cls(args.loudness)

    @classmethod
    def from_form(cls, form):
        return cls(levers.form_number(form, "loudness"))

    def pull(self, stack):
        return []

    def undo(self, stack):
        return []

    def describe(self):
        return f"honking at loudness {self.loudness}"

    def undo_hint(self):
        return "make unhonk"

    @classmethod
    def on_now(cls, lab):
        return []


levers.CATALOGUE = (*levers.CATALOGUE, Nudge, Honk)

from crashlab import cli, make
from crashlab.panel import forms, state
from crashlab.soak import plan
from tests.unit.test_cli import FakeStack

args = cli.build_parser().parse_args(["nudge", "bank", "--which", "2"])
assert Nudge.from_args(args) == Nudge("bank", "2"), args
assert cli.main(["nudge", "bank"], stack_factory=lambda _: FakeStack()) == 0
assert cli.main(["unnudge", "bank"], stack_factory=lambda _: FakeStack()) == 0
assert make.targets()["nudge"].argv({"SERVICE": "worker"}) == ["nudge", "worker"]
assert any("make nudge " in line for line in make.help_lines())
assert forms.lever_from("nudge", {"service": "worker"}) == Nudge("worker")
assert "nudge" in state.CATALOGUE_SHOWN["service_levers"]
assert plan.LEVER_OF_KIND["nudge"] is Nudge and "nudge" in plan.parse_kinds("all")
[spec] = plan.make_schedule(3, ["nudge"], 1, workers=2).faults
assert spec.lever("2") == Nudge(spec.service, "2"), spec

assert cli.main(["honk", "--loudness", "2"], stack_factory=lambda _: FakeStack()) == 0
assert make.targets()["honk"].argv({"LOUDNESS": "4"}) == ["honk", "--loudness", "4"]
assert forms.lever_from("honk", {"loudness": "3"}) == Honk(3)
assert state.CATALOGUE_SHOWN["forms"]["honk"] == [
    {"name": "loudness", "label": "loudness", "type": "number", "value": 1}
]
assert plan.LEFT_OUT[Honk] == "a toy" and Honk not in plan.LEVER_OF_KIND.values()
print(spec.describe())
"""


def test_a_new_lever_needs_only_its_catalogue_entry() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", TOY_LEVER], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    said = ran.stdout.splitlines()
    assert "Bank nudged (crashlab-bank-1)." in said
    assert "Undo it with `make unnudge SERVICE=bank`." in said
    assert "No nudge is on (bank): nothing to do." in said
    assert "Honking at loudness 2." in said
    assert "Undo it with `make unhonk`." in said
    assert re.fullmatch(r"(temporal|bank|worker) nudged for [\d.]+ s", said[-1])


@dataclass
class LinkedLab(FakeStack):
    """A lab with link-fault helpers: `docker ps` lists them, `docker inspect` says when
    each container last started, `docker stop` ends them."""

    helpers: list[dict[str, str]] = field(default_factory=list)
    started: dict[str, str] = field(default_factory=dict)  # container id -> StartedAt

    def _run(
        self, cmd: list[str], check: bool, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        if cmd[:2] == ["docker", "ps"]:
            rows = [
                "\t".join(json.dumps(h[k]) for k in ("ID", "Names", "fault", "end", "started"))
                for h in self.helpers
            ]
            return subprocess.CompletedProcess(cmd, 0, "\n".join(rows), "")
        if cmd[:2] == ["docker", "inspect"] and "StartedAt" in " ".join(cmd):
            at = self.started.get(cmd[-1])
            return subprocess.CompletedProcess(cmd, 0, f"true {at}" if at else "", "")
        if cmd[:2] == ["docker", "stop"]:
            self.ran.append(cmd)
            self.helpers = [h for h in self.helpers if h["ID"] not in cmd]
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return super()._run(cmd, check)


def test_a_link_fault_is_not_listed_once_its_container_restarted() -> None:
    fault = LinkFault("worker", "bank", loss_pct=5)
    worker, bank = container("worker").id, container("bank").id
    lab = LinkedLab(started={worker: "2026-12-03T10:00:00Z", bank: "2026-12-03T09:00:00Z"})
    label = json.dumps(asdict(fault))
    lab.helpers = [
        {"ID": "h1", "Names": "crashlab-worker-1-link", "fault": label, "end": worker,
         "started": "2026-12-03T10:00:00Z"},
        {"ID": "h2", "Names": "crashlab-bank-1-link", "fault": label, "end": bank,
         "started": "2026-12-03T09:00:00Z"},
    ]  # fmt: skip
    assert LinkFault.on_now(LabNow(lab)) == [fault]
    # The worker restarted: its helper's rules went with its old namespace; the bank's
    # side still holds, so the fault is still (half) on.
    lab.started[worker] = "2026-12-03T10:05:00Z"
    assert LinkFault.on_now(LabNow(lab)) == [fault]
    # Both ends restarted (or stopped): nothing holds any more, and nothing is listed.
    del lab.started[bank]
    assert LinkFault.on_now(LabNow(lab)) == []
    assert levers_on(lab) == []
    # link-clear still stops the lingering helpers, and so does restore.
    helpers = list(lab.helpers)
    assert sorted(fault.undo(lab)) == ["crashlab-bank-1-link", "crashlab-worker-1-link"]
    assert lab.helpers == []
    lab.helpers = helpers
    assert undo_all(lab) == ["2 link-fault helper(s) left holding nothing by a restart: stopped."]
    assert lab.helpers == []


def test_a_helper_from_before_the_ends_were_recorded_is_still_listed() -> None:
    fault = LinkFault("worker", "temporal", delay_ms=100)
    lab = LinkedLab()
    lab.helpers = [
        {"ID": "h1", "Names": "crashlab-worker-1-link", "fault": json.dumps(asdict(fault)),
         "end": "", "started": ""},
    ]  # fmt: skip
    assert LinkFault.on_now(LabNow(lab)) == [fault]
