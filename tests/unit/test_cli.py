"""``python -m crashlab``'s command line without Docker: bad input changes nothing, levers undo
themselves, and the status screen degrades instead of hanging.

``FakeStack`` is a real ``Stack`` whose docker commands are recorded instead of run; it
updates its containers the way Docker would, so the real lever code runs end to end.
"""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from crashlab import cli
from crashlab import stack as stack_module
from crashlab.stack import Container, Stack
from crashlab.status import (
    BankView,
    OpenWorkflow,
    PendingActivity,
    Poller,
    QueuePollers,
    ServiceState,
    StatusReport,
    TemporalView,
    _poller,
    render,
    unserved_queues,
)


def container(service: str, n: int = 1, state: str = "running", exit_code: int = 0) -> Container:
    return Container(
        id=f"{service[:4]}{n:08d}",
        name=f"crashlab-{service}-{n}",
        service=service,
        state=state,
        health="healthy" if state == "running" else "",
        exit_code=exit_code,
    )


def healthy_lab() -> list[Container]:
    return [container("temporal"), container("bank"), container("worker")]


# Each service's networks, as compose/compose.yaml has them (Docker's names for project
# crashlab); tests/integration/test_exposure.py proves these against the real file.
LAB_NETWORKS = {
    "temporal": ["crashlab_temporal"],
    "bank": ["crashlab_bank", "crashlab_control"],
    "worker": ["crashlab_bank", "crashlab_temporal"],
    "starter": ["crashlab_bank", "crashlab_temporal"],
}


