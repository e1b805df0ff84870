"""``python -m bank``: serve the bank's two listeners with uvicorn, in one process.

Both share one ledger and one fault switch (see bank/api.py for what each serves):

- the teller API on BANK_HOST:BANK_PORT (default 0.0.0.0:8000), for the worker and
  the starter: no fault switch;
- the control API on BANK_CONTROL_HOST:BANK_CONTROL_PORT (default 127.0.0.1:8001):
  everything. Compose sets the host to ``bank-control``, a name that exists only on
  the bank's control network, so it listens on that interface alone: the one the
  host's published port reaches, and no other container.

BANK_DB is the SQLite file (default /data/bank.db). BANK_CONTROL_TOKEN, when set, is
the token that changing the fault switch needs. LAB_BIND_ADDRESS is where Compose
publishes the port: beyond loopback and without a token, the switch stays locked.
"""

import asyncio
import contextlib
import os
import secrets
import signal
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from bank.api import DEFAULT_DB, TOKEN_SOURCE, Listener, create_app, release_held_requests
from bank.exposure import is_exposed
from bank.faults import FaultSwitch
from bank.ledger import Ledger
from bank.metrics import BankMetrics

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
    """uvicorn, but a shutdown first lets go of requests the fault switch is holding.

    Two servers share one event loop, so neither installs signal handlers of its
    own (the second would replace the first's): main() stops both on a signal.
    """

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        release_held_requests(self._app)
        await super().shutdown(sockets)


def _port(raw: str, name: str = "BANK_PORT") -> int:
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise SystemExit(f"{name} must be a port number from 1 to 65535, got {raw!r}")
    return port


LOCKED_SOURCE = (
    "This lab is published beyond its own machine (LAB_BIND_ADDRESS={address}) but the bank "
    "was started without BANK_CONTROL_TOKEN, so the fault switch is locked for everyone. "
    "Start the lab with `make up`, which makes a token and prints it."
)


def control_token(env: dict[str, str]) -> tuple[str | None, str]:
    """The token the fault switch's writes need, and what a 401 says about it.

    No token on a lab published on loopback only: nothing changes for learners. Published
    further without one (someone ran `docker compose up` by hand with LAB_BIND_ADDRESS
    set), the switch fails closed: a random token nobody knows, and a 401 that says why.
    """
    token = env.get("BANK_CONTROL_TOKEN", "").strip()
    if token:
        return token, TOKEN_SOURCE
    address = env.get("LAB_BIND_ADDRESS", "").strip() or "127.0.0.1"
    if not is_exposed(address):
        return None, TOKEN_SOURCE
    return secrets.token_urlsafe(32), LOCKED_SOURCE.format(address=address)


def _config(app: FastAPI, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=LOG_CONFIG,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


async def serve(servers: list[_Server]) -> None:
    """Run every server until a signal, or until any one of them stops (e.g. it could not
    bind its port): then stop the others too, so that Docker sees the bank exit."""

    def stop_all() -> None:
        for server in servers:
            server.should_exit = True

    async def run(server: _Server) -> None:
        # uvicorn has logged why it could not start (e.g. the port is taken) and exits
        # with SystemExit, which would tear the loop down under the other server.
        with contextlib.suppress(SystemExit):
            await server.serve()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_all)
    tasks = [asyncio.ensure_future(run(server)) for server in servers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop_all()
        await asyncio.gather(*tasks)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    failed = [server.config for server in servers if not server.started]
    if failed:
        where = ", ".join(f"{c.host}:{c.port}" for c in failed)
        raise SystemExit(f"The bank could not listen on {where} (see the error above).")


def main() -> None:
    env = dict(os.environ)
    db = env.get("BANK_DB", DEFAULT_DB)
    host = env.get("BANK_HOST", "0.0.0.0")
    port = _port(env.get("BANK_PORT", "8000"))
    control_host = env.get("BANK_CONTROL_HOST", "127.0.0.1")
    control_port = _port(env.get("BANK_CONTROL_PORT", "8001"), "BANK_CONTROL_PORT")
    token, source = control_token(env)
    if token is None:
        guarded = "the fault switch needs no token: the lab is published on this machine only"
    elif env.get("BANK_CONTROL_TOKEN", "").strip():
        guarded = "changing the fault switch needs the control token"
    else:
        guarded = "the fault switch is LOCKED. " + source
    print(
        f"Bank teller API on http://{host}:{port} (for the lab's containers: no fault "
        f"switch), control API on http://{control_host}:{control_port} (for the host: "
        f"everything; {guarded}). API docs at /docs on each. Ledger file {db}. "
        "No faults are set: a restart always clears them.",
        flush=True,
    )
    ledger = Ledger(db)
    # One ledger and one fault switch for both: the teller's money calls obey the switch
    # that the control API sets, and both read the same balances.
    switch = FaultSwitch()
    metrics = BankMetrics(total=ledger.total)
    teller = create_app(ledger, switch, listener=Listener.TELLER, metrics=metrics)
    control = create_app(
        ledger,
        switch,
        listener=Listener.CONTROL,
        control_token=token,
        token_source=source,
        metrics=metrics,
    )
    servers = [
        _Server(_config(teller, host, port), teller),
        _Server(_config(control, control_host, control_port), control),
    ]
    try:
        asyncio.run(serve(servers))
    finally:
        ledger.close()


if __name__ == "__main__":
    main()
