"""The chaos soak's pure parts (crashlab.soak): the seeded plan, the verdicts and the report.

The soak itself runs on the real stack in tests/integration/test_soak.py.
"""

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.failure.v1 import Failure, TimeoutFailureInfo
from temporalio.api.history.v1 import (
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
    WorkflowTaskTimedOutEventAttributes,
)

from bank.ledger import SEED_ACCOUNTS
from bank.models import Movement, Operation
from crashlab import soak
from crashlab.invariants import COMPENSATED, COMPLETED, REJECTED
from crashlab.levers import LinkFault
from crashlab.soak import (
    ACCOUNTS,
    AS_EXPECTED,
    FAULT_KINDS,
    NO_NEGATIVE_READ,
    FaultRecord,
    FaultSpec,
    SoakConfig,
    SoakError,
    SoakResult,
    TransferRecord,
    TransferSpec,
    fresh_invariants,
)
from crashlab.soak.clock import Timeline
from crashlab.soak.settle import timeouts_in
from crashlab.soak.verdict import TIMEOUT_AFTER_FAULT, check_timeouts

BALANCES = dict(SEED_ACCOUNTS)

# --- the fault schedule ------------------------------------------------------------------


def test_the_same_seed_gives_the_same_schedule() -> None:
    first = soak.make_schedule(42, FAULT_KINDS, 30, workers=3)
    again = soak.make_schedule(42, FAULT_KINDS, 30, workers=3)
    assert first == again
    assert len(first.faults) == 30
    assert soak.make_schedule(43, FAULT_KINDS, 30, workers=3) != first


def test_the_cli_options_make_the_same_schedule_as_the_config() -> None:
    args = soak.parser().parse_args(["--seed", "5", "--transfers", "90", "--workers", "3"])
    config = soak.config_from(args)
    assert len(FAULT_KINDS) > 9
    assert config.faults == len(FAULT_KINDS)  # transfers / 10 = 9, one of each kind anyway
    assert config.schedule() == soak.make_schedule(5, FAULT_KINDS, len(FAULT_KINDS), workers=3)


@pytest.mark.parametrize("seed", range(20))
def test_every_requested_kind_comes_once_before_any_repeats(seed: int) -> None:
    schedule = soak.make_schedule(seed, FAULT_KINDS, 25, workers=2)
    kinds = [f.kind for f in schedule.faults]
    assert sorted(kinds[: len(FAULT_KINDS)]) == sorted(FAULT_KINDS)
    assert set(kinds) == set(FAULT_KINDS)


def test_only_the_requested_kinds_are_scheduled() -> None:
    asked = ("bank-kill", "bank-drop")
    schedule = soak.make_schedule(1, asked, 10, workers=2)
    assert {f.kind for f in schedule.faults} == set(asked)
    assert soak.make_schedule(1, (), 10, workers=2).faults == ()
    assert soak.make_schedule(1, FAULT_KINDS, 0, workers=2).faults == ()


def test_fewer_faults_than_kinds_are_all_different() -> None:
    schedule = soak.make_schedule(9, FAULT_KINDS, 4, workers=2)
    assert len({f.kind for f in schedule.faults}) == 4


@pytest.mark.parametrize("seed", range(10))
def test_each_fault_has_a_valid_target_hold_and_gap(seed: int) -> None:
    schedule = soak.make_schedule(seed, FAULT_KINDS, 40, workers=3, hold=(1, 2), gap=(3, 4))
    end = 0.0
    for number, f in enumerate(schedule.faults, start=1):
        assert f.number == number
        assert 1 <= f.hold <= 2
        assert 3 <= round(f.at - end, 1) <= 4  # the gap since the last one ended
        end = f.at + f.hold
        if f.kind == "worker-kill":
            assert f.target in ("worker-1", "worker-2", "worker-3")
        elif f.kind in ("pause", "disconnect"):
            assert f.target in ("temporal", "bank", "worker-1", "worker-2", "worker-3")
        elif f.kind.endswith("-kill"):
            assert f.target == f.kind.removesuffix("-kill")
        elif f.kind.startswith("link-"):
            assert f.target in ("temporal", "bank")
            assert f.service is None  # every container stays up
            link = f.lever()
            assert isinstance(link, LinkFault)
            link.check()  # settings the link lever accepts
            assert (link.delay_ms > 0) == (f.kind == "link-delay")
            assert (link.loss_pct > 0) == (f.kind == "link-loss")
            assert link.reset == (f.kind == "link-reset")
        else:
            assert f.target in ("withdraw", "deposit", "all")
            assert f.service is None
            fault = f.fault()  # a setting the bank's switch accepts
            assert 0 < fault.rate <= 1
            assert 0 <= fault.jitter_ms <= fault.latency_ms
            if f.kind == "bank-latency":
                assert 500 <= fault.latency_ms <= 3000
        assert f.describe()
    assert schedule.length >= end + 3


