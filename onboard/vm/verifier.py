"""The load-time bytecode verifier: what the VVM checks before it runs any uploaded code.

One linear pass per code unit, in the style of WebAssembly validation: decoding is fused
with checking, and the pass keeps only an operand-stack depth, the open ``FORPREP``/
``FORLOOP`` loops and the forward jumps still waiting for their target. Because ``JMP``/
``JZ``/``JNZ`` only jump forward and ``FORLOOP`` is the only backward edge, every edge into
an instruction is known by the time the pass reaches it, so one pass decides which
instructions are reachable and the stack depth at each of them. A unit that passes cannot
underflow or overflow its operand stack, name anything outside its image's tables, write a
read-only global or array, call a native it may not see, jump into the middle of an
instruction or into a loop, run past its end, or loop forever (a loop's counter and limit
are never written inside it). ``verify_image`` adds the image-level rules: sections that fit
the image's kind, data inside its declared ranges, entry points, the VMlets used and the
instructions bound to extension opcodes, no recursion, bounded call depth, memory budgets.

Dead code (what ``if false { ... }`` or a statement after ``return`` compiles to) is
accepted, as WebAssembly accepts it: it must decode, its operands must be in bounds and its
jumps and loops well formed, but no stack rule applies to it, since no execution reaches it.
Its depth in ``UnitFacts.depth`` is -1; an execution engine never needs to translate it.

The verifier trusts nothing in the image: it raises ``VerifyError`` (and nothing else) on
any input and takes time linear in the size of the image. Stdlib only, besides ``onboard``
itself: the onboard side stands alone.

API (stable: the loader, the patcher and the tests call it)::

    verify_image(image: Image, target: Target, *,
                 vmlets: Sequence[Image] = (),
                 hidden: Mapping[str, Collection[str]] | None = None) -> ImageFacts

* ``target``: what the image runs on: the mission's limits and natives, ``Target.of(profile)``
  for a ``MissionProfile``. ``code_bytes`` and ``data_bytes`` are the memory this image may
  take (the loader subtracts what other loaded images hold).
* ``vmlets``: the images of the VMlets loaded on board; each VMlet in ``image.uses`` must be
  among them with the pinned version and content hash. They give the extension opcodes their
  instructions (argument count, result, call depth of the body) and the natives a
  configuration may call: those its VMlets expose and do not hide. A VMlet image's own code
  sees the natives it exposes, and may use its own instructions.
* ``hidden``: natives that each VMlet's ``on load`` has hidden since, by VMlet name; calls of
  them are refused like calls of natives no used VMlet exposes.
* Returns ``ImageFacts``: per code unit the deepest operand stack (``units[i].max_stack``),
  per-instruction depths, basic blocks, loops and calls; the resolved extension opcodes; the
  visible natives; the call height of every unit. Raises ``VerifyError(code, unit, offset,
  message)``: ``unit`` is the code unit's name (its index if it has none) or, for rules about
  the whole image, the image's name; ``offset`` is the byte offset in the unit, or None.

Reason codes (``VerifyError.code``; all in ``REASONS``), stable for tests and telemetry:

=========================  ================================================================
decoding                   ``bad-opcode``, ``truncated``, ``overlong-varint`` (more bytes
                           than the value needs, or more than five), ``varint-overflow``
                           (beyond 32 bits)
operands                   ``bad-local``, ``bad-global``, ``bad-array``, ``bad-func``,
                           ``bad-native`` (no such import, or unknown to the mission),
                           ``hidden-native``, ``bad-env``, ``bad-ext``
writes                     ``readonly-global``, ``readonly-array``, ``loop-counter-written``,
                           ``hide-outside-on-load``
control flow               ``bad-jump``, ``falls-off-end``
loops                      ``loop-structure``, ``loop-stack`` (operand stack not empty at
                           FORPREP/FORLOOP), ``jump-into-loop``, ``jump-out-of-loop``
operand stack              ``stack-underflow``, ``stack-overflow``, ``stack-mismatch``,
                           ``bad-return``
frame                      ``bad-frame`` (more parameters than locals, too many locals)
image                      ``bad-section``, ``bad-data``, ``bad-entry`` (also a task period
                           that is not a whole number of frames), ``bad-vmlet``,
                           ``recursion``, ``call-depth``, ``code-too-large``,
                           ``data-too-large`` (globals and arrays at their ranged widths
                           plus the deepest chain of call frames, ``onboard.vm.machine``)
costs                      ``frame-charge`` (one instruction charged in one piece more
                           than a frame leaves the tasks: it could never start)
=========================  ================================================================
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NoReturn

from onboard.mission import MissionProfile
from onboard.vm import isa
from onboard.vm.image import Array, CodeUnit, Global, Image, ImageKind
from onboard.vm.machine import CostModel, Limits, call_frame_bytes, globals_bytes

REASONS = frozenset({
    "bad-opcode", "truncated", "overlong-varint", "varint-overflow",
    "bad-local", "bad-global", "bad-array", "bad-func", "bad-native", "hidden-native",
    "bad-env", "bad-ext",
    "readonly-global", "readonly-array", "loop-counter-written", "hide-outside-on-load",
    "bad-jump", "falls-off-end",
    "loop-structure", "loop-stack", "jump-into-loop", "jump-out-of-loop",
    "stack-underflow", "stack-overflow", "stack-mismatch", "bad-return",
    "bad-frame",
    "bad-section", "bad-data", "bad-entry", "bad-vmlet", "recursion", "call-depth",
    "code-too-large", "data-too-large", "frame-charge",
})

class VerifyError(Exception):
    """Code the VVM refuses to load: a stable reason code, where, and one sentence why."""

    def __init__(self, code: str, unit: str | int, offset: int | None, message: str) -> None:
        self.code = code
        self.unit = unit
        self.offset = offset
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.unit}" if self.offset is None else f"{self.unit} +{self.offset}"
        return f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"VerifyError({self.code!r}, {self.unit!r}, {self.offset!r}, {self.message!r})"


# --------------------------------------------------------------------------- inputs and facts


@dataclass(frozen=True)
class NativeSig:
    """What the verifier needs of a mission native: its argument count and whether it
    returns a value."""

    n_args: int
    returns: bool


@dataclass(frozen=True)
class Target:
    """What an image is verified against: the mission's limits, natives and environment."""

    max_stack: int  # operand stack entries per code unit
    max_call_depth: int  # nested calls (an extension opcode's body counts as one)
    code_bytes: int  # bytecode this image may take
    data_bytes: int  # globals, arrays and the deepest chain of call frames
    max_locals: int  # locals of one code unit
    natives: Mapping[str, NativeSig] = field(default_factory=dict)
    env: frozenset[str] = frozenset()
    costs: CostModel | None = None  # with a frame budget: no fixed charge may exceed it
    frame_budget: int = 0  # cycles a frame leaves the tasks (0: not checked)
    frame_ms: int = 0  # task periods must be multiples of it (0: not checked)

    @staticmethod
    def of(profile: MissionProfile) -> Target:
        """The target of ``profile``'s spacecraft, with all its memory free: the machine
        model's ``Limits``. A frame's locals may take at most the data memory, which keeps a
        hostile ``n_locals`` from exhausting the host."""
        limits = Limits.of(profile)
        return Target(
            max_stack=limits.max_stack,
            max_call_depth=limits.max_call_depth,
            code_bytes=limits.code_bytes,
            data_bytes=limits.data_bytes,
            max_locals=limits.max_locals,
            natives={name: NativeSig(len(n.args), n.result is not None)
                     for name, n in profile.natives.items()},
            env=frozenset(profile.env),
            costs=CostModel.of(profile),
            frame_budget=limits.frame_budget,
            frame_ms=profile.frame_ms,
        )

    def measuring(self) -> Target:
        """This target with every memory and depth limit lifted, to measure an image rather
        than to judge it (the ground compares the figures with the limits itself)."""
        big = 1 << 62
        return replace(self, code_bytes=big, data_bytes=big, max_call_depth=big,
                       max_stack=big, max_locals=big, frame_budget=0)