@dataclass
class FakeStack(Stack):
    fake: list[Container] = field(default_factory=healthy_lab)
    ran: list[list[str]] = field(default_factory=list)
    # Container id -> the networks it was cut off from.
    cut: dict[str, set[str]] = field(default_factory=dict)
    bank_address: str | None = None  # host:port of a real bank, if the test runs one

    @property
    def _networks(self) -> dict[str, list[str]]:
        return LAB_NETWORKS

    @property
    def disconnected(self) -> set[str]:
        """The containers cut off from at least one network."""
        return {id for id, nets in self.cut.items() if nets}

    def published(self, service: str, port: int) -> str:
        if service == "bank" and self.bank_address:
            return self.bank_address
        return super().published(service, port)

    def containers(self, service: str | None = None) -> list[Container]:
        return [replace(c) for c in self.fake if service in (None, c.service)]

    def _run(
        self, cmd: list[str], check: bool, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        if cmd[:2] == ["docker", "compose"]:
            if "ps" in cmd:  # `compose ps` for published ports: none, status must cope
                return subprocess.CompletedProcess(cmd, 0, "", "")
            self.ran.append(cmd)
            return subprocess.CompletedProcess(cmd, 0, "", "")
        if cmd[1] == "ps":  # a read: the link-fault helpers (none run here)
            return subprocess.CompletedProcess(cmd, 0, "", "")
        if cmd[1] == "inspect":  # a read: the container's networks, as Docker answers it
            [c] = [c for c in self.fake if c.id == cmd[-1]]
            nets = set(LAB_NETWORKS[c.service]) - self.cut.get(c.id, set())
            return subprocess.CompletedProcess(cmd, 0, json.dumps({n: {} for n in nets}), "")
        self.ran.append(cmd)
        verb, ids = cmd[1], set(cmd[2:])
        changes = {
            "kill": {"state": "exited", "exit_code": 137, "health": ""},
            "pause": {"state": "paused"},
            "unpause": {"state": "running"},
            "start": {"state": "running", "health": "healthy", "exit_code": 0},
        }
        if verb in changes:
            self.fake = [replace(c, **changes[verb]) if c.id in ids else c for c in self.fake]  # type: ignore[arg-type]
        elif verb == "network":
            action, network, target = cmd[2], cmd[-2], cmd[-1]
            if action == "disconnect":
                self.cut.setdefault(target, set()).add(network)
            else:
                self.cut.get(target, set()).discard(network)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    @property
    def levers_pulled(self) -> list[list[str]]:
        """Every docker command that changes something (`compose ps` is a read)."""
        return self.ran


def main_with(fake: FakeStack, argv: list[str]) -> int:
    """Runs the CLI on ``fake`` itself (not a copy), so its record shows what happened."""

    def factory(project: str) -> Stack:
        fake.project = project
        return fake

    return cli.main(argv, stack_factory=factory)


# --- bad input: exit 2, a message, nothing changed -----------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["kill", "database"], "invalid choice: 'database'"),
        (["pause", "starter"], "invalid choice: 'starter'"),
        (["kill", "worker", "--which", "0"], "give all, random, or a container number"),
        (["kill", "worker", "--which", "first"], "give all, random, or a container number"),
        (["pause", "bank", "--seconds", "-5"], "is not a number of seconds"),
        (["disconnect", "bank", "--seconds", "-1"], "is not a number of seconds"),
        (["pause", "bank", "--seconds", "soon"], "is not a number of seconds"),
        (["pause", "bank", "--seconds", "nan"], "is not a number of seconds"),
        (["pause", "bank", "--seconds", "5", "--hold"], "not allowed with argument"),
        (["fault", "deposit", "boom"], "invalid choice: 'boom'"),
        (["fault", "transfer", "error"], "invalid choice: 'transfer'"),
        (["fault", "deposit", "error", "--rate", "0"], "a number in (0, 1]"),
        (["fault", "deposit", "error", "--rate", "1.5"], "a number in (0, 1]"),
        (["fault", "deposit", "error", "--rate", "-0.5"], "a number in (0, 1]"),
        (["fault", "deposit", "error", "--rate", "nan"], "a number in (0, 1]"),
        (["fault", "deposit", "latency", "--latency-ms", "-3"], "whole number of milliseconds"),
        (["fault", "clear", "transfer"], "invalid choice: 'transfer'"),
        (["fault", "deposit", "latency"], "mode latency needs --latency-ms above 0"),
        (["fault", "deposit", "error", "--latency-ms", "200"], "go with mode latency"),
        (
            ["fault", "all", "latency", "--latency-ms", "100", "--jitter-ms", "200"],
            "cannot be more than --latency-ms",
        ),
        ([], "required: COMMAND"),
        (["explode", "worker"], "invalid choice: 'explode'"),
    ],
)
def test_bad_input_exits_2_with_a_message_and_changes_nothing(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeStack()
    code = main_with(fake, argv)
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert message in err
    assert fake.levers_pulled == []


@pytest.mark.parametrize(
    "argv",
    [
        ["kill", "worker"],
        ["start", "bank"],
        ["stop", "temporal"],
        ["pause", "bank", "--seconds", "1"],
        ["disconnect", "bank", "--hold"],
        ["fault", "deposit", "error"],
        ["fault", "show"],
        ["status"],
        ["check"],
    ],
)
def test_a_lab_that_is_not_up_is_named_with_the_way_to_start_it(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeStack(fake=[])
    code = main_with(fake, ["--project", "mylab", *argv])
    assert code == cli.EXIT_BAD_INPUT
    assert "the lab is not running (project mylab): run `make up`" in capsys.readouterr().err
    assert fake.levers_pulled == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["kill", "worker"], "no worker container is running or paused"),
        (["stop", "worker"], "nothing to stop"),
        (["pause", "worker"], "no worker container is running"),
        (["disconnect", "worker"], "no worker container is running"),
    ],
)
def test_a_lever_on_a_service_that_is_not_running_is_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeStack(
        fake=[container("temporal"), container("bank"), container("worker", 1, "exited", 137)]
    )
    code = main_with(fake, argv)
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert message in err
    assert "killed (exit 137)" in err
    assert fake.levers_pulled == []