def test_most_transfers_start_in_bursts_as_the_faults_strike() -> None:
    schedule = soak.make_schedule(6, FAULT_KINDS, 30, workers=2)
    releases = soak.plan_releases(6, 300, schedule, concurrency=20)
    assert releases == soak.plan_releases(6, 300, schedule, concurrency=20)
    assert len(releases.bursts) == 30 and min(releases.bursts) >= 1
    assert sum(releases.bursts) == 180  # BURST_SHARE of them
    assert releases.probes == 30  # one per fault
    assert sum(releases.bursts) + releases.probes + len(releases.trickle) == 300
    assert list(releases.trickle) == sorted(releases.trickle)
    assert releases.trickle[0] == 0 and releases.trickle[-1] < schedule.length
    # A burst never exceeds the concurrency: the rest trickle in.
    capped = soak.plan_releases(6, 300, schedule, concurrency=3)
    assert max(capped.bursts) == 3
    assert sum(capped.bursts) + capped.probes + len(capped.trickle) == 300
    few = soak.plan_releases(6, 8, schedule, concurrency=20)  # fewer transfers than faults
    assert few.probes == 2 and sum(few.bursts) + few.probes + len(few.trickle) == 8
    none = soak.plan_releases(6, 5, soak.Schedule((), 0.0), 20)
    assert none == soak.Releases((), 0, (0.0,) * 5)


def test_fault_kinds_parse_from_the_command_line() -> None:
    assert soak.parse_kinds("all") == FAULT_KINDS
    assert soak.parse_kinds("none") == ()
    assert soak.parse_kinds("bank-drop, worker-kill") == ("worker-kill", "bank-drop")
    with pytest.raises(ValueError, match="unknown fault kind bank-explode"):
        soak.parse_kinds("bank-explode,pause")


# --- the transfers -----------------------------------------------------------------------


def test_the_same_seed_plans_the_same_transfers() -> None:
    first = soak.plan_transfers(3, 300, BALANCES, run_id="a")
    again = soak.plan_transfers(3, 300, BALANCES, run_id="a")
    assert first == again
    assert soak.plan_transfers(4, 300, BALANCES, run_id="a") != first
    # Another run id: new reference ids, the same transfers.
    other = soak.plan_transfers(3, 300, BALANCES, run_id="b")
    assert [replace(t, reference_id="") for t in other] == [
        replace(t, reference_id="") for t in first
    ]
    assert len({t.reference_id for t in first}) == 300


def test_the_failing_transfers_are_spread_over_every_way_to_fail() -> None:
    plan = soak.plan_transfers(8, 200, BALANCES, run_id="x", failing=0.15, one_attempt=0)
    kinds = Counter(t.kind for t in plan)
    assert kinds == {
        soak.NORMAL: 170,
        soak.UNKNOWN_TARGET_KIND: 10,
        soak.UNKNOWN_SOURCE_KIND: 10,
        soak.INSUFFICIENT: 10,
    }
    for t in plan:
        if t.kind == soak.NORMAL:
            assert t.source in ACCOUNTS and t.target in ACCOUNTS and t.source != t.target
            assert 1 <= t.amount <= soak.MAX_AMOUNT
            assert (t.max_attempts, t.expected) == (0, (COMPLETED,))
        elif t.kind == soak.UNKNOWN_TARGET_KIND:
            assert (t.target, t.max_attempts, t.expected) == ("99-999", 0, (COMPENSATED,))
        elif t.kind == soak.UNKNOWN_SOURCE_KIND:
            assert (t.source, t.expected) == ("99-998", (REJECTED,))
        else:
            assert t.amount > sum(BALANCES.values())
            assert t.expected == (REJECTED,)


