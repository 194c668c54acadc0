"""The typed intermediate representation: what a checked CCL program means.

``ccl.sema`` produces it from the syntax tree; ``ccl.codegen`` turns it into bytecode and the
verifier reasons over it. Every node is a frozen dataclass carrying its type and source span;
names are resolved (a ``LocalRef`` points at its ``Local``, a ``GlobalRef`` at its ``Global``)
and constants are folded, so later stages never look at names or the syntax tree again.

Types are ranges: ``IntType(lo, hi)`` is ``int[lo..hi]``, and plain ``int`` is the full 32-bit
range. ``BOOL`` is the type of conditions (0 or 1 at run time). A type a VMlet defines
(``type q16 = int scale 65536;``, a ``TypeDef``) is the ranged int it rests on, labelled with
its definition (``IntType.nominal``): the checker keeps a ``q16`` apart from an ``int``, and
every later stage (code, proofs, the board) reads only the range.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

from ccl.diagnostics import Span
from onboard.vm.isa import INT_MAX, INT_MIN

# --------------------------------------------------------------------------- types


@dataclass(frozen=True, slots=True)
class TypeDef:
    """``type NAME = int[lo..hi] scale S;`` in VMlet ``vmlet``: a nominal type whose values
    are held as integers in ``lo .. hi``; a value ``x`` of a scaled type stands for the
    number ``x / scale`` (fixed point). ``scale`` is 1 for a type without one."""

    name: str
    vmlet: str
    lo: int
    hi: int
    scale: int
    span: Span = field(compare=False)

    def real(self, lo: int, hi: int) -> str:
        """How the range ``lo .. hi`` of held values reads in this type: ``q16`` for the whole
        range, ``q16[0..1]`` for a range of whole numbers, the held values otherwise."""
        if (lo, hi) == (self.lo, self.hi):
            return self.name
        if lo % self.scale == 0 and hi % self.scale == 0:
            return f"{self.name}[{lo // self.scale}..{hi // self.scale}]"
        return f"{self.name}(held {lo}..{hi})"


@dataclass(frozen=True, slots=True)
class IntType:
    """``int[lo..hi]``: an integer known to lie in the closed range ``lo .. hi``; with
    ``nominal``, a value of that VMlet-defined type held in that range."""

    lo: int
    hi: int
    nominal: TypeDef | None = None

    def __str__(self) -> str:
        if self.nominal is not None:
            return self.nominal.real(self.lo, self.hi)
        if self.lo == INT_MIN and self.hi == INT_MAX:
            return "int"
        return f"int[{self.lo}..{self.hi}]"

    @property
    def plain(self) -> IntType:
        """The same range as a plain integer (what the type rests on)."""
        return self if self.nominal is None else IntType(self.lo, self.hi)

    def contains(self, value: int) -> bool:
        return self.lo <= value <= self.hi

    def includes(self, other: IntType) -> bool:
        return self.lo <= other.lo and other.hi <= self.hi

    @property
    def is_full(self) -> bool:
        return self.lo == INT_MIN and self.hi == INT_MAX

    @property
    def bits(self) -> int:
        """Bits needed to store any value of the range (as an offset from ``lo``)."""
        return max(1, (self.hi - self.lo).bit_length())


@dataclass(frozen=True, slots=True)
class BoolType:
    def __str__(self) -> str:
        return "bool"


INT = IntType(INT_MIN, INT_MAX)
BOOL = BoolType()
Type = IntType | BoolType


# --------------------------------------------------------------------------- symbols


class GlobalKind(Enum):
    PARAM = "param"  # read-only on board; changed by patches
    VAR = "var"  # state kept between task runs


@dataclass(frozen=True, slots=True)
class Global:
    """A scalar parameter or state variable. ``index`` is its slot in the image."""

    name: str
    kind: GlobalKind
    type: IntType
    value: int  # parameter value, or initial value of a state variable
    index: int
    span: Span

    @property
    def writable(self) -> bool:
        return self.kind is GlobalKind.VAR


class ArrayKind(Enum):
    TABLE = "table"  # read-only on board; uploaded data
    VAR = "var"  # state array kept between task runs


@dataclass(frozen=True, slots=True)
class Array:
    """A table or state array of ``length`` elements of ``type``."""

    name: str
    kind: ArrayKind
    type: IntType
    length: int
    values: tuple[int, ...]
    index: int
    span: Span

    @property
    def writable(self) -> bool:
        return self.kind is ArrayKind.VAR


@dataclass(frozen=True, slots=True)
class Local:
    """A local variable, function parameter or loop counter of one procedure.

    ``id`` is unique within the procedure; ``type`` is the declared range that every
    assignment must respect (``int`` when the program declared none).
    """

    name: str
    id: int
    type: Type
    span: Span
    is_param: bool = False
    is_loop_counter: bool = False


@dataclass(frozen=True, slots=True)
class Application:
    """``application NAME share N %;``: the application a configuration is, beside others
    in one VVM, and its part of the share (percent of every frame)."""

    name: str
    share_percent: int
    span: Span


@dataclass(frozen=True, slots=True)
class NativeSig:
    """A host native as the program sees it: argument ranges, result range and cost."""

    name: str
    params: tuple[tuple[str, IntType], ...]
    result: IntType | None
    cost: str  # formula text from the mission profile
    capability: str


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Const:
    value: int
    type: Type
    span: Span


@dataclass(frozen=True, slots=True)
class LocalRef:
    local: Local
    type: Type
    span: Span


@dataclass(frozen=True, slots=True)
class GlobalRef:
    glob: Global
    type: IntType
    span: Span


@dataclass(frozen=True, slots=True)
class ArrayRef:
    array: Array
    index: Expr
    type: IntType
    span: Span


class UnOp(Enum):
    NEG = "-"
    NOT = "!"
    ABS = "abs"


class BinOp(Enum):
    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    MOD = "%"
    MIN = "min"
    MAX = "max"
    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    AND = "&&"
    OR = "||"


ARITHMETIC = frozenset({BinOp.ADD, BinOp.SUB, BinOp.MUL, BinOp.DIV, BinOp.MOD, BinOp.MIN,
                        BinOp.MAX})
COMPARISONS = frozenset({BinOp.EQ, BinOp.NE, BinOp.LT, BinOp.LE, BinOp.GT, BinOp.GE})
LOGICAL = frozenset({BinOp.AND, BinOp.OR})


@dataclass(frozen=True, slots=True)
class Unary:
    op: UnOp
    operand: Expr
    type: Type
    span: Span


@dataclass(frozen=True, slots=True)
class Binary:
    op: BinOp
    left: Expr
    right: Expr
    type: Type
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    """A call of a function of this program (inlined by the verifier)."""

    function: str
    args: tuple[Expr, ...]
    type: Type | None
    span: Span


@dataclass(frozen=True, slots=True)
class NativeCall:
    native: NativeSig
    args: tuple[Expr, ...]
    type: IntType | None
    span: Span


@dataclass(frozen=True, slots=True)
class InstrCall:
    """Use of an instruction defined by a VMlet (one opcode at run time)."""

    vmlet: str
    instr: str
    args: tuple[Expr, ...]
    type: Type | None
    span: Span


@dataclass(frozen=True, slots=True)
class EnvRead:
    key: str
    type: IntType
    span: Span


Expr = (Const | LocalRef | GlobalRef | ArrayRef | Unary | Binary | Call | NativeCall
        | InstrCall | EnvRead)


# --------------------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Let:
    local: Local
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class AssignLocal:
    local: Local
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class AssignGlobal:
    glob: Global
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class AssignElement:
    array: Array
    index: Expr
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class If:
    cond: Expr
    then: tuple[Stmt, ...]
    otherwise: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class For:
    """``for counter in lo .. hi`` (half-open). Bounds are evaluated once, on entry.

    ``max_trips`` is the most iterations the loop can make, from the ranges of its bounds.
    """

    counter: Local
    lo: Expr
    hi: Expr
    body: tuple[Stmt, ...]
    max_trips: int
    span: Span


@dataclass(frozen=True, slots=True)
class Return:
    value: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class ExprStmt:
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Hide:
    """``hide NAME;`` in a VMlet's ``on load``: withdraw a native from its programs."""

    native: str
    span: Span


