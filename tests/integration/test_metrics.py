"""Metrics from every service of a running lab: the Temporal dev server's (port 9233), the
worker's SDK metrics (9464) and the bank's own (/metrics), scraped where Prometheus
scrapes them, and seen to move when a transfer runs; then the lab's Prometheus (the
observe profile, `make up OBSERVE=1`) asked through its API."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from crashlab.stack import ROOT
from crashlab.testing import Lab

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
