"""A fresh lab VM, as a hosted-lab platform hands it over, made of a container.

The container runs its own Docker engine (this machine's engine refuses
`--privileged`, so it gets every capability it can have instead), starting
with no images; `/var/lib/docker` and `/workspace` (where the track puts the
lab) are tmpfs, gone with the container. Its
command plays the VM's boot: the engine starts, then the platform's bootstrap
flag appears, which the track setup waits for.
"""

from __future__ import annotations

import shlex
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

ROOT = Path(__file__).resolve().parents[2]

# What the platform's boot does: the engine, then the bootstrap flag once it answers.
BOOT = """
mkdir -p /opt/instruqt/bootstrap
dockerd >/var/log/dockerd.log 2>&1 &
until docker info >/dev/null 2>&1; do sleep 0.2; done
touch /opt/instruqt/bootstrap/host-bootstrap-completed
wait
"""


# On a failure: the lab's containers, and the end of each one's log.
POSTMORTEM = """
docker ps --all --format '{{.Names}}  {{.Status}}'
for name in $(docker ps --all --format '{{.Names}}'); do
  echo "--- $name"; docker logs --tail 15 "$name" 2>&1
done
"""


def vm_image() -> str:
    """The fresh VM's image (built from Debian's packages once, then cached)."""
    done = subprocess.run(
        [str(ROOT / "tests/hosted/vm-image.sh")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def docker(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout


@dataclass
class Run:
    """What a script did in the VM: its exit code, output and how long it took."""

    code: int
    stdout: str
    stderr: str
    seconds: float

    def __str__(self) -> str:
        return f"exit {self.code} after {self.seconds:.1f} s\n{self.stdout}\n{self.stderr}"


@dataclass
class FreshVM:
    """`with FreshVM(image, network="none") as vm:` a VM with nothing of the lab on it."""

    image: str
    network: str = "none"
    name: str = field(default_factory=lambda: f"crashlab-fresh-vm-{uuid.uuid4().hex[:8]}")

    def __enter__(self) -> Self:
        docker(
            "run", "--detach", "--name", self.name, "--hostname", "workshop-host",
            "--network", self.network,
            "--cap-add=ALL", "--cap-drop=SYS_RESOURCE",
            "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
            "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run",
            "--mount", "type=tmpfs,destination=/var/lib/docker,tmpfs-size=12g",
            # The VM's disk, where the lab goes: this engine mounts a container's own
            # root nodev, where debootstrap (make up with no registry) cannot make
            # the device nodes a real VM's disk allows.
            "--tmpfs", "/workspace:rw,exec,dev,size=8g",
            self.image, "bash", "-c", BOOT,
        )  # fmt: skip
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if error is not None:
            print(f"\nWhat ran in the VM when it failed:\n{self.sh(POSTMORTEM).stdout}")
        remove = ["docker", "rm", "--force", "--volumes", self.name]
        subprocess.run(remove, capture_output=True, check=False)

    def run(
        self, argv: Iterable[str], env: Mapping[str, str] | None = None, timeout: float = 600
    ) -> Run:
        """Runs a command as root with `env` alone: no profile, no PATH, as the platform does."""
        pairs = [f"{key}={value}" for key, value in (env or {}).items()]
        started = time.monotonic()
        try:
            done = subprocess.run(
                ["docker", "exec", self.name, "env", "-i", *pairs, *argv],
                capture_output=True, text=True, timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as late:
            out = late.stdout.decode() if isinstance(late.stdout, bytes) else (late.stdout or "")
            return Run(124, out, f"timed out after {timeout} s", time.monotonic() - started)
        return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    def sh(self, script: str, timeout: float = 120) -> Run:
        return self.run(["bash", "-c", script], {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, timeout)

    def copy_in(self, source: Path, target: str) -> None:
        self.sh(f"mkdir -p {shlex.quote(target)}")
        docker("cp", str(source), f"{self.name}:{target}", timeout=300)

    def put_tree(self, sources: Mapping[str, Path], target: str) -> None:
        """Copies folders in, each as `target/<name>` (the track's scripts, shipped)."""
        archive = ROOT / "build" / f"{self.name}-tree.tar"
        archive.parent.mkdir(exist_ok=True)
        with tarfile.open(archive, "w") as tar:
            for name, path in sources.items():
                tar.add(path, arcname=name)
        try:
            self.copy_in(archive, "/tmp")
            unpack = f"mkdir -p {target} && tar -C {target} -xf /tmp/{archive.name}"
            assert self.sh(unpack).code == 0
        finally:
            archive.unlink()