@dataclass(frozen=True)
class ExtTarget:
    """Extension opcode ``EXT_BASE + k`` resolved: the VMlet instruction's body (code unit
    ``function`` of VMlet ``vmlet``) and its signature."""

    vmlet: str
    function: int
    n_params: int
    returns: bool
    n_locals: int  # its frame: what the dispatch sets up


@dataclass(frozen=True)
class UnitFacts:
    """What the verifier learned about one code unit, for the loader and the translator."""

    max_stack: int  # deepest operand stack any execution reaches
    offsets: tuple[int, ...]  # offset of each instruction, ascending
    depth: tuple[int, ...]  # stack depth before each instruction; -1: dead code
    block_starts: tuple[int, ...]  # sorted offsets where a basic block starts
    loops: tuple[tuple[int, int, int], ...]  # (FORPREP offset, FORLOOP offset, counter slot)
    calls: tuple[int, ...]  # code units of this image called with CALL (sorted, each once)
    exts: tuple[int, ...]  # extension indices used (opcode - EXT_BASE; sorted, each once)


@dataclass(frozen=True)
class ImageFacts:
    """What the verifier learned about one image."""

    units: tuple[UnitFacts, ...]  # by code unit index
    ext: tuple[ExtTarget, ...]  # by extension index
    visible: frozenset[str]  # natives this image's code may call
    call_heights: tuple[int, ...]  # nested calls below each unit (0: it calls nothing)
    frame_chains: tuple[int, ...] = ()  # bytes of the deepest chain of frames from each unit
    static_data: int = 0  # bytes of globals and arrays at their ranged widths
    largest_charge: int = 0  # the largest fixed charge of one instruction (0: not computed)

    @property
    def call_depth(self) -> int:
        """The longest chain of nested calls from any unit."""
        return max(self.call_heights, default=0)

    @property
    def data_bytes(self) -> int:
        """The image's data memory: globals, arrays and its deepest chain of frames."""
        return self.static_data + max(self.frame_chains, default=0)


def _label(unit: CodeUnit, index: int) -> str | int:
    return unit.name if unit.name else index


def _image_error(image: Image, code: str, message: str) -> VerifyError:
    return VerifyError(code, image.name, None, message)


# --------------------------------------------------------------------------- one code unit

# Instruction categories of the pass, derived from the ISA table. An opcode whose operands
# are all immediates and whose stack effect is fixed needs no rule of its own (_PLAIN); any
# other must be listed here, so a new instruction with index operands cannot slip through.
(_BAD, _PLAIN, _LOAD_L, _STORE_L, _LOAD_G, _STORE_G, _LOAD_A, _STORE_A, _JMP, _JCOND,
 _FORPREP, _FORLOOP, _CALL, _RET, _RETV, _CALLN, _ENV, _HIDE, _EXT) = range(19)
