"""The bank's own metrics, in Prometheus's text format (GET /metrics), with no extra package.

What an operator watches while breaking things: requests by route and outcome and how
long they took, the faults the switch applied, the money that moved, and the total in
the bank (read at each scrape). A few counters and histograms written by hand: labels
come from a closed set (routes, operations, modes, error codes), so the series are few.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Seconds: from a kept-alive local call (milliseconds) to a latency fault (seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = [*labels, *extra]
    if not pairs:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class Counter:
    name: str
    help: str
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        out += [f"{self.name}{_labels(k)} {_number(v)}" for k, v in sorted(self.values.items())]
        return out


@dataclass
class Histogram:
    name: str
    help: str
    buckets: Sequence[float] = LATENCY_BUCKETS
    series: dict[Labels, list[float]] = field(default_factory=dict)  # counts per bucket, +Inf
    sums: dict[Labels, float] = field(default_factory=dict)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        counts = self.series.setdefault(key, [0.0] * (len(self.buckets) + 1))
        for i, bound in enumerate([*self.buckets, math.inf]):
            if value <= bound:
                counts[i] += 1
        self.sums[key] = self.sums.get(key, 0.0) + value

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, counts in sorted(self.series.items()):
            for bound, count in zip([*self.buckets, math.inf], counts, strict=True):
                le = (("le", _number(bound)),)
                out.append(f"{self.name}_bucket{_labels(key, le)} {_number(count)}")
            out.append(f"{self.name}_sum{_labels(key)} {_number(self.sums[key])}")
            out.append(f"{self.name}_count{_labels(key)} {_number(counts[-1])}")
        return out


@dataclass
class Gauge:
    """A value read when Prometheus scrapes (None: not known now, left out)."""

    name: str
    help: str
    read: Callable[[], float | None]

    def lines(self) -> list[str]:
        value = self.read()
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        if value is not None:
            out.append(f"{self.name} {_number(value)}")
        return out


class BankMetrics:
    """Every metric the bank keeps; one instance is shared by both listeners."""

    def __init__(self, total: Callable[[], float | None] = lambda: None) -> None:
        self.requests = Counter(
            "bank_requests_total",
            "HTTP requests answered, by listener, route, method and status code.",
        )
        self.duration = Histogram(
            "bank_request_duration_seconds",
            "Time to answer an HTTP request (a latency fault included), by route.",
        )
        self.operations = Counter(
            "bank_operations_total",
            "Withdraws and deposits by outcome: moved, replayed (answered from the ledger), "
            "or why they were refused or not answered.",
        )
        self.faults = Counter(
            "bank_faults_applied_total",
            "Calls the fault switch hit, by operation and fault mode.",
        )
        self.movements = Counter(
            "bank_movements_total", "Money movements written to the ledger, by operation."
        )
        self.moved = Counter(
            "bank_moved_dollars_total", "Dollars moved by the ledger, by operation."
        )
        self.money = Gauge(
            "bank_money_dollars",
            "All the money in the bank: the sum of every balance, read at each scrape.",
            total,
        )
        self.started = time.time()

    def render(self) -> str:
        """The whole exposition, in Prometheus's text format 0.0.4."""
        parts: list[Counter | Histogram | Gauge] = [
            self.requests,
            self.duration,
            self.operations,
            self.faults,
            self.movements,
            self.moved,
            self.money,
        ]
        lines = [line for metric in parts for line in metric.lines()]
        lines += [
            "# HELP bank_start_time_seconds When this bank process started (Unix time).",
            "# TYPE bank_start_time_seconds gauge",
            f"bank_start_time_seconds {_number(round(self.started, 3))}",
        ]
        return "\n".join(lines) + "\n"


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class RequestMetrics:
    """ASGI middleware: counts and times every HTTP request by its route's template.

    Plain ASGI rather than a Starlette BaseHTTPMiddleware, which would get between a held
    request (the switch's hang and drop_response) and the disconnect it waits for.
    """

    def __init__(self, app: Any, metrics: BankMetrics, listener: str) -> None:
        self.app, self.metrics, self.listener = app, metrics, listener

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = {"code": 500}

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except asyncio.CancelledError:
            status["code"] = 499  # the server gave up on it (shutdown)
            raise
        finally:
            route = getattr(scope.get("route"), "path", None) or "other"
            labels = {"listener": self.listener, "route": route, "method": scope["method"]}
            self.metrics.requests.inc(**labels, code=str(status["code"]))
            self.metrics.duration.observe(time.monotonic() - started, route=route)
