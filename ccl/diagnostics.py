"""Diagnostics: what is wrong, where, and what to do about it.

Every error the compiler reports is a ``Diagnostic`` value: a stable reason code, a message,
a source span and a hint. Stages collect or raise them (``CclError``); only the CLI renders
them (``render``), so tests can assert on codes and positions rather than on prose.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """A source file's text, with fast offset -> (line, column) conversion."""

    path: str
    text: str
    line_starts: tuple[int, ...]
    # ``0 .. len(line_starts)``, each line number one int object that every span shares
    # (made from ``line_starts`` when not given)
    line_numbers: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.line_numbers) != len(self.line_starts) + 1:
            object.__setattr__(self, "line_numbers", tuple(range(len(self.line_starts) + 1)))

    @staticmethod
    def of(path: str | Path, text: str) -> Source:
        starts = [0]
        find = text.find
        i = find("\n")
        while i >= 0:
            starts.append(i + 1)
            i = find("\n", i + 1)
        return Source(str(path), text, tuple(starts))

    def span(self, start: int, end: int | None = None) -> Span:
        """The span of characters ``start .. end`` (end exclusive)."""
        starts = self.line_starts
        line = bisect.bisect_right(starts, start)
        col = start - starts[line - 1] + 1
        end = start + 1 if end is None or end <= start else end
        end_line = bisect.bisect_right(starts, end - 1)
        end_col = end - starts[end_line - 1] + 1
        # The line numbers are the shared ints of one table: a line number above 256 made
        # afresh for each span was a third of a span's memory.
        numbers = self.line_numbers
        return Span(self.path, numbers[line], col, numbers[end_line], end_col)

    def line(self, number: int) -> str:
        if not 1 <= number <= len(self.line_starts):
            return ""
        start = self.line_starts[number - 1]
        stop = self.text.find("\n", start)
        return self.text[start:] if stop < 0 else self.text[start:stop]


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file: 1-based line and column, end column exclusive.

    Every IR node has one (a 100,000-line file makes about 350,000): slots, not a dict."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Diagnostic:
    """One error (or warning) with a reason code, e.g. ``E-UNKNOWN-NAME``."""

    code: str
    message: str
    span: Span | None
    hint: str = ""
    severity: str = "error"
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"severity": self.severity, "code": self.code,
                                  "message": self.message}
        if self.span is not None:
            out.update(file=self.span.file, line=self.span.line, column=self.span.col,
                       end_line=self.span.end_line, end_column=self.span.end_col)
        if self.hint:
            out["hint"] = self.hint
        if self.notes:
            out["notes"] = list(self.notes)
        return out


class CclError(Exception):
    """A program (or input) the compiler rejects: one or more diagnostics."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        assert diagnostics
        super().__init__(diagnostics[0].message)
        self.diagnostics = tuple(diagnostics)


def error(code: str, message: str, span: Span | None, hint: str = "") -> CclError:
    """A CclError holding a single diagnostic."""
    return CclError([Diagnostic(code, message, span, hint)])


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A hint naming the closest candidate, or an empty string."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else ""


_LINE_SHOWN = 120  # characters of a source line a rendered diagnostic shows at most


def render(diag: Diagnostic, sources: dict[str, Source]) -> str:
    """Plain-text rendering: location, message, the source line with a caret, the hint."""
    lines = []
    where = f"{diag.span}: " if diag.span else ""
    lines.append(f"{where}{diag.severity}[{diag.code}]: {diag.message}")
    src = sources.get(diag.span.file) if diag.span else None
    if diag.span is not None and src is not None:
        text = src.line(diag.span.line).expandtabs(1)
        col = diag.span.col
        width = (diag.span.end_col - col if diag.span.end_line == diag.span.line
                 else len(text) - col + 1)
        if len(text) > _LINE_SHOWN:  # a long line: the part around the span, marked `...`
            start = max(0, min(col - 1 - _LINE_SHOWN // 3, len(text) - _LINE_SHOWN))
            shown = text[start:start + _LINE_SHOWN]
            text = ("..." if start else "") + shown + \
                ("..." if start + _LINE_SHOWN < len(text) else "")
            col = col - start + (3 if start else 0)
            width = min(width, len(shown) - (col - 1 - (3 if start else 0)))
        gutter = f"{diag.span.line:>4} | "
        lines.append(gutter + text)
        lines.append(" " * (len(gutter) + col - 1) + "^" * max(1, width))
    lines.extend(f"  note: {n}" for n in diag.notes)
    if diag.hint:
        lines.append(f"  hint: {diag.hint}")
    return "\n".join(lines)