_SPECIAL = {
    isa.LOAD_L: _LOAD_L, isa.STORE_L: _STORE_L, isa.LOAD_G: _LOAD_G, isa.STORE_G: _STORE_G,
    isa.LOAD_A: _LOAD_A, isa.STORE_A: _STORE_A, isa.JMP: _JMP, isa.JZ: _JCOND,
    isa.JNZ: _JCOND, isa.FORPREP: _FORPREP, isa.FORLOOP: _FORLOOP, isa.CALL: _CALL,
    isa.RET: _RET, isa.RETV: _RETV, isa.CALLN: _CALLN, isa.ENV: _ENV, isa.HIDE: _HIDE,
}


def _tables() -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    category, n_imm, pops, pushes = [_BAD] * 256, [0] * 256, [0] * 256, [0] * 256
    for op in isa.INSTRUCTIONS:
        cat = _SPECIAL.get(op.code, _PLAIN)
        if cat == _PLAIN:
            if any(k is not isa.Operand.IMM for k in op.operands) or op.pops is None \
                    or op.pushes is None or op.ends_block:
                raise AssertionError(f"the verifier has no rule for {op.name}")
            n_imm[op.code] = len(op.operands)
        category[op.code] = cat
        pops[op.code], pushes[op.code] = op.pops or 0, op.pushes or 0
    for code in range(isa.EXT_BASE, 256):
        category[code] = _EXT
    return tuple(category), tuple(n_imm), tuple(pops), tuple(pushes)


_CATEGORY, _N_IMM, _POPS, _PUSHES = _tables()
_NAME = tuple((isa.op_info(c).name if isa.op_info(c) else "?")  # type: ignore[union-attr]
              for c in range(256))


@dataclass(frozen=True)
class _Context:
    """What every unit of one image is checked against."""

    image: Image
    target: Target
    ext: tuple[ExtTarget, ...]
    visible: frozenset[str]


class _Edge:
    """The forward jumps into one target not reached yet: the depth they carry (-1 if all
    come from dead code) and the first live jump that carries it; the first jump, the
    innermost loop open at it and how many jumps share that loop; ``others`` holds
    (source, loop) of jumps from other loops."""

    __slots__ = ("depth", "depth_from", "source", "loop", "count", "others")

    def __init__(self, depth: int, source: int, loop: int) -> None:
        self.depth = depth
        self.depth_from = source
        self.source = source
        self.loop = loop
        self.count = 1
        self.others: list[tuple[int, int]] | None = None


class _Loop:
    """A counted loop, opened by FORPREP and closed by FORLOOP."""

    __slots__ = ("prep", "body", "exit", "slot", "parent", "live", "end")

    def __init__(self, prep: int, body: int, exit: int, slot: int, parent: int,
                 live: bool) -> None:
        self.prep = prep  # offset of FORPREP
        self.body = body  # first instruction of the body (FORPREP's end)
        self.exit = exit  # FORPREP's exit target, which must be FORLOOP's end
        self.slot = slot  # counter; the limit is slot + 1
        self.parent = parent  # enclosing loop (0: none)
        self.live = live  # FORPREP is reachable, so its exit edge is too
        self.end = -1  # offset of FORLOOP once closed


