"""Metrics from every service of a running lab: the Temporal dev server's (port 9233), the
worker's SDK metrics (9464) and the bank's own (/metrics), scraped where Prometheus
scrapes them, and seen to move when a transfer runs; then the lab's Prometheus (the
observe profile, `make up OBSERVE=1`) asked through its API; then the panel's dashboard,
drawn in headless Chromium while the worker is killed under a stream of transfers, with
a screenshot in test-artifacts/."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from temporalio.client import Client

from crashlab.constants import SPARE_ACCOUNTS
from crashlab.panel import chartjs
from crashlab.panel.app import make_app
from crashlab.stack import ROOT
from crashlab.testing import Lab
from tests.integration.browser import Browser
from tests.integration.test_reports import ARTIFACTS, full_page
from worker.shared import MONEY_TRANSFER_TASK_QUEUE_NAME, MONEY_TRANSFER_WORKFLOW, PaymentDetails

pytestmark = pytest.mark.stack

# A GET from inside a container, in bash alone (the Temporal image has no curl).
BASH_GET = (
    'exec 3<>/dev/tcp/127.0.0.1/{port} && printf "GET /metrics HTTP/1.0\\r\\n'
    'Host: localhost\\r\\n\\r\\n" >&3 && cat <&3'
)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(project="crashlab-metrics", env={"PROMETHEUS_PORT": ""}) as running:
        # As `make up OBSERVE=1` does: the image first, then the profile's service.
        subprocess.run([str(ROOT / "compose/prometheus/build-prometheus.sh")], check=True)
        running.compose("--profile", "observe", "up", "--detach", "--wait", "prometheus")
        try:
            yield running
        finally:
            # The Lab's own `down` leaves the observe profile's service alone.
            running.compose("--profile", "observe", "down", "--volumes", "--timeout", "2")


def scrape_inside(lab: Lab, service: str, port: int) -> str:
    [container] = lab.containers(service)
    out = lab.docker("exec", container.id, "bash", "-c", BASH_GET.format(port=port))
    # Text mode has turned the answer's CRLFs into newlines.
    head, _, body = out.stdout.partition("\n\n")
    assert " 200 " in head.splitlines()[0], head
    return body


def value(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    total = 0.0
    found = False
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{.*\}})? (\S+)$", line)
        if not match:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
            found = True
    assert found, f"no {name} {labels} in the scrape"
    return total


def transfer(lab: Lab) -> None:
    result = lab.starter(
        "transfer", "--from", "10-001", "--to", "10-002", "--amount", "3",
        "--reference-id", str(uuid.uuid4()),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_bank_counts_each_movement_of_a_transfer(lab: Lab) -> None:
    def scrape() -> str:
        return httpx.get(f"{lab.bank_url}/metrics", timeout=5).text

    before = scrape()
    moved = (
        value(before, "bank_movements_total", operation="deposit")
        if "bank_movements_total{" in before
        else 0.0
    )
    transfer(lab)
    after = scrape()

    assert value(after, "bank_movements_total", operation="deposit") == moved + 1
    assert (
        value(
            after, "bank_requests_total", listener="teller", route="/accounts/{account_id}/withdraw"
        )
        >= 1
    )
    assert value(after, "bank_money_dollars") == sum(lab.balances().values())


def test_the_worker_serves_the_sdk_metrics(lab: Lab) -> None:
    transfer(lab)
    text = scrape_inside(lab, "worker", 9464)

    assert value(text, "temporal_num_pollers", task_queue="TRANSFER_MONEY_TASK_QUEUE") >= 1
    assert value(text, "temporal_activity_execution_latency_count", activity_type="deposit") >= 1
    assert value(text, "temporal_workflow_task_schedule_to_start_latency_count") >= 1
    assert "temporal_sticky_cache_size" in text


def test_the_temporal_server_serves_its_metrics(lab: Lab) -> None:
    transfer(lab)
    text = scrape_inside(lab, "temporal", 9233)

    assert value(text, "workflow_success", workflowType="MoneyTransfer") >= 1


# --- Prometheus ------------------------------------------------------------------------


def query(lab: Lab, promql: str) -> dict[str, float]:
    """An instant query: each series' value, keyed by its job (or "" without one)."""
    url = f"http://{lab.published('prometheus', 9090)}/api/v1/query"
    answer = httpx.get(url, params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    return {r["metric"].get("job", ""): float(r["value"][1]) for r in answer["data"]["result"]}


def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    # Polling: Prometheus scrapes every 2 to 5 s and says nothing when it has.
    while not check():
        assert time.monotonic() < deadline, f"waited {seconds} s in vain: {what}"
        time.sleep(0.5)


def test_prometheus_has_every_service_up(lab: Lab) -> None:
    until(
        lambda: query(lab, "up") == {"temporal": 1.0, "worker": 1.0, "bank": 1.0},
        30,
        f"every target up (now {query(lab, 'up')})",
    )


def test_a_transfer_moves_prometheus_counters(lab: Lab) -> None:
    moved = 'sum by (job) (bank_movements_total{operation="deposit"})'
    completed = "sum by (job) (temporal_workflow_completed)"
    until(lambda: "bank" in query(lab, moved), 30, "a first scrape of the bank")
    before = query(lab, moved)["bank"], query(lab, completed).get("worker", 0.0)

    transfer(lab)

    until(lambda: query(lab, moved)["bank"] == before[0] + 1, 20, "the deposit counted")
    until(
        lambda: query(lab, completed).get("worker", 0.0) >= before[1] + 1,
        20,
        "the workflow counted by the worker",
    )


# --- the dashboard ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def panel(lab: Lab) -> Iterator[str]:
    """The panel (with its dashboard) for this lab, on a free port in a thread."""
    assert chartjs.CHART_JS.exists(), "Chart.js is missing: python -m crashlab.panel.chartjs"
    config = uvicorn.Config(
        make_app(lab, None), host="127.0.0.1", port=0, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until(lambda: server.started, 10, "the panel to start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def stream(client: Client, stop: asyncio.Event, per_second: float = 4) -> None:
    """Transfers between spare accounts, started one after another until ``stop``."""
    while not stop.is_set():
        ref = str(uuid.uuid4())
        source, target = random.sample(list(SPARE_ACCOUNTS), 2)
        await client.start_workflow(
            MONEY_TRANSFER_WORKFLOW,
            PaymentDetails(source, target, 1, ref),
            id=f"dashboard-{ref}",
            task_queue=MONEY_TRANSFER_TASK_QUEUE_NAME,
        )
        await asyncio.sleep(1 / per_second)


def during(series: dict[str, Any], start: float, end: float) -> list[float]:
    return [v for t, v in series["points"] if start <= t <= end and v is not None]


def completed_series(shown: dict[str, Any]) -> dict[str, Any]:
    transfers = next(p for p in shown["panels"] if p["id"] == "transfers")
    return next(s for s in transfers["series"] if s["label"] == "completed")


async def until_shown(
    http: httpx.AsyncClient, check: Callable[[dict[str, Any]], bool], seconds: float, what: str
) -> dict[str, Any]:
    """The dashboard's data once ``check`` holds (the machine may be slow: no fixed sleeps)."""
    deadline = time.monotonic() + seconds
    while True:
        shown: dict[str, Any] = (await http.get("/api/dashboard")).json()
        if "error" not in shown and check(shown):
            return shown
        assert time.monotonic() < deadline, f"waited {seconds} s in vain: {what}: {shown}"
        await asyncio.sleep(1)


async def test_the_dashboard_shows_a_killed_worker_as_a_band_a_stall_and_a_recovery(
    lab: Lab, panel: str
) -> None:
    """As a learner tries it: the dashboard open, transfers streaming, the worker killed
    for 12 s and started again."""
    client = await lab.temporal()
    stop = asyncio.Event()
    with Browser() as browser:
        browser.goto(f"{panel}/dashboard")
        browser.wait_for("Number(document.body.dataset.drawn || 0) >= 1")
        streaming = asyncio.create_task(stream(client, stop))
        try:
            async with httpx.AsyncClient(base_url=panel, timeout=10) as http:
                before = time.time()
                await until_shown(
                    http,
                    lambda d: max(during(completed_series(d), before, d["end"]), default=0) > 0,
                    60,
                    "transfers completing before the kill",
                )
                await asyncio.to_thread(lab.kill, "worker")
                await asyncio.sleep(12)  # the page polls the panel, which sees the kill
                await asyncio.to_thread(lab.start, "worker")
                back = time.time()
                shown = await until_shown(
                    http,
                    lambda d: max(during(completed_series(d), back, d["end"]), default=0) > 0,
                    90,
                    "transfers completing again",
                )
        finally:
            stop.set()
            await streaming

        [band] = [b for b in shown["bands"] if b["label"] == "worker killed (SIGKILL)"]
        assert 8 <= band["end"] - band["start"] <= 25 and not band["on"]
        completed = completed_series(shown)
        assert 0 in during(completed, band["start"] + 6, band["end"]), completed  # the stall
        [polling] = next(p for p in shown["panels"] if p["id"] == "pollers")["series"]
        assert 0 in during(polling, band["start"] + 2, band["end"]), polling
        assert during(polling, shown["end"] - 4, shown["end"])[-1] >= 1, polling

        browser.wait_for("document.querySelectorAll('canvas').length === 5")
        await asyncio.sleep(2)  # the page's next draw has the recovery too
        full_page(browser, ARTIFACTS / "dashboard-worker-killed.png")


def test_the_panel_serves_chart_js_itself(panel: str) -> None:
    answer = httpx.get(f"{panel}/static/chart.min.js", timeout=5)
    assert answer.status_code == 200 and "Chart.js v3.9.1" in answer.text[:200]
