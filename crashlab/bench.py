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
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bank.models import Fault, FaultMode
from crashlab import BUILD_DIR
from crashlab.constants import SPARE_ACCOUNTS
from crashlab.reports import bench as bench_report
from crashlab.stack import ROOT, Stack
from crashlab.testing import RANDOM_PORTS
from worker.shared import MONEY_TRANSFER_TASK_QUEUE_NAME, MONEY_TRANSFER_WORKFLOW, PaymentDetails
from worker.workflows import MoneyTransfer

PROJECT = "crashlab-bench"
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

    def row(self) -> dict[str, Any]:
        s = self.samples
        return {
            "name": self.name,
            "unit": self.unit,
            "median": statistics.median(s) if s else None,
            "min": min(s) if s else None,
            "max": max(s) if s else None,
            "runs": len(s),
            "note": self.note,
        }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Bench:
    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.stack = Stack(project=PROJECT, env=RANDOM_PORTS)
        self.figures: list[Figure] = []
        self.extra: dict[str, Any] = {}

    def figure(self, name: str, unit: str, note: str = "") -> Figure:
        fig = Figure(name, unit, note=note)
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
        out = self.stack.compose("run", "--detach", "--no-deps", *args, "worker")
        container = out.stdout.strip().splitlines()[-1]
        self.wait_container_healthy(container)
        return container

    def wait_container_healthy(self, container: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = subprocess.run(
                ["docker", "inspect", "-f", "{{.State.Health.Status}}", container],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            if status == "healthy":
                return
            time.sleep(0.05)
        raise RuntimeError(f"worker container {container} did not become healthy")

    def docker(self, *args: str) -> str:
        return subprocess.run(
            ["docker", *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    # --- measurements -----------------------------------------------------

    def cold_start(self) -> None:
        fig = self.figure(
            "cold start: `up` to every service healthy", "s", "images built, fresh volumes"
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
        self.docker("start", container)
        self.wait_container_healthy(container)
        back = time.monotonic()
        await handle.result()
        return time.monotonic() - back

    async def random_kills(self, client: Client, kills: int, rate: float = 20.0) -> None:
        """The lab's worker killed at random moments in a stream of transfers, as a learner
        kills it: started by a plain client with default options (the tutorial's starter
        sets no timeouts either), `docker kill`, `docker start` at once."""
        start = self.figure("worker start: `docker start` to healthy", "s")
        recovery = self.figure(
            "random-moment kill: worker healthy to every in-flight transfer complete",
            "s",
            f"{rate:g} transfers/s, default start options",
        )
        [worker] = [c for c in self.stack.containers("worker")]
        done: dict[str, float] = {}  # workflow id -> when its result came
        followers: dict[str, asyncio.Task[None]] = {}

        async def follow(workflow_id: str) -> None:
            await client.get_workflow_handle(workflow_id).result()
            done[workflow_id] = time.monotonic()

        async def stream() -> None:
            while True:
                source, target = random.sample(ACCOUNTS, 2)
                workflow_id = f"bench-kill-{uuid.uuid4()}"
                await client.start_workflow(
                    MONEY_TRANSFER_WORKFLOW,
                    PaymentDetails(source, target, 1, workflow_id.removeprefix("bench-kill-")),
                    id=workflow_id,
                    task_queue=MONEY_TRANSFER_TASK_QUEUE_NAME,
                )
                followers[workflow_id] = asyncio.create_task(follow(workflow_id))
                await asyncio.sleep(1 / rate)

        streaming = asyncio.create_task(stream())
        try:
            for n in range(kills):
                await asyncio.sleep(random.uniform(1.0, 3.0))  # a random moment in the stream
                in_flight = {w: t for w, t in followers.items() if w not in done}
                self.docker("kill", "--signal", "SIGKILL", worker.id)
                killed = time.monotonic()
                self.docker("start", worker.id)
                self.wait_container_healthy(worker.id)
                healthy = time.monotonic()
                await asyncio.wait_for(asyncio.gather(*in_flight.values()), 120)
                last = max((done[w] for w in in_flight), default=healthy)
                start.samples.append(healthy - killed)
                recovery.samples.append(max(0.0, last - healthy))
                say(
                    f"  kill {n + 1}/{kills}: {len(in_flight)} in flight, worker healthy "
                    f"after {healthy - killed:.2f} s, all done {recovery.samples[-1]:.2f} s later"
                )
        finally:
            streaming.cancel()
            for follower in followers.values():
                follower.cancel()
        self.extra["random-moment kill: worker healthy to in-flight done (s)"] = {
            "p50": percentile(recovery.samples, 50),
            "p99": percentile(recovery.samples, 99),
            "kills": float(len(recovery.samples)),
        }

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
                        transfers = count * self.runs
                        self.extra[f"CPU per transfer at concurrency {level}, {design} (ms)"] = {
                            name: round(used / transfers * 1000, 1)
                            for name, used in cpu[design].items()
                        }
        finally:
            self.docker("rm", "--force", baseline)

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
    width = 58
    lines = [f"{'figure':<{width}} {'median':>9} {'min':>9} {'max':>9}  unit"]
    for fig in bench.figures:
        row = fig.row()
        if row["median"] is None:
            continue
        lines.append(
            f"{fig.name:<{width}} {row['median']:>9.2f} {row['min']:>9.2f} "
            f"{row['max']:>9.2f}  {fig.unit}"
        )
    by_name = {f.name: f.row()["median"] for f in bench.figures}
    for level in LEVELS:
        full = by_name.get(f"throughput at concurrency {level}, full stack")
        base = by_name.get(f"throughput at concurrency {level}, tutorial's design")
        if full and base:
            name = f"ratio full stack / tutorial's design, concurrency {level}"
            lines.append(f"{name:<{width}} {full / base:>9.2f}")
    for title, values in bench.extra.items():
        lines.append("")
        lines.append(title)
        lines.extend(f"  {k:<40} {v:>8.1f}" for k, v in sorted(values.items()))
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
        help="random-moment worker kills in a stream of transfers (default 20; 0: skip)",
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
        client = await Client.connect(bench.stack.temporal_address)
        if not args.only_kills:
            say("Recovery after a killed worker...")
            await bench.recovery(client)
        if args.kills:
            say(f"The worker killed at {args.kills} random moments in a stream of transfers...")
            await bench.random_kills(client, args.kills)
        if not args.only_kills:
            say("Throughput and latency...")
            await bench.throughput(client)
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
