"""The TextMate grammar (``editors/ccl.tmLanguage.json``) colours CCL as the compiler reads
it: run by a small TextMate tokenizer (first match wins, begin/end rules span lines, as
editors run it), on the CoRoT sources and on a sample with every kind of token. Comments
are the characters the compiler's own lexer blanks out (``ccl.syntax.blank_comments``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccl.sema.symbols import KEYWORDS
from ccl.syntax import blank_comments

ROOT = Path(__file__).resolve().parents[2]
GRAMMAR = ROOT / "editors" / "ccl.tmLanguage.json"
SOURCES = sorted((ROOT / "missions" / "corot").glob("*/*.ccl"))


@dataclass
class _Rule:
    raw: dict[str, Any]
    regex: re.Pattern[str]


def _rules(grammar: dict[str, Any], patterns: list[dict[str, Any]]) -> list[_Rule]:
    """``patterns`` with every ``include`` of the repository replaced by its patterns."""
    out: list[_Rule] = []
    for p in patterns:
        if "include" in p:
            out += _rules(grammar, grammar["repository"][p["include"][1:]]["patterns"])
        elif "patterns" in p and "match" not in p and "begin" not in p:
            out += _rules(grammar, p["patterns"])
        else:
            out.append(_Rule(p, re.compile(p.get("match") or p["begin"])))
    return out


def tokenize(text: str) -> list[list[str]]:
    """The scopes of every character of ``text`` (a list of scope names each)."""
    grammar = json.loads(GRAMMAR.read_text())
    top = _rules(grammar, grammar["patterns"])
    scopes: list[list[str]] = [[] for _ in text]
    stack: list[tuple[_Rule, re.Pattern[str], list[_Rule]]] = []  # open begin/end rules

    def mark(start: int, end: int, name: str | None) -> None:
        if name:
            for i in range(start, end):
                scopes[i].append(name)

    def captures(m: re.Match[str], table: dict[str, Any]) -> None:
        for group, spec in table.items():
            g = int(group)
            if m.group(g) is not None:
                mark(m.start(g), m.end(g), spec.get("name"))

    pos = 0
    while pos < len(text):
        line_end = text.find("\n", pos)
        line_end = len(text) if line_end < 0 else line_end
        line = text[:line_end]  # searches see the line (and what precedes, for lookbehind)
        while pos <= line_end:
            rules = stack[-1][2] if stack else top
            best: tuple[int, int, _Rule | None, re.Match[str]] | None = None
            if stack:
                m = stack[-1][1].search(line, pos)
                if m:
                    best = (m.start(), 0, None, m)
            for order, rule in enumerate(rules, start=1):
                m = rule.regex.search(line, pos)
                if m and (best is None or m.start() < best[0]):
                    best = (m.start(), order, rule, m)
            if best is None:
                break
            _, _, rule, m = best
            if stack:  # everything up to here is inside the open rule
                mark(pos, m.start() if rule is None else m.end(),
                     stack[-1][0].raw.get("contentName"))
                for open_rule, _, _ in stack:
                    mark(pos, m.end(), open_rule.raw.get("name"))
            if rule is None:  # the end of the open rule
                captures(m, stack[-1][0].raw.get("endCaptures", {}))
                stack.pop()
            elif "begin" in rule.raw:
                mark(m.start(), m.end(), rule.raw.get("name"))
                captures(m, rule.raw.get("beginCaptures", {}))
                stack.append((rule, re.compile(rule.raw["end"]),
                              _rules(grammar, rule.raw.get("patterns", []))))
            else:
                mark(m.start(), m.end(), rule.raw.get("name"))
                captures(m, rule.raw.get("captures", {}))
            pos = max(m.end(), pos + (1 if m.end() == m.start() else 0))
        if stack:  # an open rule (a block comment) covers the rest of the line
            for open_rule, _, _ in stack:
                mark(pos, min(line_end + 1, len(text)), open_rule.raw.get("name"))
        pos = line_end + 1
    return scopes


def scopes_of(text: str, scopes: list[list[str]], word: str, nth: int = 0) -> list[str]:
    at = -1
    for _ in range(nth + 1):
        at = text.index(word, at + 1)
    return scopes[at]


SAMPLE = """\
/* A block comment
   over two lines: param fn task */
