"""Syntax: CCL text to a textX syntax tree, or a syntax diagnostic.

The grammar lives in ``grammar/ccl.tx``. Nothing here knows what a name means; that is
``ccl.sema``'s job. The metamodel is built once per process.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from textx import TextXSyntaxError, metamodel_from_file
from textx.metamodel import TextXMetaModel

from ccl.diagnostics import CclError, Diagnostic, Source

GRAMMAR = Path(__file__).parent / "grammar" / "ccl.tx"

# How the grammar's token rules read in a message.
_RULE_WORDS = {
    "Ident": "a name",
    "QName": "a name",
    "Number": "a number",
    "STRING": "a string",
    "AssignOp": "`=`",
    "BinOp": "an operator",
}


@functools.cache
def metamodel() -> TextXMetaModel:
    """The CCL metamodel (built on first use, then shared)."""
    return metamodel_from_file(str(GRAMMAR), autokwd=True, memoization=False)


def parse(source: Source) -> Any:
    """Parse ``source`` into a textX model; raise CclError with one diagnostic if it is not
    well-formed CCL."""
    try:
        return metamodel().model_from_str(source.text, file_name=source.path)
    except TextXSyntaxError as exc:
        raise CclError([_syntax_diagnostic(source, exc)]) from None


def _syntax_diagnostic(source: Source, exc: TextXSyntaxError) -> Diagnostic:
    line, col = exc.line or 1, exc.col or 1
    offset = source.line_starts[line - 1] + col - 1 if line <= len(source.line_starts) else 0
    rest = source.text[offset:]
    token_match = re.match(r"[A-Za-z_][A-Za-z0-9_]*|\d+|\S", rest)
    token = token_match.group(0) if token_match else ""
    expected = _expected(exc)
    span = source.span(offset, offset + max(1, len(token)))
    found = f"`{token}`" if token else "the end of the file"
    hint = ""
    if token in ("while", "loop", "do"):
        hint = "CCL has no unbounded loops: use `for i in a .. b { ... }`"
    elif expected == ["`;`"] or "`;`" in expected[:2]:
        hint = "statements and declarations end with `;`"
    elif token == "=" and ("`==`" in expected or "an operator" in expected):
        hint = "comparison is `==`"
    message = f"syntax error: unexpected {found}"
    if expected:
        message += f"; expected {_or_list(expected)}"
    return Diagnostic("E-SYNTAX", message, span, hint)


def _expected(exc: TextXSyntaxError) -> list[str]:
    words: list[str] = []
    for rule in getattr(exc, "expected_rules", None) or []:
        to_match = getattr(rule, "to_match", None)
        name = getattr(rule, "rule_name", "") or ""
        if isinstance(to_match, str) and to_match.startswith(("\\/\\/", "\\/\\*")):
            continue  # the Comment rule: a comment is never what is missing
        if name in _RULE_WORDS:
            word = _RULE_WORDS[name]
        elif isinstance(to_match, str) and not getattr(rule, "regex", None):
            word = f"`{to_match}`"
        elif isinstance(to_match, str) and re.fullmatch(r"[A-Za-z_]\w*", to_match or ""):
            word = f"`{to_match}`"
        else:
            word = _RULE_WORDS.get(name, f"`{to_match}`" if to_match else name)
        if word and word not in words:
            words.append(word)
    # Binary operators crowd the message; say "an operator" once instead.
    ops = {"`||`", "`&&`", "`==`", "`!=`", "`<=`", "`>=`", "`<`", "`>`", "`+`", "`-`", "`*`",
           "`/`", "`%`"}
    if len(ops.intersection(words)) > 3:
        words = [w for w in words if w not in ops] + ["an operator"]
    return words


def _or_list(words: list[str]) -> str:
    if len(words) == 1:
        return words[0]
    if len(words) > 6:
        words = words[:6] + ["..."]
    return ", ".join(words[:-1]) + " or " + words[-1]