def _verify_unit(ctx: _Context, index: int) -> UnitFacts:
    """Verify code unit ``index`` of ``ctx.image`` in one pass; return its facts."""
    image, target = ctx.image, ctx.target
    unit = image.functions[index]
    name = _label(unit, index)

    def fail(code: str, offset: int | None, message: str) -> NoReturn:
        raise VerifyError(code, name, offset, message)

    code = unit.code
    n = len(code)
    n_locals = unit.n_locals
    if unit.n_params > n_locals:
        fail("bad-frame", None, f"{unit.n_params} parameters do not fit in {n_locals} locals")
    if n_locals > target.max_locals:
        fail("bad-frame", None,
             f"{n_locals} locals exceed the {target.max_locals} a code unit may have")
    if unit.max_stack > target.max_stack:
        fail("stack-overflow", None,
             f"declares a stack of {unit.max_stack} entries, the mission allows "
             f"{target.max_stack}")
    limit = unit.max_stack
    returns = bool(unit.returns)
    is_on_load = image.on_load == index
    globals_, arrays, functions = image.globals, image.arrays, image.functions
    natives, ext, visible = image.natives, ctx.ext, ctx.visible
    mission_natives = target.natives
    category, n_imm, op_pops, op_pushes = _CATEGORY, _N_IMM, _POPS, _PUSHES

    offsets: list[int] = []
    depths: list[int] = []
    block_starts: list[int] = []
    calls: set[int] = set()
    exts: set[int] = set()
    pending: dict[int, _Edge] = {}  # forward jump target -> the jumps into it
    loops: list[_Loop] = [_Loop(-1, -1, -1, -1, 0, True)]  # loops[0]: outside any loop
    outgoing = [0]  # per loop: pending jumps made from inside it
    protected: set[int] = set()  # counter and limit slots of the open loops
    innermost = 0
    depth = 0
    deepest = 0
    live = True  # control reaches this instruction
    block = True  # a basic block starts here
    start = 0

    def varint(pos: int, start: int) -> tuple[int, int]:
        """The rare multi-byte or malformed varint at ``pos`` (the operand of the
        instruction at ``start``): (value, position after it)."""
        op_name = _NAME[code[start]]
        try:
            value, at = isa.decode_uvarint(code, pos)
        except isa.DecodeError as exc:
            if exc.reason.startswith("truncated"):
                fail("truncated", start, f"{op_name} is cut off by the end of the code")
            if exc.reason.startswith("varint longer"):
                fail("overlong-varint", start, f"an operand of {op_name} takes more than "
                     f"{isa.MAX_VARINT_BYTES} bytes")
            fail("varint-overflow", start, f"an operand of {op_name} does not fit in 32 bits")
        if at - pos != isa.uvarint_size(value):
            fail("overlong-varint", start,
                 f"an operand of {op_name} is padded ({at - pos} bytes for a value that needs "
                 f"{isa.uvarint_size(value)})")
        return value, at

    def jump(target_at: int, after: int) -> None:
        """Record a forward edge from the instruction at ``start``."""
        if target_at >= n:
            fail("bad-jump", start,
                 f"jumps to +{target_at}, past the last instruction (code ends at +{n})")
        carried = after if live else -1
        edge = pending.get(target_at)
        outgoing[innermost] += 1
        if edge is None:
            pending[target_at] = _Edge(carried, start, innermost)
            return
        if carried >= 0:
            if edge.depth >= 0 and edge.depth != carried:
                fail("stack-mismatch", start,
                     f"jumps to +{target_at} with {carried} values on the stack, but "
                     f"+{edge.depth_from} jumps there with {edge.depth}")
            if edge.depth < 0:
                edge.depth, edge.depth_from = carried, start
        if edge.loop == innermost:
            edge.count += 1
        else:
            if edge.others is None:
                edge.others = []
            edge.others.append((start, innermost))

    def arrive(edge: _Edge, at: int) -> None:
        """The jumps of ``edge`` reach ``at``: each must come from the innermost open loop
        (from an enclosing one, it would enter a loop without its FORPREP check)."""
        sources = [(edge.source, edge.loop)] + (edge.others or [])
        for source, loop in sources:
            if loop != innermost:
                fail("jump-into-loop", source,
                     f"jumps to +{at}, into the body of the loop opened at "
                     f"+{loops[innermost].prep}")
        outgoing[edge.loop] -= edge.count
        for _, loop in edge.others or ():
            outgoing[loop] -= 1

    def close_loop(slot: int, back: int, end: int) -> _Loop:
        """Check the FORLOOP at ``start`` against the innermost open loop and close it."""
        if innermost == 0:
            fail("loop-structure", start, "FORLOOP without an open FORPREP")
        loop = loops[innermost]
        if slot != loop.slot:
            fail("loop-structure", start,
                 f"FORLOOP l{slot} closes the loop of FORPREP l{loop.slot} at +{loop.prep}")
        if end - back != loop.body:
            fail("loop-structure", start,
                 f"FORLOOP jumps back to +{end - back}, not to the loop body at +{loop.body}")
        if loop.exit != end:
            fail("loop-structure", loop.prep,
                 f"FORPREP exits to +{loop.exit}, not to the end of its FORLOOP at +{end}")
        if live and depth != 0:
            fail("loop-stack", start, f"FORLOOP with {depth} values on the stack (must be 0)")
        if outgoing[innermost]:
            source, to = next(
                (s, t) for t, e in pending.items()
                for s, lp in [(e.source, e.loop)] + (e.others or []) if lp == innermost)
            fail("jump-out-of-loop", source,
                 f"jumps to +{to}, out of the loop closed by the FORLOOP at +{start} (a jump "
                 "in a loop body may reach at most its FORLOOP)")
        loop.end = start
        protected.discard(slot)
        protected.discard(slot + 1)
        return loop

    pos = 0
    while pos < n:
        start = pos
        # -- edges into this instruction
        if pending:
            edge = pending.pop(start, None)
            if edge is not None:
                arrive(edge, start)
                if edge.depth >= 0:
                    if live and edge.depth != depth:
                        fail("stack-mismatch", start,
                             f"the stack holds {depth} values when falling through but "
                             f"{edge.depth} when jumping here from +{edge.depth_from}")
                    depth = edge.depth
                    live = True
                block = True
        if block:
            block_starts.append(start)
            block = False
        offsets.append(start)
        depths.append(depth if live else -1)

        # -- decode: the opcode and its varint operands (one byte each, almost always)
        opcode = code[pos]
        cat = category[opcode]
        pos += 1
        a = b = 0
        if cat == _PLAIN:
            for _ in range(n_imm[opcode]):  # immediates: only their encoding is checked
                if pos < n and code[pos] < 0x80:
                    pos += 1
                else:
                    _, pos = varint(pos, start)
        elif cat == _BAD:
            fail("bad-opcode", start, f"unknown opcode 0x{opcode:02x}")
        elif cat < _RET or cat == _CALLN or cat == _ENV or cat == _HIDE:
            if pos < n and code[pos] < 0x80:
                a = code[pos]
                pos += 1
            else:
                a, pos = varint(pos, start)
            if cat == _FORPREP or cat == _FORLOOP:
                if pos < n and code[pos] < 0x80:
                    b = code[pos]
                    pos += 1
                else:
                    b, pos = varint(pos, start)
        end = pos
        if pending and end - start > 1:
            for inside in range(start + 1, end):
                if inside in pending:
                    fail("bad-jump", pending[inside].source,
                         f"jumps to +{inside}, inside the instruction at +{start}")

        # -- operands: checked in dead code too, so every unit is well formed throughout
        pops, pushes = op_pops[opcode], op_pushes[opcode]
        if cat == _PLAIN:
            pass
        elif cat == _LOAD_L or cat == _STORE_L:
            if a >= n_locals:
                fail("bad-local", start, f"{_NAME[opcode]} l{a}: the unit has {n_locals} locals")
            if cat == _STORE_L and a in protected:
                fail("loop-counter-written", start,
                     f"STORE_L l{a} writes the counter or limit of an open loop")
        elif _LOAD_G <= cat <= _STORE_A:  # globals and arrays: the same rules
            space: Sequence[Global | Array] = globals_ if cat <= _STORE_G else arrays
            what = "global" if cat <= _STORE_G else "array"
            if a >= len(space):
                fail(f"bad-{what}", start, f"{_NAME[opcode]}: there is no {what} {a} (the "
                     f"image has {len(space)})")
            if (cat == _STORE_G or cat == _STORE_A) and not space[a].writable:
                fail(f"readonly-{what}", start,
                     f"{_NAME[opcode]} writes the read-only {what} `{space[a].name}`")
        elif cat == _CALL:
            if a >= len(functions):
                fail("bad-func", start, f"CALL: there is no code unit {a} (the image has "
                     f"{len(functions)})")
            if a == image.on_load:
                fail("bad-func", start, "CALL of the `on load` code, which only the loader "
                     "may run")
            callee = functions[a]
            calls.add(a)
            pops, pushes = callee.n_params, 1 if callee.returns else 0
        elif cat == _CALLN or cat == _HIDE:
            if a >= len(natives):
                fail("bad-native", start, f"{_NAME[opcode]}: there is no native import {a} "
                     f"(the image has {len(natives)})")
            native = natives[a]
            if cat == _HIDE and not is_on_load:
                fail("hide-outside-on-load", start,
                     f"HIDE `{native}` outside a VMlet's `on load` code")
            if native not in visible:
                fail("hidden-native", start,
                     f"{_NAME[opcode]}: the native `{native}` is not visible to this program")
            if cat == _CALLN:
                sig = mission_natives[native]  # every import is a mission native (checked)
                pops, pushes = sig.n_args, 1 if sig.returns else 0
        elif cat == _ENV:
            if a >= len(image.env):
                fail("bad-env", start, f"ENV: there is no environment import {a} (the image "
                     f"has {len(image.env)})")
        elif cat == _EXT:
            k = opcode - isa.EXT_BASE
            if k >= len(ext):
                fail("bad-ext", start, f"extension opcode 0x{opcode:02x} is bound to no VMlet "
                     f"instruction (the image binds {len(ext)})")
            exts.add(k)
            pops, pushes = ext[k].n_params, 1 if ext[k].returns else 0
        elif cat == _FORPREP or cat == _FORLOOP:
            if a + 1 >= n_locals:
                fail("bad-local", start, f"{_NAME[opcode]} l{a} needs slots {a} and {a + 1}: "
                     f"the unit has {n_locals} locals")

        # -- stack: only where control can be
        if live:
            if cat == _RET:
                if returns:
                    fail("bad-return", start, "RET in a unit that returns a value")
                if depth != 0:
                    fail("bad-return", start, f"RET leaves {depth} values on the stack "
                         "(must be 0)")
            elif cat == _RETV:
                if not returns:
                    fail("bad-return", start, "RETV in a unit that returns nothing")
                if depth != 1:
                    fail("bad-return", start, f"RETV with {depth} values on the stack (must "
                         "be exactly 1)")
            if depth < pops:
                fail("stack-underflow", start,
                     f"{_NAME[opcode]} needs {pops} values, the stack holds {depth}")
            depth += pushes - pops
            if depth > deepest:
                deepest = depth
                if depth > limit:
                    fail("stack-overflow", start, f"{_NAME[opcode]} grows the stack to "
                         f"{depth} entries, over the unit's declared {limit}")

        # -- control flow
        if cat <= _STORE_A or cat >= _CALL and cat != _RET and cat != _RETV:
            continue  # falls through, the common case
        block = True
        if cat == _JMP or cat == _JCOND:
            jump(end + a, depth)
            if cat == _JMP:
                live = False
        elif cat == _FORPREP:
            if live and depth != 0:
                fail("loop-stack", start, f"FORPREP with {depth} values on the stack (must be 0)")
            if a in protected or a + 1 in protected:
                fail("loop-counter-written", start, f"loop slot l{a} or l{a + 1} is the "
                     "counter or limit of an enclosing loop")
            protected.add(a)
            protected.add(a + 1)
            loops.append(_Loop(start, end, end + b, a, innermost, live))
            outgoing.append(0)
            innermost = len(loops) - 1
        elif cat == _FORLOOP:
            loop = close_loop(a, b, end)
            innermost = loop.parent
            if loop.live:  # FORPREP's exit edge lands here, with an empty stack
                live, depth = True, 0
        else:  # RET, RETV
            live = False

    if innermost:
        fail("loop-structure", loops[innermost].prep,
             f"the loop opened at +{loops[innermost].prep} is never closed by a FORLOOP")
    if live:
        fail("falls-off-end", start,
             "control runs past the end of the code (it must end with JMP, RET or RETV)")
    if pending:  # cannot happen: every target < n was reached or found inside an instruction
        fail("bad-jump", None, "a jump target was never reached")
    return UnitFacts(
        max_stack=deepest,
        offsets=tuple(offsets),
        depth=tuple(depths),
        block_starts=tuple(block_starts),
        loops=tuple((lp.prep, lp.end, lp.slot) for lp in loops[1:]),
        calls=tuple(sorted(calls)),
        exts=tuple(sorted(exts)),
    )


