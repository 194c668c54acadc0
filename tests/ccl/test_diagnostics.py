"""Rendering diagnostics: the source line, the caret under the span, the hint."""

from __future__ import annotations

from ccl.diagnostics import Diagnostic, Source, render


def test_a_short_line_is_shown_whole_with_the_caret_under_the_span() -> None:
    src = Source.of("a.ccl", "mission corot;\nconfig x version 1;\n")
    d = Diagnostic("E-X", "bad", src.span(22, 23), "a hint")
    lines = render(d, {"a.ccl": src}).splitlines()
    assert lines[0] == "a.ccl:2:8: error[E-X]: bad"
    assert lines[1] == "   2 | config x version 1;"
    assert lines[2].index("^") == lines[1].index("x") and lines[2].count("^") == 1
    assert lines[3] == "  hint: a hint"


def test_a_long_line_is_shown_around_the_span() -> None:
    line = "v = " + " + ".join(f"w{i}" for i in range(5000)) + ";"
    src = Source.of("b.ccl", line + "\n")
    at = line.index("w2500")
    d = Diagnostic("E-X", "bad", src.span(at, at + len("w2500")))
    shown, caret = render(d, {"b.ccl": src}).splitlines()[1:3]
    assert len(shown) < 140 and shown.endswith("...") and "| ..." in shown
    start = caret.index("^")
    assert shown[start:start + 5] == "w2500" and caret.count("^") == 5
