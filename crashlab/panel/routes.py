"""The panel's two routers: ``views`` (the page and what it shows, open to read) and
``levers`` (pulling and undoing, behind the control token when there is one)."""

from __future__ import annotations

import contextlib
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from crashlab.panel import chartjs
from crashlab.panel.dashboard import WINDOW, Prometheus, bands
from crashlab.panel.forms import FormError, lever_from
from crashlab.panel.state import Temporal, Timeline, levers_on, state
from crashlab.stack import Stack, StackError

PAGE = Path(__file__).with_name("page.html")
DASHBOARD = Path(__file__).with_name("dashboard.html")

views = APIRouter()
levers = APIRouter(prefix="/api")


def _stack(request: Request) -> Stack:
    stack: Stack = request.app.state.stack
    return stack


def _timeline(request: Request) -> Timeline:
    timeline: Timeline = request.app.state.timeline
    return timeline


@views.get("/", response_class=HTMLResponse)
def page() -> str:
    return PAGE.read_text()


@views.get("/api/state")
async def current(request: Request) -> dict[str, Any]:
    temporal: Temporal = request.app.state.temporal
    found = await state(_stack(request), temporal, _timeline(request))
    # The page asks for the token when the levers need one and it has none.
    found["needs_token"] = request.app.state.token is not None
    return found


@views.get("/dashboard", response_class=HTMLResponse)
def dashboard_page() -> str:
    return DASHBOARD.read_text()


@views.get("/static/chart.min.js")
def chart_js() -> FileResponse:
    """Chart.js from Debian's package (crashlab/panel/chartjs.py), served from this machine."""
    if not chartjs.CHART_JS.exists():
        raise HTTPException(404, "Chart.js is missing: `make panel` downloads it once")
    return FileResponse(chartjs.CHART_JS, media_type="text/javascript")


@views.get("/api/dashboard")
def dashboard(request: Request, window: float = WINDOW) -> dict[str, Any]:
    """The dashboard's series from Prometheus, and the levers pulled as bands."""
    stack, timeline = _stack(request), _timeline(request)
    # A lever pulled elsewhere (make kill, the soak) is seen here too; without Docker the
    # charts still show.
    with contextlib.suppress(StackError):
        timeline.observe([lever.describe() for lever in levers_on(stack)])
    shown = Prometheus(stack).panels(window=max(60.0, min(window, 3600.0)))
    with timeline.lock:
        events = list(timeline.events)
    return {**shown, "bands": bands(events, time.time())}


def require_token(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """With a control token in use, a lever needs it: a lab reached from elsewhere must not
    be broken by whoever finds the page."""
    token: str | None = request.app.state.token
    if token is None:
        return
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "this lab needs its control token: open the panel's link")


@levers.post("/levers/{command}", dependencies=[Depends(require_token)])
def pull(command: str, request: Request, form: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Pulls a lever of the catalogue, filled in from the form (crashlab/panel/forms.py)."""
    timeline = _timeline(request)
    try:
        lever = lever_from(command, form)
        touched = lever.pull(_stack(request))
    except (FormError, StackError) as err:
        timeline.record("refused", f"{command}: {err}")
        raise HTTPException(400, str(err)) from None
    timeline.record("pulled", lever.describe())
    return {"lever": lever.describe(), "touched": touched, "undo": lever.undo_hint()}


@levers.post("/undo", dependencies=[Depends(require_token)])
def undo(request: Request, form: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Undoes a lever that is on, named as the page shows it (its description)."""
    stack, timeline = _stack(request), _timeline(request)
    wanted = str(form.get("lever", ""))
    found = [lever for lever in levers_on(stack) if lever.describe() == wanted]
    if not found:
        raise HTTPException(404, f"no lever on is {wanted!r}: it may have ended by itself")
    try:
        found[0].undo(stack)
    except StackError as err:
        raise HTTPException(400, str(err)) from None
    timeline.record("undone", wanted)
    return {"lever": wanted, "on": [lever.describe() for lever in levers_on(stack)]}
