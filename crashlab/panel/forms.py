"""How each lever of the catalogue is filled in on the panel: a form's fields become the
lever (crashlab/levers.py). tests/unit/test_panel.py fails when a lever has no form."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bank.faults import FaultSpecError, validate
from bank.models import Fault, FaultMode
from crashlab.constants import SERVICES
from crashlab.levers import (
    CATALOGUE,
    FAULT_OPERATIONS,
    BankFault,
    Disconnect,
    Kill,
    Lever,
    LinkFault,
    Pause,
    Stop,
)

Form = Mapping[str, Any]


class FormError(ValueError):
    """A form that makes no lever; the message says why, for the page."""


def _service(form: Form) -> str:
    service = str(form.get("service", ""))
    if service not in SERVICES:
        raise FormError(f"the service is one of {', '.join(SERVICES)}, not {service!r}")
    return service


def _number(form: Form, key: str, kind: type[int] | type[float] = int) -> Any:
    raw = form.get(key) or 0
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise FormError(f"{key} is a number, not {raw!r}") from None


def _bank_fault(form: Form) -> BankFault:
    operation = str(form.get("operation", "all"))
    if operation not in FAULT_OPERATIONS:
        raise FormError(f"the operation is one of {', '.join(FAULT_OPERATIONS)}")
    try:
        mode = FaultMode(str(form.get("mode", "")))
        fault = Fault(
            mode,
            rate=_number(form, "rate", float) or 1.0,
            latency_ms=_number(form, "latency_ms"),
            jitter_ms=_number(form, "jitter_ms"),
        )
        return BankFault(operation, validate(fault))
    except ValueError as err:
        raise FormError(f"not a fault mode: {form.get('mode')!r}") from err
    except FaultSpecError as err:
        raise FormError(err.message) from None


def _link_fault(form: Form) -> LinkFault:
    fault = LinkFault.between(
        str(form.get("a", "")),
        str(form.get("b", "")),
        delay_ms=_number(form, "delay_ms"),
        jitter_ms=_number(form, "jitter_ms"),
        loss_pct=_number(form, "loss_pct", float),
        rate_kbit=_number(form, "rate_kbit"),
        reset=bool(form.get("reset")),
        direction=str(form.get("direction") or "both"),
    )
    try:
        fault.check()
    except ValueError as err:
        raise FormError(str(err)) from None
    return fault


FORMS: dict[type[Lever], Callable[[Form], Lever]] = {
    Kill: lambda form: Kill(_service(form)),
    Stop: lambda form: Stop(_service(form)),
    Pause: lambda form: Pause(_service(form)),
    Disconnect: lambda form: Disconnect(_service(form)),
    BankFault: _bank_fault,
    LinkFault: _link_fault,
}
BY_COMMAND = {kind.command: kind for kind in CATALOGUE}


def lever_from(command: str, form: Form) -> Lever:
    kind = BY_COMMAND.get(command)
    if kind is None:
        raise FormError(f"no lever is called {command!r}: {', '.join(BY_COMMAND)}")
    return FORMS[kind](form)
