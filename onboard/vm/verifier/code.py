"""One code unit's pass: decoding fused with validation, in the style of the WebAssembly
validator (one loop reads an instruction and hands it to the checker of its family).

The pass keeps only an operand-stack depth, the open ``FORPREP``/``FORLOOP`` loops and the
forward jumps still waiting for their target. Because ``JMP``/``JZ``/``JNZ`` only jump
forward and ``FORLOOP`` is the only backward edge, every edge into an instruction is known
by the time the pass reaches it, so one pass decides which instructions are reachable and
the stack depth at each of them. Operands are checked in dead code too; the stack rules
apply only where control can be.

The checkers, one per instruction family, are looked up by opcode in ``_CHECKERS``: plain
stack effects, locals, globals and arrays, calls (code units, natives, VMlet instructions,
the environment, ``HIDE``), jumps, ``FORPREP``/``FORLOOP``, and returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from onboard.vm import isa
from onboard.vm.image import Array, CodeUnit, Global, Image
from onboard.vm.verifier.interface import ExtTarget, Target, UnitFacts, VerifyError, unit_label


@dataclass(frozen=True)
class CodeContext:
    """What every code unit of one image is checked against."""

    image: Image
    target: Target
    ext: tuple[ExtTarget, ...]
    visible: frozenset[str]


def verify_code(ctx: CodeContext, index: int) -> UnitFacts:
    """Verify code unit ``index`` of ``ctx.image`` in one pass; return its facts."""
    unit = ctx.image.functions[index]
    label = unit_label(unit, index)
    _check_frame(unit, label, ctx.target)
    return _UnitPass(ctx, index, label).run()


def _check_frame(unit: CodeUnit, label: str | int, target: Target) -> None:
    """The unit's frame: parameters fit in its locals, locals and stack in the mission's."""
    if unit.n_params > unit.n_locals:
        raise VerifyError("bad-frame", label, None, f"{unit.n_params} parameters do not fit "
                          f"in {unit.n_locals} locals")
    if unit.n_locals > target.max_locals:
        raise VerifyError("bad-frame", label, None, f"{unit.n_locals} locals exceed the "
                          f"{target.max_locals} a code unit may have")
    if unit.max_stack > target.max_stack:
        raise VerifyError("stack-overflow", label, None,
                          f"declares a stack of {unit.max_stack} entries, the mission allows "
                          f"{target.max_stack}")


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

    __slots__ = ("prep", "body", "exit", "slot", "parent", "live")

    def __init__(self, prep: int, body: int, exit: int, slot: int, parent: int,
                 live: bool) -> None:
        self.prep = prep  # offset of FORPREP
        self.body = body  # first instruction of the body (FORPREP's end)
        self.exit = exit  # FORPREP's exit target, which must be FORLOOP's end
        self.slot = slot  # counter; the limit is slot + 1
        self.parent = parent  # enclosing loop (0: none)
        self.live = live  # FORPREP is reachable, so its exit edge is too


class _UnitPass:
    """The state of the pass over one code unit, and the checkers of each family.

    A checker is called as ``checker(pass, opcode, a, b, start, end)``: the instruction at
    ``start`` (ending at ``end``) with its first two operands ``a`` and ``b`` (0 if absent).
    """

    __slots__ = ("ctx", "unit", "label", "is_on_load", "code", "n_locals", "limit",
                 "offsets", "depths", "calls", "exts", "call_sites", "pending", "loops",
                 "outgoing", "protected", "innermost", "depth", "deepest", "live")

    def __init__(self, ctx: CodeContext, index: int, label: str | int) -> None:
        self.ctx = ctx
        self.unit = ctx.image.functions[index]
        self.label = label
        self.is_on_load = ctx.image.on_load == index
        self.code = self.unit.code
        self.n_locals = self.unit.n_locals
        self.limit = self.unit.max_stack
        self.offsets: list[int] = []
        self.depths: list[int] = []
        self.calls: set[int] = set()
        self.exts: set[int] = set()
        self.call_sites: dict[tuple[int, int], int] = {}  # (CALL/CALLN, operand) -> first
        self.pending: dict[int, _Edge] = {}  # forward jump target -> the jumps into it
        self.loops = [_Loop(-1, -1, -1, -1, 0, True)]  # loops[0]: outside any loop
        self.outgoing = [0]  # per loop: pending jumps made from inside it
        self.protected: set[int] = set()  # counter and limit slots of the open loops
        self.innermost = 0
        self.depth = 0
        self.deepest = 0
        self.live = True  # control reaches the current instruction

    def fail(self, code: str, offset: int | None, message: str) -> NoReturn:
        """Refuse the unit: reason ``code`` at ``offset`` (None: the unit as a whole)."""
        raise VerifyError(code, self.label, offset, message)

    # ------------------------------------------------------------------- the loop

    def run(self) -> UnitFacts:
        """Decode and check every instruction in order, then the unit's end."""
        code = self.code
        n = len(code)
        n_operands, checkers = _N_OPERANDS, _CHECKERS
        offsets, depths, pending = self.offsets, self.depths, self.pending
        pos = start = 0
        while pos < n:
            start = pos
            if pending and start in pending:
                self.enter(start)
            offsets.append(start)
            depths.append(self.depth if self.live else -1)
            # decode: the opcode and its varint operands (one byte each, almost always)
            opcode = code[pos]
            pos += 1
            a = b = 0
            count = n_operands[opcode]
            if count:
                if pos < n and code[pos] < 0x80:
                    a = code[pos]
                    pos += 1
                else:
                    a, pos = self.varint(pos, start)
                if count == 2:
                    if pos < n and code[pos] < 0x80:
                        b = code[pos]
                        pos += 1
                    else:
                        b, pos = self.varint(pos, start)
            if pending and pos - start > 1:
                self.no_target_inside(start, pos)
            checkers[opcode](self, opcode, a, b, start, pos)
        return self.finish(start)

    def varint(self, pos: int, start: int) -> tuple[int, int]:
        """The rare multi-byte or malformed varint at ``pos`` (an operand of the
        instruction at ``start``): (value, position after it)."""
        code = self.code
        op_name = OPCODE_NAMES[code[start]]
        try:
            value, at = isa.decode_uvarint(code, pos)
        except isa.DecodeError as exc:
            if exc.reason.startswith("truncated"):
                self.fail("truncated", start, f"{op_name} is cut off by the end of the code")
            if exc.reason.startswith("varint longer"):
                self.fail("overlong-varint", start, f"an operand of {op_name} takes more "
                          f"than {isa.MAX_VARINT_BYTES} bytes")
            self.fail("varint-overflow", start,
                      f"an operand of {op_name} does not fit in 32 bits")
        if at - pos != isa.uvarint_size(value):
            self.fail("overlong-varint", start,
                      f"an operand of {op_name} is padded ({at - pos} bytes for a value that "
                      f"needs {isa.uvarint_size(value)})")
        return value, at

    def finish(self, last: int) -> UnitFacts:
        """The unit's end (``last``: offset of its last instruction): every loop closed,
        control never runs past it. Returns the facts."""
        if self.innermost:
            prep = self.loops[self.innermost].prep
            self.fail("loop-structure", prep, f"the loop opened at +{prep} is never closed "
                      "by a FORLOOP")
        if self.live:
            self.fail("falls-off-end", last,
                      "control runs past the end of the code (it must end with JMP, RET or "
                      "RETV)")
        if self.pending:  # cannot happen: every target < n was reached or found inside one
            self.fail("bad-jump", None, "a jump target was never reached")
        return UnitFacts(max_stack=self.deepest, offsets=tuple(self.offsets),
                         depth=tuple(self.depths), calls=tuple(sorted(self.calls)),
                         exts=tuple(sorted(self.exts)), charge_sites=self.charge_sites())

    def charge_sites(self) -> tuple[int, ...]:
        """The first instruction of each opcode, except that CALL and CALLN count once
        per callee and per native: what an instruction is charged depends on no more."""
        offsets = self.offsets[::-1]
        # the reversed order lets the first occurrence of each opcode overwrite the later
        first = dict(zip(map(self.code.__getitem__, offsets), offsets, strict=True))
        first.pop(isa.CALL, None)
        first.pop(isa.CALLN, None)
        return tuple(sorted([*first.values(), *self.call_sites.values()]))

    # ------------------------------------------------------------------- edges

    def enter(self, at: int) -> None:
        """The forward jumps into ``at`` arrive: they must come from the innermost open
        loop, and carry the depth control has when falling through (if it does)."""
        edge = self.pending.pop(at)
        for source, loop in [(edge.source, edge.loop)] + (edge.others or []):
            if loop != self.innermost:  # it would enter a loop without its FORPREP check
                self.fail("jump-into-loop", source,
                          f"jumps to +{at}, into the body of the loop opened at "
                          f"+{self.loops[self.innermost].prep}")
        self.outgoing[edge.loop] -= edge.count
        for _, loop in edge.others or ():
            self.outgoing[loop] -= 1
        if edge.depth >= 0:
            if self.live and edge.depth != self.depth:
                self.fail("stack-mismatch", at,
                          f"the stack holds {self.depth} values when falling through but "
                          f"{edge.depth} when jumping here from +{edge.depth_from}")
            self.depth = edge.depth
            self.live = True

    def no_target_inside(self, start: int, end: int) -> None:
        """No pending jump lands inside the instruction at ``start``."""
        for inside in range(start + 1, end):
            if inside in self.pending:
                self.fail("bad-jump", self.pending[inside].source,
                          f"jumps to +{inside}, inside the instruction at +{start}")

    def jump(self, target: int, start: int) -> None:
        """Record a forward edge to ``target`` from the instruction at ``start``, carrying
        the current depth (-1 from dead code)."""
        n = len(self.code)
        if target >= n:
            self.fail("bad-jump", start,
                      f"jumps to +{target}, past the last instruction (code ends at +{n})")
        carried = self.depth if self.live else -1
        innermost = self.innermost
        self.outgoing[innermost] += 1
        edge = self.pending.get(target)
        if edge is None:
            self.pending[target] = _Edge(carried, start, innermost)
            return
        if carried >= 0:
            if edge.depth >= 0 and edge.depth != carried:
                self.fail("stack-mismatch", start,
                          f"jumps to +{target} with {carried} values on the stack, but "
                          f"+{edge.depth_from} jumps there with {edge.depth}")
            if edge.depth < 0:
                edge.depth, edge.depth_from = carried, start
        if edge.loop == innermost:
            edge.count += 1
        else:
            if edge.others is None:
                edge.others = []
            edge.others.append((start, innermost))

    # ------------------------------------------------------------------- stack effects

    def effect(self, opcode: int, start: int, pops: int, pushes: int) -> None:
        """Pop ``pops`` values and push ``pushes``, where control can be."""
        if not self.live:
            return
        depth = self.depth
        if depth < pops:
            self.fail("stack-underflow", start,
                      f"{OPCODE_NAMES[opcode]} needs {pops} values, the stack holds {depth}")
        depth += pushes - pops
        self.depth = depth
        if depth > self.deepest:
            self.deepest = depth
            if depth > self.limit:
                self.fail("stack-overflow", start, f"{OPCODE_NAMES[opcode]} grows the stack to "
                          f"{depth} entries, over the unit's declared {self.limit}")

    def plain(self, opcode: int, a: int, b: int, start: int, end: int) -> None:
        """Immediates only and a fixed stack effect: the ISA table's."""
        self.effect(opcode, start, _POPS[opcode], _PUSHES[opcode])

    def bad_opcode(self, opcode: int, a: int, b: int, start: int, end: int) -> None:
        """No instruction has this opcode."""
        self.fail("bad-opcode", start, f"unknown opcode 0x{opcode:02x}")

    # ------------------------------------------------------------------- locals and data

    def local(self, opcode: int, a: int, b: int, start: int, end: int) -> None:
        """LOAD_L, STORE_L: a local of the frame; no store into an open loop's slots."""
        if a >= self.n_locals:
            self.fail("bad-local", start,
                      f"{OPCODE_NAMES[opcode]} l{a}: the unit has {self.n_locals} locals")
        if opcode == isa.STORE_L and a in self.protected:
            self.fail("loop-counter-written", start,
                      f"STORE_L l{a} writes the counter or limit of an open loop")
        self.effect(opcode, start, _POPS[opcode], _PUSHES[opcode])

    def data(self, opcode: int, a: int, b: int, start: int, end: int) -> None:
        """LOAD_G, STORE_G, LOAD_A, STORE_A: the same rules for globals and arrays."""
        is_global = opcode in (isa.LOAD_G, isa.STORE_G)
        image = self.ctx.image
        space: Sequence[Global | Array] = image.globals if is_global else image.arrays
        what = "global" if is_global else "array"
        if a >= len(space):
            self.fail(f"bad-{what}", start, f"{OPCODE_NAMES[opcode]}: there is no {what} {a} (the "
                      f"image has {len(space)})")
        if opcode in (isa.STORE_G, isa.STORE_A) and not space[a].writable:
            self.fail(f"readonly-{what}", start,
                      f"{OPCODE_NAMES[opcode]} writes the read-only {what} `{space[a].name}`")
        self.effect(opcode, start, _POPS[opcode], _PUSHES[opcode])

    # ------------------------------------------------------------------- calls

    def call(self, opcode: int, a: int, b: int, start: int, end: int) -> None:
        """CALL: a code unit of this image other than `on load`; its signature."""
        image = self.ctx.image
        functions = image.functions
        if a >= len(functions):
            self.fail("bad-func", start, f"CALL: there is no code unit {a} (the image has "
                      f"{len(functions)})")
        if a == image.on_load:
            self.fail("bad-func", start, "CALL of the `on load` code, which only the loader "
                      "may run")
        callee = functions[a]
        self.calls.add(a)
        self.call_sites.setdefault((opcode, a), start)
        self.effect(opcode, start, callee.n_params, 1 if callee.returns else 0)

    def native(self, opcode: int, a: int, b: int, start: int, end: int) -> None:
        """CALLN, HIDE: a native import visible to this code (HIDE: in `on load` only)."""
        image = self.ctx.image
        natives = image.natives
        if a >= len(natives):
            self.fail("bad-native", start, f"{OPCODE_NAMES[opcode]}: there is no native import {a} "
                      f"(the image has {len(natives)})")
        name = natives[a]
        if opcode == isa.HIDE and not self.is_on_load:
            self.fail("hide-outside-on-load", start,
                      f"HIDE `{name}` outside a VMlet's `on load` code")
        if name not in self.ctx.visible:
            self.fail("hidden-native", start,
                      f"{OPCODE_NAMES[opcode]}: the native `{name}` is not visible to this program")
        if opcode == isa.CALLN:
            sig = self.ctx.target.natives[name]  # every import is a mission native (checked)
            self.call_sites.setdefault((opcode, a), start)
            self.effect(opcode, start, sig.n_args, 1 if sig.returns else 0)
        else:
            self.effect(opcode, start, _POPS[opcode], _PUSHES[opcode])

    def env(self, opcode: int, a: int, b: int, start: int, end: int) -> None:
        """ENV: an environment import."""
        n_env = len(self.ctx.image.env)
        if a >= n_env:
            self.fail("bad-env", start, f"ENV: there is no environment import {a} (the "
                      f"image has {n_env})")
        self.effect(opcode, start, _POPS[opcode], _PUSHES[opcode])

    def extension(self, opcode: int, a: int, b: int, start: int, end: int) -> None:
        """An extension opcode: bound to a VMlet instruction; its signature."""
        k = opcode - isa.EXT_BASE
        ext = self.ctx.ext
        if k >= len(ext):
            self.fail("bad-ext", start, f"extension opcode 0x{opcode:02x} is bound to no "
                      f"VMlet instruction (the image binds {len(ext)})")
        self.exts.add(k)
        self.effect(opcode, start, ext[k].n_params, 1 if ext[k].returns else 0)

    # ------------------------------------------------------------------- control flow

    def branch(self, opcode: int, a: int, b: int, start: int, end: int) -> None:
        """JMP, JZ, JNZ: a forward edge to ``end + a``; nothing follows a JMP."""
        self.effect(opcode, start, _POPS[opcode], _PUSHES[opcode])
        self.jump(end + a, start)
        if opcode == isa.JMP:
            self.live = False

    def ret(self, opcode: int, a: int, b: int, start: int, end: int) -> None:
        """RET, RETV: the unit's result kind, and nothing else left on the stack."""
        if self.live:
            value = bool(self.unit.returns)
            if opcode == isa.RET:
                if value:
                    self.fail("bad-return", start, "RET in a unit that returns a value")
                if self.depth != 0:
                    self.fail("bad-return", start, f"RET leaves {self.depth} values on the "
                              "stack (must be 0)")
            else:
                if not value:
                    self.fail("bad-return", start, "RETV in a unit that returns nothing")
                if self.depth != 1:
                    self.fail("bad-return", start, f"RETV with {self.depth} values on the "
                              "stack (must be exactly 1)")
        self.effect(opcode, start, _POPS[opcode], _PUSHES[opcode])
        self.live = False

    def loop_slots(self, opcode: int, a: int, start: int) -> None:
        """FORPREP and FORLOOP use slot ``a`` (the counter) and ``a + 1`` (the limit)."""
        if a + 1 >= self.n_locals:
            self.fail("bad-local", start, f"{OPCODE_NAMES[opcode]} l{a} needs slots {a} and "
                      f"{a + 1}: the unit has {self.n_locals} locals")

    # Neither loop instruction moves the stack, so neither has a stack effect to check.

    def forprep(self, opcode: int, a: int, b: int, start: int, end: int) -> None:
        """FORPREP: opens a loop on an empty stack whose slots no enclosing loop uses."""
        self.loop_slots(opcode, a, start)
        if self.live and self.depth != 0:
            self.fail("loop-stack", start,
                      f"FORPREP with {self.depth} values on the stack (must be 0)")
        protected = self.protected
        if a in protected or a + 1 in protected:
            self.fail("loop-counter-written", start, f"loop slot l{a} or l{a + 1} is the "
                      "counter or limit of an enclosing loop")
        protected.add(a)
        protected.add(a + 1)
        self.loops.append(_Loop(start, end, end + b, a, self.innermost, self.live))
        self.outgoing.append(0)
        self.innermost = len(self.loops) - 1

    def forloop(self, opcode: int, a: int, b: int, start: int, end: int) -> None:
        """FORLOOP: closes the innermost loop, whose body no jump leaves; after it, control
        is where FORPREP's exit lands, with an empty stack, if FORPREP was reachable."""
        self.loop_slots(opcode, a, start)
        if self.innermost == 0:
            self.fail("loop-structure", start, "FORLOOP without an open FORPREP")
        loop = self.loops[self.innermost]
        if a != loop.slot:
            self.fail("loop-structure", start,
                      f"FORLOOP l{a} closes the loop of FORPREP l{loop.slot} at +{loop.prep}")
        if end - b != loop.body:
            self.fail("loop-structure", start, f"FORLOOP jumps back to +{end - b}, not to the "
                      f"loop body at +{loop.body}")
        if loop.exit != end:
            self.fail("loop-structure", loop.prep, f"FORPREP exits to +{loop.exit}, not to "
                      f"the end of its FORLOOP at +{end}")
        if self.live and self.depth != 0:
            self.fail("loop-stack", start,
                      f"FORLOOP with {self.depth} values on the stack (must be 0)")
        if self.outgoing[self.innermost]:
            self.jump_out_of_loop(start)
        self.protected.discard(a)
        self.protected.discard(a + 1)
        self.innermost = loop.parent
        if loop.live:  # FORPREP's exit edge lands here, with an empty stack
            self.live, self.depth = True, 0

    def jump_out_of_loop(self, forloop: int) -> NoReturn:
        """Refuse the first pending jump made inside the loop the FORLOOP at ``forloop``
        closes (a jump in a loop body may reach at most its FORLOOP)."""
        source, to = next(
            (s, t) for t, e in self.pending.items()
            for s, lp in [(e.source, e.loop)] + (e.others or []) if lp == self.innermost)
        self.fail("jump-out-of-loop", source,
                  f"jumps to +{to}, out of the loop closed by the FORLOOP at +{forloop} (a "
                  "jump in a loop body may reach at most its FORLOOP)")


