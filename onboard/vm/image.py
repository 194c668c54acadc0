"""Images: every section of one configuration or VMlet version, and its identity.

An image is what the ground compiles and what the VVM runs: scalar globals (parameters and
state) with their declared ranges and values, arrays (tables and state arrays) with their
contents, import tables (natives, environment keys, VMlet instructions), code units, the
task table and the entry points. A VMlet image additionally carries the instructions it
defines, the natives it exposes and hides, and its ``on load`` code.

The canonical encoding (construct, below) is the image file format and the input of the
content hash: the identity that the ground and the satellite compare. It holds no
timestamps and no paths, so the same source always gives the same hash.

Stdlib and construct only: the onboard side must stand alone.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import construct as cs

from onboard.bounded_decoding import (
    Budget,
    BudgetError,
    Counted,
    Record,
    StrictFlag,
    VarSInt,
    VarUInt,
    param,
    remaining,
)
from onboard.errors import OnboardError
from onboard.vm import isa

IMAGE_MAGIC = b"VVMI"
IMAGE_FORMAT = 1
CONTENT_HASH_BYTES = 32  # SHA-256: what a VMlet reference pins


class ImageKind(IntEnum):
    CONFIG = 1
    VMLET = 2


class ImageError(OnboardError):
    """Bytes that are not a well-formed image; says which field and at what offset."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__("bad-image", message, offset=offset)


@dataclass(frozen=True, slots=True)
class Global:
    """A scalar global: a parameter (read-only, set by patches) or a state variable."""

    name: str
    writable: bool
    lo: int
    hi: int
    value: int


@dataclass(frozen=True, slots=True)
class Array:
    """An array: a table (read-only, uploaded data) or a state array."""

    name: str
    writable: bool
    lo: int
    hi: int
    values: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.values)


@dataclass(frozen=True, slots=True)
class CodeUnit:
    """One function's bytecode and frame shape. Locals ``0 .. n_params-1`` are the arguments."""

    name: str
    n_params: int
    n_locals: int
    returns: bool
    max_stack: int
    code: bytes


@dataclass(frozen=True, slots=True)
class Task:
    """A periodic task: released every ``period_ms``, runs code unit ``function``."""

    name: str
    period_ms: int
    function: int


@dataclass(frozen=True, slots=True)
class Rule:
    """A flight rule, compiled to a code unit returning 1 when it holds."""

    text: str
    function: int


@dataclass(frozen=True, slots=True)
class VmletRef:
    """A VMlet a configuration runs on, pinned by version and content hash."""

    name: str
    version: int
    hash: bytes


def pinned_stack(uses: Sequence[VmletRef],
                 available: Sequence[Image]) -> tuple[tuple[Image, ...], VmletRef | None]:
    """The VMlets ``uses`` pins and the layers those pin in turn, found in ``available`` by
    name, version and hash: lower layers first, each once. The second item is the first
    reference not found (then the stack is incomplete)."""
    out: dict[bytes, Image] = {}
    missing: list[VmletRef] = []
    seen: set[bytes] = set()  # content hashes pin acyclically; a crafted image cannot loop

    def visit(refs: Sequence[VmletRef]) -> None:
        for ref in refs:
            found = next((v for v in available if v.name == ref.name
                          and v.version == ref.version
                          and v.content_hash[:len(ref.hash)] == ref.hash), None)
            if found is None:
                missing.append(ref)
            elif found.content_hash not in seen:
                seen.add(found.content_hash)
                visit(found.uses)
                out[found.content_hash] = found

    visit(uses)
    return tuple(out.values()), (missing[0] if missing else None)


@dataclass(frozen=True, slots=True)
class ExtRef:
    """Binding of extension opcode ``EXT_BASE + index``: instruction ``instr`` of ``vmlet``."""

    vmlet: str
    instr: str


@dataclass(frozen=True, slots=True)
class InstrDef:
    """An instruction a VMlet defines: its name and the code unit of its body."""

    name: str
    function: int


