"""`python -m crashlab.panel`: serve the panel (see crashlab/panel/__init__.py)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence

import uvicorn

from bank.exposure import is_exposed
from crashlab.constants import DEFAULT_PROJECT
from crashlab.panel.app import make_app
from crashlab.stack import Stack, control_token_for_up

DEFAULT_PORT = 8090


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m crashlab.panel", description=__doc__)
    p.add_argument("--project", default=DEFAULT_PROJECT, help="the lab's Compose project")
    p.add_argument(
        "--host",
        default=os.environ.get("LAB_BIND_ADDRESS") or "127.0.0.1",
        help="the address to listen on (default LAB_BIND_ADDRESS, else 127.0.0.1)",
    )
    p.add_argument("--port", type=int, default=int(os.environ.get("PANEL_PORT") or DEFAULT_PORT))
    args = p.parse_args(argv)
    stack = Stack(project=args.project)
    # Reached from elsewhere, the panel needs a token (the lab's, made if it has none);
    # on this machine only, the one in use if any.
    if is_exposed(args.host):
        token = control_token_for_up({**os.environ, "LAB_BIND_ADDRESS": args.host})
    else:
        token = stack.token
    shown = "localhost" if args.host in ("127.0.0.1", "::1", "localhost") else args.host
    if shown in ("0.0.0.0", "::"):  # every interface: name this machine as others reach it
        shown = socket.gethostname()
    link = f"http://{shown}:{args.port}/" + (f"#token={token}" if token else "")
    print(f"The lab's panel: {link}", flush=True)
    print(f"  Its dashboard: http://{shown}:{args.port}/dashboard (with `make up OBSERVE=1`)")
    if token:
        print("  The link carries the control token: share it only with whoever may break the lab.")
    print("  Ctrl+C stops the panel; the lab runs on.", flush=True)
    uvicorn.run(make_app(stack, token), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
