"""The panel (`make panel`) clicked in headless Chromium on a real lab: kill the worker
mid-transfer with its button, start it again with the next, and the transfer completes
with the ledger exact. Screenshots go to test-artifacts/.

The panel's server runs in this process, as `python -m crashlab.panel` would on the host,
with a control token: the page gets it from its address; a lever without it is refused.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from bank.models import Fault, FaultMode
from crashlab.experiments.kit import ledger_after, rows, start_transfer
from crashlab.invariants import check_bank
from crashlab.panel.app import make_app
from crashlab.testing import Lab
from tests.integration.browser import Browser
from tests.integration.module01 import ROOT
from worker.shared import PaymentDetails

pytestmark = pytest.mark.stack

ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "panel-test-token"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(project="crashlab-panel") as running:
        yield running


@pytest.fixture(scope="module")
def panel(lab: Lab) -> Iterator[str]:
    """The panel's address, served from a thread until the module ends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(make_app(lab, TOKEN), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the panel's server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser(timeout=30) as running:
        yield running


def shown(selector: str) -> str:
    return f"!!document.querySelector({json.dumps(selector)})"


def text_of(selector: str) -> str:
    return f"(document.querySelector({json.dumps(selector)})?.textContent ?? '')"


def test_a_lever_without_the_token_is_refused(lab: Lab, panel: str) -> None:
    answer = httpx.post(f"{panel}/api/levers/kill", json={"service": "worker"}, timeout=10)
    assert answer.status_code == 401
    assert all(c.state == "running" for c in lab.containers("worker"))
    # Reading needs no token.
    assert httpx.get(f"{panel}/api/state", timeout=20).json()["project"] == lab.project


def test_the_page_asks_for_the_token_once_and_keeps_it(panel: str, browser: Browser) -> None:
    """As on the hosted lab's Panel tab, opened with no token in its address."""
    browser.goto(f"{panel}/")
    browser.evaluate("sessionStorage.clear()")
    browser.goto(f"{panel}/")
    form = "document.querySelector('#token-form')"
    browser.wait_for(f"!{form}.hidden")
    browser.screenshot(ARTIFACTS / "panel-asks-for-the-token.png")
    browser.evaluate(f"{form}.token.value = {json.dumps(TOKEN)}")
    browser.click("#token-form button")
    browser.wait_for(f"{form}.hidden")
    assert browser.evaluate("sessionStorage.getItem('labToken')") == TOKEN
    # Loaded again (at another address: going from it to /#token=... must load the page,
    # not only move to the fragment), the tab still has it.
    browser.goto(f"{panel}/?again")
    browser.wait_for(shown("#pull-kill-worker"))
    assert browser.evaluate(f"{form}.hidden")


async def test_kill_and_start_the_worker_from_the_panel_mid_transfer(
    lab: Lab, panel: str, browser: Browser
) -> None:
    browser.goto(f"{panel}/#token={TOKEN}")
    browser.wait_for(shown("#pull-kill-worker"))
    assert "token" not in browser.evaluate("location.href")  # kept by the tab, not the URL

    details = PaymentDetails("10-003", "10-004", 7, f"panel-{uuid.uuid4().hex[:8]}")
    client = await lab.temporal()
    async with lab.bank() as bank:
        # A failing deposit keeps the transfer in flight, retrying, while the worker is killed.
        await bank.set_fault("deposit", Fault(FaultMode.ERROR))
        handle = await start_transfer(client, details)
        row = f"#transfers tr[data-workflow={json.dumps(handle.id)}]"
        cells = f"[...document.querySelectorAll({json.dumps(row + ' td')})].map(c => c.textContent)"
        # Its progress: the step, an attempt past the first, the bank's refusal.
        step, attempt, failure = browser.wait_for(
            f"(() => {{ const c = {cells}; return c.length && +c[2] > 1 ? c.slice(1) : null; }})()"
        )
        assert step == "deposit"
        assert int(attempt) > 1
        assert "injected" in failure or "fault" in failure, failure
        browser.screenshot(ARTIFACTS / "panel-transfer-retrying.png")

        browser.click("#pull-kill-worker")
        browser.wait_for(shown("#undo-start-worker"))
        assert all(c.killed for c in lab.containers("worker"))
        assert "worker killed (SIGKILL)" in browser.evaluate(text_of("#levers-on"))
        await bank.clear_faults()
    browser.screenshot(ARTIFACTS / "panel-worker-killed.png")

    browser.click("#undo-start-worker")
    browser.wait_for(shown("#pull-kill-worker") + " && !" + shown("#undo-start-worker"))
    result = await asyncio.wait_for(handle.result(), 90)
    assert "Transfer complete" in result
    browser.wait_for(f"{text_of('#transfers')}.includes('none running')")
    timeline = browser.evaluate(text_of("#timeline"))
    assert "pulled: worker killed (SIGKILL)" in timeline
    assert "undone: worker killed (SIGKILL)" in timeline
    browser.screenshot(ARTIFACTS / "panel-transfer-complete.png")

    async with lab.bank() as bank:
        movements = await ledger_after(bank)
        for step, account in (("withdraw", "10-003"), ("deposit", "10-004")):
            [row_] = rows(movements, details.reference_id, step)
            assert (row_.account_id, row_.amount) == (account, 7)
        report = await check_bank(bank, settled=True)
    assert report.ok, report.lines()


def test_a_lever_with_no_form_of_its_own_gets_one_made_from_its_fields(
    lab: Lab, panel: str, browser: Browser
) -> None:
    """The form a new lever of the catalogue gets, shown here with the link's: its own form
    taken away, the page makes one from the fields the server sends, and it pulls the lever."""
    browser.goto(f"{panel}/?made")
    browser.wait_for(shown("#pull-kill-worker"))  # the catalogue has come
    browser.evaluate("document.getElementById('link-form').remove(); setUpForms(catalogue)")
    made = "#more-levers #link-form"
    browser.wait_for(shown(made))
    browser.evaluate(
        f"(() => {{ const f = document.querySelector({json.dumps(made)});"
        " f.a.value = 'worker'; f.b.value = 'bank'; f.delay_ms.value = '100'; })()"
    )
    browser.screenshot(ARTIFACTS / "panel-made-form.png")
    browser.click(f"{made} button")
    browser.wait_for(f"{text_of('#levers-on')}.includes('link worker <-> bank: 100 ms delay')")
    browser.click("#levers-on button.undo")
    browser.wait_for(f"{text_of('#levers-on')}.includes('nothing is broken')")
    helpers = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=crashlab.link.project={lab.project}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert helpers.stdout.strip() == ""
