"""``python -m worker``: poll Temporal for work and run it against the bank.

Settings come from the environment (see worker/config.py): TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY and the other TEMPORAL_* client settings,
BANK_URL, BANK_TIMEOUT, WORKER_READY_FILE, WORKER_METRICS_ADDRESS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetStickyTaskQueueRequest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import Worker

from bank import memory
from bank.client import BankClient
from worker.activities import Bank, BankingActivities
from worker.config import (
    BankSettings,
    ConfigError,
    TemporalSettings,
    connect,
    exit_now,
    poller_identities,
    quiet_runtime,
    ready_file,
)
from worker.shared import MONEY_TRANSFER_TASK_QUEUE_NAME
from worker.tuning import RECOVERY, RECOVERY_MODES, STICKY_QUEUE_TIMEOUT
from worker.workflows import BANK_CALL_TIMEOUT, MoneyTransfer

log = logging.getLogger("worker")

# How long the worker keeps trying to reach Temporal before it gives up.
CONNECT_WAIT = 120.0  # seconds
# How long a starting worker may spend releasing workflows from sticky queues.
RELEASE_WITHIN = 2.0  # seconds


def build_workers(
    client: Client, bank: Bank, *, transfer_task_queue: str = MONEY_TRANSFER_TASK_QUEUE_NAME
) -> list[Worker]:
    """The Workers this process runs: MoneyTransfer and its activities.

    Module 1's print-numbers workflow is not among them: its worker is the
    learner's own process (`uv run run_workflow.py`, or `make print-numbers`),
    which must be the only one on its queue for the numbers to print there.
    """
    banking = BankingActivities(bank)
    return [
        Worker(
            client,
            task_queue=transfer_task_queue,
            workflows=[MoneyTransfer],
            activities=[banking.withdraw, banking.deposit, banking.refund, banking.settle],
            # See worker/tuning.py: 1 s instead of the SDK's 10 s after a kill.
            sticky_queue_schedule_to_start_timeout=STICKY_QUEUE_TIMEOUT,
            # On SIGTERM or Ctrl+C, in-flight activities get this long to finish
            # before they are cancelled (Temporal then retries them).
            graceful_shutdown_timeout=timedelta(seconds=5),
        )
    ]


class _LabFormatter(logging.Formatter):
    """``2024/02/12 10:59:09 Withdrawing $250 ...``, with ERROR/WARNING in front when it is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelprefix)s%(message)s", datefmt="%Y/%m/%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.levelprefix = f"{record.levelname} " if record.levelno >= logging.WARNING else ""
        return super().format(record)


class _AlreadyLogged(logging.Filter):
    """Drop the SDK's "Completing activity as failed" traceback for errors our activities
    raise on purpose: they already logged one clear line (e.g. "Deposit failed: ...").
    A real bug (any other exception) keeps its full traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "__temporal_error_identifier", None) != "ActivityFailure":
            return True
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, ApplicationError)


class _OneRetryLinePer(logging.Filter):
    """While Temporal is away, the SDK core warns about every retried gRPC call of
    every poller, several lines a second: keep one short line per interval."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.last = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("gRPC call"):
            return True
        if record.created - self.last < self.seconds:
            return False
        self.last = record.created
        call = message.split(" {", 1)[0]  # drop the long dict of error details
        record.msg, record.args = f"Temporal does not answer ({call}); still trying.", ()
        return True


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LabFormatter())
    handler.addFilter(_AlreadyLogged())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # Keep the learner's log lines as short as the tutorial's: no dict of
    # activity or workflow details after every message.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
    # One line per bank request is noise next to the activities' own lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    core = logging.getLogger("temporalio.core")  # see quiet_runtime()
    if not core.filters:
        core.addFilter(_OneRetryLinePer(seconds=10))