def test_the_fault_switch_needs_a_running_bank(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeStack(fake=[container("temporal"), container("bank", 1, "exited", 137)])
    assert main_with(fake, ["fault", "deposit", "error"]) == cli.EXIT_BAD_INPUT
    assert "the bank is not running (killed (exit 137))" in capsys.readouterr().err


def test_a_paused_service_is_not_paused_again(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeStack(fake=[container("temporal"), container("bank", 1, "paused")])
    assert main_with(fake, ["pause", "bank"]) == cli.EXIT_BAD_INPUT
    assert "bank is already paused: `make unpause SERVICE=bank`" in capsys.readouterr().err
    assert fake.levers_pulled == []


def test_a_disconnected_service_is_not_disconnected_again(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = FakeStack(cut={container("bank").id: {"crashlab_bank"}})
    assert main_with(fake, ["disconnect", "bank"]) == cli.EXIT_BAD_INPUT
    assert "already disconnected" in capsys.readouterr().err
    assert fake.levers_pulled == []


def test_an_unknown_container_number_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeStack(fake=[*healthy_lab(), container("worker", 2)])
    assert main_with(fake, ["kill", "worker", "--which", "3"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "No worker container number 3" in err
    assert "crashlab-worker-1, crashlab-worker-2" in err
    assert fake.levers_pulled == []


# --- help ----------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["pause", "--help"], ["disconnect", "--help"]])
def test_help_says_how_pause_and_disconnect_differ(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main_with(FakeStack(), argv) == cli.EXIT_OK
    text = " ".join(capsys.readouterr().out.split())
    assert "keeps its TCP connections open and answers nothing" in text
    assert "callers hang until their own timeouts" in text
    assert "gone from the network" in text
    assert "fail at once" in text
    assert "DNS" in text


def test_fault_help_explains_every_mode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_with(FakeStack(), ["fault", "--help"]) == cli.EXIT_OK
    text = " ".join(capsys.readouterr().out.split())
    for mode in ("error", "latency", "hang", "drop_response", "down"):
        assert f" {mode} " in text
    assert "the bank moves the money, then never answers - the case that teaches idempotency" in (
        text
    )


# --- the levers, against the fake ----------------------------------------------


def test_kill_sends_sigkill_and_says_what_to_do_next(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeStack()
    assert main_with(fake, ["kill", "worker"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert fake.levers_pulled == [["docker", "kill", "--signal", "SIGKILL", "work00000001"]]
    assert "Killed crashlab-worker-1 (SIGKILL: no shutdown code ran)." in out
    assert "start it again with `make start SERVICE=worker`" in out
    assert "make status" in out


def test_kill_random_picks_a_running_container(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeStack(
        fake=[*healthy_lab()[:2], container("worker", 1, "exited", 137), container("worker", 2)]
    )
    for _ in range(5):  # a dead container is never the pick
        fake.fake[-1] = container("worker", 2)
        assert main_with(fake, ["kill", "worker", "--which", "random"]) == cli.EXIT_OK
        assert fake.levers_pulled[-1][-1] == "work00000002"


def test_pause_counts_down_then_unpauses(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(cli, "clock", lambda: clock[0])
    monkeypatch.setattr(cli, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    fake = FakeStack()
    assert main_with(fake, ["pause", "bank", "--seconds", "3"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert [c[1] for c in fake.levers_pulled] == ["pause", "unpause"]
    assert "bank paused: 2 s left" in out
    assert "bank paused: 1 s left" in out
    assert out.rstrip().endswith("Unpaused crashlab-bank-1.")


@pytest.mark.parametrize(("lever", "undo"), [("pause", "unpause"), ("disconnect", "connect")])
def test_ctrl_c_undoes_the_lever_at_once(
    lever: str, undo: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "sleep", interrupted)
    fake = FakeStack()
    assert main_with(fake, [lever, "bank", "--seconds", "600"]) == cli.EXIT_OK
    verbs = [c[2] if c[1] == "network" else c[1] for c in fake.levers_pulled]
    assert verbs == [lever, undo]
    assert "Stopped early (Ctrl+C)" in capsys.readouterr().out
    assert all(c.state == "running" for c in fake.containers())
    assert not fake.disconnected


def test_hold_leaves_the_lever_pulled(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeStack()
    assert main_with(fake, ["disconnect", "bank", "--hold"]) == cli.EXIT_OK
    assert fake.disconnected == {"bank00000001"}
    assert "until `make reconnect SERVICE=bank`" in capsys.readouterr().out
    assert main_with(fake, ["reconnect", "bank"]) == cli.EXIT_OK
    assert fake.levers_pulled[-1] == [
        "docker",
        "network",
        "connect",
        "--alias",
        "bank",
        "crashlab_bank",
        "bank00000001",
    ]
    assert not fake.disconnected


def test_start_waits_until_healthy(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeStack(fake=[*healthy_lab()[:2], container("worker", 1, "exited", 137)])
    assert main_with(fake, ["start", "worker"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert fake.levers_pulled == [["docker", "start", "work00000001"]]
    assert "crashlab-worker-1: running (healthy)" in out
    assert "worker is healthy." in out


def test_unpause_and_reconnect_with_nothing_to_undo_are_harmless(
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = FakeStack()
    assert main_with(fake, ["unpause", "bank"]) == cli.EXIT_OK
    assert main_with(fake, ["reconnect", "bank"]) == cli.EXIT_OK
    assert fake.levers_pulled == []


def test_status_degrades_when_nothing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    # The fake publishes no ports: neither Temporal nor the bank can be asked.
    fake = FakeStack(fake=[container("temporal", 1, "paused"), container("bank")])
    assert main_with(fake, ["status"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "Temporal does not answer (paused? killed?)" in out
    assert "crashlab-temporal-1 is paused: `make unpause SERVICE=temporal`" in out
    assert "The bank does not answer" in out
    assert "no container (not created: `make up`)" in out  # the worker


def test_status_json_is_for_machines(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeStack(fake=[container("temporal", 1, "exited", 137), container("bank")])
    assert main_with(fake, ["status", "--json"]) == cli.EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert [(s["service"], s["state"], s["exit_code"]) for s in data["services"]] == [
        ("temporal", "exited", 137),
        ("bank", "running", 0),
    ]
    assert data["temporal"]["error"].startswith("Temporal does not answer")
    assert data["warnings"] == []


# --- against a real bank (in-process, from conftest.py) --------------------------


def test_fault_sets_and_clears_the_banks_switch(
    bank_server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeStack(bank_address=bank_server_url.removeprefix("http://"))
    assert main_with(fake, ["fault", "deposit", "drop_response", "--rate", "0.25"]) == 0
    faults = httpx.get(f"{bank_server_url}/faults", timeout=5).json()
    assert faults["deposit"]["mode"] == "drop_response"
    assert faults["deposit"]["rate"] == 0.25
    out = capsys.readouterr().out
    assert "drop_response: the bank moves the money, then never answers" in out
    assert "The switch now: withdraw: normal; deposit: drop_response on 25% of calls" in out
    assert main_with(fake, ["fault", "clear"]) == 0
    assert httpx.get(f"{bank_server_url}/faults", timeout=5).json() == {
        "withdraw": None,
        "deposit": None,
    }
    assert fake.levers_pulled == []  # no docker lever: the bank's own API


@pytest.fixture
def token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where `make up` keeps the token, moved out of the checkout; no LAB_TOKEN set."""
    path = tmp_path / "build" / "bank-control-token"
    monkeypatch.setattr(stack_module, "TOKEN_FILE", path)
    monkeypatch.delenv("LAB_TOKEN", raising=False)
    monkeypatch.delenv("LAB_BIND_ADDRESS", raising=False)
    monkeypatch.delenv("BANK_CONTROL_TOKEN", raising=False)
    return path


@pytest.mark.parametrize("bank_token", ["s3cret-token"])
def test_the_fault_levers_send_the_saved_control_token(
    bank_server_url: str, token_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeStack(bank_address=bank_server_url.removeprefix("http://"))
    token_file.parent.mkdir()
    token_file.write_text("s3cret-token\n")

    assert main_with(fake, ["fault", "withdraw", "error"]) == cli.EXIT_OK
    assert httpx.get(f"{bank_server_url}/faults", timeout=5).json()["withdraw"]["mode"] == "error"
    assert main_with(fake, ["fault", "clear"]) == cli.EXIT_OK
    assert httpx.get(f"{bank_server_url}/faults", timeout=5).json()["withdraw"] is None


@pytest.mark.parametrize("bank_token", ["s3cret-token"])
def test_without_the_token_the_lever_says_where_it_comes_from_and_changes_nothing(
    bank_server_url: str,
    token_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeStack(bank_address=bank_server_url.removeprefix("http://"))
    for token in (None, "a-wrong-one"):
        if token:
            monkeypatch.setenv("LAB_TOKEN", token)
        assert main_with(fake, ["fault", "deposit", "down"]) == cli.EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert "401 unauthorized" in err
        assert "Nothing was changed" in err
        assert "build/bank-control-token" in err
        assert httpx.get(f"{bank_server_url}/faults", timeout=5).json()["deposit"] is None


def test_make_up_gives_a_local_lab_no_token(token_file: Path) -> None:
    assert stack_module.control_token_for_up({"LAB_BIND_ADDRESS": "127.0.0.1"}) is None
    assert stack_module.control_token_for_up({}) is None
    assert stack_module.control_token_for_up({"LAB_BIND_ADDRESS": "localhost"}) is None
    assert not token_file.exists()


def test_make_up_makes_an_exposed_labs_token_once_and_keeps_it_private(
    token_file: Path,
) -> None:
    first = stack_module.control_token_for_up({"LAB_BIND_ADDRESS": "0.0.0.0"})
    assert first and len(first) >= 32
    assert token_file.read_text().strip() == first
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    # Later runs reuse it, so the link printed earlier keeps working.
    assert stack_module.control_token_for_up({"LAB_BIND_ADDRESS": "10.0.0.5"}) == first
    # The user's own LAB_TOKEN wins, and is what the levers send from then on.
    env = {"LAB_BIND_ADDRESS": "0.0.0.0", "LAB_TOKEN": "mine"}
    assert stack_module.control_token_for_up(env) == "mine"
    assert stack_module.saved_token({}) == "mine"
    assert FakeStack().token == "mine"


def test_token_prints_the_saved_token_or_says_there_is_none(
    token_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main_with(FakeStack(), ["token"]) == cli.EXIT_OK
    out, err = capsys.readouterr()
    assert out == ""
    assert "No control token is in use" in err

    monkeypatch.setenv("LAB_BIND_ADDRESS", "0.0.0.0")
    assert main_with(FakeStack(), ["token", "--for-up"]) == cli.EXIT_OK
    made = capsys.readouterr().out.strip()
    assert made == token_file.read_text().strip()
    assert main_with(FakeStack(), ["token"]) == cli.EXIT_OK
    assert capsys.readouterr().out.strip() == made

    monkeypatch.setenv("BANK_CONTROL_TOKEN", made)
    assert main_with(FakeStack(bank_address="127.0.0.1:8081"), ["token", "--explain"]) == 0
    out = capsys.readouterr().out
    assert f":8081/#token={made}" in out
    assert "build/bank-control-token" in out or str(token_file) in out


@pytest.mark.parametrize(
    ("service", "cut"),
    [
        ("bank", ["crashlab_bank"]),  # keeps crashlab_control: the host still sees it
        ("temporal", ["crashlab_temporal"]),
        ("worker", ["crashlab_bank", "crashlab_temporal"]),
    ],
)
def test_disconnect_cuts_every_network_shared_with_another_service(
    service: str, cut: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeStack()
    [target] = fake.containers(service)
    assert main_with(fake, ["disconnect", service, "--hold"]) == cli.EXIT_OK
    assert fake.levers_pulled == [["docker", "network", "disconnect", n, target.id] for n in cut]
    out = capsys.readouterr().out
    assert " and ".join(cut) in out
    assert not fake.is_connected(target)

    assert main_with(fake, ["reconnect", service]) == cli.EXIT_OK
    assert fake.levers_pulled[len(cut) :] == [
        ["docker", "network", "connect", "--alias", service, n, target.id] for n in cut
    ]
    assert fake.is_connected(target)


def test_a_disconnected_bank_is_still_seen_from_this_machine(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main_with(FakeStack(), ["disconnect", "bank", "--hold"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "This machine still can" in out
    assert "The worker and the starter cannot reach it" in out


def test_check_exits_1_when_a_transfer_was_left_half_done(
    bank_server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeStack(bank_address=bank_server_url.removeprefix("http://"))
    assert main_with(fake, ["check"]) == cli.EXIT_OK
    assert "The ledger holds" in capsys.readouterr().out

    # A transfer's withdraw with neither deposit nor refund: fine while it runs, a
    # violation once everything has settled.
    response = httpx.post(
        f"{bank_server_url}/accounts/10-001/withdraw",
        json={"amount": 40},
        headers={"Idempotency-Key": "half-done-withdraw"},
        timeout=5,
    )
    assert response.status_code == 200
    assert main_with(fake, ["check"]) == cli.EXIT_VIOLATION
    out = capsys.readouterr().out
    assert "FAIL every transfer is completed, compensated or in flight: transfer half-done" in out
    assert "FAIL money is conserved" in out


# --- the status screen's judgement ---------------------------------------------

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def state(service: str, state: str = "running", connected: bool | None = True) -> ServiceState:
    c = container(service, 1, state, 137 if state == "exited" else 0)
    return ServiceState(
        service=c.service,
        name=c.name,
        container_id=c.id,
        state=c.state,
        health=c.health,
        exit_code=c.exit_code,
        connected=connected if state in ("running", "paused") else None,
    )


@pytest.mark.parametrize(
    ("worker", "live", "why"),
    [
        (state("worker"), True, "polling"),
        (state("worker", "exited"), False, "killed (exit 137)"),
        (state("worker", "paused"), False, "paused"),
        (state("worker", connected=False), False, "disconnected from the lab's networks"),
    ],
)
def test_a_lab_workers_poller_is_live_only_while_its_container_can_poll(
    worker: ServiceState, live: bool, why: str
) -> None:
    # Seen a second ago: the server has no idea the worker just died.
    poller = _poller(
        f"1@{worker.container_id}", "workflow", NOW - timedelta(seconds=1), [worker], NOW
    )
    assert poller.container == "crashlab-worker-1"
    assert poller.live is live
    assert poller.why.startswith(why)


@pytest.mark.parametrize(("ago", "live"), [(5, True), (60, True), (71, False), (300, False)])
def test_an_unknown_poller_is_live_while_seen_within_a_long_poll(ago: int, live: bool) -> None:
    # An idle worker's long poll lasts up to a minute: 60 s without news is normal.
    poller = _poller("4242@laptop", "activity", NOW - timedelta(seconds=ago), [], NOW)
    assert poller.container is None
    assert poller.live is live


def report(
    workflows: list[OpenWorkflow], queues: list[QueuePollers], services: list[ServiceState]
) -> StatusReport:
    return StatusReport(
        project="crashlab",
        services=services,
        temporal=TemporalView("127.0.0.1:7233", "http://localhost:8080", workflows, queues),
        bank=BankView("http://localhost:8081", balances={"85-150": 2000}, invariants_ok=True),
        taken_at=NOW,
    )


def transfer(workflow_id: str, task_queue: str) -> OpenWorkflow:
    return OpenWorkflow(
        workflow_id, "run", "MoneyTransfer", task_queue, NOW, workflow_task="scheduled"
    )


def live_poller() -> Poller:
    return Poller("1@work00000001", ["workflow", "activity"], NOW, 0.0, None, True, "polling")


def test_status_warns_loudly_about_a_mistyped_task_queue() -> None:
    services = [state("temporal"), state("bank"), state("worker")]
    r = report(
        [transfer("transfer-typo", "TRANSFER_MONEY_TASKQUEUE")],
        [
            QueuePollers("TRANSFER_MONEY_TASK_QUEUE", [live_poller()]),
            QueuePollers("TRANSFER_MONEY_TASKQUEUE", []),
        ],
        services,
    )
    assert list(unserved_queues(r)) == ["TRANSFER_MONEY_TASKQUEUE"]
    screen = "\n".join(render(r))
    warning = " ".join(
        line.removeprefix("!!").strip() for line in screen.splitlines() if line.startswith("!!")
    )
    assert "transfer-typo waits on task queue 'TRANSFER_MONEY_TASKQUEUE'" in warning
    assert "task-queue mismatch" in warning
    assert "Did you mean TRANSFER_MONEY_TASK_QUEUE?" in warning
    assert "!! no live worker polls TRANSFER_MONEY_TASKQUEUE" in screen


def test_status_warns_when_the_only_worker_is_dead_though_temporal_still_lists_it() -> None:
    worker = state("worker", "exited")
    dead = _poller("1@work00000001", "workflow", NOW, [worker], NOW)
    r = report(
        [transfer("transfer-1", "TRANSFER_MONEY_TASK_QUEUE")],
        [QueuePollers("TRANSFER_MONEY_TASK_QUEUE", [dead])],
        [state("temporal"), state("bank"), worker],
    )
    warning = " ".join(r.warnings())
    assert "no live worker polls it (crashlab-worker-1 is killed (exit 137))" in warning
    assert "make start SERVICE=worker" in warning


def test_status_says_where_a_workflow_waits() -> None:
    retrying = PendingActivity(
        activity_id="1",
        activity_type="withdraw",
        state="scheduled",
        attempt=3,
        maximum_attempts=0,
        last_failure="Cannot reach the bank",
        last_worker_identity="1@abc",
        next_attempt_at=NOW + timedelta(seconds=1.5),
        last_started_at=None,
        last_heartbeat_at=None,
    )
    wf = OpenWorkflow("t", "r", "MoneyTransfer", "q", NOW, pending_activities=[retrying])
    assert wf.where(NOW) == [
        "activity withdraw: attempt 3, backing off, next attempt in 1.5 s; "
        "last failure: Cannot reach the bank"
    ]
    sleeping = OpenWorkflow("p", "r", "PrintNumbersWorkflow", "q", NOW)
    sleeping.timer_fires_at = NOW + timedelta(seconds=2)
    assert sleeping.where(NOW) == ["waiting on a timer (fires in 2.0 s)"]
    idle = OpenWorkflow("i", "r", "Waiting", "q", NOW)
    assert idle.where(NOW)[0].startswith("no activity pending")


def test_status_names_a_workflow_whose_task_keeps_failing_instead_of_calling_it_running() -> None:
    broken = OpenWorkflow(
        "transfer-x",
        "r",
        "MoneyTransfer",
        "TRANSFER_MONEY_TASK_QUEUE",
        NOW,
        workflow_task="started",
        workflow_task_attempt=7,
        workflow_task_failure="Boom",
        workflow_task_failure_cause="workflow worker unhandled failure",
    )
    assert broken.where(NOW) == [
        "ITS WORKFLOW TASK KEEPS FAILING (attempt 7): Boom (workflow worker unhandled failure)"
    ]
    r = report(
        [broken],
        [QueuePollers("TRANSFER_MONEY_TASK_QUEUE", [live_poller()])],
        [state("temporal"), state("bank"), state("worker")],
    )
    warning = " ".join(r.warnings())
    assert "transfer-x's workflow task keeps failing: Boom" in warning
    assert "restart the worker" in warning
    assert "NON-DETERMINISM" not in warning

    broken.workflow_task_failure_cause = "non deterministic error"
    warning = " ".join(r.warnings())
    assert "transfer-x hit a NON-DETERMINISM ERROR: Boom" in warning
    assert "workflow.patched(...)" in warning and "make replay" in warning


def test_status_sends_a_learner_whose_module_1_process_stopped_back_to_it() -> None:
    waiting = OpenWorkflow(
        "print-numbers-workflow",
        "r",
        "PrintNumbersWorkflow",
        "print-numbers-task-queue",
        NOW,
        workflow_task="scheduled",
    )
    r = report(
        [waiting],
        [QueuePollers("print-numbers-task-queue", [])],
        [state("temporal"), state("bank"), state("worker")],
    )
    warning = " ".join(r.warnings())
    assert "its worker is the process that started it" in warning
    assert "uv run run_workflow.py" in warning
    assert "make start SERVICE=worker" not in warning
