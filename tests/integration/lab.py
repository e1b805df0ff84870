"""The whole lab as one object, started through testcontainers' DockerCompose.

Usable from any pytest suite::

    with Lab() as lab:
        lab.starter("transfer", "--amount", "100")
        lab.kill("worker")
        lab.start("worker")
        assert lab.balances()["43-812"] == 100

It runs its own Compose project (`crashlab-test` unless told otherwise) on
random free ports, so it never collides with a lab started by `make up`, and
deletes its volumes when it stops.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
from testcontainers.compose import DockerCompose

from bank.client import BankClient

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"

# Empty port variables publish on random free ports (see compose/compose.yaml).
_ENV = {
    "TEMPORAL_PORT": "",
    "TEMPORAL_UI_PORT": "",
    "TEMPORAL_UI_ALT_PORT": "",
    "BANK_PORT": "",
}


@dataclass
class Lab:
    project: str = "crashlab-test"
    compose: DockerCompose = field(init=False)

    def __post_init__(self) -> None:
        # DockerCompose runs `docker compose` with this process's environment.
        os.environ.update(_ENV, COMPOSE_PROJECT_NAME=self.project)
        self.compose = DockerCompose(
            context=COMPOSE_DIR,
            compose_file_name="compose.yaml",
            build=True,
            wait=True,
        )

    def __enter__(self) -> Lab:
        # The starter is a one-shot service outside the default profile, which
        # `up --build` would not build.
        self._compose("--profile", "tools", "build", "--quiet", "starter")
        self.compose.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._compose("--profile", "tools", "down", "--volumes", "--timeout", "2")

    # --- where things are -------------------------------------------------

    def url(self, service: str, port: int) -> str:
        host, published = self.compose.get_service_host_and_port(service, port)
        return f"http://{host}:{published}"

    @property
    def bank_url(self) -> str:
        return self.url("bank", 8000)

    @property
    def temporal_address(self) -> str:
        host, published = self.compose.get_service_host_and_port("temporal", 7233)
        return f"{host}:{published}"

    def bank(self) -> BankClient:
        return BankClient(self.bank_url)

    def balances(self) -> dict[str, int]:
        accounts = httpx.get(f"{self.bank_url}/accounts", timeout=5).json()["accounts"]
        return {a["id"]: a["balance"] for a in accounts}

    # --- levers -----------------------------------------------------------

    def starter(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Runs the one-shot starter container; never raises on its exit code."""
        return self._compose("run", "--rm", "starter", *args, check=False)

    def kill(self, service: str) -> None:
        """SIGKILL, as `docker kill` does: no shutdown code runs."""
        self._compose("kill", "--signal", "SIGKILL", service)

    def stop(self, service: str) -> None:
        self._compose("stop", service)

    def start(self, service: str) -> None:
        """Starts a stopped or killed service and waits until it is healthy."""
        self._compose("up", "--detach", "--wait", "--no-deps", service)

    def logs(self, service: str) -> str:
        return self._compose("logs", "--no-color", service).stdout

    def _compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd: Sequence[str] = [*self.compose.compose_command_property, *args]
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=COMPOSE_DIR)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result
