"""A running lab as one object: where its services are, and the levers that break them.

`Stack` drives any Compose project of the lab through the `docker` command
line: the learner's (`make up`, project `crashlab`) or a test's. Every lever is
a real Docker operation: SIGKILL, `docker pause`, a network disconnect.

It also keeps the lab's control token: the one an exposed lab's fault switch needs
(see `control_token_for_up`), which every bank client made here sends.
"""

from __future__ import annotations

import functools
import json
import os
import random
import secrets
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from temporalio.client import Client

from bank.client import BankClient
from bank.exposure import is_exposed
from crashlab import BUILD_DIR, LAB_HOME
from crashlab.constants import (  # re-exported: crashlab.stack is where older code finds them
    BANK_PORT,
    DEFAULT_PROJECT,
    SERVICES,
    TEMPORAL_PORT,
    TEMPORAL_UI_PORT,
)

__all__ = [
    "BANK_PORT",
    "COMPOSE_FILE",
    "DEFAULT_PROJECT",
    "ROOT",
    "SERVICES",
    "TEMPORAL_PORT",
    "TEMPORAL_UI_PORT",
    "TOKEN_FILE",
    "Container",
    "Stack",
    "StackError",
    "control_token_for_up",
    "saved_token",
]

ROOT = LAB_HOME
COMPOSE_FILE = ROOT / "compose" / "compose.yaml"
# Where `make up` keeps the control token of an exposed lab, for later commands.
TOKEN_FILE = BUILD_DIR / "bank-control-token"


def saved_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The control token the host's tools send: LAB_TOKEN, else the one `make up` saved."""
    environ = os.environ if environ is None else environ
    if environ.get("LAB_TOKEN", "").strip():
        return environ["LAB_TOKEN"].strip()
    try:
        return TOKEN_FILE.read_text().strip() or None
    except FileNotFoundError:
        return None