# --------------------------------------------------------------------------- a whole image


def verify_image(
    image: Image,
    target: Target,
    *,
    vmlets: Sequence[Image] = (),
    hidden: Mapping[str, Collection[str]] | None = None,
) -> ImageFacts:
    """Verify every code unit of ``image`` and the image-level rules; return what was
    learned. Raises ``VerifyError`` only. See the module docstring for the arguments."""
    hidden = hidden or {}
    _check_sections(image, target)
    static = _check_data(image, target)
    total = sum(len(u.code) for u in image.functions)
    if total > target.code_bytes:
        raise _image_error(image, "code-too-large", f"{total} bytes of code exceed the "
                           f"{target.code_bytes} bytes of code memory")
    _check_entries(image)
    if image.kind == ImageKind.VMLET:
        ext, ext_heights, ext_chains, ext_fixed, ext_charge = _own_ext(image, target)
        visible = frozenset(image.exposes) - frozenset(image.hides) \
            - frozenset(hidden.get(image.name, ()))
    else:
        used = _used_vmlets(image, target, vmlets)
        ext, ext_heights, ext_chains, ext_fixed, ext_charge = _foreign_ext(image, used, target)
        visible = frozenset().union(*(
            frozenset(vm.exposes) - frozenset(vm.hides) - frozenset(hidden.get(vm.name, ()))
            for vm, _ in used.values()))
    ctx = _Context(image, target, ext, visible)
    units = tuple(_verify_unit(ctx, i) for i in range(len(image.functions)))
    heights, chains = _check_calls(image, units, ext, ext_heights, ext_chains,
                                   target.max_call_depth)
    deepest = max(chains, default=0)
    if static + deepest > target.data_bytes:
        raise _image_error(image, "data-too-large",
                           f"{static + deepest} bytes of data ({static} of globals and "
                           f"arrays, {deepest} of call frames on the deepest chain) exceed "
                           f"the {target.data_bytes} bytes of data memory")
    _check_periods(image, target)
    largest = max(_check_charges(image, target, ext, ext_fixed), ext_charge)
    return ImageFacts(units, ext, visible, heights, chains, static, largest)


