"""Syntax: CCL text to a syntax tree, or a syntax diagnostic.

The grammar lives in ``grammar/ccl.tx``; textX turns it into a parser, once per process.
Nothing here knows what a name means; that is ``ccl.sema``'s job.

The tree is built here from the parser's parse tree, not by textX's model builder: ours
does only what ``ccl.sema`` uses (one object per rule instance, attributes named as in
the grammar, the rule name as the class name, character offsets ``_tx_position`` and
``_tx_position_end``), and so takes a fifth of the time. textX's builder also resolves
references, runs object processors and computes a line and column for every node; the
grammar has no references or processors, and positions are converted only for the few
nodes a diagnostic needs (``Source.span``).
"""

from __future__ import annotations

import functools
import marshal
import re
from pathlib import Path
from typing import Any

from arpeggio import NoMatch, NonTerminal, Terminal
from textx import TextXSyntaxError, metamodel_from_file
from textx.const import MULT_ONEORMORE, MULT_ZEROORMORE, RULE_ABSTRACT, RULE_MATCH
from textx.metamodel import TextXMetaModel

from ccl.diagnostics import CclError, Diagnostic, Source
from ccl.limits import MAX_BRACKETS, recursion_headroom

GRAMMAR = Path(__file__).parent / "grammar" / "ccl.tx"

# How the grammar's token rules read in a message.
_RULE_WORDS = {
    "Ident": "a name",
    "Name": "a name",
    "CallName": "a name",
    "ElementName": "a name",
    "Target": "a name",
    "Number": "a number",
    "STRING": "a string",
    "AssignOp": "`=`",
    "BinOp": "an operator",
    "BoolWord": "`true`, `false`",
}

# A comment, or a string (a `//` inside a string does not start a comment).
_COMMENT_OR_STRING = re.compile(r'"[^"\\\n]*"|\'[^\'\\\n]*\'|//[^\n]*|/\*[\s\S]*?\*/')
_NOT_LINE_BREAK = re.compile(r"[^\r\n]")
# What the parser stopped at, for the message: a name, a number-like word, or one character.
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9][A-Za-z0-9_]*|\S")
# A bracket, or a string (brackets inside a string do not nest).
_BRACKET_OR_STRING = re.compile(r'[(\[{]|[)\]}]|"[^"\\\n]*"|\'[^\'\\\n]*\'')
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]+")
_DECIMAL_DIGITS = re.compile(r"[0-9]+")


@functools.cache
def metamodel() -> TextXMetaModel:
    """The CCL metamodel (built on first use, then shared)."""
    return metamodel_from_file(str(GRAMMAR), autokwd=True, memoization=False)


def blank_comments(text: str) -> str:
    """``text`` with every comment replaced by spaces (line breaks kept), so that every
    offset, line and column is that of the original text."""
    def blank(m: re.Match[str]) -> str:
        token = m.group(0)
        return token if token[0] in "\"'" else _NOT_LINE_BREAK.sub(" ", token)

    return _COMMENT_OR_STRING.sub(blank, text)


class SyntaxNode:
    """A node of the syntax tree: an instance of a grammar rule (its class is named after
    the rule), with the rule's attributes (``None`` or ``()`` when absent) and the offsets
    of its first and past-its-last character in the source."""

    __slots__ = ("_tx_position", "_tx_position_end")
    _tx_position: int
    _tx_position_end: int

    def __repr__(self) -> str:
        return f"{type(self).__name__}@{self._tx_position}"


