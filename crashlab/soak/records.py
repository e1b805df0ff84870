"""What happened during a soak: a record per fault and per transfer, and the whole result."""

from __future__ import annotations

from dataclasses import dataclass, field

from crashlab.soak.plan import FaultSpec, SoakConfig, TransferSpec


@dataclass
class FaultRecord:
    spec: FaultSpec
    started: float | None = None  # seconds since the soak began; None: never injected
    injected: float | None = None  # the lever in place (a kill or a restart takes time)
    undone: float | None = None  # when the lever was put back
    ended: float | None = None  # every service healthy again
    recovery: float | None = None  # undone -> the next transfer finishing
    error: str | None = None
    in_flight: int = 0  # transfers started and not ended when it struck
    burst: int = 0  # transfers started just before it struck


@dataclass
class TransferRecord:
    spec: TransferSpec
    started: float | None = None
    ended: float | None = None  # when this machine heard the workflow had ended
    status: str = "not started"  # running, completed, failed, terminated, ..., unknown
    outcome: str | None = None  # the ledger's verdict
    start_attempts: int = 0
    message: str = ""  # the workflow's failure, for people
    accepted: float | None = None  # when Temporal accepted the start

    @property
    def finished(self) -> bool:
        return self.status not in ("not started", "running", "unknown")


@dataclass
class Trace:
    """What the observers saw over time, for the report's timeline (build/soak.html)."""

    money: list[tuple[float, int]] = field(default_factory=list)  # (seconds, total of balances)
    checks: list[tuple[float, int]] = field(default_factory=list)  # (seconds, violations seen)


@dataclass
class Invariant:
    name: str
    checks: int = 0
    violations: int = 0
    first_violation: str | None = None

    def record(self, problem: str | None) -> None:
        self.checks += 1
        if problem:
            self.violations += 1
            if self.first_violation is None:
                self.first_violation = problem

    @property
    def verdict(self) -> str:
        if self.violations:
            return "violated"
        return "held" if self.checks else "not checked"


@dataclass
class SoakResult:
    project: str
    config: SoakConfig
    run_id: str = ""
    started_at: str = ""
    seconds: float = 0.0
    transfers: list[TransferRecord] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    invariants: list[Invariant] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    peak_in_flight: int = 0
    trace: Trace = field(default_factory=Trace)