def _check_periods(image: Image, target: Target) -> None:
    """Tasks are released at frame starts: a period is a whole number of frames."""
    if target.frame_ms <= 0:
        return
    for task in image.tasks:
        if task.period_ms % target.frame_ms:
            raise _image_error(image, "bad-entry", f"task `{task.name}` has period "
                               f"{task.period_ms} ms, not a multiple of the "
                               f"{target.frame_ms} ms frame")


def _check_charges(image: Image, target: Target, ext: Sequence[ExtTarget],
                   ext_fixed: Sequence[int | None]) -> int:
    """The largest cycles one instruction is charged in one piece (the machine model's
    ``CostModel.fixed_charge``); none may exceed what a frame leaves the tasks, or the job
    could never get past it. Returns that charge (0 without a cost model)."""
    costs = target.costs
    if costs is None:
        return 0
    largest = 0
    unit_locals = [u.n_locals for u in image.functions]
    ext_locals = [e.n_locals for e in ext]
    for index, unit in enumerate(image.functions):
        for ins in isa.decode(unit.code):
            charge = costs.fixed_charge(ins, image.natives, ext_fixed, unit_locals, ext_locals)
            if charge is None:
                continue
            if target.frame_budget and charge > target.frame_budget:
                what = _NAME[ins.opcode] if ins.opcode < isa.EXT_BASE else "a VMlet instruction"
                raise VerifyError("frame-charge", _label(unit, index), ins.offset,
                                  f"{what} is charged {charge} cycles in one piece, more than the "
                                  f"{target.frame_budget} a frame leaves the tasks: it could "
                                  "never start")
            largest = max(largest, charge)
    return largest


def _check_sections(image: Image, target: Target) -> None:
    """Sections the image's kind cannot have; imports the mission cannot satisfy."""
    if image.kind == ImageKind.VMLET:
        wrong = {"uses": image.uses, "globals": image.globals, "arrays": image.arrays,
                 "tasks": image.tasks, "rules": image.rules,
                 "on apply": image.on_apply is not None}
        kind = "a VMlet"
    else:
        wrong = {"instructions": image.instrs, "exposes": image.exposes,
                 "hides": image.hides, "on load": image.on_load is not None}
        kind = "a configuration"
    for what, present in wrong.items():
        if present:
            raise _image_error(image, "bad-section", f"{kind} image has no `{what}` section")
    for what, names in (("imports", image.natives), ("exposes", image.exposes),
                        ("hides", image.hides)):
        for name in names:
            if name not in target.natives:
                raise _image_error(image, "bad-native",
                                   f"{what}: the mission has no native `{name}`")
    for key in image.env:
        if key not in target.env:
            raise _image_error(image, "bad-env",
                               f"imports: the mission has no environment value `{key}`")
    if len(image.ext) > isa.EXT_COUNT:
        raise _image_error(image, "bad-ext", f"{len(image.ext)} extension opcodes, the ISA "
                           f"has {isa.EXT_COUNT}")


