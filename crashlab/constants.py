"""The host side's constants, each defined once: the project, the services, the ports,
the accounts. Everything under crashlab/ imports them from here (crashlab.stack re-exports the
older names), and tests/unit/test_levers.py checks they agree with compose/compose.yaml.
"""

from __future__ import annotations

from bank.ledger import SEED_ACCOUNTS

# The Compose project `make up` starts (compose/compose.yaml's `name:`).
DEFAULT_PROJECT = "crashlab"

# The long-running services a learner can break; the starter is one-shot.
SERVICES = ("temporal", "bank", "worker")
# Every service that talks over a network, the one-shot starter included: the ends of a link.
LINK_ENDS = ("worker", "starter", "temporal", "bank")

# The ports inside the containers (compose/compose.yaml publishes them).
TEMPORAL_PORT = 7233
TEMPORAL_UI_PORT = 8233
# The bank's control API: the one the host reaches (the teller API, 8000, is for the
# worker and the starter, and is not published).
BANK_PORT = 8001
BANK_TELLER_PORT = 8000

# The tutorial's transfer: $250 from its first account to its second.
SOURCE, TARGET = SEED_ACCOUNTS[0][0], SEED_ACCOUNTS[1][0]
AMOUNT = 250
# The spare accounts the bank seeds for load (10-001 ...), which the tutorial leaves alone.
SPARE_ACCOUNTS = tuple(account for account, _ in SEED_ACCOUNTS[2:])
