"""The console: exit codes, the one shape of a failure, and how failures and CCL diagnostics
are shown. Every command of ``ccl`` and ``vvm`` reports through here and nowhere else.

Exit codes, the same in ``ccl`` and ``vvm``: 0 ok, 1 rejected input or a refuted proof,
2 usage (a missing input file too), 3 unknown (a solver gave up), 70 internal error (a bug:
no bad input may reach it). A failure is one message: what is wrong, where (a file, a
``file:line:column`` with the source line and a caret for CCL, or a field and byte offset
for binary input) and a hint; never a traceback.

With ``--json`` a failure is a JSON object on stdout (``{"ok": false, "error": {...}}``)
instead of text on stderr; with ``--quiet`` or ``--json``, or when stderr is not a terminal,
no progress is drawn. Ctrl-C exits 130 without a traceback; a closed stdout (``| head``)
exits 141 quietly, as a program killed by SIGPIPE would.

Stdlib, click and rich only, and nothing of ``ccl``/``ground``: the ``vvm`` command, which
must stand without the ground toolchain, uses it too.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import click
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:  # imported where drawn: every command starts without them (~25 ms)
    from rich.progress import Progress
    from rich.table import Table

EXIT_OK = 0
EXIT_REJECTED = 1  # rejected input, a refuted proof, a patch refused or undelivered
EXIT_USAGE = 2  # bad usage, a missing input file
EXIT_UNKNOWN = 3  # a solver gave up
EXIT_INTERNAL = 70  # a bug: no bad input may reach it
EXIT_INTERRUPTED = 130  # Ctrl-C: stopped cleanly, what was done is kept
EXIT_CLOSED_PIPE = 141  # stdout's reader went away (``| head``): 128 + SIGPIPE


@dataclass
class Mode:
    """How this invocation talks: ``--json`` (results and failures as JSON on stdout) and
    ``--quiet`` (no progress, no notes). Set once, from the command line, before any work."""

    json: bool = False
    quiet: bool = False


MODE = Mode()


def set_mode(*, json_output: bool | None = None, quiet: bool | None = None) -> None:
    """Switch JSON output or quiet mode on (an option given anywhere on the command line)."""
    if json_output:
        MODE.json = True
    if quiet:
        MODE.quiet = True


@dataclass(eq=False)  # not frozen: raising sets __traceback__ (contextlib, click's scopes)
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


def failure_json(failure: Failure) -> dict[str, Any]:
    """A failure as the JSON object ``--json`` prints on stdout."""
    return {"ok": False, "error": {"message": failure.message, "where": failure.where,
                                   "hint": failure.hint, "exit_code": failure.code}}


def show(failure: Failure, prog: str = "") -> None:
    """Print ``failure``: on stderr, or as JSON on stdout with ``--json``."""
    if MODE.json:
        emit_json(failure_json(failure))
        return
    for line in failure.lines(prog):
        print(line, file=sys.stderr)


def note(text: str, prog: str = "") -> None:
    """A remark on stderr that is not the result (a warning, what a long run will take);
    silent with ``--quiet``. With ``--json`` it stays on stderr, so stdout stays JSON."""
    if not MODE.quiet:
        head = f"{prog}: " if prog else ""
        print(f"{head}{text}", file=sys.stderr)


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


class _Stdout(Console):
    """Rich's console on stdout, whose closed pipe is the one ``run_guarded`` handles (exit
    141): rich's own handling exits 1, as if the command had failed."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


PIPED_WIDTH = 10_000  # piped output is never cut to a terminal's 80 columns


def out_console(markup: bool = True) -> Console:
    """Rich output on stdout: styled on a terminal, plain (no wrapping) when piped."""
    width = None if sys.stdout.isatty() else PIPED_WIDTH
    return _Stdout(highlight=False, soft_wrap=True, markup=markup, width=width)


def text_table(**options: Any) -> Table:
    """A rich table for stdout: boxed on a terminal; piped, plain columns without box or
    edge, so that every row is one whole line for ``grep``, ``diff`` and ``cut``."""
    from rich.table import Table  # noqa: PLC0415

    if not sys.stdout.isatty():
        options = {**options, "box": None, "show_edge": False, "pad_edge": False,
                   "title_justify": "left"}
    return Table(**options)


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
    if missing and MODE.json:
        emit_json({"ok": False, "error": {
            "message": "no such file: " + ", ".join(missing), "where": missing[0],
            "hint": "check the path", "exit_code": EXIT_USAGE}})
        sys.exit(EXIT_USAGE)
    for f in missing:
        print(f"error[E-READ]: no such file: {f}", file=sys.stderr)
        print("  hint: check the path", file=sys.stderr)
    if missing:
        sys.exit(EXIT_USAGE)


