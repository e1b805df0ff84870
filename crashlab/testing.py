"""The whole lab for a pytest suite: started through testcontainers, torn down after.

    with Lab() as lab:
        lab.kill("worker")
        lab.start("worker")
        report = await check_bank(lab.bank(), settled=True)

It is a `Stack` (every lever works on it) in its own Compose project on
random free ports, so it never collides with a lab started by `make up`, and
its volumes are deleted when it stops. `Lab(env={"BANK_CONTROL_TOKEN": "..."})`
starts its bank as an exposed lab's, whose fault switch needs that token; the
lab's own bank clients (`lab.bank()`, the levers) send it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from testcontainers.compose import DockerCompose

from crashlab.stack import COMPOSE_FILE, Stack

# Empty port variables publish on random free ports (see compose/compose.yaml).
RANDOM_PORTS = {
    "TEMPORAL_PORT": "",
    "TEMPORAL_UI_PORT": "",
    "TEMPORAL_UI_ALT_PORT": "",
    "BANK_PORT": "",
}


@dataclass
class Lab(Stack):
    project: str = "crashlab-test"
    compose_env: DockerCompose = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.env = {**RANDOM_PORTS, **self.env, "COMPOSE_PROJECT_NAME": self.project}
        # testcontainers passes settings to `docker compose` as an env file.
        env_file = Path(tempfile.mkdtemp(prefix="crashlab-")) / "lab.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in self.env.items()))
        self.compose_env = DockerCompose(
            context=COMPOSE_FILE.parent,
            compose_file_name=COMPOSE_FILE.name,
            env_file=str(env_file),
            build=True,
            wait=True,
        )

    def __enter__(self) -> Lab:
        # The starter is a one-shot service outside the default profile, which
        # `up --build` would not build.
        self.compose("--profile", "tools", "build", "--quiet", "starter")
        # The link-fault tool (make link, the soak) is built beside the services' images. A
        # lab that cannot build it still starts: only its link levers say it is missing.
        self._run([str(COMPOSE_FILE.parent / "link" / "build-link.sh")], False)
        self.compose_env.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.compose("--profile", "tools", "down", "--volumes", "--timeout", "2")
