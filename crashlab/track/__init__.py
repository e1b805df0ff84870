"""The hosted track's challenges, on the lab's own code: setup, checks, and what they read.

    python -m crashlab.track setup crash-recovery  # the lab in the state the challenge assumes
    python -m crashlab.track check crash-recovery  # PASS: ... or FAIL: <what to do next>

The scripts in track/NN-slug/ call these. A check reads what really happened in
the challenge's own window (from its setup to now): the workflow histories in
Temporal, the bank's ledger, and the Docker events of the lab's containers,
recorded from the setup on (Docker keeps only its last few hundred events, a
minute or less on a lab with healthchecks).
"""
