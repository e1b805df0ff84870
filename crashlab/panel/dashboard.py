"""What the dashboard draws (GET /dashboard): a few of Prometheus's series over the last
minutes, and every lever pulled in that time as a band on the same time axis.

The panel asks the lab's Prometheus (`make up OBSERVE=1`) on the page's behalf, so the
page needs no address but the panel's. Each chart is a few PromQL queries; the bands come
from the panel's timeline (crashlab/panel/state.py), which sees a lever come and go
whether the panel, `make kill` or the soak pulled it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from crashlab.panel.state import Event
from crashlab.stack import Stack, StackError
from worker.shared import MONEY_TRANSFER_TASK_QUEUE_NAME, MONEY_TRANSFER_WORKFLOW

PROMETHEUS_PORT = 9090
STEP = 2  # seconds: Prometheus scrapes the worker and the bank every 2 s
WINDOW = 180  # seconds shown by default
STARTS, ENDS = ("pulled", "on"), ("undone", "off")
# When Prometheus was scraping: the Temporal target always has an `up` sample then.
SCRAPING = 'count(up{job="temporal"})'
QUEUE = MONEY_TRANSFER_TASK_QUEUE_NAME


@dataclass(frozen=True)
class Query:
    promql: str
    label: str  # shown in the legend; {name} is replaced by that label's value
    empty: str | None = None  # with no series at all: one of zeros under this label


@dataclass(frozen=True)
class Panel:
    id: str
    title: str
    unit: str
    queries: tuple[Query, ...]
    hint: str  # what to look for, under the chart
    zero_fill: bool = False  # no sample while Prometheus scraped means 0, not "unknown"


PANELS = (
    Panel(
        "transfers",
        "Transfers ending, per second",
        "per s",
        (
            Query(
                f'sum(rate(temporal_workflow_completed{{workflow_type="{MONEY_TRANSFER_WORKFLOW}"}}'
                "[6s]))",
                "completed",
                "completed",
            ),
            Query(
                f'sum(rate(temporal_workflow_failed{{workflow_type="{MONEY_TRANSFER_WORKFLOW}"}}'
                "[6s]))",
                "failed",
                "failed",
            ),
        ),
        "Drops to nothing while no worker runs them; a burst when it is back.",
        zero_fill=True,
    ),
    Panel(
        "retries",
        "Activity retries and timeouts, per second",
        "per s",
        (
            Query(
                "sum by (activity_type) (rate(temporal_activity_execution_failed[6s]))",
                "retry: {activity_type}",
                "retries",
            ),
            Query(
                "sum by (timeout_type) (rate(activity_task_timeout[20s]))",
                "timeout: {timeout_type}",
                "timeouts",
            ),
        ),
        "A faulty bank shows as retries; a killed worker as heartbeat timeouts once it is gone.",
        zero_fill=True,
    ),
    Panel(
        "schedule",
        "Schedule-to-start: how long tasks wait for a worker",
        "s",
        (
            Query(
                "histogram_quantile(0.95, sum by (le) "
                "(rate(temporal_activity_schedule_to_start_latency_bucket[6s])))",
                "activity p95 (worker)",
            ),
            Query(
                "histogram_quantile(0.95, sum by (le) "
                "(rate(temporal_workflow_task_schedule_to_start_latency_bucket[6s])))",
                "workflow task p95 (worker)",
            ),
        ),
        "Nothing starts while no worker polls; when it is back, this jumps to how long "
        "the tasks waited, then falls as the queue empties.",
    ),
    Panel(
        "pollers",
        "Workers polling each task queue",
        "workers",
        (
            Query(
                "count by (task_queue) "
                '(temporal_num_pollers{job="worker", poller_type="activity_task"} > 0)',
                "{task_queue}",
                QUEUE,
            ),
        ),
        "0 means nobody runs the transfers: they wait, safe, in Temporal.",
        zero_fill=True,
    ),
    Panel(
        "money",
        "All the money in the bank",
        "$",
        (Query("bank_money_dollars", "total of every balance"),),
        "Dips while transfers are between withdraw and deposit; never ends lower.",
    ),
)


def bands(events: Sequence[Event], now: float) -> list[dict[str, Any]]:
    """Each lever from when it was pulled (or seen on) to when it was undone (or seen off);
    one still on ends at ``now``. Times are Unix seconds."""
    out: list[dict[str, Any]] = []
    open_: dict[str, dict[str, Any]] = {}
    for event in events:
        at = datetime.fromisoformat(event.at).timestamp()
        if event.what in STARTS and event.lever not in open_:
            open_[event.lever] = {"start": at, "end": None, "label": event.lever}
            out.append(open_[event.lever])
        elif event.what in ENDS and event.lever in open_:
            open_.pop(event.lever)["end"] = at
    for band in out:
        band["on"] = band["end"] is None
        if band["end"] is None:
            band["end"] = now
    return out


def label_of(template: str, metric: dict[str, str]) -> str:
    out = template
    for name, value in metric.items():
        out = out.replace("{" + name + "}", value)
    return out


def points(values: Iterable[Sequence[Any]]) -> list[tuple[float, float | None]]:
    """Prometheus's [time, "value"] pairs; NaN (a quantile of nothing) becomes a gap."""
    out: list[tuple[float, float | None]] = []
    for at, text in values:
        value = float(text)
        out.append((float(at), None if math.isnan(value) or math.isinf(value) else value))
    return out