async def _wait_until_polling(client: Client, task_queues: list[str]) -> None:
    """Until the Temporal server sees this process polling each queue."""
    for queue in task_queues:
        checks = 0
        while client.identity not in await poller_identities(client, queue):
            checks += 1
            if checks == 200:  # 10 s
                log.warning(f"Temporal does not list this worker on {queue} yet; still waiting.")
            # Asking costs Temporal a read; every 50 ms is noticed in time by the
            # healthcheck (which looks every 50 ms while the worker starts).
            await asyncio.sleep(0.05)


async def _release_sticky_workflows(client: Client, task_queues: list[str]) -> None:
    """Every running workflow on these queues gets its next workflow task on the normal
    queue, which any worker polls, rather than on the sticky queue of the worker that ran
    it last.

    A killed worker leaves each workflow it had cached tied to its own sticky queue:
    Temporal puts the workflow's next task there, and gives it to another worker only
    when the sticky timeout runs out (1 s here, 10 s by default). That was the last
    second of most transfers caught by a kill (`make bench` prints their histories). A
    starting worker cannot tell which workflows a dead worker held, so it releases them
    all; a live worker that had one cached replays it once, which costs milliseconds.
    """

    async def release(execution: WorkflowExecution) -> bool:
        try:
            await client.workflow_service.reset_sticky_task_queue(
                ResetStickyTaskQueueRequest(namespace=client.namespace, execution=execution)
            )
        except RPCError:  # it ended meanwhile
            return False
        return True

    queues = " OR ".join(f"TaskQueue = '{queue}'" for queue in task_queues)
    query = f"({queues}) AND ExecutionStatus = 'Running'"
    while True:
        try:
            running = [
                WorkflowExecution(workflow_id=listed.id, run_id=listed.run_id)
                async for listed in client.list_workflows(query)
            ]
            break
        except RPCError:  # a server that just started may not serve its namespace yet
            await asyncio.sleep(0.1)
    # All at once: the worker polls only after this, so it must be quick.
    released = sum(await asyncio.gather(*(release(execution) for execution in running)))
    if released:
        log.info(
            f"{released} running workflow(s): their next step goes to any worker, "
            "not to one that may have been killed."
        )


async def _check_bank(bank: BankClient, url: str) -> None:
    try:
        await bank.health()
    except Exception as err:  # httpx errors, or an error answer
        log.warning(f"The bank at {url} does not answer yet ({err}); activities will retry.")
    else:
        log.info(f"The bank at {url} answers.")


