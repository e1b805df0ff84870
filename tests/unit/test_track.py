"""The track's evidence readers, on hand-made evidence: Docker's record, histories, code.

The checks themselves run on the real lab in tests/integration/test_track.py;
these pin down the readings they rest on, including the cases that must not
count (a graceful stop, two workers taking turns, a pause still open).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from crashlab.panel import __main__ as panel_main
from crashlab.track import lab_state, record
from crashlab.track.checks import Pause, pauses
from crashlab.track.history import Run

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def docker_line(action: str, at: datetime, service: str = "worker", **attributes: str) -> str:
    return json.dumps(
        {
            "Type": "container",
            "Action": action,
            "Actor": {
                "ID": f"{service}-id",
                "Attributes": {"com.docker.compose.service": service, **attributes},
            },
            "time": int(at.timestamp()),
            "timeNano": int(at.timestamp() * 1e9),
        }
    )


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> record.Recorder:
    monkeypatch.setattr(record, "track_dir", lambda project: tmp_path / project)
    return record.Recorder("p")


def test_recorded_events_say_which_ends_were_crashes(recorder: record.Recorder) -> None:
    recorder.events_file.parent.mkdir(parents=True)
    lines = [
        docker_line("die", T0 - timedelta(seconds=5), exitCode="137"),  # before the window
        docker_line("kill", T0 + timedelta(seconds=1), signal="15"),
        docker_line("die", T0 + timedelta(seconds=2), exitCode="0"),
        docker_line("kill", T0 + timedelta(seconds=3), signal="9"),
        docker_line("die", T0 + timedelta(seconds=3), exitCode="137"),
        '{"Action": "die", "Actor": {"ID"',  # cut short when the recorder was killed
    ]
    recorder.events_file.write_text("\n".join(lines) + "\n")
    found = recorder.events(T0)
    assert [(e.action, e.is_crash) for e in found] == [
        ("kill", False),  # docker stop: SIGTERM first
        ("die", False),  # and the worker left by itself
        ("kill", True),
        ("die", True),
    ]
    assert {e.service for e in found} == {"worker"}


def test_a_pause_counts_from_pause_to_unpause_and_stays_open_until_then() -> None:
    evs = [
        record.DockerEvent(T0, "pause", "temporal", "t", None, None),
        record.DockerEvent(T0 + timedelta(seconds=12), "unpause", "temporal", "t", None, None),
        record.DockerEvent(T0 + timedelta(seconds=20), "pause", "worker", "w", None, None),
    ]
    found = pauses(evs)
    assert found[0] == Pause("temporal", T0, T0 + timedelta(seconds=12))
    assert found[0].length == timedelta(seconds=12)
    assert found[1].service == "worker" and found[1].ended is None


def event(kind: int, identity: str = "", at: datetime = T0) -> HistoryEvent:
    e = HistoryEvent(event_type=kind)  # type: ignore[arg-type]
    stamp = Timestamp()
    stamp.FromDatetime(at)
    e.event_time.CopyFrom(stamp)
    if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
        e.workflow_task_started_event_attributes.identity = identity
    elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
        e.activity_task_started_event_attributes.identity = identity
    return e


def run_of(*identities: str) -> Run:
    wft, act = (
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
    )
    events = [event(wft if i % 2 == 0 else act, who) for i, who in enumerate(identities)]
    return Run("print-numbers-workflow", "r", None, T0, None, events)


@pytest.mark.parametrize(
    ("identities", "sequence"),
    [
        (["1@host", "1@host", "1@host"], ["1@host"]),  # one go
        (["1@host", "1@host", "2@host", "2@host"], ["1@host", "2@host"]),  # Ctrl+C, run again
        (["1@host", "2@host", "1@host", "2@host"], ["1@host", "2@host", "1@host", "2@host"]),
    ],
    ids=["one worker", "one after the other", "two taking turns"],
)
def test_the_workers_of_a_run_in_order(identities: list[str], sequence: list[str]) -> None:
    assert run_of(*identities).worker_sequence() == sequence


def test_a_silence_is_the_longest_gap_between_events() -> None:
    wft = EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    times = [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=13), T0 + timedelta(seconds=14)]
    run = Run("w", "r", None, T0, None, [event(wft, "a", at) for at in times])
    assert run.longest_silence() == timedelta(seconds=12)


DEPOSIT = """
    @activity.defn
    async def deposit(self, data: PaymentDetails) -> StepResult:
        key = idempotency_key(data.reference_id, "deposit")
        call = {call}(data.target_account, data.amount, key)
        return await self._call_bank("Deposit", call)

    @activity.defn
    async def refund(self, data: PaymentDetails) -> StepResult:
        call = self.bank.deposit(data.source_account, data.amount, key)

    async def deposit_that_fails(self, account_id: str) -> None:
        raise RuntimeError("This deposit has failed.")
