"""The console scripts' entry points. Importing a command (Z3, textX, skyfield) takes a
moment; Ctrl-C in that moment stops it as Ctrl-C during the work does (exit 130, one line,
no traceback), so these import the command only once they can catch it. Stdlib only: the
``vvm`` command must not load the ground's modules, so each imports only its own."""

from __future__ import annotations

import importlib
import sys

_INTERRUPTED = 130  # as cli.console.EXIT_INTERRUPTED, which is not imported yet


def _launch(prog: str) -> None:
    try:
        main = importlib.import_module(f"cli.{prog}").main
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(_INTERRUPTED)
    main()


def ccl() -> None:
    """The ``ccl`` console script."""
    _launch("ccl")


def vvm() -> None:
    """The ``vvm`` console script."""
    _launch("vvm")
