"""The lab's own worker, killed mid-transfer: the ledger proves no money was lost."""

from crashlab.testing import Lab


def test_a_killed_worker_loses_no_money(crashlab: Lab) -> None:
    crashlab.fault("deposit", "error")  # deposits fail and retry: the transfer stays open
    crashlab.transfer("crash-1", wait=False)  # $250 from 85-150 to 43-812
    crashlab.wait_for_step("crash-1", "withdraw")  # the money has left 85-150
    crashlab.kill("worker")  # SIGKILL, mid-transfer
    crashlab.clear_faults()
    crashlab.start("worker")
    report = crashlab.wait_settled()
    assert report.ok, report.lines()
    assert report.outcome("crash-1") == "completed"