@dataclass(frozen=True)
class Image:
    """All sections of one configuration or VMlet version. Immutable; see ``content_hash``."""

    kind: ImageKind
    name: str
    version: int
    mission: str
    uses: tuple[VmletRef, ...] = ()
    globals: tuple[Global, ...] = ()
    arrays: tuple[Array, ...] = ()
    natives: tuple[str, ...] = ()  # import table: CALLN/HIDE operand -> native name
    env: tuple[str, ...] = ()  # import table: ENV operand -> environment key
    ext: tuple[ExtRef, ...] = ()  # extension opcodes bound to VMlet instructions
    functions: tuple[CodeUnit, ...] = ()
    tasks: tuple[Task, ...] = ()
    rules: tuple[Rule, ...] = ()
    on_apply: int | None = None
    # VMlet images only:
    instrs: tuple[InstrDef, ...] = ()
    exposes: tuple[str, ...] = ()
    hides: tuple[str, ...] = ()
    on_load: int | None = None
    _encoded: bytes = field(default=b"", init=False, repr=False, compare=False)

    def encode(self) -> bytes:
        """The canonical encoding (cached: images are immutable)."""
        if not self._encoded:
            object.__setattr__(self, "_encoded", _IMAGE.build(_to_raw(self)))
        return self._encoded

    @property
    def content_hash(self) -> bytes:
        """SHA-256 of the canonical encoding: the identity of this version."""
        return hashlib.sha256(self.encode()).digest()

    @property
    def short_hash(self) -> str:
        return self.content_hash.hex()[:16]

    def function_index(self, name: str) -> int:
        for i, unit in enumerate(self.functions):
            if unit.name == name:
                return i
        raise KeyError(name)

    def code_bytes(self) -> int:
        """Bytes of bytecode in all code units."""
        return sum(len(u.code) for u in self.functions)

    def names_for(self, unit: CodeUnit, local_names: tuple[str, ...] = ()) -> isa.Names:
        """Symbol names for listing ``unit`` (locals by slot when known)."""
        return isa.Names(
            locals=local_names or tuple(f"l{i}" for i in range(unit.n_locals)),
            globals=tuple(g.name for g in self.globals),
            arrays=tuple(a.name for a in self.arrays),
            functions=tuple(u.name for u in self.functions),
            natives=self.natives,
            env=self.env,
            ext=tuple(f"{e.vmlet}.{e.instr}" for e in self.ext),
        )


# --------------------------------------------------------------------------- encoding

#: Array elements one image may hold, all arrays together, unless the decoder is given a
#: tighter bound (the patcher passes what the patch's data claim allows). No mission has
#: memory for more.
MAX_IMAGE_ELEMENTS = 1 << 20

#: A name: a UTF-8 string prefixed with its length in bytes.
Name = cs.PascalString(VarUInt, "utf8")

# The fields of each list's entries, in the order of the dataclasses above. The patch
# format's section records (``onboard.patching.patch_format``) carry the same fields, with
# the entry's index in front; globals and arrays travel there as a declaration with their
# values apart (bit-packed), and a VMlet reference's hash may be left implied.
VMLET_REF_NAME = ("name" / Name, "version" / VarUInt)
DECLARATION = ("name" / Name, "writable" / StrictFlag, "lo" / VarSInt, "hi" / VarSInt)
EXT_FIELDS = ("vmlet" / Name, "instr" / Name)
CODE_UNIT_SHAPE = ("name" / Name, "n_params" / VarUInt, "n_locals" / VarUInt,
                   "returns" / StrictFlag, "max_stack" / VarUInt)
TASK_FIELDS = ("name" / Name, "period_ms" / VarUInt, "function" / VarUInt)
RULE_FIELDS = ("text" / Name, "function" / VarUInt)

_OptIndex = VarUInt  # 0 = none, else index + 1


