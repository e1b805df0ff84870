"""How quickly work resumes after a worker is killed, and the SDK's defaults to compare.

WORKER_RECOVERY=fast (the lab's default) or sdk-defaults (Temporal out of the
box; `make bench` measures both). Read once when the worker starts: the
workflow module imports these values through the sandbox, so every workflow
task of one worker process sees the same ones.
"""

import os
from datetime import timedelta

RECOVERY_MODES = ("fast", "sdk-defaults")
RECOVERY = os.environ.get("WORKER_RECOVERY", "fast")
FAST = RECOVERY != "sdk-defaults"

# Activities heartbeat every 0.5 s while they wait for the bank. If the worker
# dies, the heartbeats stop and Temporal retries the activity this long after
# the last one, instead of waiting out the whole start-to-close timeout.
HEARTBEAT_TIMEOUT: timedelta | None = timedelta(seconds=2) if FAST else None

# How long a failed or timed-out step waits before its first retry (the interval
# then doubles, up to RETRY_AT_LEAST_EVERY). After a kill, the retry comes this long
# after the heartbeat timeout: 1 s is the SDK's default.
FIRST_RETRY_AFTER = timedelta(seconds=0.2) if FAST else timedelta(seconds=1)

# The longest wait between two attempts of a step. It bounds how long a transfer
# lingers once what failed it is back: a bank that was killed and is healthy again
# (`make bench` measures it), or a bug fixed while the step retries. 1 s costs a dead
# bank one refused connection a second per transfer in flight. (The SDK's default
# ceiling is 100 times the first interval.)
RETRY_AT_LEAST_EVERY = timedelta(seconds=1) if FAST else timedelta(seconds=2)

# When a worker dies, a workflow task already given to its own ("sticky")
# queue waits this long before Temporal offers it to another worker through
# the normal queue. 10 s is the SDK's default.
STICKY_QUEUE_TIMEOUT = timedelta(seconds=1) if FAST else timedelta(seconds=10)