def test_no_account_pays_out_more_than_it_holds() -> None:
    """However the transfers interleave, a normal one never meets insufficient funds."""
    plan = soak.plan_transfers(11, 1000, BALANCES, run_id="x")
    paid: Counter[str] = Counter()
    for t in plan:
        if t.kind in (soak.NORMAL, soak.UNKNOWN_TARGET_KIND):
            paid[t.source] += t.amount
    assert all(paid[a] <= BALANCES[a] for a in paid)


def test_too_little_money_is_refused_before_anything_starts() -> None:
    poor = {a: 3 for a in ACCOUNTS}
    with pytest.raises(SoakError, match="hold too little"):
        soak.plan_transfers(1, 100, poor, run_id="x")
    with pytest.raises(SoakError, match="at least two"):
        soak.plan_transfers(1, 10, {"10-001": 1000}, run_id="x")


def test_one_attempt_transfers_may_end_any_honest_way() -> None:
    plan = soak.plan_transfers(2, 400, BALANCES, run_id="x", one_attempt=0.5)
    once = [t for t in plan if t.kind == soak.NORMAL and t.max_attempts == 1]
    assert 150 < len(once) < 250
    assert all(t.expected == (COMPLETED, COMPENSATED, REJECTED) for t in once)
    never = soak.plan_transfers(2, 400, BALANCES, run_id="x", one_attempt=0)
    assert not [t for t in never if t.kind == soak.NORMAL and t.max_attempts == 1]


# --- recovery and verdicts ---------------------------------------------------------------


def test_recovery_is_the_first_transfer_end_after_the_undo() -> None:
    ends = [1.0, 5.0, 7.5, 12.0]
    assert soak.recovery_after(4.0, None, ends) == 1.0
    assert soak.recovery_after(5.0, None, ends) == 0.0
    assert soak.recovery_after(8.0, 11.0, ends) is None  # nothing before the next fault
    assert soak.recovery_after(13.0, None, ends) is None


def test_recoveries_stop_at_the_next_fault() -> None:
    spec = FaultSpec(1, 1.0, "bank-kill", "bank", 1.0)
    faults = [
        FaultRecord(spec, started=1.0, undone=2.0),
        FaultRecord(replace(spec, number=2), started=3.0, undone=4.0),
        FaultRecord(replace(spec, number=3), started=None),  # never injected
        FaultRecord(replace(spec, number=4), started=9.0),  # could not be undone
    ]
    soak.measure_recoveries(faults, [3.5, 6.0])
    assert [f.recovery for f in faults] == [None, 2.0, None, None]


def _spec(
    number: int, kind: str = soak.NORMAL, expected: tuple[str, ...] = (COMPLETED,)
) -> TransferSpec:
    return TransferSpec(number, f"soak-t-{number:04d}", kind, "10-001", "10-002", 5, 0, expected)


def _movement(seq: int, key: str, account: str, amount: int = 5) -> Movement:
    op = Operation.WITHDRAW if key.endswith("withdraw") else Operation.DEPOSIT
    return Movement(seq, key, op, account, amount, 100, "2025-01-01T00:00:00Z")


def test_an_outcome_must_match_the_ledger_and_the_workflow() -> None:
    done = TransferRecord(_spec(1), started=0, ended=1, status="completed", outcome=COMPLETED)
    assert soak.check_outcome(done) is None
    refunded = replace(done, outcome=COMPENSATED, status="failed")
    assert "is compensated in the ledger, expected completed" in (
        soak.check_outcome(refunded) or ""
    )
    liar = replace(done, spec=_spec(2, expected=(REJECTED,)), outcome=REJECTED)
    assert "its workflow is completed, not failed" in (soak.check_outcome(liar) or "")


def test_every_movement_must_hit_the_transfer_s_accounts() -> None:
    spec = _spec(1)
    right = [
        _movement(1, "soak-t-0001-withdraw", "10-001"),
        _movement(2, "soak-t-0001-deposit", "10-002"),
        _movement(3, "soak-t-0002-deposit", "10-007"),  # another transfer's: ignored
    ]
    assert soak.check_movements(spec, right) is None
    wrong = [_movement(4, "soak-t-0001-refund", "10-002")]
    assert "moved $5 on 10-002" in (soak.check_movements(spec, wrong) or "")
    assert "moved $9" in (
        soak.check_movements(spec, [_movement(5, "soak-t-0001-deposit", "10-002", 9)]) or ""
    )