class Ticker(Protocol):
    """What a long piece of work reports its progress to."""

    def advance(self, amount: float = 1) -> None: ...

    def update(self, completed: float) -> None: ...


class _Silent:
    def advance(self, amount: float = 1) -> None:
        pass

    def update(self, completed: float) -> None:
        pass


class _Bar:
    def __init__(self, progress: Progress, task: Any) -> None:
        self._progress, self._task = progress, task

    def advance(self, amount: float = 1) -> None:
        self._progress.advance(self._task, amount)

    def update(self, completed: float) -> None:
        self._progress.update(self._task, completed=completed)


def progress_shown() -> bool:
    """Whether progress is drawn: on a terminal (stderr), unless ``--json`` or ``--quiet``."""
    return not (MODE.json or MODE.quiet) and sys.stderr.isatty()


@contextmanager
def progress(description: str, total: float | None = None, unit: str = "") -> Iterator[Ticker]:
    """Show the progress of work that may take more than about two seconds, on stderr; a
    ticker that draws nothing when progress is not shown. The bar is removed at the end, so
    the result is what stays on the screen."""
    if not progress_shown():
        yield _Silent()
        return
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    columns += [TaskProgressColumn(), TimeRemainingColumn()] if total else []
    columns += [TextColumn(unit)] if unit else []
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield _Bar(bar, bar.add_task(description, total=total))


def finite(value: float, name: str) -> float:
    """``value`` if it is a finite number; a usage failure naming option ``name`` if it is
    NaN or infinite."""
    if math.isnan(value) or math.isinf(value):
        raise Failure(f"{name} must be a finite number, not {value}", f"give {name} a number",
                      EXIT_USAGE, name)
    return value


def _closed_pipe() -> NoReturn:
    """Stdout's reader went away: say nothing more (stdout now goes nowhere, so Python's
    final flush cannot fail again) and exit as SIGPIPE would."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    os._exit(EXIT_CLOSED_PIPE)


def run_guarded(entry: Callable[[], object], prog: str) -> None:
    """Run a command's ``entry``: a ``Failure`` is shown and exits with its code; Ctrl-C
    exits 130 and a closed stdout 141, both without a traceback; any other exception is a
    bug, shown in one line (exit 70; ``CCL_DEBUG=1`` for the traceback)."""
    try:
        entry()
        sys.stdout.flush()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        _closed_pipe()
    except SystemExit:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _closed_pipe()
        raise
    except Failure as failure:
        try:
            show(failure, prog)  # on stdout with --json, which may be closed too
        except BrokenPipeError:
            _closed_pipe()
        sys.exit(failure.code)
    except Exception as exc:  # a bug, not bad input: say so in one line
        if os.environ.get("CCL_DEBUG"):
            raise
        show(Failure(f"internal error: {type(exc).__name__}: {exc}",
                     "this is a bug; rerun with CCL_DEBUG=1 for the traceback", EXIT_INTERNAL),
             prog)
        sys.exit(EXIT_INTERNAL)


def run_click(group: click.Command, argv: Sequence[str] | None, prog: str) -> None:
    """Run a click command line the way every ``ccl`` and ``vvm`` command runs: ``--json``
    and ``--quiet`` anywhere on the line set the mode before parsing (so a usage error is
    JSON too), usage errors exit 2 in the one failure shape with a hint to ``--help``, and
    everything goes through ``run_guarded``."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json, quiet = "--json" in args, "--quiet" in args or "-q" in args
    MODE.json, MODE.quiet = as_json, quiet

    def entry() -> None:
        stdout = sys.stdout
        try:
            group.main(args=args, prog_name=prog, standalone_mode=False)
        except SystemExit:
            # click answers a closed stdout (EPIPE) by wrapping sys.stdout and exiting 1,
            # even outside its standalone mode: make it the closed pipe it is (exit 141)
            if sys.stdout is not stdout:
                raise BrokenPipeError from None
            raise
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.Abort:
            raise KeyboardInterrupt from None
        except click.UsageError as exc:
            # the group's flags reset the mode as they were parsed; the line's own holds
            # (`vvm nonsense --json` never reaches a command that would set it again)
            MODE.json, MODE.quiet = as_json, quiet
            command = exc.ctx.command_path if exc.ctx is not None else prog
            raise Failure(exc.format_message(), f"see `{command} --help`",
                          EXIT_USAGE) from None
        except click.ClickException as exc:
            raise Failure(exc.format_message(), "", exc.exit_code) from None
        sys.exit(EXIT_OK)

    run_guarded(entry, prog)
