"""The console: exit codes, the one shape of a failure, and how failures and CCL diagnostics
are shown. Every command of ``ccl`` and ``vvm`` reports through here and nowhere else.

Exit codes, the same in ``ccl`` and ``vvm``: 0 ok, 1 rejected input or a refuted proof,
2 usage (a missing input file too), 3 unknown (a solver gave up), 70 internal error (a bug:
no bad input may reach it). A failure is one message: what is wrong, where (a file, a
``file:line:column`` with the source line and a caret for CCL, or a field and byte offset
for binary input) and a hint; never a traceback.

Stdlib, click and rich only, and nothing of ``ccl``/``ground``: the ``vvm`` command, which
must stand without the ground toolchain, uses it too.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol

from rich.console import Console
from rich.text import Text

EXIT_OK = 0
EXIT_REJECTED = 1  # rejected input, a refuted proof, a patch refused or undelivered
EXIT_USAGE = 2  # bad usage, a missing input file
EXIT_UNKNOWN = 3  # a solver gave up
EXIT_INTERNAL = 70  # a bug: no bad input may reach it
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Failure(Exception):
    """Why a command stops: what is wrong, where, a hint, and the exit code."""

    message: str
    hint: str = ""
    code: int = EXIT_REJECTED
    where: str = ""  # a path, ``path:line:col``, or ``field at offset N``

    def __str__(self) -> str:
        return self.message

    def lines(self, prog: str = "") -> list[str]:
        """The failure as shown: ``[prog: ]error: [where: ]message`` and ``  hint: ...``."""
        head = f"{prog}: " if prog else ""
        where = f"{self.where}: " if self.where else ""
        out = [f"{head}error: {where}{self.message}"]
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return out


def show(failure: Failure, prog: str = "") -> None:
    """Print ``failure`` on stderr."""
    for line in failure.lines(prog):
        print(line, file=sys.stderr)


def fail(message: str, hint: str = "", code: int = EXIT_USAGE, where: str = "") -> NoReturn:
    """Print the failure and exit with ``code`` (usage by default)."""
    show(Failure(message, hint, code, where))
    sys.exit(code)


class Refusal(Protocol):
    """An error of a layer below, in the one shape: a message, a hint, and where (the
    onboard side's ``OnboardError``, the ground's ``GroundError``, ``ccl.pack.PackError``)."""

    message: str
    hint: str


def refuse(error: Refusal, code: int = EXIT_REJECTED) -> NoReturn:
    """Show a lower layer's error as a failure and exit with ``code``."""
    fail(error.message, error.hint, code, str(getattr(error, "where", "") or ""))


def emit_json(data: Any) -> None:
    """The machine-readable output of a command (``--json``), on stdout."""
    print(json.dumps(data, indent=2, sort_keys=False))


def out_console(markup: bool = True) -> Console:
    """Rich output on stdout: styled on a terminal, plain (no wrapping) when piped."""
    return Console(highlight=False, soft_wrap=True, markup=markup)


def print_rendered(texts: Iterable[str]) -> None:
    """Rendered diagnostics (``file:line:col``, the source line, a caret, a hint) on stderr,
    with colour on a terminal."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for text in texts:
        if err.is_terminal:
            styled = Text(text)
            styled.highlight_regex(r"error\[[A-Z0-9-]+\]", "bold red")
            styled.highlight_regex(r"\^+", "bold red")
            styled.highlight_regex(r"hint:", "bold cyan")
            err.print(styled)
        else:
            print(text, file=sys.stderr)


def require_inputs(files: Sequence[str]) -> None:
    """A missing input file is a usage error (exit 2), reported before any work: nothing is
    checked, compiled or written."""
    missing = [f for f in files if not Path(f).exists()]
    for f in missing:
        print(f"error[E-READ]: no such file: {f}", file=sys.stderr)
        print("  hint: check the path", file=sys.stderr)
    if missing:
        sys.exit(EXIT_USAGE)


def run_guarded(entry: Callable[[], object], prog: str) -> None:
    """Run a command's ``entry``: a ``Failure`` is shown and exits with its code; any other
    exception is a bug, shown in one line (exit 70; ``CCL_DEBUG=1`` for the traceback)."""
    try:
        entry()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except Failure as failure:
        show(failure, prog)
        sys.exit(failure.code)
    except Exception as exc:  # a bug, not bad input: say so in one line
        if os.environ.get("CCL_DEBUG"):
            raise
        show(Failure(f"internal error: {type(exc).__name__}: {exc}",
                     "this is a bug; rerun with CCL_DEBUG=1 for the traceback", EXIT_INTERNAL),
             prog)
        sys.exit(EXIT_INTERNAL)