def parse(source: Source, pack_bodies: bool = False) -> Any:
    """Parse ``source`` into a syntax tree (a ``SyntaxNode`` of rule ``File``); raise
    CclError with one diagnostic if it is not well-formed CCL.

    With ``pack_bodies``, the body of each function, instruction, task and event handler
    of a big file (one parsed in pieces) is a ``PackedTree`` until ``unpacked``: the
    syntax of a big file's bodies, as objects, was most of the memory of its compile."""
    text = blank_comments(source.text)
    _check_brackets(source, text)
    parser = metamodel()._parser_blueprint.clone()
    with recursion_headroom():  # the parser and the builder recurse per bracket level
        pieces = _pieces(text)
        if len(pieces) > 1:
            tree = _parse_in_pieces(parser, text, pieces, source.path, pack_bodies)
            if tree is not None:
                return tree
        try:
            tree = parser.parse(text, file_name=source.path)
        except TextXSyntaxError as exc:
            raise CclError([_syntax_diagnostic(source, exc)]) from None
        root = tree[0]  # the File node (the root also holds the end of input) ...
        if type(root) is not NonTerminal:  # ... unless the file is empty: then only EOF
            return _empty_node(metamodel()["File"], root.position)
        return _builder()(root, 0)


# The parser's own tree of a piece of text is about 120 bytes a character and lives until
# the syntax tree of the piece is built (with it, about 300 bytes a character): a big file
# is parsed in pieces of about this many characters, so that this tree stays small (a
# 100,000-line file parsed whole peaked at 600 MiB, most of it the parser's tree). Pieces
# of 64 KiB peaked 14 MiB higher than these, and were no faster.
PIECE_CHARS = 16 * 1024

# What delimits top-level declarations: a string (skipped), a bracket, or `;`.
_DECL_DELIMITER = re.compile(r'[(\[{;]|[)\]}]|"[^"\\\n]*"|\'[^\'\\\n]*\'')


def _pieces(text: str, min_chars: int | None = None) -> list[tuple[int, int]]:
    """``text`` (comments blanked) cut into pieces of whole top-level declarations, each of
    at least ``min_chars`` (``PIECE_CHARS``) characters (the last may be shorter; 0: one
    piece a declaration): a cut follows a `;` or
    a `}` outside any bracket, where every declaration of the grammar ends. A cut in the
    wrong place (malformed text) makes a piece fail to parse, and the file is then parsed
    whole, so that its diagnostic is the one a whole parse gives."""
    if min_chars is None:  # (read at the call: a test makes pieces small)
        min_chars = PIECE_CHARS
    if len(text) < 2 * min_chars:
        return [(0, len(text))]
    pieces, start, depth = [], 0, 0
    for m in _DECL_DELIMITER.finditer(text):
        c = m.group(0)
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(0, depth - 1)
            if depth == 0 and c == "}" and m.end() - start >= min_chars:
                pieces.append((start, m.end()))
                start = m.end()
        elif c == ";" and depth == 0 and m.end() - start >= min_chars:
            pieces.append((start, m.end()))
            start = m.end()
    if start < len(text):
        if text[start:].strip() or not pieces:
            pieces.append((start, len(text)))
        else:  # blanks after the last cut: no piece of their own (it would not parse)
            pieces[-1] = (pieces[-1][0], len(text))
    return pieces


def _parse_in_pieces(parser: Any, text: str, pieces: list[tuple[int, int]],
                     path: str, pack_bodies: bool) -> Any | None:
    """The syntax tree of ``text`` parsed piece by piece, each piece's parse tree dropped
    once its syntax tree is built (and, with ``pack_bodies``, its bodies packed); None if a
    piece does not parse (or holds no declaration). Each declaration ends at its piece's
    end or before, and the grammar looks no further than a declaration's last token, so
    the tree is the one a whole parse builds."""
    build = _builder()
    file_node = None
    for start, end in pieces:
        try:
            root = parser.parse(text[start:end], file_name=path)[0]
        except TextXSyntaxError:
            return None
        if type(root) is not NonTerminal:
            return None
        node = build(root, start)
        del root
        if pack_bodies:
            for decl in node.decls:
                if type(decl).__name__ in _PACKED_BODY_DECLS:
                    decl.body = PackedTree.of(decl.body)
        if file_node is None:
            file_node = node
        else:
            file_node.decls.extend(node.decls)  # a piece that parsed has a declaration
            file_node._tx_position_end = node._tx_position_end
    return file_node


