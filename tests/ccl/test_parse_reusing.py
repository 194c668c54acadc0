"""``parse_reusing`` (the language server's parse): the declarations an edit did not touch
are not parsed again, and the syntax tree, or the diagnostic, is always the one ``parse``
gives of the same text."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_syntax_pieces import config, dump

from ccl import syntax
from ccl.diagnostics import CclError, Source
from ccl.limits import recursion_headroom

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "missions" / "corot").glob("*/*.ccl"),
                  *(ROOT / "tests" / "ccl" / "cases").glob("*.ccl")])


def outcome(text: str, how: str, cache: syntax.ParseCache | None = None) -> object:
    """The tree (dumped) or the diagnostic of ``text``, by ``parse`` or ``parse_reusing``."""
    source = Source.of("f.ccl", text)
    try:
        tree = syntax.parse(source) if how == "whole" else \
            syntax.parse_reusing(source, cache or syntax.ParseCache())
    except CclError as exc:
        return exc.diagnostics
    with recursion_headroom():  # a test file nests brackets 256 deep
        return dump(tree)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_shipped_and_test_source_parses_as_a_whole_parse_does(path: Path) -> None:
    text = path.read_text(encoding="utf-8-sig")
    with recursion_headroom():  # comparing trees nested as deep as the brackets
        assert outcome(text, "reusing") == outcome(text, "whole")


def test_an_edit_parses_only_the_declaration_it_touches_and_the_tree_is_the_same() -> None:
    text = config(40)
    cache = syntax.ParseCache()
    assert outcome(text, "reusing", cache) == outcome(text, "whole")
    first = cache.parsed
    assert first > 40  # every declaration, the first time
    # typing inside one function, then a line added above everything (all offsets move)
    for edited in (text.replace("let x = t[a] + 7;", "let x = t[a] + 77;"),
                   "// a new first line\n" + text.replace("+ 7;", "+ 77;")):
        assert outcome(edited, "reusing", cache) == outcome(edited, "whole")
        assert cache.parsed == 1
    assert len(cache.trees) <= first  # the trees of text gone are dropped


GOOD = config(5)


@pytest.mark.parametrize("edited", [
    GOOD.replace("let x = t[a] + 3;", "let x = t[a] + 3"),  # a `;` missing
    GOOD + "}",  # a stray brace
    GOOD + ";",  # a stray semicolon
    GOOD.replace("rule gain * 2 <= 200;", "rule gain * 2 <= ;"),
    "",  # an empty file
    "   \n  // only a comment\n",
], ids=["semicolon-missing", "stray-brace", "stray-semicolon", "operand-missing", "empty",
        "comment-only"])
def test_a_text_that_does_not_parse_has_the_diagnostic_of_a_whole_parse(edited: str) -> None:
    cache = syntax.ParseCache()
    outcome(GOOD, "reusing", cache)  # a cache full of the good text's trees
    assert outcome(edited, "reusing", cache) == outcome(edited, "whole")
