"""Statements of procedure bodies: blocks and their scopes, `let`, assignments, `if`,
`for`, `return`, `hide` and calls as statements."""

from __future__ import annotations

from typing import Any

from ccl import ir
from ccl.diagnostics import Span, did_you_mean
from ccl.limits import MAX_NESTING
from ccl.sema.expressions import ExpressionChecker, type_word
from ccl.sema.reporter import Abort
from ccl.sema.symbols import BUILTINS, KEYWORDS, ArraySymbol, GlobalSymbol, ProcScope

_COMPOUND = {"+=": ir.BinOp.ADD, "-=": ir.BinOp.SUB, "*=": ir.BinOp.MUL}


class Statements:
    """Analyzes the statements of the body ``exprs.proc``."""

    def __init__(self, exprs: ExpressionChecker) -> None:
        self.exprs = exprs
        self.rep = exprs.rep
        self.module = exprs.module
        #: The procedure whose body is being analyzed (set by ``Bodies.procedure``, with
        #: ``exprs.proc``: an attribute, not a property, as every statement reads it).
        self.proc = ProcScope("", ir.ProcKind.FUNCTION, None)


    def check_local_name(self, name: str, sp: Span, what: str) -> None:
        """Reject a local name (``what``: "argument", "local", "loop counter") that is
        reserved, already defined in this block, or would hide another name."""
        proc = self.proc
        if name in KEYWORDS or name in BUILTINS:
            raise self.rep.fail("E-RESERVED", f"`{name}` is a reserved word of CCL", sp)
        existing = proc.lookup(name)
        if existing is not None:
            first = ("argument" if existing.is_param else
                     "loop counter" if existing.is_loop_counter else "local")
            hint = f"the {first} `{name}` is defined at {existing.span}; choose another name"
            if name in proc.scopes[-1]:
                where = (f"an argument of `{proc.name}`" if existing.is_param
                         else "defined in this block")
                raise self.rep.fail("E-DUPLICATE", f"`{name}` is already {where}", sp, hint)
            raise self.rep.fail("E-DUPLICATE", f"{what} `{name}` would hide the {first} "
                                f"`{name}` of an enclosing block", sp, hint)
        if name in self.module.types and name not in self.module.declared_at:
            raise self.rep.fail("E-SHADOW", f"{what} `{name}` would hide the type `{name}` of "
                                f"VMlet `{self.module.types[name].vmlet}`", sp,
                                "choose another name")
        if name in self.module.declared_at:
            raise self.rep.fail("E-SHADOW", f"{what} `{name}` would hide the "
                                f"{self.module.kind_word(name).split(' ', 1)[1]} `{name}`", sp,
                                f"it is defined at {self.module.declared_at[name]}; choose "
                                "another name")

    def block(self, block: Any) -> tuple[ir.Stmt, ...]:
        """Analyze a block in a new scope; statements with errors are skipped."""
        proc = self.proc
        proc.scopes.append({})
        try:
            out: list[ir.Stmt] = []
            for s in block.stmts:
                try:
                    result = getattr(self, "stmt_" + type(s).__name__)(s)
                except Abort:
                    continue
                if isinstance(result, tuple):
                    out.extend(result)
                else:
                    out.append(result)
            return tuple(out)
        finally:
            proc.scopes.pop()

    def stmt_LetStmt(self, s: Any) -> ir.Stmt:
        """`let name [: type] = value;`"""
        exprs = self.exprs
        sp = self.rep.name_span(s, s.name)
        value = exprs.expr(s.value)
        if s.type is not None:
            ty = exprs.type_of(s.type)
            exprs.check_assignable(ty, value, self.rep.span(s.value))
        else:
            td = exprs.opaque(value.type)  # a value of a VMlet type: a local of that type
            ty = (ir.BOOL if isinstance(value.type, ir.BoolType)
                  else ir.IntType(td.lo, td.hi, td) if td is not None else ir.INT)
        self.check_local_name(s.name, sp, "local")
        local = ir.Local(s.name, len(self.proc.locals), ty, sp)
        self.proc.declare(local)
        return ir.Let(local, value, self.rep.span(s))

    # ------------------------------------------------------------------ assignments

    def stmt_AssignStmt(self, s: Any) -> ir.Stmt | tuple[ir.Stmt, ...]:
        """`target = value;`, `target[i] op= value;` to a local, a state variable or a
        state array's element."""
        target: str = s.target or s.element
        name_sp = self.rep.src.span(s._tx_position, s._tx_position + len(target))
        value = self.exprs.expr(s.value)
        local = self.proc.lookup(target)
        if local is not None:
            return self.assign_local(s, local, value, name_sp)
        module = self.module
        if target in module.natives or target in module.instr_sigs:
            what = "a native" if target in module.natives else "a VMlet instruction"
            raise self.rep.fail("E-NOT-ASSIGNABLE", f"`{target}` is {what}, not a variable",
                                name_sp)
        symbol = self.exprs.lookup_module(target, name_sp)
        if isinstance(symbol, GlobalSymbol):
            return self.assign_global(s, symbol.glob, value, name_sp)
        if isinstance(symbol, ArraySymbol):
            return self.assign_element(s, symbol.array, value, name_sp)
        raise self.rep.fail("E-NOT-ASSIGNABLE", f"`{target}` is {module.kind_word(target)}, "
                            "not a variable", name_sp)

    def assign_local(self, s: Any, local: ir.Local, value: ir.Expr,
                     name_sp: Span) -> ir.Stmt:
        """An assignment to ``local`` (not an argument or a loop counter)."""
        if s.index is not None:
            raise self.rep.fail("E-TYPE", f"`{local.name}` is not an array", name_sp)
        if local.is_loop_counter:
            raise self.rep.fail("E-READONLY", f"loop counter `{local.name}` cannot be assigned",
                                name_sp, "loops run a fixed number of times; use a `let`")
        if local.is_param:
            raise self.rep.fail("E-READONLY", f"argument `{local.name}` cannot be assigned",
                                name_sp, f"copy it: `let {local.name}_ = {local.name};`")
        current = ir.LocalRef(local, local.type, name_sp)
        value = self.compound(s, current, value)
        self.exprs.check_assignable(local.type, value, self.rep.span(s.value))
        return ir.AssignLocal(local, value, self.rep.span(s))

    def assign_global(self, s: Any, g: ir.Global, value: ir.Expr, name_sp: Span) -> ir.Stmt:
        """An assignment to state variable ``g`` (not a parameter)."""
        if s.index is not None:
            raise self.rep.fail("E-TYPE", f"`{g.name}` is not an array", name_sp)
        if not g.writable:
            raise self.rep.fail("E-READONLY", f"parameter `{g.name}` cannot be assigned on "
                                "board", name_sp, "parameters change only through patches; "
                                "use a `var` for state")
        value = self.compound(s, ir.GlobalRef(g, g.type, name_sp), value)
        self.exprs.check_assignable(g.type, value, self.rep.span(s.value))
        return ir.AssignGlobal(g, value, self.rep.span(s))

    def assign_element(self, s: Any, a: ir.Array, value: ir.Expr,
                       name_sp: Span) -> tuple[ir.Stmt, ...]:
        """An assignment to an element of state array ``a`` (not a table)."""
        if s.index is None:
            raise self.rep.fail("E-TYPE", f"`{a.name}` is an array; assign one element: "
                                f"`{a.name}[i] = ...`", name_sp)
        if not a.writable:
            raise self.rep.fail("E-READONLY", f"table `{a.name}` cannot be assigned on board",
                                name_sp, "tables change only through patches; use a `var` "
                                "array for state")
        index = self.exprs.index_expr(a, s.index)
        first: tuple[ir.Stmt, ...] = ()
        if s.op != "=" and any(isinstance(n, (ir.Call, ir.NativeCall, ir.InstrCall))
                               for n, _ in ir.nested((index,))):
            # `a[f()] += e` reads and writes the element `f()` names: `f` runs once (its
            # result in a local no name can reach), not once per use of the index.
            assert isinstance(index.type, ir.IntType)
            held = ir.Local(f"{a.name}[...]", len(self.proc.locals), index.type, index.span)
            self.proc.locals.append(held)
            first = (ir.Let(held, index, index.span),)
            index = ir.LocalRef(held, held.type, index.span)
        value = self.compound(s, ir.ArrayRef(a, index, a.type, name_sp), value)
        self.exprs.check_assignable(a.type, value, self.rep.span(s.value))
        return (*first, ir.AssignElement(a, index, value, self.rep.span(s)))

    def compound(self, s: Any, current: ir.Expr, value: ir.Expr) -> ir.Expr:
        """The value assignment ``s`` stores: ``current op value`` for `op=`."""
        if s.op == "=":
            return value
        return self.exprs.binary(_COMPOUND[s.op], current, value, self.rep.span(s))

    # ------------------------------------------------------------------ control

    def stmt_IfStmt(self, s: Any) -> ir.Stmt:
        """`if`, its `else if` chain and `else`."""
        # `if a {..} else if b {..} else {..}` is `if a {..} else { if b {..} else {..} }`:
        # analyzed in the order written, nested from the last `else if` outwards (a loop,
        # not a recursion: chains may be long). The k-th `else if` is k levels deeper.
        proc = self.proc
        base = proc.depth
        arms = []
        try:
            for k, arm in enumerate((s, *s.elifs)):
                if base + k + 1 > MAX_NESTING:
                    word = "if" if arm is s else "else if"
                    raise self.rep.fail(
                        "E-TOO-DEEP", f"this `{word}` nests more than {MAX_NESTING} levels deep",
                        self.rep.src.span(arm._tx_position, arm.then._tx_position),
                        "each `else if` is nested in the `else` before it, and code "
                        f"may nest at most {MAX_NESTING} levels: split the chain, or "
                        "look the value up in a table")
                proc.depth = base + k + 1
                arms.append((self.exprs.condition(arm.cond), self.block(arm.then),
                             s._tx_position if arm is s else self.rep.word_offset(arm, "if")))
            proc.depth = base + len(arms)
            otherwise = self.block(s.otherwise) if s.otherwise is not None else ()
        finally:
            proc.depth = base
        for cond, then, start in reversed(arms):
            otherwise = (ir.If(cond, then, otherwise,
                               self.rep.src.span(start, s._tx_position_end)),)
        return otherwise[0]

    def stmt_ForStmt(self, s: Any) -> ir.Stmt:
        """`for i in lo .. hi { ... }`: the counter's range and the loop's bound."""
        proc = self.proc
        lo = self.exprs.int_expr(s.lo, "a loop bound")
        hi = self.exprs.int_expr(s.hi, "a loop bound")
        assert isinstance(lo.type, ir.IntType) and isinstance(hi.type, ir.IntType)
        sp = self.rep.name_span(s, s.var)
        max_trips = max(0, hi.type.hi - lo.type.lo)
        counter_type = ir.IntType(lo.type.lo, max(lo.type.lo, hi.type.hi - 1))
        proc.scopes.append({})
        try:
            self.check_local_name(s.var, sp, "loop counter")
            counter = ir.Local(s.var, len(proc.locals), counter_type, sp, is_loop_counter=True)
            proc.declare(counter)
            proc.depth += 1
            try:
                body = self.block(s.body)
            finally:
                proc.depth -= 1
        finally:
            proc.scopes.pop()
        return ir.For(counter, lo, hi, body, max_trips, self.rep.span(s))

    def stmt_WhileStmt(self, s: Any) -> ir.Stmt:
        """`while` is not CCL: E-WHILE."""
        sp = self.rep.src.span(s._tx_position, s._tx_position + len("while"))
        raise self.rep.fail("E-WHILE", "`while` is not in CCL: every loop needs a bound the "
                            "compiler can compute", sp,
                            "use `for i in 0 .. N { ... }` with N from a constant or a ranged "
                            "parameter")

    def stmt_ReturnStmt(self, s: Any) -> ir.Stmt:
        """`return;` or `return value;`, as the procedure's result type asks."""
        proc = self.proc
        sp = self.rep.span(s)
        if s.value is None:
            if proc.returns is not None:
                raise self.rep.fail("E-RETURN", f"`{proc.name}` must return "
                                    f"{type_word(proc.returns)}", sp, "write `return VALUE;`")
            return ir.Return(None, sp)
        if proc.returns is None:
            what = (f"`{proc.name}`" if proc.name == proc.kind.value
                    else f"{proc.kind.value} `{proc.name}`")  # `on apply` or task `t`
            raise self.rep.fail("E-RETURN", f"{what} returns no value", sp,
                                "write `return;`" if proc.kind is not ir.ProcKind.FUNCTION
                                else "write `return;`, or declare a result type `-> int`")
        value = self.exprs.expr(s.value)
        self.exprs.check_assignable(proc.returns, value, self.rep.span(s.value),
                                    "returned value")
        return ir.Return(value, sp)

    def stmt_HideStmt(self, s: Any) -> tuple[ir.Stmt, ...]:
        """`hide native, ...;` in a VMlet's `on load`."""
        if self.proc.kind is not ir.ProcKind.ON_LOAD:
            raise self.rep.fail("E-PLACEMENT", "`hide` as a statement belongs in a VMlet's "
                                "`on load`", self.rep.span(s))
        out = []
        natives = self.module.natives
        for name in s.names:
            if name not in natives:
                raise self.rep.fail("E-UNKNOWN-NATIVE", f"`{name}` is not a native this VMlet "
                                    "exposes", self.rep.name_span(s, name),
                                    did_you_mean(name, natives))
            out.append(ir.Hide(name, self.rep.span(s)))
        return tuple(out)

    def stmt_ExprStmt(self, s: Any) -> ir.Stmt:
        """A call as a statement (any other expression is E-UNUSED)."""
        e = self.exprs.expr(s.expr, void_ok=True)
        if not isinstance(e, (ir.Call, ir.NativeCall, ir.InstrCall)):
            hint = ""
            if isinstance(e, ir.Binary) and e.op is ir.BinOp.EQ:
                hint = "to assign, write `=`"
            raise self.rep.fail("E-UNUSED", "this expression computes a value that is never "
                                "used", self.rep.span(s.expr), hint or "assign it, or remove it")
        return ir.ExprStmt(e, self.rep.span(s))