def passing_result() -> SoakResult:
    config = SoakConfig(transfers=3, seed=7, kinds=("bank-kill", "pause"), fault_count=2)
    specs = config.schedule().faults
    result = SoakResult(project="p", config=config, run_id="abc123", seconds=90.0)
    result.transfers = [
        TransferRecord(_spec(1), 0.1, 1.0, "completed", COMPLETED),
        TransferRecord(
            _spec(2, soak.UNKNOWN_TARGET_KIND, (COMPENSATED,)), 0.2, 2.0, "failed", COMPENSATED
        ),
        TransferRecord(_spec(3, soak.INSUFFICIENT, (REJECTED,)), 0.3, 3.0, "failed", REJECTED),
    ]
    bank_kill, pause = sorted(specs, key=lambda f: f.kind)
    result.faults = [
        FaultRecord(bank_kill, started=1.0, undone=2.0, ended=3.0, recovery=0.5),
        FaultRecord(pause, started=4.0, undone=5.0, ended=5.5, recovery=1.5),
    ]
    result.invariants = fresh_invariants()
    for inv in result.invariants:
        inv.record(None)
    return result


def test_a_clean_soak_passes() -> None:
    result = passing_result()
    assert soak.problems(result) == []
    assert soak.exit_code(result) == 0
    lines = soak.render(soak.summary(result))
    assert lines[-1].startswith("PASS")