"""


def test_the_deposit_bug_is_found_and_put_back_in_deposit_alone() -> None:
    broken = DEPOSIT.format(call="self.deposit_that_fails")
    working = DEPOSIT.format(call="self.bank.deposit")
    assert lab_state.deposit_has_bug(broken)
    assert not lab_state.deposit_has_bug(working)
    assert lab_state.without_bug(broken) == working
    assert lab_state.without_bug(working) == working


def test_docker_times_are_read_to_the_microsecond() -> None:
    read = lab_state.parse_docker_time("2026-12-03T08:08:01.147122465Z")
    assert read == datetime(2026, 12, 3, 8, 8, 1, 147122, tzinfo=UTC)
    assert lab_state.parse_docker_time("0001-01-01T00:00:00Z") is not None
    assert lab_state.parse_docker_time("not a time") is None


def test_hosted_links_point_at_the_ui_tab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("KEEP=1\nTEMPORAL_UI_URL=http://old\n")
    monkeypatch.setattr(lab_state, "COMPOSE_ENV_FILE", env_file)
    said: list[str] = []
    lab_state.hosted_links(said.append, {"INSTRUQT_PARTICIPANT_ID": "xyz"})
    tab = "https://workshop-host-8080-xyz.env.play.instruqt.com"
    assert env_file.read_text() == f"KEEP=1\nTEMPORAL_UI_URL={tab}\n"
    assert said and tab in said[0]
    lab_state.hosted_links(said.append, {"INSTRUQT_PARTICIPANT_ID": "xyz"})
    assert len(said) == 1  # nothing changed the second time


def test_no_hosted_links_off_the_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    monkeypatch.setattr(lab_state, "COMPOSE_ENV_FILE", env_file)
    lab_state.hosted_links(lambda _: None, {})
    assert not env_file.exists()


# --- the tabs ------------------------------------------------------------------------

TRACK = Path(__file__).resolve().parents[2] / "track"
ASSIGNMENTS = sorted(TRACK.glob("[0-9][0-9]-*/assignment.md"))


def tabs_of(assignment: Path) -> list[dict[str, str]]:
    """The `tabs:` of an assignment's front matter, each as its keys and values."""
    front = assignment.read_text().split("---\n")[1]
    block = front.split("\ntabs:\n", 1)[1]
    tabs: list[dict[str, str]] = []
    for line in block.splitlines():
        if not line.startswith(("- ", "  ")):
            break
        key, _, value = line[2:].partition(": ")
        if line.startswith("- "):
            tabs.append({})
        tabs[-1][key] = value
    return tabs


@pytest.mark.parametrize("assignment", ASSIGNMENTS, ids=lambda p: p.parent.name)
def test_each_tab_button_opens_the_tab_it_names(assignment: Path) -> None:
    tabs = tabs_of(assignment)
    assert tabs and all(t["hostname"] == "workshop-host" for t in tabs)
    for label, index in re.findall(
        r'\[button label="([^"]+)"[^\]]*\]\(tab-(\d+)\)', (assignment.read_text())
    ):
        assert tabs[int(index)]["title"] == label


def test_the_panel_tab_is_where_the_track_setup_serves_the_panel() -> None:
    config = (TRACK / "config.yml").read_text()
    [port] = re.findall(r'^    PANEL_PORT: "(\d+)"$', config, re.MULTILINE)
    assert int(port) == panel_main.DEFAULT_PORT
    setup = (TRACK / "track_scripts" / "setup-workshop-host").read_text()
    assert f"PANEL_PORT=${{PANEL_PORT:-{port}}}" in setup
    assert "--host 0.0.0.0 --port $PANEL_PORT" in setup  # where the platform's proxy reaches
    panels = {
        a.parent.name: tab for a in ASSIGNMENTS for tab in tabs_of(a) if tab["title"] == "Panel"
    }
    assert set(panels) == {"02-crash-recovery", "03-live-bug-fix", "05-network-partition"}
    for tab in panels.values():
        assert tab == {
            "title": "Panel",
            "type": "service",
            "hostname": "workshop-host",
            "path": "/",
            "port": port,
        }
