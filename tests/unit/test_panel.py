"""The panel's parts without a lab: every lever of the catalogue has a form, a form that
makes no lever is refused with a reason, and a lever needs the token when there is one.
tests/integration/test_panel.py clicks the page in Chromium on a real lab."""

from __future__ import annotations

import httpx
import pytest

from bank.models import Fault, FaultMode
from crashlab.levers import CATALOGUE, BankFault, Kill, LinkFault
from crashlab.panel.app import make_app
from crashlab.panel.forms import FORMS, FormError, lever_from
from crashlab.panel.state import CATALOGUE_SHOWN, Timeline
from tests.unit.test_cli import FakeStack


def test_every_lever_has_a_form_and_a_summary_on_the_page() -> None:
    assert set(FORMS) == set(CATALOGUE)
    assert set(CATALOGUE_SHOWN["summaries"]) == {kind.command for kind in CATALOGUE}


def test_a_form_makes_its_lever() -> None:
    assert lever_from("kill", {"service": "worker"}) == Kill("worker")
    assert lever_from(
        "fault", {"operation": "deposit", "mode": "latency", "latency_ms": "2000"}
    ) == BankFault("deposit", Fault(FaultMode.LATENCY, latency_ms=2000))
    assert lever_from("link", {"a": "bank", "b": "worker", "loss_pct": "5"}) == LinkFault(
        "worker", "bank", loss_pct=5
    )


@pytest.mark.parametrize(
    ("command", "form", "message"),
    [
        ("explode", {}, "no lever is called 'explode'"),
        ("kill", {"service": "starter"}, "the service is one of"),
        ("fault", {"operation": "deposit", "mode": "boom"}, "not a fault mode"),
        ("fault", {"operation": "deposit", "mode": "latency"}, "latency"),
        ("link", {"a": "worker", "b": "bank"}, "say what to do to the link"),
        ("link", {"a": "worker", "b": "bank", "delay_ms": "soon"}, "delay_ms is a number"),
    ],
)
def test_a_form_that_makes_no_lever_says_why(
    command: str, form: dict[str, str], message: str
) -> None:
    with pytest.raises(FormError, match=message):
        lever_from(command, form)


def panel(lab: FakeStack, token: str | None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(lab, token))
    return httpx.AsyncClient(transport=transport, base_url="http://panel")


async def test_a_lever_needs_the_token_and_nothing_is_pulled_without_it() -> None:
    lab = FakeStack()
    kill = {"service": "worker"}
    async with panel(lab, "s3cret") as client:
        assert (await client.post("/api/levers/kill", json=kill)).status_code == 401
        wrong = {"authorization": "Bearer nope"}
        assert (await client.post("/api/levers/kill", json=kill, headers=wrong)).status_code == 401
        assert lab.levers_pulled == []
        right = {"authorization": "Bearer s3cret"}
        answer = await client.post("/api/levers/kill", json=kill, headers=right)
    assert answer.status_code == 200, answer.text
    assert answer.json()["lever"] == "worker killed (SIGKILL)"
    assert [cmd[1] for cmd in lab.levers_pulled] == ["kill"]


async def test_a_refused_form_is_a_400_with_the_reason() -> None:
    async with panel(FakeStack(), None) as client:
        answer = await client.post("/api/levers/kill", json={"service": "database"})
    assert answer.status_code == 400
    assert "the service is one of" in answer.json()["detail"]


def test_the_timeline_records_levers_pulled_elsewhere_once() -> None:
    timeline = Timeline()
    timeline.record("pulled", "worker killed (SIGKILL)")
    timeline.observe(["worker killed (SIGKILL)", "bank paused (frozen)"])
    timeline.observe(["bank paused (frozen)"])
    assert [(e.what, e.lever) for e in timeline.events] == [
        ("pulled", "worker killed (SIGKILL)"),
        ("on", "bank paused (frozen)"),
        ("off", "worker killed (SIGKILL)"),
    ]


async def test_the_page_is_told_whether_the_levers_need_a_token() -> None:
    for token, needed in (("s3cret", True), (None, False)):
        async with panel(FakeStack(), token) as client:
            answer = await client.get("/api/state")
        assert answer.status_code == 200
        assert answer.json()["needs_token"] is needed


def test_a_lever_with_no_form_on_the_page_gets_one_from_its_cli_arguments() -> None:
    forms = CATALOGUE_SHOWN["forms"]
    assert set(forms) == {"fault", "link"}  # the service levers are buttons on each row
    assert forms["fault"] == []  # a command of commands: its form is on the page
    fields = {f["name"]: f for f in forms["link"]}
    assert list(fields) == [
        "a", "b", "delay_ms", "jitter_ms", "loss_pct", "rate_kbit", "reset", "direction"
    ]  # fmt: skip
    assert fields["a"]["choices"] == ["worker", "starter", "temporal", "bank"]
    assert fields["reset"]["type"] == "checkbox"
    assert fields["delay_ms"] == {
        "name": "delay_ms",
        "label": "delay ms",
        "type": "number",
        "value": 0,
    }
    # What such a form sends (strings; a checkbox "on" or nothing) makes the lever.
    sent = {"a": "worker", "b": "bank", "delay_ms": "0", "loss_pct": "5", "direction": "back"}
    assert lever_from("link", {**sent, "reset": "on"}) == LinkFault(
        "worker", "bank", loss_pct=5, reset=True, direction="back"
    )
