"""The console scripts' entry points. Importing a command (Z3, textX, skyfield) takes a
moment; Ctrl-C in that moment stops it as Ctrl-C during the work does (exit 130, one line,
no traceback), so these import the command only once they can catch it. Stdlib only: the
``vvm`` command must not load the ground's modules, so each imports only its own."""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

_INTERRUPTED = 130  # as cli.console.EXIT_INTERRUPTED, which is not imported yet


def _launch(prog: str) -> None:
    try:
        main = importlib.import_module(f"cli.{prog}").main
    except KeyboardInterrupt:
        _interrupted(prog)
    except Exception as exc:
        # Ctrl-C inside a class body's ``__set_name__`` (a dataclass field being set up)
        # reaches us as the RuntimeError it caused, not as itself
        if _caused_by_interrupt(exc):
            _interrupted(prog)
        raise
    main()


def _caused_by_interrupt(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _interrupted(prog: str) -> NoReturn:
    print(f"{prog}: interrupted", file=sys.stderr)
    sys.exit(_INTERRUPTED)


def ccl() -> None:
    """The ``ccl`` console script."""
    _launch("ccl")


def vvm() -> None:
    """The ``vvm`` console script."""
    _launch("vvm")
