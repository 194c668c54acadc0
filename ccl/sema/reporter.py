"""Where a semantic error is, and how one file's analysis records it.

Spans come from the syntax tree's text positions; a name inside a node gets its own span so
that messages point at the word, not at the whole declaration. Every error is collected (up
to ``MAX_ERRORS``) so that a user sees them all at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ccl.diagnostics import CclError, Diagnostic, Source, Span
from ccl.syntax import literal_value

MAX_ERRORS = 100  # the checker stops at this many errors in one file


class Abort(Exception):
    """Stops analysis of one declaration (or statement) after an error has been recorded."""


class Reporter:
    """The source being analyzed, spans inside it and the diagnostics found so far."""

    def __init__(self, source: Source) -> None:
        self.src = source
        self.diags: list[Diagnostic] = []

    def span(self, obj: Any) -> Span:
        """The span of syntax node ``obj``."""
        return self.src.span(obj._tx_position, obj._tx_position_end)

    def word_offset(self, obj: Any, word: str, skip: int = 0) -> int:
        """Offset of the first occurrence of ``word`` as a whole word inside ``obj`` (after
        ``skip`` earlier occurrences: a name repeated in a list gets its own span), or -1."""
        end = obj._tx_position_end
        text = self.src.text
        i = text.find(word, obj._tx_position, end)
        while i >= 0:
            before = text[i - 1] if i > 0 else " "
            j = i + len(word)
            after = text[j] if j < len(text) else " "
            if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
                if not skip:
                    return i
                skip -= 1
            i = text.find(word, i + 1, end)
        return -1

    def word_end(self, obj: Any, word: str) -> int:
        """Offset just after ``word`` inside ``obj`` (the end of ``obj`` if it is not there)."""
        i = self.word_offset(obj, word)
        return i + len(word) if i >= 0 else obj._tx_position_end

    def name_span(self, obj: Any, name: str, skip: int = 0) -> Span:
        """Span of ``name`` inside ``obj`` (see ``word_offset``); all of ``obj`` if absent."""
        i = self.word_offset(obj, name, skip)
        return self.src.span(i, i + len(name)) if i >= 0 else self.span(obj)

    def literal(self, text: str, sp: Span) -> int:
        """The value of integer literal ``text`` (E-LITERAL if it is malformed)."""
        try:
            return literal_value(text)
        except ValueError as exc:
            hint = ("CCL has no octal numbers: write the decimal without leading zeros, or "
                    "hexadecimal (`0x...`)" if "leading zero" in str(exc)
                    else "a number is decimal digits (`1200`) or `0x` and hexadecimal digits "
                    "(`0xFF`), with `_` between digits")
            raise self.fail("E-LITERAL", str(exc), sp, hint) from None

    def err(self, code: str, message: str, span: Span | None, hint: str = "",
            notes: Sequence[str] = ()) -> None:
        """Record an error; raise all of them once there are ``MAX_ERRORS``."""
        if len(self.diags) + 1 >= MAX_ERRORS:  # enough to work on; the rest could take long
            notes = (*notes, f"stopped after {MAX_ERRORS} errors")
            self.diags.append(Diagnostic(code, message, span, hint, notes=tuple(notes)))
            raise CclError(self.diags)
        self.diags.append(Diagnostic(code, message, span, hint, notes=tuple(notes)))

    def fail(self, code: str, message: str, span: Span | None, hint: str = "") -> Abort:
        """Record an error and return the ``Abort`` that the caller raises."""
        self.err(code, message, span, hint)
        return Abort()

    def raise_if_any(self) -> None:
        """Raise the errors found so far, if there are any."""
        if self.diags:
            raise CclError(self.diags)
