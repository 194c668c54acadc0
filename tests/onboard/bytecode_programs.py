"""Random bytecode images that the load-time verifier accepts, generated directly (not
through the CCL compiler), for fuzzing the two execution engines against each other.

Everything is drawn from one ``random.Random``, so a seed names a program
(``generate(random.Random(seed))``, or ``case_of(seed)``) and a benchmark can draw millions
cheaply; hypothesis drives the same generator through ``st.randoms()`` (``cases()``), so its
examples shrink.

What a generated configuration holds:

* globals and arrays with declared ranges from narrow (``[5, 5]``, ``[0, 10]``) to the whole
  32-bit range, read-only or writable, so that stores may leave a range (``RANGE`` traps) and
  indices may leave an array (``INDEX`` traps);
* several code units with parameters and locals; a unit calls only units after it, so there
  is no recursion but there are chains of calls with arguments; some units are short
  straight-line pure functions (the translator inlines those at their calls);
* code drawn as a random walk over the operand stack: arithmetic with the values that trap
  (division and remainder by 0, ``INT_MIN / -1``, overflowing ``+ - * neg abs``), ``RANGE``
  checks, comparisons, ``DUP``/``POP``, ``ENV``, natives (with fixed and argument-dependent
  costs; arguments may leave their declared ranges), VMlet instructions (straight-line bodies
  of fixed cost, inlined, and bodies with branches, loops, calls, natives and the VMlet's
  own instructions, charged as they run);
* control flow: conditional and unconditional forward jumps whose targets are placed in any
  order (nested, crossing, several jumps to one target), so jumps carry values on the
  operand stack; early returns; counted loops (nested, with empty bodies, bounded by small
  limits) and jumps to their ``FORLOOP``; and, in some units, dead code after ``JMP`` and
  returns (the loader runs such units on the reference interpreter).

A case also names the entry points to run (units with arguments, from the values that
matter: 0, -1, ``INT_MIN``, ``INT_MAX``...). ``VMLETS`` is a fixed pool of generated VMlets
that configurations draw their VMlet instructions and natives from; the pool is generated
once, so a process loads each VMlet once.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from onboard.mission import MissionProfile, find_mission
from onboard.vm import isa
from onboard.vm.image import (
    Array,
    CodeUnit,
    ExtRef,
    Global,
    Image,
    ImageKind,
    InstrDef,
    Task,
    VmletRef,
)
from onboard.vm.isa import INT_MAX, INT_MIN

PROFILE: MissionProfile = find_mission("corot")

#: Natives of the CoRoT profile: (arguments, returns a value).
NATIVES: dict[str, tuple[int, bool]] = {
    name: (len(n.args), n.result is not None) for name, n in PROFILE.natives.items()}
ENV_KEYS: tuple[str, ...] = tuple(sorted(PROFILE.env))

#: Immediates worth pushing: trap boundaries, native argument bounds, small numbers.
INTERESTING = (0, 1, -1, 2, 3, 5, 7, -7, 10, 64, 65, 100, 255, 256, 5999, 6000, 46341,
               65535, 65536, INT_MIN, INT_MIN + 1, INT_MAX, INT_MAX - 1, -2)

#: Declared ranges of globals and array elements.
RANGES = ((0, 10), (-100, 100), (0, 255), (INT_MIN, INT_MAX), (5, 5), (-1, 1), (0, 5999),
          (1, 64), (-(2**20), 2**20))

#: Argument values of entry points.
ARGS = (0, 1, -1, 2, 3, 5, 7, 63, 64, 255, 5999, 6000, INT_MIN, INT_MAX, -5, 100)

#: The deepest operand stack a generated unit reaches (the mission allows 64).
MAX_DEPTH = 10
#: Counted loops nested in one unit, and their largest limit.
MAX_LOOPS = 2
MAX_LIMIT = 5


@dataclass(frozen=True)
class Signature:
    """What calling something takes and gives: values popped, whether one is pushed."""

    n_params: int
    returns: bool


@dataclass(frozen=True)
class Shape:
    """What the code of one image may name: its globals and arrays (range, writable), its
    native imports, environment imports, extension opcodes and the units it may call."""

    globals: tuple[tuple[int, int, bool], ...] = ()
    arrays: tuple[tuple[int, int, int, bool], ...] = ()  # length, lo, hi, writable
    natives: tuple[Signature, ...] = ()
    n_env: int = 0
    ext: dict[int, Signature] = field(default_factory=dict)  # extension index -> signature
    callees: dict[int, Signature] = field(default_factory=dict)


@dataclass(frozen=True)
class Style:
    """How one unit is drawn.

    ``straight``: no jumps, loops, calls, or natives of argument-dependent cost (a VMlet
    instruction of fixed cost); ``pure``: straight and only the instructions the translator
    inlines at calls (reads, arithmetic, checks); ``dead``: may hold dead code."""

    straight: bool = False
    pure: bool = False
    dead: bool = False
    steps: int = 30


class UnitGen:
    """Draws one well-formed code unit, tracking the operand stack depth as it goes.

    Locals: the parameters, then ``SCRATCH`` scratch slots, then a counter and a limit per
    loop nesting level. Open jump targets are labels that remember the stack depth their
    jumps carry and the loop they were opened in; they are placed in random order (only in
    that loop), each after the stack is settled to its depth."""

    SCRATCH = 3

    def __init__(self, rng: random.Random, shape: Shape, n_params: int, returns: bool,
                 style: Style) -> None:
        self.rng = rng
        self.shape = shape
        self.n_params = n_params
        self.returns = returns
        self.style = style
        self.loop_base = n_params + self.SCRATCH
        self.n_locals = self.loop_base + (0 if style.straight else 2 * MAX_LOOPS)
        self.asm = isa.Assembler()
        self.depth = 0
        self.deepest = 0
        self.live = True
        self.ended = False  # returned at the top level with nothing open: nothing follows
        self.labels: list[tuple[isa.Label, int, int]] = []  # (label, depth, loop level)
        self.loops: list[tuple[int, isa.Label, isa.Label, bool]] = []  # slot, body, exit, live
        self.protected: set[int] = set()

    # ------------------------------------------------------------------ emission

    def emit(self, op: int, *args: int | isa.Label, pops: int | None = None,
             pushes: int | None = None) -> None:
        info = isa.op_info(op)
        assert info is not None
        self.asm.emit(op, *args)
        if self.live:
            p = info.pops if pops is None else pops
            q = info.pushes if pushes is None else pushes
            assert p is not None and q is not None and self.depth >= p
            self.depth += q - p
            self.deepest = max(self.deepest, self.depth)

    def settle(self, depth: int) -> None:
        """Pop or push until the stack holds ``depth`` values (live code only)."""
        while self.live and self.depth > depth:
            self.emit(isa.POP)
        while self.live and self.depth < depth:
            self.push_value()

    def imm(self) -> int:
        r = self.rng.random()
        if r < 0.6:
            return self.rng.choice(INTERESTING)
        if r < 0.9:
            return self.rng.randint(-10, 300)
        return self.rng.randint(INT_MIN, INT_MAX)

    def push_value(self) -> None:
        """Push one value: an immediate, a local, a global or an environment value."""
        shape, rng = self.shape, self.rng
        kinds = ["imm", "imm", "local", "local"]
        if shape.globals:
            kinds.append("global")
        if shape.n_env:
            kinds.append("env")
        kind = rng.choice(kinds)
        if kind == "imm":
            self.emit(isa.PUSH, self.imm())
        elif kind == "local":
            self.emit(isa.LOAD_L, rng.randrange(self.n_locals))
        elif kind == "global":
            self.emit(isa.LOAD_G, rng.randrange(len(shape.globals)))
        else:
            self.emit(isa.ENV, rng.randrange(shape.n_env))

    # ------------------------------------------------------------------ the walk

    def open_here(self) -> list[tuple[isa.Label, int, int]]:
        level = len(self.loops)
        return [lb for lb in self.labels if lb[2] == level]

    def step(self) -> None:
        """One random action at the current point."""
        rng, shape, st = self.rng, self.shape, self.style
        d = self.depth
        here = self.open_here()
        if not self.live:
            if st.dead and (not here or rng.random() < 0.5):
                self.junk()
            elif here:
                self.close_label(rng.choice(here))
            elif self.loops:  # only with dead code allowed: a FORLOOP nothing reaches
                self.close_loop()
            else:
                self.ended = True
            return
        options = ["push"] * 5 + (["close"] * 3 if here else [])
        if d >= 1:
            options += ["unary", "unary", "store", "store", "dup"]
            if shape.arrays:
                options += ["load_a"]
        if d >= 2:
            options += ["binary"] * 4
            if any(a[3] for a in shape.arrays) and not st.pure:
                options += ["store_a"]
        if any(d >= n.n_params for n in shape.natives):
            options += ["native"]
        if any(d >= e.n_params for e in shape.ext.values()):
            options += ["ext", "ext"]
        if not st.straight:
            if any(d >= c.n_params for c in shape.callees.values()):
                options += ["call", "call"]
            if d >= 1:
                options += ["if", "if"]
            options += ["jump_over"]
            if here:
                options += ["join"]
            if here or not self.loops or st.dead:
                options += ["return"]
            if len(self.loops) < MAX_LOOPS:
                options += ["loop"]
            if self.loops and not here:
                options += ["endloop", "endloop"]
        what = rng.choice(options)
        if what == "push":
            if d < MAX_DEPTH:
                self.push_value()
        elif what == "close":
            self.close_label(rng.choice(here))
        elif what == "dup":
            if d < MAX_DEPTH:
                self.emit(isa.DUP)
        elif what == "unary":
            op = rng.choice(("NEG", "ABS", "NOT", "RANGE"))
            if op == "RANGE":
                lo = rng.choice((-5, 0, 1, INT_MIN, -100))
                self.emit(isa.RANGE, lo, max(lo, rng.choice((0, 5, 100, 300, INT_MAX))))
            else:
                self.emit(isa.BY_NAME[op].code)
        elif what == "binary":
            names = ("ADD", "SUB", "MUL", "DIV", "MOD", "MIN", "MAX", "EQ", "NE", "LT", "LE",
                     "GT", "GE")
            self.emit(isa.BY_NAME[rng.choice(names)].code)
        elif what == "store":
            self.store()
        elif what == "load_a":
            self.emit(isa.LOAD_A, rng.randrange(len(shape.arrays)))
        elif what == "store_a":
            writable = [i for i, a in enumerate(shape.arrays) if a[3]]
            self.emit(isa.STORE_A, rng.choice(writable))
        elif what == "native":
            ok = [i for i, n in enumerate(shape.natives) if d >= n.n_params]
            k = rng.choice(ok)
            n = shape.natives[k]
            if st.straight and n.n_params == 3:  # window_sum's cost depends on its arguments
                return
            self.emit(isa.CALLN, k, pops=n.n_params, pushes=int(n.returns))
        elif what == "ext":
            ok = [i for i, e in shape.ext.items() if d >= e.n_params]
            k = rng.choice(ok)
            e = shape.ext[k]
            self.emit(isa.EXT_BASE + k, pops=e.n_params, pushes=int(e.returns))
        elif what == "call":
            ok = [u for u, c in shape.callees.items() if d >= c.n_params]
            u = rng.choice(ok)
            c = shape.callees[u]
            self.emit(isa.CALL, u, pops=c.n_params, pushes=int(c.returns))
        elif what == "if":
            label = isa.Label()
            self.emit(rng.choice((isa.JZ, isa.JNZ)), label)
            self.labels.append((label, self.depth, len(self.loops)))
        elif what == "join":  # one more jump to a target already open: several jumps in
            label, depth, _ = rng.choice(here)
            if rng.random() < 0.6:
                self.settle(depth + 1)
                self.emit(rng.choice((isa.JZ, isa.JNZ)), label)
            else:
                self.settle(depth)
                self.emit(isa.JMP, label)
                self.live = False
        elif what == "jump_over":
            label = isa.Label()
            self.labels.append((label, self.depth, len(self.loops)))
            self.emit(isa.JMP, label)
            self.live = False
        elif what == "return":
            self.settle(int(self.returns))
            self.emit(isa.RETV if self.returns else isa.RET)
            self.live = False
            if not here and not self.loops and not st.dead:
                self.ended = True
        elif what == "loop":
            self.open_loop()
        elif what == "endloop":
            self.close_loop()

    def store(self) -> None:
        rng, shape = self.rng, self.shape
        writable = [i for i, g in enumerate(shape.globals) if g[2] and not self.style.pure]
        kind = rng.choice(["local", "local", "pop"] + (["global"] if writable else []))
        if kind == "local":
            slots = [s for s in range(self.n_locals) if s not in self.protected]
            self.emit(isa.STORE_L, rng.choice(slots))
        elif kind == "global":
            self.emit(isa.STORE_G, rng.choice(writable))
        else:
            self.emit(isa.POP)

    def junk(self) -> None:
        """Dead code: any instruction that decodes with operands in bounds (no stack rule
        applies to it), or a jump to an open target."""
        rng = self.rng
        here = self.open_here()
        pick = rng.randrange(8)
        if pick == 0 and here:
            self.emit(rng.choice((isa.JZ, isa.JNZ, isa.JMP)), rng.choice(here)[0])
        elif pick == 1:
            self.emit(isa.LOAD_L, rng.randrange(self.n_locals))
        elif pick == 2 and self.shape.callees:
            self.emit(isa.CALL, rng.choice(list(self.shape.callees)))
        elif pick == 3:
            self.emit(isa.PUSH, self.imm())
        else:
            self.emit(isa.BY_NAME[rng.choice(("POP", "ADD", "DIV", "RETV", "RET", "DUP",
                                              "NEG"))].code)

    def close_label(self, entry: tuple[isa.Label, int, int]) -> None:
        """Place an open jump target: the stack there is what its jumps carry."""
        label, depth, _ = entry
        self.labels.remove(entry)
        self.settle(depth)
        self.asm.place(label)
        self.depth, self.live = depth, True

    def open_loop(self) -> None:
        """``for counter in start .. limit`` with both small: set them, then FORPREP."""
        rng = self.rng
        self.settle(0)
        slot = self.loop_base + 2 * len(self.loops)
        if rng.random() < 0.7 or self.n_params == 0:
            self.emit(isa.PUSH, rng.randint(-2, 3))
        else:  # from a parameter, bounded below
            self.emit(isa.LOAD_L, rng.randrange(self.n_params))
            self.emit(isa.PUSH, -2)
            self.emit(isa.MAX)
        self.emit(isa.STORE_L, slot)
        if rng.random() < 0.7 or self.n_params == 0:
            self.emit(isa.PUSH, rng.randint(-2, MAX_LIMIT))
        else:
            self.emit(isa.LOAD_L, rng.randrange(self.n_params))
            self.emit(isa.PUSH, MAX_LIMIT)
            self.emit(isa.MIN)
        self.emit(isa.STORE_L, slot + 1)
        body, exit_ = isa.Label(), isa.Label()
        self.emit(isa.FORPREP, slot, exit_)
        self.asm.place(body)
        self.protected |= {slot, slot + 1}
        self.loops.append((slot, body, exit_, self.live))

    def close_loop(self) -> None:
        """Place the loop's open targets, then its FORLOOP; after it, live if its FORPREP
        was."""
        while self.open_here():
            self.close_label(self.rng.choice(self.open_here()))
        self.settle(0)
        slot, body, exit_, prep_live = self.loops.pop()
        self.emit(isa.FORLOOP, slot, body)
        self.asm.place(exit_)
        self.protected -= {slot, slot + 1}
        if prep_live:
            self.depth, self.live = 0, True

    def finish(self) -> CodeUnit:
        """Close every target and loop, return, and assemble."""
        while self.labels or self.loops:
            here = self.open_here()
            if here:
                self.close_label(self.rng.choice(here))
            else:
                self.close_loop()
        if self.live:
            self.settle(int(self.returns))
            self.emit(isa.RETV if self.returns else isa.RET)
        code = self.asm.assemble()
        slack = self.rng.choice((0, 0, 0, 1, 3))
        return CodeUnit("", self.n_params, self.n_locals, self.returns, self.deepest + slack,
                        code)

    def generate(self) -> CodeUnit:
        for _ in range(self.rng.randint(0, self.style.steps)):
            if self.ended:
                break
            self.step()
        return self.finish()


# --------------------------------------------------------------------------- VMlets


def _style(rng: random.Random, *, dead_p: float) -> Style:
    r = rng.random()
    if r < 0.15:
        return Style(straight=True, pure=True, steps=12)
    if r < 0.3:
        return Style(straight=True, steps=16)
    return Style(dead=rng.random() < dead_p, steps=rng.choice((5, 10, 16, 26)))


def _unit(rng: random.Random, shape: Shape, name: str, n_params: int, returns: bool,
          style: Style) -> CodeUnit:
    if style.pure:
        shape = Shape(shape.globals, shape.arrays, (), shape.n_env, {}, {})
    unit = UnitGen(rng, shape, n_params, returns, style).generate()
    return CodeUnit(name, unit.n_params, unit.n_locals, unit.returns, unit.max_stack,
                    unit.code)


def generate_vmlet(rng: random.Random, name: str) -> Image:
    """A VMlet: 2-3 instructions (some straight-line of fixed cost, some with branches,
    loops, calls of its helpers, natives and its own later instructions) and a helper,
    exposing some natives."""
    exposes = tuple(sorted(rng.sample(sorted(NATIVES), rng.randint(1, len(NATIVES)))))
    natives = tuple(n for n in exposes if rng.random() < 0.8)
    n_instrs = rng.randint(2, 3)
    n_units = n_instrs + rng.randint(0, 1)
    sigs = [Signature(rng.randint(0, 3), True) for _ in range(n_units)]
    functions = []
    for u in range(n_units):
        # extension opcode k is its instruction k (unit k); a unit uses only later ones
        own = {k: sigs[k] for k in range(u + 1, n_instrs)} if rng.random() < 0.4 else {}
        shape = Shape(natives=tuple(Signature(*NATIVES[n]) for n in natives),
                      n_env=len(ENV_KEYS) if rng.random() < 0.5 else 0, ext=own,
                      callees={v: sigs[v] for v in range(u + 1, n_units)})
        style = Style(straight=True, steps=10) if rng.random() < 0.5 else \
            Style(steps=rng.choice((8, 16)))
        functions.append(_unit(rng, shape, f"i{u}", sigs[u].n_params, True, style))
    instrs = tuple(InstrDef(f"i{u}", u) for u in range(n_instrs))
    return Image(kind=ImageKind.VMLET, name=name, version=1, mission=PROFILE.name,
                 natives=natives, env=ENV_KEYS, functions=tuple(functions), instrs=instrs,
                 exposes=exposes, ext=tuple(ExtRef(name, d.name) for d in instrs))


#: VMlets configurations run on: generated once, from a fixed seed.
POOL_SIZE = 48


@functools.cache
def vmlet_pool() -> tuple[Image, ...]:
    """The fixed pool of generated VMlets (each passes the verifier)."""
    from onboard.vm.verifier import Target, VerifyError, verify_image  # the pool is checked

    pool = []
    rng = random.Random(0x7A11)
    target = Target.of(PROFILE)
    while len(pool) < POOL_SIZE:
        vm = generate_vmlet(rng, f"kit{len(pool)}")
        try:
            verify_image(vm, target)
        except VerifyError:
            continue
        pool.append(vm)
    return tuple(pool)


# --------------------------------------------------------------------------- configurations


@dataclass(frozen=True)
class Case:
    """One generated configuration, the VMlet it runs on, and the entry points to run:
    ``(unit, arguments)`` in order (state carries from one to the next)."""

    image: Image
    vmlets: tuple[Image, ...]
    entries: tuple[tuple[int, tuple[int, ...]], ...]


def _range(rng: random.Random) -> tuple[int, int]:
    return rng.choice(RANGES)


def generate(rng: random.Random) -> Case:
    """A configuration drawn from ``rng`` (see the module docstring)."""
    vm = rng.choice(vmlet_pool()) if rng.random() < 0.8 else None
    globals_ = []
    for g in range(rng.randint(0, 4)):
        lo, hi = _range(rng)
        globals_.append(Global(f"g{g}", rng.random() < 0.7, lo, hi, rng.randint(lo, hi)))
    arrays = []
    for a in range(rng.randint(0, 3)):
        lo, hi = _range(rng)
        n = rng.choice((1, 2, 3, 5, 8, 300))
        values = [rng.randint(lo, hi)] * n
        for _ in range(min(n, 4)):
            values[rng.randrange(n)] = rng.choice((lo, hi, rng.randint(lo, hi)))
        arrays.append(Array(f"a{a}", rng.random() < 0.7, lo, hi, tuple(values)))
    natives: tuple[str, ...] = ()
    ext: tuple[ExtRef, ...] = ()
    ext_sigs: dict[int, Signature] = {}
    if vm is not None:
        natives = tuple(n for n in vm.exposes if rng.random() < 0.7)
        picks = [d for d in vm.instrs if rng.random() < 0.7]
        ext = tuple(ExtRef(vm.name, d.name) for d in picks)
        ext_sigs = {k: Signature(vm.functions[d.function].n_params, True)
                    for k, d in enumerate(picks)}
    n_units = rng.choice((1, 2, 2, 3, 3, 4))
    sigs = [Signature(rng.choice((0, 0, 1, 2, 3)), rng.random() < 0.5) for _ in range(n_units)]
    dead_p = 0.15
    functions = []
    for u in range(n_units):
        shape = Shape(
            globals=tuple((g.lo, g.hi, g.writable) for g in globals_),
            arrays=tuple((a.length, a.lo, a.hi, a.writable) for a in arrays),
            natives=tuple(Signature(*NATIVES[n]) for n in natives),
            n_env=len(ENV_KEYS) if rng.random() < 0.5 else 0,
            ext=ext_sigs,
            callees={v: sigs[v] for v in range(u + 1, n_units)})
        style = _style(rng, dead_p=dead_p)
        if style.pure and not sigs[u].returns:
            style = Style(straight=True, steps=12)
        functions.append(_unit(rng, shape, f"f{u}", sigs[u].n_params, sigs[u].returns,
                               style))
    entry_points = [u for u, f in enumerate(functions) if f.n_params == 0 and not f.returns]
    tasks = tuple(Task(functions[u].name, 100 * rng.randint(1, 3), u) for u in entry_points)
    on_apply = rng.choice(entry_points) if entry_points and rng.random() < 0.3 else None
    image = Image(
        kind=ImageKind.CONFIG, name="fuzz", version=1, mission=PROFILE.name,
        uses=(VmletRef(vm.name, vm.version, vm.content_hash),) if vm is not None else (),
        globals=tuple(globals_), arrays=tuple(arrays), natives=natives, env=ENV_KEYS,
        ext=ext, functions=tuple(functions), tasks=tasks, on_apply=on_apply)
    entries = [(0, _args(rng, functions[0].n_params))]
    for _ in range(rng.randint(0, 3)):
        u = rng.randrange(n_units)
        entries.append((u, _args(rng, functions[u].n_params)))
    return Case(image, (vm,) if vm is not None else (), tuple(entries))


def _args(rng: random.Random, n: int) -> tuple[int, ...]:
    return tuple(rng.choice(ARGS) if rng.random() < 0.8 else rng.randint(-50, 50)
                 for _ in range(n))


def case_of(seed: int) -> Case:
    """The case of ``seed``: the same program on every machine and run."""
    return generate(random.Random(seed))


def cases():  # type: ignore[no-untyped-def]
    """A hypothesis strategy of cases (drawn through ``st.randoms``, so they shrink)."""
    from hypothesis import strategies as st

    return st.randoms(use_true_random=False).map(generate)


def describe(case: Case) -> Sequence[str]:
    """A listing of a case's code, for failure reports."""
    lines = []
    for img in (*case.vmlets, case.image):
        for unit in img.functions:
            lines.append(f"{img.name}.{unit.name} params={unit.n_params} "
                         f"locals={unit.n_locals} returns={int(unit.returns)} "
                         f"stack={unit.max_stack}")
            lines += isa.disassemble(unit.code, img.names_for(unit))
    lines.append(f"entries: {case.entries}")
    return lines