def _check_data(image: Image, target: Target) -> int:
    """Declared ranges are 32-bit and hold the initial values: the engines rely on it.
    Returns the bytes of the globals and arrays (the machine model's ``slot_bytes``)."""
    for what, name, lo, hi, values in (
            [("global", g.name, g.lo, g.hi, (g.value,)) for g in image.globals]
            + [("array", a.name, a.lo, a.hi, a.values) for a in image.arrays]):
        if not isa.INT_MIN <= lo <= hi <= isa.INT_MAX:
            raise _image_error(image, "bad-data",
                               f"{what} `{name}`: [{lo}, {hi}] is not a 32-bit range")
        if values and not lo <= min(values) <= max(values) <= hi:
            bad = next(v for v in values if not lo <= v <= hi)
            raise _image_error(image, "bad-data",
                               f"{what} `{name}` holds {bad}, outside its range [{lo}, {hi}]")
    static = globals_bytes([(g.lo, g.hi) for g in image.globals]) + \
        globals_bytes([(a.lo, a.hi) for a in image.arrays], [a.length for a in image.arrays])
    if static > target.data_bytes:
        raise _image_error(image, "data-too-large", f"{static} bytes of globals and arrays "
                           f"exceed the {target.data_bytes} bytes of data memory")
    return static


def _check_entries(image: Image) -> None:
    """Tasks, rules, instructions, ``on apply`` and ``on load`` name units that fit."""
    functions = image.functions

    def entry(what: str, index: int | None, *, params: bool, returns: bool) -> None:
        if index is None:
            return
        if not 0 <= index < len(functions):
            raise _image_error(image, "bad-entry", f"{what} names code unit {index}, which "
                               f"does not exist (the image has {len(functions)})")
        unit = functions[index]
        label = _label(unit, index)
        if not params and unit.n_params != 0:
            raise VerifyError("bad-entry", label, None,
                              f"{what} must take no parameters, it takes {unit.n_params}")
        if bool(unit.returns) != returns:
            raise VerifyError("bad-entry", label, None,
                              f"{what} must {'return a value' if returns else 'return nothing'}")

    for task in image.tasks:
        entry(f"task `{task.name}`", task.function, params=False, returns=False)
        if task.period_ms <= 0:
            raise _image_error(image, "bad-entry", f"task `{task.name}` has period 0")
    for rule in image.rules:
        entry(f"rule `{rule.text}`", rule.function, params=False, returns=True)
    entry("`on apply`", image.on_apply, params=False, returns=False)
    entry("`on load`", image.on_load, params=False, returns=False)
    names: set[str] = set()
    for instr in image.instrs:
        entry(f"instruction `{instr.name}`", instr.function, params=True, returns=True)
        if instr.function == image.on_load:
            raise _image_error(image, "bad-entry",
                               f"instruction `{instr.name}` is the `on load` code")
        if instr.name in names:
            raise _image_error(image, "bad-entry", f"instruction `{instr.name}` is defined "
                               "twice")
        names.add(instr.name)


def _used_vmlets(image: Image, target: Target,
                 vmlets: Sequence[Image]) -> dict[str, tuple[Image, ImageFacts]]:
    """The VMlets ``image`` uses, as pinned, each verified (VMlets are small)."""
    loaded: dict[str, Image] = {}
    for candidate in vmlets:
        loaded.setdefault(candidate.name, candidate)
    used: dict[str, tuple[Image, ImageFacts]] = {}
    for ref in image.uses:
        vm = loaded.get(ref.name)
        if ref.name in used:
            raise _image_error(image, "bad-vmlet", f"uses VMlet `{ref.name}` twice")
        if vm is None or vm.kind != ImageKind.VMLET:
            raise _image_error(image, "bad-vmlet", f"uses VMlet `{ref.name}`, which is not "
                               "loaded")
        if vm.version != ref.version or vm.content_hash != ref.hash:
            raise _image_error(image, "bad-vmlet",
                               f"uses VMlet `{ref.name}` version {ref.version} "
                               f"{ref.hash.hex()[:16]}, but version {vm.version} "
                               f"{vm.short_hash} is loaded")
        try:
            facts = verify_image(vm, target)
        except VerifyError as exc:
            raise _image_error(image, "bad-vmlet", f"uses VMlet `{ref.name}`, which fails "
                               f"verification: {exc} ({exc.code})") from None
        used[ref.name] = (vm, facts)
    return used


def _instr(vm: Image, name: str) -> int | None:
    return next((d.function for d in vm.instrs if d.name == name), None)


_ExtFacts = tuple[tuple[ExtTarget, ...], tuple[int, ...], tuple[int, ...],
                  tuple[int | None, ...], int]