def control_token_for_up(environ: Mapping[str, str] | None = None) -> str | None:
    """The token `make up` gives the bank (BANK_CONTROL_TOKEN), or None for no token.

    LAB_TOKEN when the user set one; otherwise, for a lab exposed by LAB_BIND_ADDRESS,
    the token saved by an earlier `make up` or a new one. The token in use is saved in
    TOKEN_FILE (mode 600), where the levers and the soak find it later. A lab published
    on 127.0.0.1 only gets no token: nothing changes for learners.
    """
    environ = os.environ if environ is None else environ
    token = environ.get("LAB_TOKEN", "").strip() or None
    if token is None and not is_exposed(environ.get("LAB_BIND_ADDRESS")):
        return None
    if token is None:
        token = saved_token({}) or secrets.token_urlsafe(24)
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    # Created 600 from the start, so the token is never readable by others, not even briefly.
    fd = os.open(TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    os.chmod(TOKEN_FILE, 0o600)  # in case an older file had other bits
    return token


class StackError(Exception):
    """A lever could not be pulled; the message says why and what to do."""


@dataclass
class Container:
    id: str
    name: str
    service: str
    state: str  # running, paused, exited, ...
    health: str  # healthy, unhealthy, starting, or "" without a healthcheck
    exit_code: int

    @property
    def killed(self) -> bool:
        # SIGKILL shows as exit code 137 (128 + 9).
        return self.state == "exited" and self.exit_code == 137


@dataclass
class Stack:
    project: str = DEFAULT_PROJECT
    # Extra environment for `docker compose` (ports, WORKER_SOURCE...).
    env: Mapping[str, str] = field(default_factory=dict)
    # Compose files on top of the lab's (a test suite's own workers: crashlab.testing).
    extra_files: tuple[Path, ...] = ()

    # --- docker -----------------------------------------------------------

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        files = [arg for path in (COMPOSE_FILE, *self.extra_files) for arg in ("-f", str(path))]
        return self._run(["docker", "compose", *files, "-p", self.project, *args], check)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A `docker` command (the link faults' helpers are plain containers, not Compose's)."""
        return self._run(["docker", *args], check)

    def _run(
        self, cmd: list[str], check: bool, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            env={**os.environ, **self.env, **(env or {})},
            check=False,
        )
        if check and result.returncode != 0:
            raise StackError(
                f"`{' '.join(cmd)}` failed:\n{(result.stderr or result.stdout).strip()}"
            )
        return result

    def containers(self, service: str | None = None) -> list[Container]:
        """Every container of the project (or of one service), running or not."""
        out = self.compose("ps", "--all", "--format", "json", *([service] if service else []))
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        return sorted(
            (
                Container(
                    id=row["ID"],
                    name=row["Name"],
                    service=row["Service"],
                    state=row["State"],
                    health=row.get("Health", ""),
                    exit_code=int(row.get("ExitCode", 0)),
                )
                for row in rows
            ),
            key=lambda c: c.name,
        )

    def _one_or_all(self, service: str, which: str) -> list[Container]:
        """The containers a lever acts on: all of them, one at random, or one by number."""
        self._check_service(service)
        found = self.containers(service)
        if not found:
            raise StackError(
                f"No {service} container exists in project {self.project}: "
                "is the lab up? (`make up`)"
            )
        if which == "all":
            return found
        if which == "random":
            return [random.choice(found)]
        by_number = [c for c in found if c.name.endswith(f"-{which}")]
        if not by_number:
            names = ", ".join(c.name for c in found)
            raise StackError(f"No {service} container number {which}; there are: {names}.")
        return by_number

    def _check_service(self, service: str) -> None:
        # A test suite's own workers (extra_files) are services of the lab too.
        if service not in SERVICES and not (self.extra_files and service in self._networks):
            raise StackError(
                f"Unknown service {service!r}. The lab's services are: {', '.join(SERVICES)}."
            )

    # --- where things are -------------------------------------------------

    def published(self, service: str, port: int) -> str:
        """host:port where this machine reaches a service's port.

        The UI is published twice (8080 and 8233): the lower port is the one
        the README and the hosted lab name.
        """
        out = self.compose("ps", "--format", "json", service, check=False)
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        found = sorted(
            (p["PublishedPort"], p["URL"])
            for row in rows
            for p in row.get("Publishers") or []
            if p["TargetPort"] == port and p["PublishedPort"]
        )
        if not found:
            raise StackError(
                f"The {service} service publishes no port {port} in project {self.project}: "
                "is the lab up? (`make up`)"
            )
        published, host = found[0]
        return f"{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{published}"

    @property
    def bank_url(self) -> str:
        return f"http://{self.published('bank', BANK_PORT)}"

    @property
    def temporal_address(self) -> str:
        return self.published("temporal", TEMPORAL_PORT)

    @property
    def ui_url(self) -> str:
        return f"http://{self.published('temporal', TEMPORAL_UI_PORT)}"

    def workflow_url(self, workflow_id: str) -> str:
        return f"{self.ui_url}/namespaces/default/workflows/{workflow_id}"

    @property
    def token(self) -> str | None:
        """The control token to send the bank: the one this lab was started with
        (BANK_CONTROL_TOKEN in ``env``), else LAB_TOKEN or the one `make up` saved.
        A bank that needs none ignores it."""
        return self.env.get("BANK_CONTROL_TOKEN", "").strip() or saved_token()

    def bank(self, timeout: float = 5.0) -> BankClient:
        return BankClient(self.bank_url, timeout=timeout, token=self.token)

    async def temporal(self) -> Client:
        return await Client.connect(self.temporal_address)

    def balances(self) -> dict[str, int]:
        accounts = httpx.get(f"{self.bank_url}/accounts", timeout=5).json()["accounts"]
        return {a["id"]: a["balance"] for a in accounts}

    def starter(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Runs the one-shot starter container; never raises on its exit code."""
        return self.compose("run", "--rm", "--no-deps", "starter", *args, check=False)

    # --- levers -----------------------------------------------------------

    def kill(self, service: str, which: str = "all") -> list[Container]:
        """SIGKILL, as `docker kill` does: the process gets no chance to clean up."""
        targets = self._one_or_all(service, which)
        running = [c for c in targets if c.state in ("running", "paused")]
        if not running:
            raise StackError(f"No {service} container is running: nothing to kill.")
        self._run(["docker", "kill", "--signal", "SIGKILL", *(c.id for c in running)], True)
        return running

    def start(self, service: str, *, wait: bool = True, timeout: float = 60) -> list[Container]:
        """Starts the service's stopped or killed containers, and waits until healthy."""
        targets = [
            c for c in self._one_or_all(service, "all") if c.state in ("exited", "created", "dead")
        ]
        if targets:
            self._run(["docker", "start", *(c.id for c in targets)], True)
        if wait:
            self.wait_healthy(service, timeout=timeout)
        return targets

    def stop(self, service: str) -> None:
        """A graceful stop (SIGTERM): the worker tells Temporal it is leaving."""
        self._check_service(service)
        self.compose("stop", service)

    def pause(self, service: str, which: str = "all") -> list[Container]:
        """Freezes the processes (`docker pause`): connections stay open, nothing answers."""
        targets = [c for c in self._one_or_all(service, which) if c.state == "running"]
        if not targets:
            raise StackError(f"No running {service} container to pause.")
        self._run(["docker", "pause", *(c.id for c in targets)], True)
        return targets

    def unpause(self, service: str) -> list[Container]:
        targets = [c for c in self._one_or_all(service, "all") if c.state == "paused"]
        if targets:
            self._run(["docker", "unpause", *(c.id for c in targets)], True)
        return targets

    @functools.cached_property
    def _networks(self) -> dict[str, list[str]]:
        """Each service's networks (their Docker names), from the Compose file."""
        out = self.compose("--profile", "tools", "config", "--format", "json")
        config = json.loads(out.stdout)
        names = {key: net.get("name", key) for key, net in config.get("networks", {}).items()}
        return {
            service: sorted(names[key] for key in (spec.get("networks") or {}))
            for service, spec in config["services"].items()
        }

    def links(self, service: str) -> list[str]:
        """The networks a disconnect cuts: those the service shares with another service.

        The bank keeps `control`, its side facing the host, which nothing else is on: the
        learner still sees its page and ledger while the worker cannot reach it.
        """
        self._check_service(service)
        networks = self._networks
        return [
            net
            for net in networks.get(service, [])
            if any(net in theirs for other, theirs in networks.items() if other != service)
        ]

    def disconnect(self, service: str, which: str = "all") -> list[Container]:
        """Cuts the cables: the containers leave every network they share with another
        service, and every connection over them breaks."""
        targets = [c for c in self._one_or_all(service, which) if c.state == "running"]
        if not targets:
            raise StackError(f"No running {service} container to disconnect.")
        for c in targets:
            attached = self._attached(c)
            for net in self.links(service):
                if net in attached:
                    self._run(["docker", "network", "disconnect", net, c.id], True)
        return targets

    def reconnect(self, service: str) -> list[Container]:
        """Plugs the cables back in, under the service's name so the others find it again."""
        targets = self._one_or_all(service, "all")
        for c in targets:
            attached = self._attached(c)
            for net in self.links(service):
                if net not in attached:
                    self._run(["docker", "network", "connect", "--alias", service, net, c.id], True)
        return targets

    def is_connected(self, container: Container) -> bool:
        """On every network its service shares with the others."""
        attached = self._attached(container)
        return all(net in attached for net in self.links(container.service))

    def addresses(self, container: Container) -> dict[str, str]:
        """The container's IPv4 address on each network it is attached to."""
        out = self._run(
            ["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", container.id],
            True,
        )
        networks = json.loads(out.stdout or "{}") or {}
        return {net: spec["IPAddress"] for net, spec in networks.items() if spec.get("IPAddress")}

    def networks_of(self, service: str) -> list[str]:
        """The networks the Compose file puts a service on (their Docker names)."""
        return self._networks.get(service, [])

    def _attached(self, container: Container) -> set[str]:
        out = self._run(
            ["docker", "inspect", "--format", "{{json .NetworkSettings.Networks}}", container.id],
            True,
        )
        return set(json.loads(out.stdout or "{}") or {})

    def wait_healthy(self, service: str, *, timeout: float = 60) -> None:
        """Waits until every container of the service runs and passes its healthcheck."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.containers(service)
            if found and all(c.state == "running" and c.health in ("healthy", "") for c in found):
                return
            if time.monotonic() > deadline:
                states = ", ".join(f"{c.name}: {c.state} {c.health}".strip() for c in found)
                raise StackError(
                    f"{service} did not become healthy within {timeout:.0f} s ({states}). "
                    f"See `docker compose -p {self.project} logs {service}`."
                )
            time.sleep(0.2)
