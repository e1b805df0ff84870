"""What each challenge's check says when the learner has not done the step yet: the
track's tests (tests/integration/test_track.py, tests/hosted) hold the checks to it."""

SKIPPED_HINTS = {
    "01-crash-proof": "has not run since this challenge began",
    "02-crash-recovery": "No transfer has run since this challenge began",
    "03-live-bug-fix": "No transfer has recovered from a failing deposit yet",
    "04-compensation": "No transfer has failed and been refunded yet",
    "05-network-partition": "No transfer has run since this challenge began",
    "06-versioning": "No transfer has met a non-determinism error yet",
}


def assert_one_fail_line(stdout: str, hint: str) -> None:
    """A failing check says so in one `FAIL:` line, and that line says what to do."""
    assert stdout.startswith("FAIL: "), stdout
    assert len(stdout.strip().splitlines()) == 1, stdout
    assert hint in stdout, stdout
