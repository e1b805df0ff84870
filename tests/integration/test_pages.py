"""What a person sees: the bank's page and the Temporal UI, in headless Chromium.

The bank's page (GET /) shows the balances and the latest ledger entries and
keeps them up to date without a reload; its fault-switch buttons change
GET /faults. The Temporal UI lists the module-1 workflow. Screenshots go to
test-artifacts/.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crashlab.testing import Lab
from tests.integration.browser import Browser
from tests.integration.module01 import ROOT

pytestmark = pytest.mark.stack

ARTIFACTS = ROOT / "test-artifacts"

BALANCES_SHOWN = """(() => {
    const rows = [...document.querySelectorAll('#balances tbody tr')];
    if (!rows.length) return null;
    return Object.fromEntries(rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent]));
})()"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(project="crashlab-pages") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with Browser() as running:
        yield running


def dollars(amount: int) -> str:
    return f"${amount:,}"


def faults(lab: Lab) -> dict[str, Any]:
    return dict(httpx.get(f"{lab.bank_url}/faults", timeout=5).json())


def wait_until_faults(lab: Lab, wanted: dict[str, Any]) -> None:
    """Until GET /faults says what we want, or 5 s."""
    deadline = time.monotonic() + 5
    while (now := faults(lab)) != wanted:
        assert time.monotonic() < deadline, f"GET /faults says {now}, not {wanted}"
        time.sleep(0.1)


def test_bank_page_shows_every_balance_and_the_total(lab: Lab, browser: Browser) -> None:
    browser.goto(f"{lab.bank_url}/")

    shown = browser.wait_for(BALANCES_SHOWN)
    balances = lab.balances()
    assert shown == {account: dollars(balance) for account, balance in balances.items()}
    assert browser.evaluate("document.getElementById('total').textContent") == dollars(
        sum(balances.values())
    )
    assert browser.evaluate("document.title") == "Crash-proof lab bank"
    browser.screenshot(ARTIFACTS / "bank-page.png")


def test_bank_page_shows_a_new_transfer_without_a_reload(lab: Lab, browser: Browser) -> None:
    browser.goto(f"{lab.bank_url}/")
    browser.wait_for(BALANCES_SHOWN)
    before = lab.balances()
    ref = str(uuid.uuid4())

    result = lab.starter(
        "transfer", "--from", "10-001", "--to", "10-002", "--amount", "7", "--reference-id", ref
    )
    assert result.returncode == 0, result.stderr

    keys = browser.wait_for(
        f"""(() => {{
            const keys = [...document.querySelectorAll('#ledger tbody td.key')]
                .map((td) => td.textContent).filter((k) => k.startsWith({json.dumps(ref)}));
            return keys.length === 2 ? keys : null;
        }})()"""
    )
    assert sorted(keys) == [f"{ref}-deposit", f"{ref}-withdraw"]
    shown = browser.wait_for(
        f"(() => {{ const b = {BALANCES_SHOWN}; "
        f"return b && b['10-001'] === {json.dumps(dollars(before['10-001'] - 7))} ? b : null; }})()"
    )
    assert shown["10-002"] == dollars(before["10-002"] + 7)
    browser.screenshot(ARTIFACTS / "bank-page-after-transfer.png")


def test_fault_buttons_change_the_fault_switch(lab: Lab, browser: Browser) -> None:
    httpx.delete(f"{lab.bank_url}/faults", timeout=5)
    browser.goto(f"{lab.bank_url}/")
    browser.wait_for("document.getElementById('now-deposit').textContent === 'now: normal'")

    browser.click('[data-testid="fault-deposit-error"]')
    wait_until_faults(
        lab,
        {
            "withdraw": None,
            "deposit": {"mode": "error", "rate": 1.0, "latency_ms": 0, "jitter_ms": 0},
        },
    )
    browser.click('[data-testid="fault-withdraw-latency"]')  # with the page's 3000 ms
    wait_until_faults(
        lab,
        {
            "withdraw": {"mode": "latency", "rate": 1.0, "latency_ms": 3000, "jitter_ms": 0},
            "deposit": {"mode": "error", "rate": 1.0, "latency_ms": 0, "jitter_ms": 0},
        },
    )
    browser.wait_for(
        "document.querySelector('[data-testid=\"fault-deposit-error\"]').classList"
        ".contains('active') && document.getElementById('now-withdraw').textContent"
        " === 'now: latency 3000 ms'"
    )
    browser.screenshot(ARTIFACTS / "bank-page-faults.png")

    browser.click('[data-testid="clear-deposit"]')
    wait_until_faults(
        lab,
        {
            "withdraw": {"mode": "latency", "rate": 1.0, "latency_ms": 3000, "jitter_ms": 0},
            "deposit": None,
        },
    )
    browser.click('[data-testid="clear-all"]')
    wait_until_faults(lab, {"withdraw": None, "deposit": None})
    browser.wait_for("document.getElementById('now-withdraw').textContent === 'now: normal'")


def test_temporal_ui_lists_the_print_numbers_workflow(lab: Lab, browser: Browser) -> None:
    result = lab.starter("print-numbers", "--pause", "0.1")
    assert result.returncode == 0, result.stderr
    # make print-numbers is the workflow's worker too: the numbers print in its output.
    assert result.stdout.split() == [*(str(n) for n in range(1, 11)), "Workflow", "completed"]

    browser.goto(f"{lab.ui_url}/namespaces/default/workflows")

    browser.wait_for("document.body.innerText.includes('print-numbers-workflow')", timeout=60)
    browser.screenshot(ARTIFACTS / "temporal-ui-workflows.png")