def test_the_json_report_has_every_part(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "soak.json"
    soak.write_json(passing_result(), path)
    data = json.loads(path.read_text())
    assert data["verdict"] == "pass" and data["problems"] == []
    assert data["seed"] == 7 and data["minutes"] == 1.5
    assert data["transfers"]["by_outcome"] == {COMPLETED: 1, COMPENSATED: 1, REJECTED: 1}
    assert data["transfers"]["by_kind"] == {
        soak.NORMAL: 1,
        soak.UNKNOWN_TARGET_KIND: 1,
        soak.INSUFFICIENT: 1,
    }
    assert data["faults"]["by_kind"] == {"bank-kill": 1, "pause": 1}
    assert data["faults"]["injected"] == 2
    event = data["faults"]["events"][0]
    assert {"kind", "target", "at", "hold", "started", "undone", "ended", "recovery"} <= set(event)
    assert event["in_flight"] == event["burst"] == 0
    assert data["transfers"]["peak_in_flight"] == 0
    assert data["recovery_seconds"]["pause"] == {
        "median": 1.5,
        "p99": 1.5,
        "worst": 1.5,
        "measured": 1,
        "faults": 1,
    }
    names = [inv["name"] for inv in data["invariants"]]
    assert NO_NEGATIVE_READ in names and AS_EXPECTED in names
    assert any(n.startswith("at the end, settled: money is conserved") for n in names)
    assert all(
        inv["verdict"] == "held" and inv["first_violation"] is None for inv in data["invariants"]
    )


def test_a_violation_fails_the_soak_and_names_the_first_one() -> None:
    result = passing_result()
    money = next(inv for inv in result.invariants if inv.name.endswith("money is conserved"))
    money.record("at 12.0 s: the bank holds $9990; it should hold $10000")
    money.record("at 13.0 s: the bank holds $9980; it should hold $10000")
    assert soak.exit_code(result) == 1
    data = soak.summary(result)
    assert data["verdict"] == "fail"
    assert "$9990" in data["problems"][0]
    [inv] = [i for i in data["invariants"] if i["verdict"] == "violated"]
    assert inv["violations"] == 2 and "$9990" in inv["first_violation"]
    text = "\n".join(soak.render(data))
    assert "VIOLATED" in text and "(+1 more)" in text and "FAIL:" in text


def test_an_unchecked_invariant_is_not_a_pass() -> None:
    result = passing_result()
    result.invariants[0] = soak.Invariant(NO_NEGATIVE_READ)
    assert soak.exit_code(result) == 1
    assert "not checked" in soak.problems(result)[0]


def test_a_transfer_that_never_ended_fails_the_soak() -> None:
    result = passing_result()
    result.transfers[0] = replace(result.transfers[0], status="running", ended=None, outcome=None)
    assert soak.exit_code(result) == 1
    assert "1 transfer(s) not ended" in soak.problems(result)[0]


def test_a_fault_that_could_not_be_pulled_fails_the_soak() -> None:
    result = passing_result()
    result.faults[0].error = "could not inject it: no bank container"
    assert soak.exit_code(result) == 1
    number = result.faults[0].spec.number
    assert f"FAULT {number} FAILED" in "\n".join(soak.render(soak.summary(result)))


def test_an_interrupted_soak_says_so() -> None:
    result = passing_result()
    result.interrupted = True
    assert soak.exit_code(result) == 130
    assert soak.summary(result)["verdict"] == "interrupted"


def test_an_unexpected_outcome_is_listed() -> None:
    result = passing_result()
    result.transfers[2] = replace(result.transfers[2], outcome=COMPLETED, status="completed")
    data = soak.summary(result)
    assert data["transfers"]["unexpected_count"] == 1
    assert "expected rejected" in data["transfers"]["unexpected"][0]


# --- the command line --------------------------------------------------------------------


def test_a_dry_run_prints_the_schedule_and_touches_nothing() -> None:
    lines: list[str] = []
    code = soak.main(["--dry-run", "--seed", "3", "--fault-count", "12"], say=lines.append)
    assert code == 0
    assert lines[0].startswith("seed 3: 12 faults")
    assert len(lines) == 13
    again: list[str] = []
    soak.main(["--dry-run", "--seed", "3", "--fault-count", "12"], say=again.append)
    assert again == lines


@pytest.mark.parametrize(
    "argv",
    [
        ["--faults", "bank-explode"],
        ["--transfers", "0"],
        ["--hold", "5:2"],
        ["--one-attempt", "2"],
        ["--own-lab", "--project", "crashlab"],
    ],
)
def test_bad_options_exit_2_before_anything_runs(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        soak.main([*argv, "--dry-run"])
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


# --- timeouts in the histories: a loaded worker must not lose its tasks ------------------


def _event(kind: str, at: float, **attributes: object) -> HistoryEvent:
    event = HistoryEvent(event_type=EventType.Value(f"EVENT_TYPE_{kind}"))
    event.event_time.FromMicroseconds(int(at * 1e6))
    for name, value in attributes.items():
        getattr(event, name).CopyFrom(value)
    return event


def test_a_timeout_counts_as_lost_only_if_no_fault_explains_it() -> None:
    spec = FaultSpec(1, 1.0, "worker-kill", "worker", 1.0)
    faults = [FaultRecord(spec, started=10.0, injected=10.5, undone=12.0, ended=14.0)]
    late = 14.0 + TIMEOUT_AFTER_FAULT
    assert check_timeouts("t-1", [11.0, 14.0, late], faults) is None
    assert check_timeouts("t-1", [], faults) is None
    lost = check_timeouts("t-1", [9.0], faults) or ""
    assert lost == "transfer t-1: a task timed out at 9.0 s, with no fault near"
    assert check_timeouts("t-1", [late + 0.1], faults)
    never = [FaultRecord(spec, started=None)]
    assert check_timeouts("t-1", [11.0], never)


def test_the_history_says_which_tasks_timed_out_and_when() -> None:
    timeline = Timeline(lambda _: None)
    t0 = timeline.epoch
    timed_out = WorkflowTaskTimedOutEventAttributes
    events = [
        _event("WORKFLOW_EXECUTION_STARTED", t0 + 1),
        _event(
            "WORKFLOW_TASK_TIMED_OUT",
            t0 + 2,
            workflow_task_timed_out_event_attributes=timed_out(
                timeout_type=TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
            ),
        ),
        _event(
            "WORKFLOW_TASK_TIMED_OUT",
            t0 + 3,
            workflow_task_timed_out_event_attributes=timed_out(
                timeout_type=TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
            ),
        ),
        _event(
            "ACTIVITY_TASK_STARTED",
            t0 + 4,
            activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(
                attempt=2, last_failure=Failure(timeout_failure_info=TimeoutFailureInfo())
            ),
        ),
        _event(
            "ACTIVITY_TASK_STARTED",
            t0 + 5,
            activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(
                attempt=2, last_failure=Failure(message="the bank said no")
            ),
        ),
        _event("ACTIVITY_TASK_TIMED_OUT", t0 + 6),
    ]
    lost, moved = timeouts_in(events, timeline)
    assert [round(at, 3) for at in lost] == [2.0, 4.0, 6.0]
    assert moved == 1