async def run_worker(stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM or SIGINT (Ctrl+C), or until ``stop`` is set. Returns the exit code."""
    configure_logging()
    try:
        temporal = TemporalSettings.from_env()
        bank_settings = BankSettings.from_env()
    except ConfigError as err:
        log.error(str(err))
        return 2
    if RECOVERY not in RECOVERY_MODES:
        log.error(f"WORKER_RECOVERY must be one of {', '.join(RECOVERY_MODES)}, not {RECOVERY!r}.")
        return 2
    ready = ready_file()
    _mark_ready(ready, False)
    # Overridable so the benchmark can run a second worker beside the lab's.
    transfer_queue = os.environ.get("TRANSFER_TASK_QUEUE", MONEY_TRANSFER_TASK_QUEUE_NAME)
    queues = [transfer_queue]
    log.info(f"Temporal: {temporal.address}, namespace {temporal.namespace}")
    log.info(f"Task queues: {', '.join(queues)}")
    if bank_settings.url == memory.URL:
        log.info("Bank: in this process, no I/O (the tutorial's design; for benchmarks)")
    else:
        log.info(f"Bank: {bank_settings.url} (timeout {bank_settings.timeout:g} s)")
    if RECOVERY != "fast":
        log.info(f"Recovery tuning: {RECOVERY} (sticky queue timeout, no heartbeat timeout)")
    if bank_settings.timeout >= BANK_CALL_TIMEOUT.total_seconds():
        log.warning(
            f"BANK_TIMEOUT is not below the activities' {BANK_CALL_TIMEOUT.seconds} s "
            "start-to-close timeout: a slow bank shows up as Temporal's timeout instead."
        )

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with (
            contextlib.nullcontext(memory.InMemoryBank())
            if bank_settings.url == memory.URL
            else BankClient(bank_settings.url, timeout=bank_settings.timeout)
        ) as bank:
            # Asked while the worker connects to Temporal, not before: it only tells
            # the learner, and the worker starts sooner (activities retry anyway).
            checking = (
                asyncio.create_task(_check_bank(bank, bank_settings.url))
                if isinstance(bank, BankClient)
                else None
            )
            try:
                client = await _connect_unless_stopped(temporal, stop)
                if client is None:
                    return 0
                workers = build_workers(client, bank, transfer_task_queue=transfer_queue)
                return await _run_until_stopped(client, workers, queues, stop, ready)
            finally:
                if checking is not None:
                    checking.cancel()
    except ConnectionError as err:
        log.error(f"{err}. Is the temporal service running? Try `make ps` and `make logs`.")
        log.error(f"(The SDK said: {err.__cause__})")
        return 1
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _connect_unless_stopped(temporal: TemporalSettings, stop: asyncio.Event) -> Client | None:
    """Connect to Temporal, waiting while it starts; None if told to stop meanwhile."""
    # WORKER_METRICS_ADDRESS (Compose: 0.0.0.0:9464): the SDK's metrics for Prometheus.
    metrics = os.environ.get("WORKER_METRICS_ADDRESS", "").strip() or None
    runtime = quiet_runtime(
        forward_to=logging.getLogger("temporalio.core"), metrics_address=metrics
    )
    connecting = asyncio.create_task(
        connect(temporal, wait_seconds=CONNECT_WAIT, say=log.info, runtime=runtime)
    )
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not connecting.done():
        connecting.cancel()
        log.info("Stopped before Temporal answered.")
        return None
    return connecting.result()


async def _run_until_stopped(
    client: Client, workers: list[Worker], queues: list[str], stop: asyncio.Event, ready: Path
) -> int:
    # Before polling, so that no step this worker finishes is scheduled on a dead
    # worker's sticky queue; bounded, so that thousands of open workflows cannot hold
    # up the start (those left over wait out their sticky timeout, as without it).
    try:
        async with asyncio.timeout(RELEASE_WITHIN):
            await _release_sticky_workflows(client, queues)
    except TimeoutError:
        log.warning(
            f"Could not release the running workflows within {RELEASE_WITHIN:g} s; "
            "starting anyway (a step may wait out a dead worker's sticky timeout)."
        )
    running = [asyncio.create_task(w.run()) for w in workers]
    stopping = asyncio.create_task(stop.wait())
    polling = asyncio.create_task(_wait_until_polling(client, queues))
    try:
        await asyncio.wait({polling, stopping, *running}, return_when=asyncio.FIRST_COMPLETED)
        if polling.done():
            if polling.exception():
                log.warning(f"Cannot ask Temporal who polls: {polling.exception()}")
            _mark_ready(ready, True)
            log.info("Worker is ready: waiting for workflows and activities.")
            await asyncio.wait({stopping, *running}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            log.info("Shutting down: finishing in-flight activities, then leaving Temporal.")
    finally:
        polling.cancel()
        stopping.cancel()
        _mark_ready(ready, False)
        await asyncio.gather(*(w.shutdown() for w in workers))
        results = await asyncio.gather(*running, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        log.error(f"Worker failed: {failure!r}")
    if failures:
        return 1
    log.info("Worker stopped.")
    return 0


def _mark_ready(path: Path, ready: bool) -> None:
    """The file the Compose healthcheck looks for: there exactly while the worker polls."""
    if ready:
        path.touch()
    else:
        path.unlink(missing_ok=True)


def main() -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_worker())
    return 130


if __name__ == "__main__":
    exit_now(main())
