"""The whole lab for a test suite: started through testcontainers, torn down after.

    with Lab() as lab:
        lab.kill("worker")
        lab.start("worker")
        assert lab.ledger().ok

It is a `Stack` (every lever works on it) in its own Compose project on free ports, so
it never collides with a lab started by `make up`, and its volumes are deleted when it
stops. The pytest plugin (crashlab.pytest_plugin) hands one out as the `crashlab`
fixture; this class is the same thing for any other harness.

A suite can put workers of its own into the lab (`OwnWorker`): a Compose service of
the lab's project, on the networks the lab's worker is on, so every lever acts on it
by its name. `lab_worker=False` leaves the lab's own worker out.

`Lab(env={"BANK_CONTROL_TOKEN": "..."})` starts its bank as an exposed lab's, whose
fault switch needs that token; the lab's own bank clients (`lab.bank()`, the levers)
send it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from testcontainers.compose import DockerCompose

from bank.models import Fault, FaultMode
from crashlab import BUILD_DIR
from crashlab.constants import AMOUNT, SERVICES, SOURCE, TARGET
from crashlab.invariants import LedgerReport, check_bank
from crashlab.levers import BankFault, Lever
from crashlab.stack import COMPOSE_FILE, Stack, StackError
from crashlab.temporal import connect_temporal
from crashlab.transfers import ledger_after, start_transfer
from worker.shared import PaymentDetails, idempotency_key

T = TypeVar("T")

# The ports compose/compose.yaml publishes, each set by one variable.
PORT_VARIABLES = ("TEMPORAL_PORT", "TEMPORAL_UI_PORT", "TEMPORAL_UI_ALT_PORT", "BANK_PORT")


def free_ports() -> dict[str, str]:
    """A free port of this machine for each of the lab's published ports.

    Chosen here rather than left to Docker (an empty variable): Docker gives a container
    a new random port each time it starts, so a client of a lab whose Temporal was killed
    and started again would be calling a port nobody listens on any more.
    """
    sockets = [socket.socket() for _ in PORT_VARIABLES]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return {
            name: str(s.getsockname()[1]) for name, s in zip(PORT_VARIABLES, sockets, strict=True)
        }
    finally:
        for s in sockets:
            s.close()


# The images the lab's Compose file builds, each labelled with the hash of its inputs
# (compose/bundle/inputs.sh), so a lab whose images are current starts with no build.
BUILT_SERVICES = ("temporal", "bank", "worker", "starter")
IMAGE_SCRIPTS = ("base/build-base.sh", "runtime/build-runtime.sh", "link/build-link.sh")


@dataclass
class OwnWorker:
    """A worker of the suite's own, in any language, run as a service of the lab.

    Give `build` (a directory with a Dockerfile) or `image`. It joins the networks the
    lab's worker is on, and finds Temporal and the bank the same way: TEMPORAL_ADDRESS
    (temporal:7233) and BANK_URL (http://bank:8000, the teller API) are set for it.
    """

    name: str
    build: str | Path | None = None
    image: str | None = None
    command: Sequence[str] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)

    def service(self, networks: Sequence[str]) -> dict[str, Any]:
        if (self.build is None) == (self.image is None):
            raise StackError(f"Own worker {self.name!r}: give either build= or image=, not both.")
        spec: dict[str, Any] = {
            "environment": {
                "TEMPORAL_ADDRESS": "temporal:7233",
                "BANK_URL": "http://bank:8000",
                **self.environment,
            },
            "networks": list(networks),
            "depends_on": {
                "temporal": {"condition": "service_healthy"},
                "bank": {"condition": "service_healthy"},
            },
            # A worker that does not drain its activities on SIGTERM still stops quickly.
            "stop_grace_period": "5s",
        }
        if self.build is not None:
            spec["build"] = {"context": str(Path(self.build).resolve())}
            spec["image"] = f"crashlab-own/{self.name}:{os.environ.get('LAB_IMAGE_TAG', 'latest')}"
        else:
            spec["image"] = self.image
        if self.command is not None:
            spec["command"] = list(self.command)
        return spec


@dataclass
class LabConfig:
    """What goes into a test session's lab: return one from a `crashlab_config` fixture."""

    workers: Sequence[OwnWorker] = ()
    # False: the suite's workers alone poll the lab's task queues.
    lab_worker: bool = True
    # Extra settings for Compose (BANK_CONTROL_TOKEN, WORKER_SOURCE...).
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Lab(Stack):
    project: str = "crashlab-test"
    # Workers of the suite's own, and whether the lab's worker runs beside them.
    workers: Sequence[OwnWorker] = ()
    lab_worker: bool = True
    compose_env: DockerCompose = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.env = {**free_ports(), **self.env, "COMPOSE_PROJECT_NAME": self.project}
        workdir = Path(tempfile.mkdtemp(prefix="crashlab-"))
        # testcontainers passes settings to `docker compose` as an env file.
        env_file = workdir / "lab.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        files = [COMPOSE_FILE.name]
        if self.workers or not self.lab_worker:
            own = workdir / "own-workers.yaml"
            own.write_text(json.dumps(self._override(), indent=2))  # JSON is YAML
            self.extra_files = (*self.extra_files, own)
            files.append(str(own))
        self.compose_env = DockerCompose(
            context=COMPOSE_FILE.parent,
            compose_file_name=files,
            env_file=str(env_file),
            build=False,
            wait=True,
        )

    def _override(self) -> dict[str, Any]:
        networks = ["temporal", "bank"]  # the lab's worker's (compose/compose.yaml)
        services: dict[str, Any] = {w.name: w.service(networks) for w in self.workers}
        clash = {w.name for w in self.workers} & {*SERVICES, "starter"}
        if clash:
            raise StackError(
                f"Own worker name {', '.join(sorted(clash))} is a lab service's: pick another."
            )
        if not self.lab_worker:
            # No container of it: the suite's workers alone poll the lab's task queues.
            services["worker"] = {"scale": 0}
        return {"services": services}

    def __repr__(self) -> str:
        return f"Lab(project={self.project!r})"

    # --- up and down ------------------------------------------------------

    def __enter__(self) -> Lab:
        self.build()
        self.compose_env.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def down(self) -> None:
        """Stops the lab and deletes its volumes. Everything in the project is the lab's:
        --remove-orphans also takes workers a run added that this object was not told of."""
        self.compose(
            "--profile", "tools", "down", "--volumes", "--remove-orphans", "--timeout", "2"
        )

    def build(self) -> None:
        """Builds what is not current: nothing at all when every image matches its inputs."""
        if not self.images_current():
            for script in IMAGE_SCRIPTS:
                # The link-fault tool is optional: a lab that cannot build it still starts,
                # and only its link levers say it is missing.
                self._run(
                    ["bash", str(COMPOSE_FILE.parent / script)],
                    check=not script.startswith("link/"),
                    env=self._build_env(),
                )
            # Compose labels each image with its inputs (compose.yaml: lab.inputs).
            self.env = {**self.env, "LAB_INPUTS": self._inputs()}
            self.compose("--profile", "tools", "build", "--quiet", *BUILT_SERVICES)
        own = [w.name for w in self.workers if w.build is not None]
        if own:
            self.compose("build", "--quiet", *own)

    def images_current(self) -> bool:
        inputs = self._inputs()
        tag = os.environ.get("LAB_IMAGE_TAG", "latest")
        refs = [f"crashlab/{service}:{tag}" for service in BUILT_SERVICES]
        found = self.docker(
            "image", "inspect", "-f", '{{index .Config.Labels "lab.inputs"}}', *refs, check=False
        )
        labels = found.stdout.split()
        return found.returncode == 0 and len(labels) == len(refs) and set(labels) == {inputs}

    def _inputs(self) -> str:
        script = COMPOSE_FILE.parent / "bundle" / "inputs.sh"
        return self._run(["bash", str(script)], check=True).stdout.strip()

    def _build_env(self) -> dict[str, str]:
        # The scripts download wheels with this Python's pip, and stage in BUILD_DIR:
        # an installed lab has no .venv beside it and must not write into site-packages.
        return {"LAB_PYTHON": sys.executable, "LAB_BUILD_DIR": str(BUILD_DIR)}

    @classmethod
    def attach(
        cls,
        project: str,
        *,
        workers: Sequence[OwnWorker] = (),
        lab_worker: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> Lab:
        """The lab already running in `project` (`make up`'s, or one a test run kept)."""
        lab = cls(project=project, workers=workers, lab_worker=lab_worker, env=env or {})
        if not any(c.state == "running" for c in lab.containers()):
            raise StackError(
                f"No lab is running in Compose project {project!r}. Start one (`make up`), "
                "or run without --crashlab-reuse to start a lab for the tests."
            )
        if lab.workers:
            # Workers of the suite's own join the running lab (a no-op if they are there).
            lab.build()
            names = [w.name for w in lab.workers]
            lab.compose("up", "--detach", "--wait", "--no-deps", *names)
        return lab

    # --- for a test -------------------------------------------------------

    def pull(self, lever: Lever) -> list[str]:
        """Pulls any lever of the catalogue (crashlab.levers), from sync or async code."""
        return run_sync(lambda: lever.pull(self))

    def undo(self, lever: Lever) -> list[str]:
        return run_sync(lambda: lever.undo(self))

    def fault(
        self,
        operation: str,
        mode: str,
        *,
        rate: float = 1.0,
        latency_ms: int = 0,
        jitter_ms: int = 0,
    ) -> None:
        """Sets the bank's fault switch on withdraw, deposit or all (see `crashlab fault`)."""
        fault = Fault(mode=FaultMode(mode), rate=rate, latency_ms=latency_ms, jitter_ms=jitter_ms)
        self.pull(BankFault(operation, fault))

    def clear_faults(self) -> None:
        self.undo(BankFault("all", Fault(mode=FaultMode.ERROR)))

    def ledger(self, *, settled: bool = True) -> LedgerReport:
        """The ledger's verdict: money conserved, nothing negative, no step twice, every
        transfer whole. `settled`: nothing may still be in flight."""
        return run_sync(lambda: asyncio.run(self._ledger(settled)))

    async def _ledger(self, settled: bool) -> LedgerReport:
        async with self.bank() as bank:
            return await check_bank(bank, settled=settled)

    def transfer(
        self,
        reference_id: str,
        *,
        source: str = SOURCE,
        target: str = TARGET,
        amount: int = AMOUNT,
        wait: bool = True,
        timeout: float = 60,
    ) -> str:
        """Starts a transfer on the lab's task queue, as the tutorial's starter does; with
        `wait`, returns its result (else its workflow id at once)."""
        details = PaymentDetails(source, target, amount, reference_id)
        return run_sync(lambda: asyncio.run(self._transfer(details, wait, within=timeout)))

    async def _transfer(self, details: PaymentDetails, wait: bool, *, within: float) -> str:
        client = await connect_temporal(self.temporal_address)
        handle = await start_transfer(client, details)
        return await asyncio.wait_for(handle.result(), within) if wait else handle.id

    def wait_for_step(self, reference_id: str, step: str, *, timeout: float = 30) -> None:
        """Waits until the ledger shows a transfer's step (withdraw, deposit, refund)."""
        key = idempotency_key(reference_id, step)
        deadline = time.monotonic() + timeout
        while not run_sync(lambda: asyncio.run(self._moved(key))):
            if time.monotonic() > deadline:
                raise StackError(
                    f"Transfer {reference_id}'s {step} did not happen in {timeout:g} s."
                )
            time.sleep(0.1)

    async def _moved(self, key: str) -> bool:
        async with self.bank() as bank:
            return any(m.idempotency_key == key for m in await ledger_after(bank))

    def wait_settled(self, *, timeout: float = 60) -> LedgerReport:
        """Waits until no transfer is in flight, then returns the ledger's verdict."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.ledger(settled=False)
            if report.in_flight == 0 or time.monotonic() > deadline:
                return self.ledger(settled=True)
            time.sleep(0.2)


def run_sync(action: Callable[[], T]) -> T:
    """Runs blocking code that may call asyncio.run, also from inside a running event
    loop (an async test): there, in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return action()
    box: list[T] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            box.append(action())
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]
