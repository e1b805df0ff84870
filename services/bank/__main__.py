"""``python -m bank``: serve the bank with uvicorn.

Settings come from the environment: BANK_DB (the SQLite file, default
/data/bank.db), BANK_HOST (default 0.0.0.0) and BANK_PORT (default 8000).
"""

import os
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI

from bank.api import DEFAULT_DB, create_app, release_held_requests
from bank.ledger import Ledger

# One plain format for uvicorn and the bank, no access log: learners read
# `docker compose logs bank`, and one line per movement says more than one per request.
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(message)s", "datefmt": "%H:%M:%S"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stdout",
        },
    },
    "root": {"handlers": ["stdout"], "level": "INFO"},
    "loggers": {
        "uvicorn": {"level": "INFO"},
        "uvicorn.access": {"level": "WARNING"},
    },
}

# Hung and dropped requests are answered 503 as shutdown starts (see _Server); if
# anything still runs after this long, uvicorn cancels it, inside Docker's 10 s grace.
GRACEFUL_SHUTDOWN_S = 3


class _Server(uvicorn.Server):
    """uvicorn, but a shutdown first lets go of requests the fault switch is holding."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        release_held_requests(self._app)
        await super().shutdown(sockets)


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise SystemExit(f"BANK_PORT must be a port number from 1 to 65535, got {raw!r}")
    return port


def main() -> None:
    db = os.environ.get("BANK_DB", DEFAULT_DB)
    host = os.environ.get("BANK_HOST", "0.0.0.0")
    port = _port(os.environ.get("BANK_PORT", "8000"))
    print(
        f"Bank listening on http://{host}:{port} (API docs at /docs), ledger file {db}. "
        "No faults are set: a restart always clears them.",
        flush=True,
    )
    ledger = Ledger(db)
    app = create_app(ledger)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=LOG_CONFIG,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    try:
        _Server(config, app).run()
    finally:
        ledger.close()


if __name__ == "__main__":
    main()
