"""Typed symbols: what a name means, one small immutable record per kind of thing named.

A module-level name starts as the symbol of its declaration (``ConstSymbol``,
``DataSymbol``, ``ProcSymbol``); once a parameter, state variable or table has been analyzed
its symbol becomes the IR object it stands for (``GlobalSymbol``, ``ArraySymbol``). Locals
live in a ``ProcScope``, one per procedure body being analyzed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ccl import ir
from ccl.diagnostics import Span
from onboard.mission import MissionProfile

BUILTINS = ("min", "max", "abs", "env")
KEYWORDS = frozenset({
    "mission", "config", "vmlet", "version", "uses", "const", "param", "rule", "table", "var",
    "fn", "instr", "task", "every", "on", "expose", "hide", "let", "if", "else", "for", "in",
    "while", "return", "int", "bool", "true", "false", "from", "column", "replaces", "type",
})

# How the kinds of module-level declarations read in messages.
KIND_WORDS = {
    "const": "a constant", "param": "a parameter", "var": "a state variable", "table": "a table",
    "fn": "a function", "instr": "an instruction", "task": "a task", "type": "a type",
}


@dataclass(frozen=True)
class ConstSymbol:
    """A `const`: its value is computed on first use (``Constants.value``)."""

    decl: Any
    kind: ClassVar[str] = "const"


@dataclass(frozen=True)
class DataSymbol:
    """A `param`, `var` or `table` (``kind``) declared but not analyzed (yet, or at all:
    its declaration has an error)."""

    kind: str
    decl: Any


@dataclass(frozen=True)
class GlobalSymbol:
    """An analyzed scalar parameter or state variable."""

    glob: ir.Global

    @property
    def kind(self) -> str:
        return self.glob.kind.value


@dataclass(frozen=True)
class ArraySymbol:
    """An analyzed table or state array."""

    array: ir.Array

    @property
    def kind(self) -> str:
        return self.array.kind.value


@dataclass(frozen=True)
class ProcSymbol:
    """A `fn`, `instr` or `task` (``kind``) of this file."""

    kind: str
    decl: Any


@dataclass(frozen=True)
class TypeSymbol:
    """A `type` this VMlet defines; its ``ir.TypeDef`` is made on first use
    (``ExpressionChecker.define_type``), into ``ModuleScope.types``."""

    decl: Any
    kind: ClassVar[str] = "type"


Symbol = ConstSymbol | DataSymbol | GlobalSymbol | ArraySymbol | ProcSymbol | TypeSymbol


@dataclass(frozen=True)
class Signature:
    """How a function or VMlet instruction is called."""

    name: str
    kind: ir.ProcKind
    params: tuple[tuple[str, ir.Type], ...]
    returns: ir.Type | None
    decl: Any
    vmlet: str = ""  # for instructions: the VMlet defining them


@dataclass
class ModuleScope:
    """The names one file declares and the names visible to it from outside."""

    kind: ir.ProgramKind | None = None
    mission: MissionProfile | None = None
    own_name: str = ""
    symbols: dict[str, Symbol] = field(default_factory=dict)
    declared_at: dict[str, Span] = field(default_factory=dict)
    fn_sigs: dict[str, Signature] = field(default_factory=dict)
    instr_sigs: dict[str, list[Signature]] = field(default_factory=dict)  # unqualified name
    natives: dict[str, ir.NativeSig] = field(default_factory=dict)  # visible natives
    hidden_by: dict[str, str] = field(default_factory=dict)  # native -> VMlet hiding it
    uses: list[ir.Program] = field(default_factory=list)
    # The VMlet-defined types visible here: those the VMlets used define (and their
    # layers), and a VMlet's own once defined.
    types: dict[str, ir.TypeDef] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)  # declarations whose analysis stopped
    # VMlet instructions called, each with its first call in the text: each takes one of
    # the image's EXT_COUNT extension opcodes.
    instr_uses: dict[tuple[str, str], Span] = field(default_factory=dict)

    def kind_word(self, name: str) -> str:
        """What a module-level name is, as a message says it: "a parameter"."""
        symbol = self.symbols.get(name)
        kind = symbol.kind if symbol is not None else ""
        return KIND_WORDS.get(kind, f"a {kind or 'name'}")


@dataclass
class ProcScope:
    """What the analyzer knows inside one procedure body."""

    name: str
    kind: ir.ProcKind
    returns: ir.Type | None
    locals: list[ir.Local] = field(default_factory=list)
    scopes: list[dict[str, ir.Local]] = field(default_factory=lambda: [{}])
    calls: list[tuple[str, Span]] = field(default_factory=list)
    # How deep the statements being analyzed nest in the IR (`ir.nested`): each `if`,
    # `else if` and `for` body is one deeper. Kept within MAX_NESTING as the IR is built,
    # since walks of statements (the missing-return check) come before `check_nesting`.
    depth: int = 0

    def lookup(self, name: str) -> ir.Local | None:
        """The local ``name`` in the innermost scope that has it."""
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def declare(self, local: ir.Local) -> None:
        """Add ``local`` to the innermost scope."""
        self.scopes[-1][local.name] = local
        self.locals.append(local)