def _body_fixed(vm: Image, function: int, target: Target) -> int | None:
    costs = target.costs
    if costs is None:
        return None
    try:
        return costs.body_fixed_cost(isa.decode(vm.functions[function].code), vm.natives)
    except (isa.DecodeError, IndexError):  # verified later (or already refused)
        return None


def _own_ext(image: Image, target: Target) -> _ExtFacts:
    """A VMlet's extension opcodes: its own instructions (call heights and frame chains
    come later: -1), their fixed body costs, and no largest charge of their own."""
    out = []
    for k, ref in enumerate(image.ext):
        f = _instr(image, ref.instr) if ref.vmlet == image.name else None
        if f is None:
            raise _image_error(image, "bad-ext", f"extension opcode {k} names "
                               f"`{ref.vmlet}.{ref.instr}`, not an instruction of this VMlet")
        unit = image.functions[f]
        out.append(ExtTarget(image.name, f, unit.n_params, bool(unit.returns),
                             unit.n_locals))
    fixed = tuple(_body_fixed(image, e.function, target) for e in out)
    return tuple(out), (-1,) * len(out), (-1,) * len(out), fixed, 0


def _foreign_ext(image: Image, used: Mapping[str, tuple[Image, ImageFacts]],
                 target: Target) -> _ExtFacts:
    """A configuration's extension opcodes: instructions of the VMlets it uses, with the
    call height and the frame chain of each body, its fixed cost, and the largest charge of
    the VMlets whose instructions are charged as they run."""
    out, heights, chains, fixed = [], [], [], []
    charge = 0
    for k, ref in enumerate(image.ext):
        entry = used.get(ref.vmlet)
        f = _instr(entry[0], ref.instr) if entry is not None else None
        if entry is None or f is None:
            raise _image_error(image, "bad-ext", f"extension opcode {k} names "
                               f"`{ref.vmlet}.{ref.instr}`, not an instruction of a VMlet "
                               "it uses")
        vm, facts = entry
        unit = vm.functions[f]
        out.append(ExtTarget(vm.name, f, unit.n_params, bool(unit.returns), unit.n_locals))
        heights.append(facts.call_heights[f])
        chains.append(facts.frame_chains[f])
        fixed.append(_body_fixed(vm, f, target))
        if fixed[-1] is None:
            charge = max(charge, facts.largest_charge)
    return tuple(out), tuple(heights), tuple(chains), tuple(fixed), charge


def _check_calls(image: Image, units: Sequence[UnitFacts], ext: Sequence[ExtTarget],
                 ext_heights: Sequence[int], ext_chains: Sequence[int],
                 max_call_depth: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """No recursion, and no chain of more than ``max_call_depth`` nested calls; return the
    call height of every unit and the bytes of its deepest chain of frames (its own frame
    included: the machine model's ``call_frame_bytes``).

    Edges are CALLs and uses of this image's own instructions (a VMlet's); the body of
    another VMlet's instruction adds its own height plus one, and its own frame chain. An
    iterative depth-first search: linear in units plus edges.
    """
    n = len(units)
    own = [e.function if h < 0 else -1 for e, h in zip(ext, ext_heights, strict=True)]
    edges: list[list[int]] = [
        list(u.calls) + [own[k] for k in u.exts if own[k] >= 0] for u in units]
    base = [max((ext_heights[k] + 1 for k in u.exts if ext_heights[k] >= 0), default=0)
            for u in units]
    chain_base = [max((ext_chains[k] for k in u.exts if ext_chains[k] >= 0), default=0)
                  for u in units]
    chain = [0] * n
    height = [-1] * n  # -1: not visited; -2: on the current path; >= 0: done
    below = [-1] * n  # the callee that realises height[u] (-1: none, or another VMlet)

    def label(w: int) -> str:
        return str(_label(image.functions[w], w))

    for root in range(n):
        if height[root] != -1:
            continue
        stack: list[tuple[int, int]] = [(root, 0)]  # (unit, next edge to look at)
        height[root] = -2
        while stack:
            u, i = stack[-1]
            if i < len(edges[u]):
                stack[-1] = (u, i + 1)
                v = edges[u][i]
                if height[v] == -2:
                    path = [w for w, _ in stack]
                    cycle = " -> ".join(label(w) for w in path[path.index(v):] + [v])
                    raise VerifyError("recursion", _label(image.functions[v], v), None,
                                      f"calls itself through {cycle}")
                if height[v] == -1:
                    height[v] = -2
                    stack.append((v, 0))
                continue
            stack.pop()
            best, via = base[u], -1
            for v in edges[u]:
                if height[v] + 1 > best:
                    best, via = height[v] + 1, v
            height[u], below[u] = best, via
            f = image.functions[u]
            chain[u] = call_frame_bytes(f.n_locals, f.max_stack) + max(
                chain_base[u], max((chain[v] for v in edges[u]), default=0))
    for u in range(n):
        if height[u] > max_call_depth:
            chain = [u]
            while below[chain[-1]] >= 0:
                chain.append(below[chain[-1]])
            names = " -> ".join(label(w) for w in chain)
            raise VerifyError("call-depth", _label(image.functions[u], u), None,
                              f"makes {height[u]} nested calls ({names}"
                              f"{' -> a VMlet instruction' if base[chain[-1]] else ''}), the "
                              f"mission allows {max_call_depth}")
    return tuple(height), tuple(chain)
