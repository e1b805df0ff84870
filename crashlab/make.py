"""`make <lever> VAR=...`: the Makefile's levers, read from the catalogue.

The Makefile has no target of its own for a lever: its ``.DEFAULT`` rule runs
``python -m crashlab.make TARGET``, and each lever of the catalogue (crashlab/levers.py,
``make_targets``) says which targets it answers to and which make variables (SERVICE,
SECONDS, OP, MODE...; make puts those given on its command line in the environment)
become which arguments of `python -m crashlab`. ``--help-lines`` prints their lines for
`make help`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from crashlab import cli
from crashlab.levers import CATALOGUE, MakeTarget

USAGE = "python -m crashlab.make TARGET | --help-lines"


def targets() -> dict[str, MakeTarget]:
    """Every lever's make targets, in the catalogue's order (a shared undo once)."""
    found: dict[str, MakeTarget] = {}
    for kind in CATALOGUE:
        for target in kind.make_targets:
            found.setdefault(target.name, target)
    return found


def help_lines() -> list[str]:
    return [f"  make {t.name:<25} {t.help}" for t in targets().values()]


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--help-lines"]:
        print("\n".join(help_lines()), flush=True)
        return cli.EXIT_OK
    target = targets().get(args[0]) if len(args) == 1 else None
    if target is None:
        asked = f"no target {args[0]!r}" if len(args) == 1 else f"usage: {USAGE}"
        print(f"make: {asked}; `make help` lists the targets.", file=sys.stderr, flush=True)
        return cli.EXIT_BAD_INPUT
    return cli.main(target.argv(os.environ if env is None else env))


if __name__ == "__main__":
    sys.exit(main())
