"""GET /metrics: the bank's own metrics in Prometheus's text format (bank/metrics.py)."""

from __future__ import annotations

import re

import httpx

from bank.faults import FaultSwitch
from bank.ledger import SEED_ACCOUNTS
from bank.metrics import BankMetrics, Counter, Histogram

SAMPLE = re.compile(r'^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|\+Inf)$')


def requests(code: str, method: str, route: str) -> str:
    labels = f'code="{code}",listener="control",method="{method}",route="{route}"'
    return f"bank_requests_total{{{labels}}}"


def parse(text: str) -> dict[str, float]:
    """Each sample as ``name{labels}`` -> value; fails on a line Prometheus would not read."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not in Prometheus's text format: {line!r}"
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def test_counters_and_histograms_in_the_text_format() -> None:
    c = Counter("things_total", "Things.")
    c.inc(route="/a", code="200")
    c.inc(2, route="/a", code="200")
    c.inc(route='say "hi"\n', code="500")
    h = Histogram("took_seconds", "Took.", buckets=(0.1, 1.0))
    h.observe(0.05, route="/a")
    h.observe(0.5, route="/a")
    text = "\n".join([*c.lines(), *h.lines()])

    samples = parse(text)
    assert samples['things_total{code="200",route="/a"}'] == 3
    assert samples['things_total{code="500",route="say \\"hi\\"\\n"}'] == 1
    assert samples['took_seconds_bucket{route="/a",le="0.1"}'] == 1
    assert samples['took_seconds_bucket{route="/a",le="1"}'] == 2
    assert samples['took_seconds_bucket{route="/a",le="+Inf"}'] == 2
    assert samples['took_seconds_count{route="/a"}'] == 2
    assert samples['took_seconds_sum{route="/a"}'] == 0.55
    assert "# TYPE took_seconds histogram" in text


async def test_requests_movements_and_faults_are_counted(
    bank_http: httpx.AsyncClient, bank_faults: FaultSwitch
) -> None:
    def key(name: str) -> dict[str, str]:
        return {"Idempotency-Key": name}

    await bank_http.post("/accounts/85-150/withdraw", json={"amount": 250}, headers=key("t1-w"))
    await bank_http.post("/accounts/85-150/withdraw", json={"amount": 250}, headers=key("t1-w"))
    await bank_http.post("/accounts/43-812/deposit", json={"amount": 250}, headers=key("t1-d"))
    await bank_http.post("/accounts/nope/deposit", json={"amount": 5}, headers=key("t2-d"))
    await bank_http.put("/faults/deposit", json={"mode": "error"})
    await bank_http.post("/accounts/43-812/deposit", json={"amount": 5}, headers=key("t3-d"))

    response = await bank_http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse(response.text)

    route = "/accounts/{account_id}/withdraw"
    assert samples[requests("200", "POST", route)] == 2
    assert samples[requests("503", "POST", "/accounts/{account_id}/deposit")] == 1
    assert samples['bank_operations_total{operation="withdraw",outcome="moved"}'] == 1
    assert samples['bank_operations_total{operation="withdraw",outcome="replayed"}'] == 1
    assert samples['bank_operations_total{operation="deposit",outcome="unknown_account"}'] == 1
    assert samples['bank_operations_total{operation="deposit",outcome="injected_fault"}'] == 1
    assert samples['bank_faults_applied_total{mode="error",operation="deposit"}'] == 1
    assert samples['bank_movements_total{operation="deposit"}'] == 1
    assert samples['bank_moved_dollars_total{operation="withdraw"}'] == 250
    assert samples["bank_money_dollars"] == sum(balance for _, balance in SEED_ACCOUNTS)
    assert samples[f'bank_request_duration_seconds_count{{route="{route}"}}'] == 2


async def test_an_unknown_path_is_counted_under_one_label(bank_http: httpx.AsyncClient) -> None:
    for n in range(3):
        await bank_http.get(f"/no-such-page-{n}")
    samples = parse((await bank_http.get("/metrics")).text)
    assert (
        samples['bank_requests_total{code="404",listener="control",method="GET",route="other"}']
        == 3
    )


def test_the_money_is_left_out_when_it_cannot_be_read() -> None:
    samples = parse(BankMetrics(total=lambda: None).render())
    assert "bank_money_dollars" not in samples
    assert samples["bank_start_time_seconds"] > 0


async def test_metrics_are_not_part_of_the_documented_api(bank_http: httpx.AsyncClient) -> None:
    assert "/metrics" not in (await bank_http.get("/openapi.json")).json()["paths"]