def _check_brackets(source: Source, text: str) -> None:
    """Refuse brackets nested deeper than ``MAX_BRACKETS`` (E-TOO-DEEP at the first one too
    deep), before the parser, which recurses per level, meets them. ``text`` is the
    source with comments blanked out. Unbalanced brackets are left to the parser."""
    depth = 0
    for m in _BRACKET_OR_STRING.finditer(text):
        c = m.group(0)
        if c in "([{":
            depth += 1
            if depth > MAX_BRACKETS:
                raise CclError([Diagnostic(
                    "E-TOO-DEEP", f"brackets nest more than {MAX_BRACKETS} deep here",
                    source.span(m.start()),
                    "brackets `(`, `[` and `{` may nest at most "
                    f"{MAX_BRACKETS} deep: use `let` locals or a function for the inner part")])
        elif c in ")]}":
            depth = max(0, depth - 1)


@functools.cache
def _node_class(rule_class: Any) -> tuple[type[SyntaxNode], tuple[tuple[str, bool], ...]]:
    """The syntax tree class of a grammar rule (named after it), and its attributes, each
    with whether it is a list."""
    attrs = tuple((a.name, a.mult in (MULT_ZEROORMORE, MULT_ONEORMORE))
                  for a in rule_class._tx_attrs.values())
    cls = type(rule_class.__name__, (SyntaxNode,), {"__slots__": tuple(name for name, _ in attrs)})
    _PACKING_ID[cls] = len(_PACKED_CLASSES)
    _PACKED_CLASSES.append(cls)
    return cls, attrs


# --------------------------------------------------------------------------- packed bodies

# The declarations whose body ``parse(..., pack_bodies=True)`` packs.
_PACKED_BODY_DECLS = frozenset({"FnDecl", "InstrDecl", "TaskDecl", "OnDecl"})
# The node classes made so far, by their number in a packed tree (and the reverse).
_PACKED_CLASSES: list[type[SyntaxNode]] = []
_PACKING_ID: dict[type[SyntaxNode], int] = {}


