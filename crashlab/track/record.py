"""When a challenge began, and what Docker did to the lab's containers since.

A challenge's setup writes its start time (the window), and starts a recorder:
`docker events` for the lab's Compose project, appended to a file. Docker keeps
only its last few hundred events in memory, and a lab's healthchecks alone make
a dozen a second, so `docker events --since` cannot say ten minutes later
whether the worker was killed or stopped; the recorder's file can.

The recorder runs as a transient systemd unit where systemd runs (a hosted VM:
it outlives the setup script), otherwise as a process of its own session.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from crashlab import BUILD_DIR

# Only what the checks ask about: a crash (kill, die with its exit code), a graceful
# stop, a start, a pause. Healthcheck exec events would be a dozen lines a second.
RECORDED_ACTIONS = ("kill", "die", "stop", "start", "pause", "unpause")


def track_dir(project: str) -> Path:
    return BUILD_DIR / "track" / project


# --- the challenge's window -----------------------------------------------------------


def begin(project: str, challenge: str, now: datetime | None = None) -> datetime:
    """Marks the challenge as started now; its check looks only at what happens after."""
    started = now or datetime.now(UTC)
    path = track_dir(project) / f"{challenge}.started"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(started.isoformat() + "\n")
    return started


def window_start(project: str, challenge: str) -> datetime | None:
    """When the challenge's setup finished, or None if it never ran here."""
    try:
        return datetime.fromisoformat(
            (track_dir(project) / f"{challenge}.started").read_text().strip()
        )
    except (FileNotFoundError, ValueError):
        return None


# --- Docker's record -------------------------------------------------------------------


@dataclass(frozen=True)
class DockerEvent:
    at: datetime
    action: str  # kill, die, stop, start, pause, unpause
    service: str  # the Compose service: worker, temporal, bank
    container_id: str
    exit_code: int | None  # for die
    signal: str | None  # for kill: "9", "SIGKILL", "15"...

    @property
    def is_crash(self) -> bool:
        """The process ended without its shutdown code: SIGKILL (exit 137)."""
        if self.action == "die":
            return self.exit_code == 137
        return self.action == "kill" and self.signal in ("9", "SIGKILL", "KILL")


@dataclass
class Recorder:
    project: str

    @property
    def events_file(self) -> Path:
        return track_dir(self.project) / "docker-events.jsonl"

    @property
    def _meta_file(self) -> Path:
        return track_dir(self.project) / "recorder.json"

    @property
    def unit(self) -> str:
        return f"crashlab-track-events-{self.project}"

    def command(self) -> list[str]:
        cmd = ["docker", "events", "--format", "{{json .}}", "--filter", "type=container"]
        cmd += ["--filter", f"label=com.docker.compose.project={self.project}"]
        for action in RECORDED_ACTIONS:
            cmd += ["--filter", f"event={action}"]
        return cmd

    def since(self) -> datetime | None:
        """When the running recorder started; None when none runs."""
        try:
            meta = json.loads(self._meta_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if not self._alive(meta):
            return None
        return datetime.fromisoformat(meta["since"])

    def ensure(self) -> datetime:
        """Starts the recorder unless it runs; returns since when it records."""
        running = self.since()
        if running is not None:
            return running
        self.events_file.parent.mkdir(parents=True, exist_ok=True)
        since = datetime.now(UTC)
        docker = shutil.which("docker") or "docker"
        cmd = [docker, *self.command()[1:]]
        if _systemd_runs():
            subprocess.run(
                ["systemctl", "reset-failed", self.unit], capture_output=True, check=False
            )
            subprocess.run(
                [
                    "systemd-run", "--quiet", "--collect", f"--unit={self.unit}",
                    f"--property=StandardOutput=append:{self.events_file}", *cmd,
                ],
                check=True,
                capture_output=True,
            )  # fmt: skip
            meta: dict[str, object] = {"unit": self.unit}
        else:
            with self.events_file.open("ab") as out:
                # Its own session, and none of the caller's pipes: the setup script that
                # starts it returns at once, and it records until the lab goes away.
                process = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            meta = {"pid": process.pid}
        meta["since"] = since.isoformat()
        self._meta_file.write_text(json.dumps(meta) + "\n")
        return since

    def stop(self) -> None:
        """Stops the recorder (a test's lab is going away)."""
        try:
            meta = json.loads(self._meta_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        if "unit" in meta:
            subprocess.run(
                ["systemctl", "stop", str(meta["unit"])], capture_output=True, check=False
            )
        elif self._alive(meta):
            os.kill(int(meta["pid"]), signal.SIGTERM)
        self._meta_file.unlink(missing_ok=True)

    def events(self, since: datetime) -> list[DockerEvent]:
        """Every recorded event from ``since`` on, oldest first."""
        try:
            lines = self.events_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        found = []
        for line in lines:
            try:
                raw = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash of the recorder
            at = datetime.fromtimestamp(int(raw.get("timeNano", 0)) / 1e9, UTC)
            if at < since:
                continue
            attributes = raw.get("Actor", {}).get("Attributes", {})
            exit_code = attributes.get("exitCode")
            found.append(
                DockerEvent(
                    at=at,
                    action=str(raw.get("Action") or raw.get("status")),
                    service=str(attributes.get("com.docker.compose.service", "")),
                    container_id=str(raw.get("Actor", {}).get("ID") or raw.get("id", "")),
                    exit_code=int(exit_code) if exit_code is not None else None,
                    signal=attributes.get("signal"),
                )
            )
        return sorted(found, key=lambda e: e.at)

    def _alive(self, meta: dict[str, object]) -> bool:
        if "unit" in meta:
            state = subprocess.run(
                ["systemctl", "is-active", str(meta["unit"])], capture_output=True, text=True
            )
            return state.stdout.strip() == "active"
        pid = int(str(meta.get("pid", 0)))
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"events" in cmdline and b"docker" in cmdline


def _systemd_runs() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemd-run") is not None
