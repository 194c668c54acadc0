"""A big file is parsed in pieces of whole declarations (to bound the parser's memory),
its bodies packed until analyzed: the syntax tree, the diagnostics and the image are those
of a whole parse."""

from __future__ import annotations

import gc
from pathlib import Path
from types import FunctionType
from typing import Any

import pytest

from ccl import syntax
from ccl.diagnostics import CclError, Source
from ccl.driver import Compiler
from ccl.limits import MAX_BRACKETS, recursion_headroom
from ccl.syntax import PackedTree, SyntaxNode

SMALL_PIECES = 300  # characters: a few declarations a piece


def config(functions: int) -> str:
    """A configuration of ``functions`` functions, with every kind of top-level ending."""
    out = ["mission corot;", "config pieces version 1;", "const N = 8;",
           "param gain : int[0..100] = 5;   // a comment with ; and } in it",
           "table t[N] : int[0..255] = [1, 2, 3, 4, 5, 6, 7, 8];", "var acc : int[0..1000];",
           "rule gain * 2 <= 200;"]
    for k in range(functions):
        out.append(f"fn f_{k}(a: int[0..7]) -> int {{\n    let x = t[a] + {k};\n"
                   f"    if x > gain {{ acc = clamp(x, 0, 1000); }} else {{ acc = 0; }}\n"
                   f"    for i in 0 .. N {{ acc = clamp(acc + t[i], 0, 1000); }}\n"
                   "    return x;\n}")
    out.append("fn clamp(v: int, lo: int, hi: int) -> int {\n    if v < lo { return lo; }\n"
               "    if v > hi { return hi; }\n    return v;\n}")
    out.append("task tick every 1 s {\n    acc = f_0(1);\n}\non apply {\n    acc = 0;\n}\n")
    return "\n".join(out)


def dump(node: Any) -> Any:
    """Everything a syntax tree holds, comparable (a packed body unpacked)."""
    if isinstance(node, PackedTree):
        return dump(node.unpack())
    if isinstance(node, SyntaxNode):
        return (type(node).__name__, node._tx_position, node._tx_position_end,
                tuple((name, dump(getattr(node, name))) for name in type(node).__slots__))
    if isinstance(node, list):
        return [dump(n) for n in node]
    return node


def parsed(text: str, monkeypatch: pytest.MonkeyPatch, piece_chars: int,
           pack_bodies: bool = False) -> Any:
    monkeypatch.setattr(syntax, "PIECE_CHARS", piece_chars)
    try:
        return dump(syntax.parse(Source.of("p.ccl", text), pack_bodies))
    except CclError as exc:
        return [d.to_json() for d in exc.diagnostics]


def test_a_big_file_is_cut_in_many_pieces() -> None:
    text = config(40)
    assert len(text) > 20 * SMALL_PIECES
    old = syntax.PIECE_CHARS
    try:
        syntax.PIECE_CHARS = SMALL_PIECES
        cuts = syntax._pieces(syntax.blank_comments(text))
    finally:
        syntax.PIECE_CHARS = old
    assert len(cuts) > 10
    assert cuts[0][0] == 0 and cuts[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:], strict=False))


def test_no_piece_is_only_blanks() -> None:
    # blanks after the last cut would be a piece that does not parse (a whole parse again)
    text = config(40) + "\n\n   \n"
    old = syntax.PIECE_CHARS
    try:
        for size in range(150, 450, 7):  # some sizes put the last cut before the blanks
            syntax.PIECE_CHARS = size
            cuts = syntax._pieces(syntax.blank_comments(text))
            assert all(text[a:b].strip() for a, b in cuts), size
    finally:
        syntax.PIECE_CHARS = old


def test_pieces_build_the_tree_of_a_whole_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    text = config(40)
    whole = parsed(text, monkeypatch, 10**9)
    assert isinstance(whole, tuple)  # it parsed
    assert parsed(text, monkeypatch, SMALL_PIECES) == whole


@pytest.mark.parametrize("damage", [
    ("return x;\n}", "return x\n}"),            # a missing `;`
    ("acc = 0; }", "acc = 0; }}"),               # a stray `}`
    ("rule gain * 2 <= 200;", "rule gain * 2 <= 200; {"),  # an unclosed `{`
    ("on apply {", "on apply {\n    acc = = 1;"),  # in the last piece
    ("const N = 8;", "const N = ;"),
])
def test_a_malformed_file_gets_the_diagnostic_of_a_whole_parse(
        monkeypatch: pytest.MonkeyPatch, damage: tuple[str, str]) -> None:
    good, bad = damage
    text = config(40)
    # damage the last occurrence: deep in the file, many pieces after the first
    at = text.rindex(good)
    text = text[:at] + bad + text[at + len(good):]
    whole = parsed(text, monkeypatch, 10**9)
    assert isinstance(whole, list) and whole[0]["code"] == "E-SYNTAX", whole
    assert parsed(text, monkeypatch, SMALL_PIECES) == whole


