"""How the panel's forms become levers: each lever of the catalogue (crashlab/levers.py)
reads its own form (``from_form``), so a new lever needs nothing here."""

from __future__ import annotations

from collections.abc import Callable

from crashlab.levers import CATALOGUE, Form, Lever


class FormError(ValueError):
    """A form that makes no lever; the message says why, for the page."""


FORMS: dict[type[Lever], Callable[[Form], Lever]] = {kind: kind.from_form for kind in CATALOGUE}
BY_COMMAND = {kind.command: kind for kind in CATALOGUE}


def lever_from(command: str, form: Form) -> Lever:
    kind = BY_COMMAND.get(command)
    if kind is None:
        raise FormError(f"no lever is called {command!r}: {', '.join(BY_COMMAND)}")
    try:
        return FORMS[kind](form)
    except ValueError as err:  # FaultSpecError too
        raise FormError(getattr(err, "message", None) or str(err)) from None
