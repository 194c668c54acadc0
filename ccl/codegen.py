"""Code generation: typed IR to VVM bytecode (``onboard.vm.isa``) and an image
(``onboard.vm.image``).

One code unit per procedure. Conditions compile to jumps (short-circuit ``&&``/``||``
without materialising booleans); ``for`` compiles to ``FORPREP``/``FORLOOP`` with the
counter in a local slot and the limit in the next one. A ``RANGE`` check is emitted where a
value is stored into a ranged local, passed to a ranged argument or returned from a ranged
function, unless the ranges computed by ``ccl.sema`` already prove that it fits. Stores to
globals and arrays need none: the VVM enforces their declared ranges itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from ccl import ir
from ccl.limits import recursion_headroom
from ccl.ranges import OPCODES
from onboard.vm import isa
from onboard.vm.image import (
    Array,
    CodeUnit,
    ExtRef,
    Global,
    Image,
    ImageKind,
    InstrDef,
    Rule,
    Task,
    VmletRef,
)


@dataclass(frozen=True)
class DebugInfo:
    """What a listing needs beyond the image: local names of each code unit, by slot."""

    local_names: tuple[tuple[str, ...], ...]


class _Tables:
    """Import tables and code unit numbering of the image being generated."""

    def __init__(self, program: ir.Program) -> None:
        self.natives: list[str] = []
        self.env: list[str] = []
        self.ext: list[ExtRef] = []
        self.functions: dict[str, int] = {}
        self.program = program

    @staticmethod
    def _index(table: list, item: object) -> int:  # type: ignore[type-arg]
        if item not in table:
            table.append(item)
        return table.index(item)

    def native(self, name: str) -> int:
        return self._index(self.natives, name)

    def env_key(self, name: str) -> int:
        return self._index(self.env, name)

    def ext_op(self, vmlet: str, instr: str) -> int:
        k = self._index(self.ext, ExtRef(vmlet, instr))
        if k >= isa.EXT_COUNT:
            raise ValueError(f"more than {isa.EXT_COUNT} VMlet instructions in one image")
        return isa.EXT_BASE + k


class _ProcGen:
    """Generates one code unit."""

    def __init__(self, proc: ir.Procedure, tables: _Tables) -> None:
        self.proc = proc
        self.t = tables
        self.asm = isa.Assembler()
        self.depth = 0
        self.max_depth = 0
        self.slots: dict[int, int] = {}
        names: list[str] = []
        for local in proc.locals:
            self.slots[local.id] = len(names)
            names.append(local.name)
            if local.is_loop_counter:
                names.append(f"{local.name}.limit")
        self.local_names = tuple(names)

    # -- emission with stack tracking

    def emit(self, opcode: int, *operands: int | isa.Label, pops: int | None = None,
             pushes: int | None = None) -> None:
        info = isa.op_info(opcode)
        assert info is not None
        self.asm.emit(opcode, *operands)
        pops = info.pops if pops is None else pops
        pushes = info.pushes if pushes is None else pushes
        assert pops is not None and pushes is not None, f"{info.name} needs its stack effect"
        self.depth += pushes - pops
        assert self.depth >= 0, f"stack underflow generating {self.proc.name}"
        self.max_depth = max(self.max_depth, self.depth)

    def place(self, label: isa.Label, depth: int) -> None:
        """Bind a label whose stack depth is known from the jumps that reach it."""
        self.asm.place(label)
        self.depth = depth

    # -- procedures

    def generate(self) -> CodeUnit:
        self.stmts(self.proc.body)
        if not ir.always_returns(self.proc.body):
            self.emit(isa.RET)
        return CodeUnit(
            name=self.proc.name,
            n_params=len(self.proc.params),
            n_locals=len(self.local_names),
            returns=self.proc.returns is not None,
            max_stack=self.max_depth,
            code=self.asm.assemble(),
        )

    # -- statements

    def stmts(self, body: tuple[ir.Stmt, ...]) -> None:
        for s in body:
            self.stmt(s)
            if ir.always_returns((s,)):
                break  # the rest of the block can never run: emit nothing for it

    def stmt(self, s: ir.Stmt) -> None:
        if isinstance(s, (ir.Let, ir.AssignLocal)):
            self.expr(s.value)
            self.range_check(s.local.type, s.value.type)
            self.emit(isa.STORE_L, self.slots[s.local.id])
        elif isinstance(s, ir.AssignGlobal):
            self.expr(s.value)
            self.emit(isa.STORE_G, s.glob.index)
        elif isinstance(s, ir.AssignElement):
            self.expr(s.index)
            self.expr(s.value)
            self.emit(isa.STORE_A, s.array.index)
        elif isinstance(s, ir.If):
            self.if_stmt(s)
        elif isinstance(s, ir.For):
            self.for_stmt(s)
        elif isinstance(s, ir.Return):
            if s.value is None:
                self.emit(isa.RET)
            else:
                self.expr(s.value)
                if self.proc.returns is not None:
                    self.range_check(self.proc.returns, s.value.type)
                self.emit(isa.RETV)
        elif isinstance(s, ir.ExprStmt):
            self.expr(s.expr)
            if s.expr.type is not None:
                self.emit(isa.POP)
        elif isinstance(s, ir.Hide):
            self.emit(isa.HIDE, self.t.native(s.native))
        else:  # pragma: no cover - the IR is closed
            raise TypeError(s)

    def if_stmt(self, s: ir.If) -> None:
        else_label, end_label = isa.Label("else"), isa.Label("end")
        self.jump_unless(s.cond, else_label)
        self.stmts(s.then)
        if s.otherwise:
            if not ir.always_returns(s.then):
                self.emit(isa.JMP, end_label)
            self.place(else_label, 0)
            self.stmts(s.otherwise)
            self.place(end_label, 0)
        else:
            self.place(else_label, 0)

    def for_stmt(self, s: ir.For) -> None:
        slot = self.slots[s.counter.id]
        body_label, exit_label = isa.Label("body"), isa.Label("exit")
        self.expr(s.lo)
        self.emit(isa.STORE_L, slot)
        self.expr(s.hi)
        self.emit(isa.STORE_L, slot + 1)
        self.emit(isa.FORPREP, slot, exit_label)
        self.place(body_label, 0)
        self.stmts(s.body)
        self.emit(isa.FORLOOP, slot, body_label)
        self.place(exit_label, 0)

    def range_check(self, target: ir.Type, value: ir.Type | None) -> None:
        if not isinstance(target, ir.IntType) or target.is_full:
            return
        if isinstance(value, ir.IntType) and target.includes(value):
            return  # proven by the ranges already
        self.emit(isa.RANGE, target.lo, target.hi)

    # -- conditions

    def jump_unless(self, cond: ir.Expr, target: isa.Label) -> None:
        """Fall through when ``cond`` holds, jump to ``target`` when it does not."""
        self.jump_when(cond, False, target)

    def jump_when(self, cond: ir.Expr, sense: bool, target: isa.Label) -> None:
        """Jump to ``target`` when ``cond`` is ``sense``, fall through otherwise; ``and`` and
        ``or`` short-circuit (De Morgan: jumping when ``a or b`` is false is jumping when
        ``a`` is false or ``b`` is false, and the dual)."""
        if isinstance(cond, ir.Const):
            if bool(cond.value) is sense:
                self.emit(isa.JMP, target)
            return
        if isinstance(cond, ir.Unary) and cond.op is ir.UnOp.NOT:
            self.jump_when(cond.operand, not sense, target)
            return
        if isinstance(cond, ir.Binary) and cond.op in (ir.BinOp.AND, ir.BinOp.OR):
            # the operator that decides at its left operand when that operand is `sense`
            decides_early = (cond.op is ir.BinOp.OR) is sense
            if decides_early:
                self.jump_when(cond.left, sense, target)
                self.jump_when(cond.right, sense, target)
            else:
                done = isa.Label("and" if cond.op is ir.BinOp.AND else "or")
                self.jump_when(cond.left, not sense, done)
                self.jump_when(cond.right, sense, target)
                self.place(done, self.depth)
            return
        self.expr(cond)
        self.emit(isa.JNZ if sense else isa.JZ, target)

    # -- expressions

    def expr(self, e: ir.Expr) -> None:
        if isinstance(e, ir.Const):
            self.emit(isa.PUSH, e.value)
        elif isinstance(e, ir.LocalRef):
            self.emit(isa.LOAD_L, self.slots[e.local.id])
        elif isinstance(e, ir.GlobalRef):
            self.emit(isa.LOAD_G, e.glob.index)
        elif isinstance(e, ir.ArrayRef):
            self.expr(e.index)
            self.emit(isa.LOAD_A, e.array.index)
        elif isinstance(e, ir.Unary):
            self.expr(e.operand)
            self.emit({ir.UnOp.NEG: isa.NEG, ir.UnOp.ABS: isa.ABS, ir.UnOp.NOT: isa.NOT}[e.op])
        elif isinstance(e, ir.Binary):
            if e.op in ir.LOGICAL:
                self.materialize(e)
            else:
                self.expr(e.left)
                self.expr(e.right)
                self.emit(OPCODES[e.op])
        elif isinstance(e, ir.Call):
            callee = self.t.program.function(e.function)
            self.args(e.args, [p.type for p in callee.params])
            self.emit(isa.CALL, self.t.functions[e.function], pops=len(e.args),
                      pushes=int(e.type is not None))
        elif isinstance(e, ir.NativeCall):
            for a in e.args:
                self.expr(a)
            self.emit(isa.CALLN, self.t.native(e.native.name), pops=len(e.args),
                      pushes=int(e.type is not None))
        elif isinstance(e, ir.InstrCall):
            instr = self.t.program.instr(e.vmlet, e.instr)
            self.args(e.args, [p.type for p in instr.params])
            self.emit(self.t.ext_op(e.vmlet, e.instr), pops=len(e.args),
                      pushes=int(e.type is not None))
        elif isinstance(e, ir.EnvRead):
            self.emit(isa.ENV, self.t.env_key(e.key))
        else:  # pragma: no cover - the IR is closed
            raise TypeError(e)

    def args(self, args: tuple[ir.Expr, ...], types: list[ir.Type]) -> None:
        for a, t in zip(args, types, strict=True):
            self.expr(a)
            self.range_check(t, a.type)

    def materialize(self, e: ir.Binary) -> None:
        """Push 1 or 0 for a short-circuit condition."""
        false_label, end_label = isa.Label("false"), isa.Label("end")
        base = self.depth
        self.jump_unless(e, false_label)
        self.emit(isa.PUSH, 1)
        self.emit(isa.JMP, end_label)
        self.place(false_label, base)
        self.emit(isa.PUSH, 0)
        self.place(end_label, base + 1)


def generate(program: ir.Program, vmlet_images: dict[str, Image]) -> tuple[Image, DebugInfo]:
    """Compile a checked program into its image. ``vmlet_images`` holds the image of every
    VMlet the program uses (their hashes pin the configuration to them)."""
    with recursion_headroom():  # generation recurses as deep as the program nests
        return _generate(program, vmlet_images)


def _generate(program: ir.Program, vmlet_images: dict[str, Image]) -> tuple[Image, DebugInfo]:
    tables = _Tables(program)
    procs: list[ir.Procedure] = list(program.functions)
    procs += list(program.instrs)
    procs += [t.proc for t in program.tasks]
    if program.on_apply is not None:
        procs.append(program.on_apply)
    if program.on_load is not None:
        procs.append(program.on_load)
    procs += [r.proc for r in program.rules]
    for i, f in enumerate(program.functions):
        tables.functions[f.name] = i
    index = {id(p): i for i, p in enumerate(procs)}
    units, names = [], []
    for p in procs:
        gen = _ProcGen(p, tables)
        units.append(gen.generate())
        names.append(gen.local_names)
    uses = tuple(
        VmletRef(vm.name, vm.version, vmlet_images[vm.name].content_hash) for vm in program.uses
    )
    image = Image(
        kind=ImageKind.CONFIG if program.kind is ir.ProgramKind.CONFIG else ImageKind.VMLET,
        name=program.name,
        version=program.version,
        mission=program.mission,
        uses=uses,
        globals=tuple(Global(g.name, g.writable, g.type.lo, g.type.hi, g.value)
                      for g in program.globals),
        arrays=tuple(Array(a.name, a.writable, a.type.lo, a.type.hi, a.values)
                     for a in program.arrays),
        natives=tuple(tables.natives),
        env=tuple(tables.env),
        ext=tuple(tables.ext),
        functions=tuple(units),
        tasks=tuple(Task(t.name, t.period_ms, index[id(t.proc)]) for t in program.tasks),
        rules=tuple(Rule(r.text, index[id(r.proc)]) for r in program.rules),
        on_apply=index[id(program.on_apply)] if program.on_apply is not None else None,
        instrs=tuple(InstrDef(p.name, index[id(p)]) for p in program.instrs),
        exposes=program.exposes,
        hides=program.hides,
        on_load=index[id(program.on_load)] if program.on_load is not None else None,
    )
    return image, DebugInfo(tuple(names))