def test_packed_bodies_unpack_to_the_tree_of_a_whole_parse(
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = config(40)
    monkeypatch.setattr(syntax, "PIECE_CHARS", SMALL_PIECES)
    tree = syntax.parse(Source.of("p.ccl", text), pack_bodies=True)
    with_body = [d for d in tree.decls if hasattr(d, "body")]
    assert len(with_body) == 43  # 41 functions, the task, `on apply`
    assert all(type(d.body) is PackedTree for d in with_body)
    unpacked = syntax.unpacked(with_body[0].body)
    assert type(unpacked).__name__ == "Block" and unpacked.stmts
    assert syntax.unpacked(unpacked) is unpacked  # a tree is its own unpacked form
    assert dump(tree) == parsed(text, monkeypatch, 10**9)
    # a file parsed whole is small: nothing to pack
    monkeypatch.setattr(syntax, "PIECE_CHARS", 10**9)
    small = syntax.parse(Source.of("p.ccl", config(1)), pack_bodies=True)
    assert not any(type(d.body) is PackedTree for d in small.decls if hasattr(d, "body"))


def _compiled(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch,
              piece_chars: int) -> Any:
    """The image bytes of ``text`` compiled, or its diagnostics."""
    monkeypatch.setattr(syntax, "PIECE_CHARS", piece_chars)
    path = tmp_path / "big.ccl"
    path.write_text(text, encoding="utf-8")
    try:
        return Compiler().compile(path).image.encode()
    except CclError as exc:
        return [d.to_json() for d in exc.diagnostics]


def test_packed_bodies_compile_to_the_image_of_a_whole_parse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = config(40)
    whole = _compiled(tmp_path, text, monkeypatch, 10**9)
    assert isinstance(whole, bytes), whole
    assert _compiled(tmp_path, text, monkeypatch, SMALL_PIECES) == whole


@pytest.mark.parametrize("damage", [
    ("let x = t[a] + 3;", "let x = t[a] + nope;"),           # E-UNKNOWN-NAME
    ("    return x;\n}", "    acc = x;\n}"),               # E-MISSING-RETURN
    ("acc = f_0(1);", "acc = f_0(true);"),                  # E-TYPE in the task
    ("on apply {\n    acc = 0;", "on apply {\n    acc = 5000;"),  # out of range, at the end
])
def test_errors_in_packed_bodies_are_those_of_a_whole_parse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: tuple[str, str]) -> None:
    good, bad = damage
    text = config(40)
    at = text.index(good)
    text = text[:at] + bad + text[at + len(good):]
    whole = _compiled(tmp_path, text, monkeypatch, 10**9)
    assert isinstance(whole, list) and whole[0]["code"] != "E-SYNTAX", whole
    assert _compiled(tmp_path, text, monkeypatch, SMALL_PIECES) == whole


def test_a_check_leaves_no_cycles_per_expression(tmp_path: Path) -> None:
    # The compile pauses the cyclic collector: a cycle made per expression (the precedence
    # climber, a closure calling itself) held every expression's operands until the
    # compile ended. What a check leaves to the collector is its own state (the analyzer
    # and the declarations' syntax), no function.
    syntax.metamodel()
    path = tmp_path / "c.ccl"
    path.write_text(config(40), encoding="utf-8")
    Compiler().check(path)  # missions loaded, caches filled
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        Compiler().check(path)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        closures = [o for o in gc.garbage if type(o) is FunctionType]
        syntax_nodes = sum(isinstance(o, SyntaxNode) for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()
    assert syntax_nodes, "the check's own state is collected, as it should be"
    assert closures == [], [c.__qualname__ for c in closures[:5]]


def test_a_body_nested_to_the_limit_is_packed_and_unpacked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    depth = MAX_BRACKETS - 1  # the function's `{` is one level
    deep = "fn deep() -> int {\n    return " + "(" * depth + "1" + ")" * depth + ";\n}\n"
    text = config(40) + "\n" + deep
    monkeypatch.setattr(syntax, "PIECE_CHARS", SMALL_PIECES)
    tree = syntax.parse(Source.of("p.ccl", text), pack_bodies=True)
    last = tree.decls[-1]
    assert last.name == "deep" and type(last.body) is PackedTree
    with recursion_headroom():  # for `dump`
        assert dump(tree) == parsed(text, monkeypatch, 10**9)
    # deeper than marshal takes (2,000 levels): the body is kept as it is, not lost
    block = type(syntax.unpacked(last.body))
    too_deep: Any = None
    for _ in range(1100):  # a node and a list a level
        outer = block.__new__(block)
        outer._tx_position = outer._tx_position_end = 0
        outer.stmts = [too_deep] if too_deep is not None else ()
        too_deep = outer
    assert PackedTree.of(too_deep) is too_deep
