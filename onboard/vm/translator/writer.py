"""The Python source of one translated unit, written line by line at an indentation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class SourceWriter:
    """Lines of Python source; ``emit`` writes one at the current indentation."""

    def __init__(self, indent: int = 1) -> None:
        self.lines: list[str] = []
        self.indent = indent

    def emit(self, line: str) -> None:
        """Write ``line`` at the current indentation."""
        self.lines.append("    " * self.indent + line)

    @contextmanager
    def indented(self) -> Iterator[None]:
        """Lines written inside are one level deeper (the body of the last ``...:`` line)."""
        self.indent += 1
        try:
            yield
        finally:
            self.indent -= 1


def fill_empty_suites(lines: list[str]) -> list[str]:
    """``lines`` with ``pass`` in every compound statement that got no body: code whose
    instructions all vanish in translation (an empty loop body whose FORLOOP is charged per
    batch, a branch that only jumps on) leaves a bare ``for``/``if``/``else``, which Python
    refuses (IndentationError)."""
    out: list[str] = []
    last = len(lines) - 1
    for k, line in enumerate(lines):
        out.append(line)
        if line.endswith(":"):
            body = " " * (len(line) - len(line.lstrip(" ")) + 4)
            if k == last or not lines[k + 1].startswith(body):
                out.append(body + "pass")
    return out
