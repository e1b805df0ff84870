"""Settings from the environment, and the Temporal connection the worker and the starter share.

The Temporal connection is read by ``temporalio.envconfig``, the same rules as
the ``temporal`` CLI: ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
``TEMPORAL_API_KEY``, ``TEMPORAL_TLS*``, ``TEMPORAL_PROFILE`` and a
``temporal.toml`` profile file. Without any of them: ``localhost:7233``, namespace
``default``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"
DEFAULT_BANK_URL = "http://bank:8000"
DEFAULT_BANK_TIMEOUT = 5.0
DEFAULT_READY_FILE = "/tmp/worker-ready"
DEFAULT_UI_URL = "http://localhost:8080"

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """An environment variable has a value we cannot use."""


@dataclass(frozen=True)
class TemporalSettings:
    connect_config: ClientConnectConfig  # keyword arguments for Client.connect

    @property
    def address(self) -> str:
        return self.connect_config.get("target_host", DEFAULT_TEMPORAL_ADDRESS)

    @property
    def namespace(self) -> str:
        return self.connect_config.get("namespace", DEFAULT_NAMESPACE)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TemporalSettings:
        try:
            profile = ClientConfigProfile.load(override_env_vars=None if env is None else dict(env))
        except Exception as err:  # a broken profile file or TLS setting
            raise ConfigError(f"Cannot read the Temporal client configuration: {err}") from err
        config = profile.to_client_connect_config()
        config.setdefault("target_host", DEFAULT_TEMPORAL_ADDRESS)
        config.setdefault("namespace", DEFAULT_NAMESPACE)
        return cls(connect_config=config)


@dataclass(frozen=True)
class BankSettings:
    url: str = DEFAULT_BANK_URL
    timeout: float = DEFAULT_BANK_TIMEOUT  # seconds per HTTP call

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BankSettings:
        env = os.environ if env is None else env
        raw = env.get("BANK_TIMEOUT", str(DEFAULT_BANK_TIMEOUT))
        try:
            timeout = float(raw)
        except ValueError:
            timeout = -1.0
        if timeout <= 0:
            raise ConfigError(f"BANK_TIMEOUT must be a positive number of seconds, not {raw!r}.")
        return cls(url=env.get("BANK_URL", DEFAULT_BANK_URL).rstrip("/"), timeout=timeout)


def ready_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("WORKER_READY_FILE", DEFAULT_READY_FILE))


def ui_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("TEMPORAL_UI_URL", DEFAULT_UI_URL).rstrip("/")


def workflow_ui_link(namespace: str, workflow_id: str, env: Mapping[str, str] | None = None) -> str:
    return f"{ui_url(env)}/namespaces/{namespace}/workflows/{workflow_id}"


def quiet_runtime(
    forward_to: logging.Logger | None = None, *, metrics_address: str | None = None
) -> Runtime:
    """A Temporal runtime whose own (Rust core) log lines do not clutter the output.

    By default the SDK core prints its warnings (e.g. each retried gRPC call while
    Temporal restarts) to stderr in its own colourful format. With ``forward_to``
    they go to that Python logger instead, in the process's own log format;
    without it only the core's errors are printed. With ``metrics_address``
    (host:port), the SDK's own metrics are served there for Prometheus (/metrics):
    task latencies, schedule-to-start, activity failures, pollers, the sticky cache.
    """
    if forward_to is None:
        config = LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
    else:
        config = LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
            forwarding=LogForwardingConfig(
                logger=forward_to, append_target_to_name=False, prepend_target_on_message=False
            ),
        )
    metrics = (
        PrometheusConfig(bind_address=metrics_address, durations_as_seconds=True)
        if metrics_address
        else None
    )
    return Runtime(telemetry=TelemetryConfig(logging=config, metrics=metrics))


async def connect(
    settings: TemporalSettings,
    *,
    wait_seconds: float,
    say: Callable[[str], None],
    retry_every: float = 0.1,  # a refused connection costs ~3 ms: ask often
    runtime: Runtime | None = None,
) -> Client:
    """Connect to Temporal, trying again for up to ``wait_seconds`` while it starts.

    Raises ``ConnectionError`` with a message for people when it never answers; its
    ``__cause__`` is the SDK's own error.
    """
    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        try:
            return await Client.connect(**settings.connect_config, runtime=runtime)
        except RuntimeError as err:  # the SDK reports "Failed client connect: ..."
            if time.monotonic() + retry_every > deadline:
                raise ConnectionError(
                    f"Cannot connect to Temporal at {settings.address} "
                    f"(namespace {settings.namespace})"
                ) from err
            if not told:
                say(
                    f"Waiting for Temporal at {settings.address}: it does not answer yet. "
                    f"Trying again for up to {wait_seconds:g} s..."
                )
                told = True
        await asyncio.sleep(retry_every)


async def poller_identities(client: Client, task_queue: str) -> list[str]:
    """The identities of the workers polling ``task_queue`` for workflow tasks right now."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return [poller.identity for poller in response.pollers]


def exit_now(code: int) -> NoReturn:
    """Exit without the interpreter's teardown.

    The Temporal client's Rust threads can outlive the event loop, and tearing
    the interpreter down under them sometimes aborts the process ("Fatal Python
    error: PyGILState_Release", exit code 134, temporalio/sdk-python#300) after
    the work was done. Flush what we printed, then leave at once.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
