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
from dataclasses import dataclass, field
from enum import IntEnum

import construct as cs

from onboard import isa

IMAGE_MAGIC = b"VVMI"
IMAGE_FORMAT = 1


class ImageKind(IntEnum):
    CONFIG = 1
    VMLET = 2


class ImageError(Exception):
    """Bytes that are not a well-formed image; says which field and at what offset."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Global:
    """A scalar global: a parameter (read-only, set by patches) or a state variable."""

    name: str
    writable: bool
    lo: int
    hi: int
    value: int


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class CodeUnit:
    """One function's bytecode and frame shape. Locals ``0 .. n_params-1`` are the arguments."""

    name: str
    n_params: int
    n_locals: int
    returns: bool
    max_stack: int
    code: bytes


@dataclass(frozen=True)
class Task:
    """A periodic task: released every ``period_ms``, runs code unit ``function``."""

    name: str
    period_ms: int
    function: int


@dataclass(frozen=True)
class Rule:
    """A flight rule, compiled to a code unit returning 1 when it holds."""

    text: str
    function: int


@dataclass(frozen=True)
class VmletRef:
    """A VMlet a configuration runs on, pinned by version and content hash."""

    name: str
    version: int
    hash: bytes


@dataclass(frozen=True)
class ExtRef:
    """Binding of extension opcode ``EXT_BASE + index``: instruction ``instr`` of ``vmlet``."""

    vmlet: str
    instr: str


@dataclass(frozen=True)
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

_Name = cs.PascalString(cs.VarInt, "utf8")
_Int = cs.ZigZag
_OptIndex = cs.VarInt  # 0 = none, else index + 1

_RUN = cs.Struct("count" / cs.VarInt, "value" / _Int)  # arrays are stored as runs

_IMAGE = cs.Struct(
    "magic" / cs.Const(IMAGE_MAGIC),
    "format" / cs.Const(IMAGE_FORMAT, cs.Int8ub),
    "kind" / cs.Int8ub,
    "name" / _Name,
    "version" / cs.VarInt,
    "mission" / _Name,
    "uses" / cs.PrefixedArray(cs.VarInt, cs.Struct(
        "name" / _Name, "version" / cs.VarInt, "hash" / cs.Bytes(32))),
    "globals" / cs.PrefixedArray(cs.VarInt, cs.Struct(
        "name" / _Name, "writable" / cs.Flag, "lo" / _Int, "hi" / _Int, "value" / _Int)),
    "arrays" / cs.PrefixedArray(cs.VarInt, cs.Struct(
        "name" / _Name, "writable" / cs.Flag, "lo" / _Int, "hi" / _Int,
        "runs" / cs.PrefixedArray(cs.VarInt, _RUN))),
    "natives" / cs.PrefixedArray(cs.VarInt, _Name),
    "env" / cs.PrefixedArray(cs.VarInt, _Name),
    "ext" / cs.PrefixedArray(cs.VarInt, cs.Struct("vmlet" / _Name, "instr" / _Name)),
    "functions" / cs.PrefixedArray(cs.VarInt, cs.Struct(
        "name" / _Name, "n_params" / cs.VarInt, "n_locals" / cs.VarInt, "returns" / cs.Flag,
        "max_stack" / cs.VarInt, "code" / cs.Prefixed(cs.VarInt, cs.GreedyBytes))),
    "tasks" / cs.PrefixedArray(cs.VarInt, cs.Struct(
        "name" / _Name, "period_ms" / cs.VarInt, "function" / cs.VarInt)),
    "rules" / cs.PrefixedArray(cs.VarInt, cs.Struct("text" / _Name, "function" / cs.VarInt)),
    "on_apply" / _OptIndex,
    "instrs" / cs.PrefixedArray(cs.VarInt, cs.Struct("name" / _Name, "function" / cs.VarInt)),
    "exposes" / cs.PrefixedArray(cs.VarInt, _Name),
    "hides" / cs.PrefixedArray(cs.VarInt, _Name),
    "on_load" / _OptIndex,
    cs.Terminated,
)


def _runs(values: tuple[int, ...]) -> list[dict[str, int]]:
    runs: list[dict[str, int]] = []
    for v in values:
        if runs and runs[-1]["value"] == v:
            runs[-1]["count"] += 1
        else:
            runs.append({"count": 1, "value": v})
    return runs


def _to_raw(img: Image) -> dict[str, object]:
    return {
        "kind": int(img.kind),
        "name": img.name,
        "version": img.version,
        "mission": img.mission,
        "uses": [{"name": u.name, "version": u.version, "hash": u.hash} for u in img.uses],
        "globals": [vars(g) for g in img.globals],
        "arrays": [
            {"name": a.name, "writable": a.writable, "lo": a.lo, "hi": a.hi,
             "runs": _runs(a.values)}
            for a in img.arrays
        ],
        "natives": list(img.natives),
        "env": list(img.env),
        "ext": [{"vmlet": e.vmlet, "instr": e.instr} for e in img.ext],
        "functions": [vars(u) for u in img.functions],
        "tasks": [vars(t) for t in img.tasks],
        "rules": [vars(r) for r in img.rules],
        "on_apply": 0 if img.on_apply is None else img.on_apply + 1,
        "instrs": [vars(d) for d in img.instrs],
        "exposes": list(img.exposes),
        "hides": list(img.hides),
        "on_load": 0 if img.on_load is None else img.on_load + 1,
    }


MAX_ARRAY_LENGTH = 1 << 20  # no mission has memory for more; bounds decoding of runs


def decode_image(data: bytes) -> Image:
    """Parse an image file. Raises ImageError naming the field on malformed input."""
    stream = io.BytesIO(data)
    try:
        raw = _IMAGE.parse_stream(stream)
    except cs.ConstructError as exc:
        raise ImageError(_construct_reason(exc), stream.tell()) from None
    try:
        kind = ImageKind(raw.kind)
    except ValueError:
        raise ImageError(f"field `kind`: unknown image kind {raw.kind}", 5) from None
    arrays = []
    for a in raw.arrays:
        total = sum(r.count for r in a.runs)
        if total > MAX_ARRAY_LENGTH:
            raise ImageError(f"array `{a.name}`: {total} elements exceed {MAX_ARRAY_LENGTH}")
        values: list[int] = []
        for r in a.runs:
            values.extend([r.value] * r.count)
        arrays.append(Array(a.name, a.writable, a.lo, a.hi, tuple(values)))
    return Image(
        kind=kind,
        name=raw.name,
        version=raw.version,
        mission=raw.mission,
        uses=tuple(VmletRef(u.name, u.version, bytes(u.hash)) for u in raw.uses),
        globals=tuple(Global(g.name, g.writable, g.lo, g.hi, g.value) for g in raw.globals),
        arrays=tuple(arrays),
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