class PackedTree:
    """A syntax subtree kept as bytes until it is needed, a tenth of its size as objects:
    each node a tuple ``(class number, start, end, *attributes)``, a list a list, a token
    its text, serialized by ``marshal``. ``unpack`` gives back the very same tree (same
    classes, attributes and offsets)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    @staticmethod
    def of(node: SyntaxNode) -> Any:
        """``node`` packed, or ``node`` itself if it nests too deep for ``marshal``
        (which refuses about 2,000 levels; brackets nest at most ``MAX_BRACKETS``, a few
        levels each, so this is only a safeguard)."""
        try:
            with recursion_headroom():  # one call per level, as deep as the builder went
                return PackedTree(marshal.dumps(_as_tuples(node)))
        except ValueError:
            return node

    def unpack(self) -> Any:
        """The syntax tree that was packed (a new one at each call)."""
        with recursion_headroom():  # one call per level, as deep as the builder went
            return _as_nodes(marshal.loads(self.data))


def unpacked(value: Any) -> Any:
    """``value``, unpacked if it is a ``PackedTree``."""
    return value.unpack() if type(value) is PackedTree else value


def _as_tuples(node: SyntaxNode) -> tuple[Any, ...]:
    """``node`` as nested tuples. (A token, absent value or empty list is taken as it is,
    without a call: most attributes are one.)"""
    kind = type(node)
    values = []
    for name in kind.__slots__:
        value = getattr(node, name)
        if type(value) is list:
            value = [v if type(v) is str else _as_tuples(v) for v in value]
        elif isinstance(value, SyntaxNode):
            value = _as_tuples(value)
        values.append(value)
    return (_PACKING_ID[kind], node._tx_position, node._tx_position_end, *values)


def _as_nodes(packed: tuple[Any, ...]) -> SyntaxNode:
    """The node that ``_as_tuples`` made ``packed`` of."""
    cls = _PACKED_CLASSES[packed[0]]
    obj = cls.__new__(cls)
    obj._tx_position = packed[1]
    obj._tx_position_end = packed[2]
    for name, value in zip(cls.__slots__, packed[3:], strict=True):
        kind = type(value)
        if kind is list:
            value = [v if type(v) is str else _as_nodes(v) for v in value]
        elif kind is tuple and value:  # a node (the empty tuple is an empty list)
            value = _as_nodes(value)
        setattr(obj, name, value)
    return obj


def _empty_node(rule_class: Any, position: int) -> SyntaxNode:
    """A node of ``rule_class`` with no attribute set (``None``, or ``()`` for a list)."""
    cls, attrs = _node_class(rule_class)
    obj = cls.__new__(cls)
    for name, many in attrs:
        setattr(obj, name, () if many else None)
    obj._tx_position = obj._tx_position_end = position
    return obj


@functools.cache
def _builder() -> Any:
    """The function from a parse tree node (and the offset in the file of the text it was
    parsed from) to its syntax tree value (a SyntaxNode, or the text of a token rule), with
    a node class per grammar rule made once."""
    mm = metamodel()
    unquote = mm._obj_processors["STRING"]
    offset = 0  # where the parsed text starts in the file (a piece of it: `_pieces`)
    classes: dict[Any, tuple[type[SyntaxNode], tuple[tuple[str, bool], ...]]] = {}

    def node_class(rule_class: Any) -> tuple[type[SyntaxNode], tuple[tuple[str, bool], ...]]:
        classes[rule_class] = _node_class(rule_class)
        return classes[rule_class]

    def build(node: Any) -> Any:
        if type(node) is Terminal:  # a token: its text, or its pattern's one group (as
            # textX's `use_regexp_group`), or a string without its quotes
            if node.rule.rule_name == "STRING":
                return unquote(node.value)
            match = node.extra_info
            return match.group(1) if match is not None and match.re.groups == 1 else node.value
        rule_class = node.rule._tx_class
        kind = rule_class._tx_type
        if kind == RULE_MATCH:  # a token rule made of alternatives: `'int' | 'bool'`
            return "".join(str(n) for n in node) if len(node) > 1 else build(node[0])
        if kind == RULE_ABSTRACT:  # `Decl: A | B | ...`: the node of the alternative taken
            return build(next(n for n in node if type(n) is NonTerminal))
        cls, attrs = classes.get(rule_class) or node_class(rule_class)
        obj = cls.__new__(cls)
        for name, many in attrs:
            # An absent list is the one empty tuple: most expressions have no operator, and
            # an empty list each was a quarter of a big file's syntax tree.
            setattr(obj, name, () if many else None)
        obj._tx_position = node.position + offset
        obj._tx_position_end = node.position_end + offset
        for child in node:
            how = child.rule_name
            if not how.startswith("__asgn"):
                continue  # keywords and punctuation
            name = child.rule._attr_name
            current = getattr(obj, name)
            if how == "__asgn_plain":  # `a=X`; a list if `a` is assigned more than once
                value = build(child[0])
                if type(current) is list:
                    current.append(value)
                elif type(current) is tuple:  # the first value of a list
                    setattr(obj, name, [value])
                else:
                    setattr(obj, name, value)
            else:  # `a*=X`, `a+=X` (with separators), or `a*=X[',']`
                values = [build(n) for n in child if n.rule_name != "sep"]
                if type(current) is list:
                    current.extend(values)
                elif values:
                    setattr(obj, name, values)
        return obj

    def build_from(root: Any, base: int) -> Any:
        nonlocal offset
        offset = base
        return build(root)

    return build_from


def _syntax_diagnostic(source: Source, exc: TextXSyntaxError) -> Diagnostic:
    cause = exc.__cause__
    if isinstance(cause, NoMatch):
        offset = cause.position
    else:
        line, col = exc.line or 1, exc.col or 1
        offset = (source.line_starts[line - 1] + col - 1 if line <= len(source.line_starts)
                  else 0)
    rest = source.text[offset:]
    token_match = _TOKEN.match(rest)
    token = token_match.group(0) if token_match else ""
    expected = _expected(exc)
    span = source.span(offset, offset + max(1, len(token)))
    found = (f"`{token}`" if token.isprintable() and token.strip()
             else f"character U+{ord(token[0]):04X}" if token else "the end of the file")
    hint = ""
    if token in ("while", "loop", "do"):
        hint = "CCL has no unbounded loops: use `for i in a .. b { ... }`"
    elif token == "else":
        hint = "`else` follows the `}` of an `if` block: `if c { ... } else { ... }`"
    elif expected == ["`;`"] or "`;`" in expected[:2]:
        hint = "statements and declarations end with `;`"
    elif token == "=" and ("`==`" in expected or "an operator" in expected):
        hint = "comparison is `==`"
    elif token[:1].isdigit() and not token.isdigit():  # `12ab`, `0x_`
        hint = ("a number is decimal digits (`1200`) or `0x` and hexadecimal digits "
                "(`0xFF`), with `_` allowed between digits; it cannot run into a name")
    message = f"syntax error: unexpected {found}"
    if expected:
        message += f"; expected {_or_list(expected)}"
    return Diagnostic("E-SYNTAX", message, span, hint)


def _expected(exc: TextXSyntaxError) -> list[str]:
    words: list[str] = []
    for rule in getattr(exc, "expected_rules", None) or []:
        to_match = getattr(rule, "to_match", None)
        name = getattr(rule, "rule_name", "") or ""
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


def literal_value(text: str) -> int:
    """The value of an integer literal: decimal (``1200``) or hexadecimal (``0xFF``), with
    ``_`` between digits. Raises ValueError, with the reason, for a decimal with a leading
    zero (``010``: C would read it as octal 8, CCL refuses to guess) or a malformed literal.
    """
    digits = text.replace("_", "")
    if digits[:2] in ("0x", "0X"):
        if _HEX_DIGITS.fullmatch(digits, 2) is None:
            raise ValueError(f"`{text}` is not a hexadecimal number")
        return int(digits[2:], 16)
    if _DECIMAL_DIGITS.fullmatch(digits) is None:
        raise ValueError(f"`{text}` is not an integer")
    if len(digits) > 1 and digits[0] == "0":
        raise ValueError(f"`{text}` has a leading zero")
    if len(digits) > _MAX_DECIMAL_DIGITS:  # beyond any range, and beyond Python's int()
        raise ValueError(f"a number of {len(digits):,} digits does not fit in 64 bits")
    return int(digits, 10)


_MAX_DECIMAL_DIGITS = 40  # 2**64 has 20 digits: a longer number can only be refused


class ParseCache:
    """The parse trees of one file's top-level declarations, kept from one parse to the
    next while the file is edited (``ccl lsp``): ``parse_reusing`` parses again only the
    declarations whose text changed. A declaration's parse tree depends on its text alone
    (the grammar looks no further than its last token), not on where it is."""

    def __init__(self) -> None:
        self.trees: dict[str, Any] = {}  # a declaration's text (comments blanked) -> tree
        self.parsed = 0  # declarations parsed by the last call (the rest were reused)


def parse_reusing(source: Source, cache: ParseCache) -> Any:
    """``parse(source)``, parsing only the declarations not in ``cache`` (then kept there;
    those gone from the text are dropped). A text that does not parse declaration by
    declaration is parsed whole by ``parse``: its diagnostic is the one ``parse`` gives."""
    text = blank_comments(source.text)
    _check_brackets(source, text)
    build = _builder()
    parser = None
    kept: dict[str, Any] = {}
    file_node = None
    cache.parsed = 0
    with recursion_headroom():
        for start, end in _pieces(text, 0):
            piece = text[start:end]
            root = cache.trees.get(piece) or kept.get(piece)
            if root is None:
                parser = parser or metamodel()._parser_blueprint.clone()
                try:
                    root = parser.parse(piece, file_name=source.path)[0]
                except TextXSyntaxError:
                    return parse(source)
                cache.parsed += 1
                if type(root) is not NonTerminal:
                    return parse(source)
            kept[piece] = root
            node = build(root, start)
            if file_node is None:
                file_node = node
            else:
                file_node.decls.extend(node.decls)
                file_node._tx_position_end = node._tx_position_end
    cache.trees = kept
    return file_node if file_node is not None else parse(source)