# --------------------------------------------------------------------------- the tables

_Checker = Callable[[_UnitPass, int, int, int, int, int], None]

# The checker of each instruction, derived from the ISA table. An opcode whose operands
# are all immediates and whose stack effect is fixed needs no rule of its own (``plain``);
# any other must be listed here, so a new instruction with index operands cannot slip
# through.
_FAMILY: dict[int, _Checker] = {
    isa.LOAD_L: _UnitPass.local, isa.STORE_L: _UnitPass.local,
    isa.LOAD_G: _UnitPass.data, isa.STORE_G: _UnitPass.data,
    isa.LOAD_A: _UnitPass.data, isa.STORE_A: _UnitPass.data,
    isa.JMP: _UnitPass.branch, isa.JZ: _UnitPass.branch, isa.JNZ: _UnitPass.branch,
    isa.FORPREP: _UnitPass.forprep, isa.FORLOOP: _UnitPass.forloop,
    isa.CALL: _UnitPass.call, isa.CALLN: _UnitPass.native, isa.HIDE: _UnitPass.native,
    isa.ENV: _UnitPass.env, isa.RET: _UnitPass.ret, isa.RETV: _UnitPass.ret,
}


def _tables() -> tuple[tuple[_Checker, ...], tuple[int, ...], tuple[int, ...],
                       tuple[int, ...]]:
    """Per opcode: its checker, how many operands it has, what it pops and pushes."""
    checkers: list[_Checker] = [_UnitPass.bad_opcode] * 256
    n_operands, pops, pushes = [0] * 256, [0] * 256, [0] * 256
    for op in isa.INSTRUCTIONS:
        checker = _FAMILY.get(op.code, _UnitPass.plain)
        if checker is _UnitPass.plain and (
                any(k is not isa.Operand.IMM for k in op.operands) or op.pops is None
                or op.pushes is None or op.ends_block):
            raise AssertionError(f"the verifier has no rule for {op.name}")
        checkers[op.code] = checker
        n_operands[op.code] = len(op.operands)
        pops[op.code], pushes[op.code] = op.pops or 0, op.pushes or 0
    for code in range(isa.EXT_BASE, 256):
        checkers[code] = _UnitPass.extension
    return tuple(checkers), tuple(n_operands), tuple(pops), tuple(pushes)


_CHECKERS, _N_OPERANDS, _POPS, _PUSHES = _tables()
# The mnemonic of each opcode byte, for messages ("?" where the ISA has none).
OPCODE_NAMES = tuple((isa.op_info(c).name if isa.op_info(c) else "?")  # type: ignore[union-attr]
                     for c in range(256))