class _Values(cs.Construct):  # type: ignore[misc]
    """An array's values, stored as runs: a ``VarUInt`` count of runs, then per run its
    length (``VarUInt``, at least 1) and value (``VarSInt``); adjacent runs differ in value,
    so every array has one encoding. Parsing draws the elements from the decoding's
    ``budget`` (resource ``elements``) before it expands any run."""

    def _parse(self, stream: Any, context: Any, path: str) -> tuple[int, ...]:
        n_runs = VarUInt._parsereport(stream, context, path)
        left = remaining(stream)
        if 2 * n_runs > left:
            raise cs.ValidationError(f"{n_runs} runs need at least {2 * n_runs} bytes, "
                                     f"{left} remain", path=path)
        runs: list[tuple[int, int]] = []
        total = 0
        for _ in range(n_runs):
            count = VarUInt._parsereport(stream, context, path)
            value = VarSInt._parsereport(stream, context, path)
            if not count:
                raise cs.ValidationError("a run of no elements", path=path)
            if runs and runs[-1][1] == value:
                raise cs.ValidationError("two adjacent runs of the same value", path=path)
            runs.append((count, value))
            total += count
        budget: Budget = param(context, "budget")  # decode_image gives one per image
        try:
            budget.take("elements", total, "the arrays")
        except BudgetError as exc:
            raise BudgetError(exc.resource, str(exc), path=path) from None
        values: list[int] = []
        for count, value in runs:
            values.extend(itertools.repeat(value, count))
        return tuple(values)

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        out = bytearray(VarUInt.build(sum(1 for _ in itertools.groupby(obj))))
        for value, group in itertools.groupby(obj):
            out += VarUInt.build(sum(1 for _ in group))
            out += VarSInt.build(value)
        cs.stream_write(stream, bytes(out), len(out), path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise cs.SizeofError(path=path)


# Each list's count is bounded by the bytes left before any entry is decoded: the second
# argument of Counted is the fewest bytes one entry takes.
_IMAGE = cs.Struct(
    "magic" / cs.Const(IMAGE_MAGIC),
    "format" / cs.Const(IMAGE_FORMAT, cs.Int8ub),
    "kind" / cs.Int8ub,
    "name" / Name,
    "version" / VarUInt,
    "mission" / Name,
    "uses" / Counted(Record(*VMLET_REF_NAME, "hash" / cs.Bytes(CONTENT_HASH_BYTES)), 34),
    "globals" / Counted(Record(*DECLARATION, "value" / VarSInt), 5),
    "arrays" / Counted(Record(*DECLARATION, "values" / _Values()), 5),
    "natives" / Counted(Name, 1),
    "env" / Counted(Name, 1),
    "ext" / Counted(Record(*EXT_FIELDS), 2),
    "functions" / Counted(Record(
        *CODE_UNIT_SHAPE, "code" / cs.Prefixed(VarUInt, cs.GreedyBytes)), 6),
    "tasks" / Counted(Record(*TASK_FIELDS), 3),
    "rules" / Counted(Record(*RULE_FIELDS), 2),
    "on_apply" / _OptIndex,
    "instrs" / Counted(Record("name" / Name, "function" / VarUInt), 2),
    "exposes" / Counted(Name, 1),
    "hides" / Counted(Name, 1),
    "on_load" / _OptIndex,
    cs.Terminated,
)


def _to_raw(img: Image) -> dict[str, object]:
    # Entries (globals, code units...) are built from the dataclasses themselves (Record).
    return {
        "kind": int(img.kind),
        "name": img.name,
        "version": img.version,
        "mission": img.mission,
        "uses": img.uses,
        "globals": img.globals,
        "arrays": img.arrays,
        "natives": img.natives,
        "env": img.env,
        "ext": img.ext,
        "functions": img.functions,
        "tasks": img.tasks,
        "rules": img.rules,
        "on_apply": 0 if img.on_apply is None else img.on_apply + 1,
        "instrs": img.instrs,
        "exposes": img.exposes,
        "hides": img.hides,
        "on_load": 0 if img.on_load is None else img.on_load + 1,
    }


def decode_image(data: bytes, *, max_elements: int = MAX_IMAGE_ELEMENTS) -> Image:
    """Parse an image file. Raises ImageError naming the field on malformed input.

    Decoding is bounded before it allocates: every list's count by the bytes left, varints
    by 10 bytes, and the array elements of all arrays together by ``max_elements``, checked
    before any run is expanded."""
    stream = io.BytesIO(data)
    try:
        raw = _IMAGE.parse_stream(stream, budget=Budget(elements=max_elements))
    except cs.ConstructError as exc:
        raise ImageError(_construct_reason(exc), stream.tell()) from None
    try:
        kind = ImageKind(raw.kind)
    except ValueError:
        raise ImageError(f"field `kind`: unknown image kind {raw.kind}", 5) from None
    return Image(
        kind=kind,
        name=raw.name,
        version=raw.version,
        mission=raw.mission,
        uses=tuple(VmletRef(u.name, u.version, bytes(u.hash)) for u in raw.uses),
        globals=tuple(Global(g.name, g.writable, g.lo, g.hi, g.value) for g in raw.globals),
        arrays=tuple(Array(a.name, a.writable, a.lo, a.hi, a.values) for a in raw.arrays),
        natives=tuple(raw.natives),
        env=tuple(raw.env),
        ext=tuple(ExtRef(e.vmlet, e.instr) for e in raw.ext),
        functions=tuple(
            CodeUnit(u.name, u.n_params, u.n_locals, u.returns, u.max_stack, bytes(u.code))
            for u in raw.functions
        ),
        tasks=tuple(Task(t.name, t.period_ms, t.function) for t in raw.tasks),
        rules=tuple(Rule(r.text, r.function) for r in raw.rules),
        on_apply=raw.on_apply - 1 if raw.on_apply else None,
        instrs=tuple(InstrDef(d.name, d.function) for d in raw.instrs),
        exposes=tuple(raw.exposes),
        hides=tuple(raw.hides),
        on_load=raw.on_load - 1 if raw.on_load else None,
    )


def _construct_reason(exc: cs.ConstructError) -> str:
    """'field `uses.name`: ...' from construct's 'Error in path (parsing) -> uses -> items ...'."""
    text = str(exc).strip().replace("\n", " ")
    parts = [p.strip() for p in text.split("->")]
    fields = [p for p in parts[1:-1] if p != "items"]
    detail = parts[-1]
    if len(parts) > 1:
        last, _, detail = detail.partition(" ")
        if last != "items":
            fields.append(last)
    elif "expected end of stream" in detail:
        detail = "trailing bytes after the image"
    if "stream read less than specified amount" in detail or "could not read enough" in detail:
        detail = "the image ends too early (truncated)"
    detail = detail.removeprefix("parsing ")
    where = f"field `{'.'.join(fields)}`: " if fields else ""
    return f"{where}{detail}"