mission corot;
config sample version 3;
uses photometry;
const MASK = 0x1F;
param gain : int[0..MASK * 2] = 10;   // param in a comment
table stars[4] : int[0..255] from "stars.csv" column mag;
var armed : bool;
fn clamp(v: int, lo: int, hi: int) -> int {
    if v < lo { return lo; } else { return min(v, hi); }
}
task tick every 32 s {
    for s in 0 .. 4 { flag(s, photometry.med3(1, 2, 3)); }
    armed = true;
}
on apply { gain += 1; }
"""


def test_the_grammar_colours_every_kind_of_token() -> None:
    s = tokenize(SAMPLE)

    def has(word: str, scope: str, nth: int = 0) -> None:
        got = scopes_of(SAMPLE, s, word, nth)
        assert any(x.startswith(scope) for x in got), (word, nth, got)

    has("A block", "comment.block")
    has("param fn task", "comment.block")  # keywords inside a comment stay comment
    has("param in a", "comment.line.double-slash")
    assert not any(x.startswith("keyword") for x in scopes_of(SAMPLE, s, "param in a"))
    has("mission", "keyword.other.declaration")
    has("version", "keyword.other")
    has("param gain", "storage.type")
    has("gain", "variable.other.declaration")
    has("int", "storage.type.primitive")
    has("0..MASK", "meta.type.range")
    has("..MASK", "keyword.operator.range")
    has("MASK * 2", "variable.other.constant")
    has("0x1F", "constant.numeric.hex")
    has("10;", "constant.numeric.decimal")
    has('"stars.csv"', "string.quoted.double")
    has("from", "keyword.other")
    has("bool", "storage.type.primitive")
    has("clamp", "entity.name.function")
    has("if v", "keyword.control")
    has("return", "keyword.control")
    has("else", "keyword.control")
    has("min(", "support.function.builtin")
    has("every", "keyword.control")
    has("s {", "keyword.other.unit")
    has("for", "keyword.control")
    has("flag(", "entity.name.function.call")
    has("med3", "entity.name.function.call")
    has("true", "constant.language.boolean")
    has("apply", "entity.name.function.event")
    has("+=", "keyword.operator.assignment")
    has("<", "keyword.operator.comparison")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_comments_and_keywords_of_the_corot_sources_are_coloured_as_the_compiler_reads_them(
        path: Path) -> None:
    text = path.read_text()
    s = tokenize(text)
    blanked = blank_comments(text)
    for i, (c, b) in enumerate(zip(text, blanked, strict=True)):
        if c != b:  # the compiler reads a comment here
            assert any(x.startswith("comment.") for x in s[i]), (path.name, i, text[i:i + 20])
    for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", blanked):
        if m.group(0) in KEYWORDS and m.group(0) not in {"int", "bool", "true", "false"}:
            got = s[m.start()]
            assert any(x.startswith(("keyword.", "storage.type")) for x in got), \
                (path.name, m.group(0), got)
        if m.group(0) in {"int", "bool"}:
            assert "storage.type.primitive.ccl" in s[m.start()]


def test_the_vscode_extension_uses_this_grammar_for_ccl_files() -> None:
    folder = ROOT / "editors" / "vscode"
    manifest = json.loads((folder / "package.json").read_text())
    (language,) = manifest["contributes"]["languages"]
    (grammar,) = manifest["contributes"]["grammars"]
    assert language["extensions"] == [".ccl"] and grammar["language"] == language["id"]
    assert (folder / grammar["path"]).resolve() == GRAMMAR.resolve()
    assert grammar["scopeName"] == json.loads(GRAMMAR.read_text())["scopeName"]
    assert json.loads((folder / language["configuration"]).read_text())["comments"] == {
        "lineComment": "//", "blockComment": ["/*", "*/"]}