Stmt = Let | AssignLocal | AssignGlobal | AssignElement | If | For | Return | ExprStmt | Hide


def operands(e: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of ``e``."""
    if isinstance(e, Unary):
        return (e.operand,)
    if isinstance(e, Binary):
        return (e.left, e.right)
    if isinstance(e, ArrayRef):
        return (e.index,)
    if isinstance(e, (Call, NativeCall, InstrCall)):
        return e.args
    return ()


def nested(body: Sequence[Stmt | Expr]) -> Iterator[tuple[Stmt | Expr, int]]:
    """Every statement and expression of ``body`` with its nesting depth, in the order of
    the source: an item of ``body`` is at depth 0, the expressions it evaluates start
    one deeper, an operand is one deeper than its operator, and the statements of an
    ``if`` or ``for`` body are one deeper than the ``if`` or ``for``.

    A loop with its own stack, not a recursion: it is what checks the depth of programs
    (``ccl.sema``), so it must not depend on that depth itself."""
    stack: list[tuple[Stmt | Expr, int]] = [(s, 0) for s in reversed(body)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        inner: tuple[Stmt | Expr, ...]
        if isinstance(node, (Let, AssignLocal, AssignGlobal)):
            inner = (node.value,)
        elif isinstance(node, AssignElement):
            inner = (node.index, node.value)
        elif isinstance(node, If):
            inner = (node.cond, *node.then, *node.otherwise)
        elif isinstance(node, For):
            inner = (node.lo, node.hi, *node.body)
        elif isinstance(node, Return):
            inner = (node.value,) if node.value is not None else ()
        elif isinstance(node, ExprStmt):
            inner = (node.expr,)
        elif isinstance(node, Hide):
            inner = ()
        else:
            inner = operands(node)
        stack.extend((n, depth + 1) for n in reversed(inner))


def always_returns(body: tuple[Stmt, ...]) -> bool:
    """Whether ``body`` returns on every path: it holds a ``return``, or an ``if``/``else``
    whose branches both always return. What follows such a statement is dead code."""
    return any(isinstance(s, Return) or (isinstance(s, If) and bool(s.otherwise)
                                         and always_returns(s.then)
                                         and always_returns(s.otherwise)) for s in body)


def may_return(body: tuple[Stmt, ...]) -> bool:
    """Whether some path through ``body`` reaches a ``return``."""
    return any(isinstance(s, Return)
               or (isinstance(s, If) and (may_return(s.then) or may_return(s.otherwise)))
               or (isinstance(s, For) and may_return(s.body)) for s in body)


# --------------------------------------------------------------------------- declarations


class ProcKind(Enum):
    FUNCTION = "fn"
    TASK = "task"
    ON_APPLY = "on apply"
    ON_LOAD = "on load"
    INSTR = "instr"
    RULE = "rule"


@dataclass(frozen=True, slots=True)
class Procedure:
    """A body of code: a function, task, event handler, VMlet instruction or rule.

    ``locals`` lists every local in declaration order; the first ``len(params)`` are the
    parameters.
    """

    name: str
    kind: ProcKind
    params: tuple[Local, ...]
    locals: tuple[Local, ...]
    returns: Type | None
    body: tuple[Stmt, ...]
    span: Span
    # An instruction that says `replaces NAME`: the host service or lower instruction it
    # deliberately takes the place of (its own name), held to that one's range and cost.
    replaces: str = ""


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    period_ms: int
    proc: Procedure
    span: Span


@dataclass(frozen=True, slots=True)
class Rule:
    text: str
    cond: Expr
    proc: Procedure  # `return cond;`, for the onboard check of patched parameters
    span: Span


@dataclass(frozen=True, slots=True)
class NamedConst:
    """A named constant (``const``): folded everywhere, kept for listings and tools."""

    name: str
    value: int
    type: Type
    span: Span


class ProgramKind(Enum):
    CONFIG = "config"
    VMLET = "vmlet"


@dataclass(frozen=True, slots=True)
class Program:
    """One checked configuration or VMlet."""

    kind: ProgramKind
    name: str
    version: int
    mission: str
    file: str
    uses: tuple[Program, ...]  # the VMlets it runs on (a VMlet: the layers below), checked
    consts: tuple[NamedConst, ...]
    globals: tuple[Global, ...]
    arrays: tuple[Array, ...]
    rules: tuple[Rule, ...]
    functions: tuple[Procedure, ...]
    tasks: tuple[Task, ...]
    on_apply: Procedure | None
    # VMlets only:
    instrs: tuple[Procedure, ...] = ()
    exposes: tuple[str, ...] = ()
    hides: tuple[str, ...] = ()
    on_load: Procedure | None = None
    natives: tuple[NativeSig, ...] = ()  # natives visible to this program
    # VMlets only: the instructions programs on this VMlet see, (VMlet, name): its own and
    # those of the layers below that it does not replace. (A VMlet's `natives` are also
    # what it offers the programs on it: what its layers offer and it exposes, less what
    # it hides.)
    offered_instrs: tuple[tuple[str, str], ...] = ()
    # Configurations only: its application clause (None: the one default application),
    # the functions it exports to other applications, and the other applications'
    # functions it imports (`import app.fn;`, each a native named `app.fn` to it).
    application: Application | None = None
    exports: tuple[str, ...] = ()
    imports: tuple[NativeSig, ...] = ()
    # VMlets only: the types it defines (`type q16 = ...;`), for the programs on it.
    types: tuple[TypeDef, ...] = ()

    @property
    def stack(self) -> tuple[Program, ...]:
        """Every VMlet this program runs on, each once, lower layers before the ones that
        use them: those it uses and, through them, the ones they use."""
        out: dict[str, Program] = {}

        def visit(program: Program) -> None:
            for lower in program.uses:
                if lower.name not in out:
                    visit(lower)
                    out[lower.name] = lower

        visit(self)
        return tuple(out.values())

    def function(self, name: str) -> Procedure:
        for f in self.functions:
            if f.name == name:
                return f
        raise KeyError(name)

    def instr(self, vmlet: str, name: str) -> Procedure:
        """The body of instruction ``name`` of a VMlet this program runs on (or itself)."""
        for program in (self, *self.stack):
            if program.name == vmlet:
                for p in program.instrs:
                    if p.name == name:
                        return p
        raise KeyError(f"{vmlet}.{name}")