def fill(
    series: list[tuple[float, float | None]],
    scraping: Sequence[float],
    missing: float | None = 0.0,
) -> list[tuple[float, float | None]]:
    """The series at every time Prometheus was scraping, ``missing`` where it had no sample
    (None: a gap in the line, rather than a line drawn straight across the outage)."""
    have = dict(series)
    return [(at, have.get(at, missing)) for at in scraping]


class Prometheus:
    def __init__(self, stack: Stack, timeout: float = 3.0) -> None:
        self.stack, self.timeout = stack, timeout

    def url(self) -> str:
        return f"http://{self.stack.published('prometheus', PROMETHEUS_PORT)}"

    def range(
        self, http: httpx.Client, promql: str, start: float, end: float
    ) -> list[dict[str, Any]]:
        answer = http.get(
            "/api/v1/query_range",
            params={"query": promql, "start": start, "end": end, "step": STEP},
        )
        answer.raise_for_status()
        data = answer.json()
        if data.get("status") != "success":
            raise httpx.HTTPError(str(data.get("error", data)))
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def panels(self, window: float = WINDOW, now: float | None = None) -> dict[str, Any]:
        """Every panel's series over the last ``window`` seconds, or an error for people."""
        end = math.floor(now if now is not None else time.time())
        end -= end % STEP  # on the step grid, so every series shares its timestamps
        start = end - window
        try:
            url = self.url()
        except StackError:
            return {
                "error": "Prometheus is not running in this lab: start it with "
                "`make up OBSERVE=1` (the dashboard's charts come from it)."
            }
        try:
            with httpx.Client(base_url=url, timeout=self.timeout) as http:
                up = self.range(http, SCRAPING, start, end)
                scraping = sorted(float(at) for r in up for at, _ in r["values"])
                shown = []
                for panel in PANELS:
                    series = []
                    for query in panel.queries:
                        found = self.range(http, query.promql, start, end)
                        for r in found:
                            data = fill(
                                points(r["values"]), scraping, 0.0 if panel.zero_fill else None
                            )
                            label = label_of(query.label, r["metric"])
                            series.append({"label": label, "points": data})
                        if not found and query.empty and panel.zero_fill:
                            series.append({"label": query.empty, "points": fill([], scraping)})
                    shown.append(
                        {
                            "id": panel.id,
                            "title": panel.title,
                            "unit": panel.unit,
                            "hint": panel.hint,
                            "series": series,
                        }
                    )
        except httpx.HTTPError as err:
            return {"error": f"Prometheus at {url} did not answer: {err}"}
        return {"start": start, "end": end, "step": STEP, "prometheus": url, "panels": shown}
