"""The panel's app: the read router for everyone, the lever router behind the token."""

from __future__ import annotations

from fastapi import FastAPI

from crashlab.panel.routes import levers, views
from crashlab.panel.state import Temporal, Timeline
from crashlab.stack import Stack


def make_app(stack: Stack, token: str | None) -> FastAPI:
    app = FastAPI(title="Crash-proof lab panel", docs_url=None, redoc_url=None)
    app.state.stack = stack
    app.state.token = token
    app.state.temporal = Temporal(stack)
    app.state.timeline = Timeline()
    app.include_router(views)
    app.include_router(levers)
    return app
