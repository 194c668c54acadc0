"""Calls in expressions: builtins (`min`, `max`, `abs`, `env`), this file's functions, VMlet
instructions (qualified or not) and the natives the VMlets in use expose."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ccl import ir
from ccl.diagnostics import Span, did_you_mean
from ccl.ranges import ArithmeticError_, apply_binary
from ccl.sema.reporter import Abort
from ccl.sema.symbols import Signature, TypeSymbol
from ccl.sema.type_words import relabel, type_word

if TYPE_CHECKING:
    from ccl.sema.expressions import ExpressionChecker


class Calls:
    """Resolves and checks the calls of one file's expressions."""

    def __init__(self, exprs: ExpressionChecker) -> None:
        self.exprs = exprs
        self.rep = exprs.rep
        self.module = exprs.module

    def call(self, a: Any, name: str, sp: Span, name_sp: Span) -> ir.Expr:
        """The call operand ``a`` of ``name`` (at ``name_sp``; all of it at ``sp``)."""
        raw_args = list(a.args)
        module = self.module
        if name in ("min", "max", "abs"):
            return self.builtin(name, raw_args, sp)
        if name == "int" or name in module.types or isinstance(module.symbols.get(name),
                                                                TypeSymbol):
            return self.conversion(name, raw_args, sp, name_sp)
        if self.exprs.constant_what and (
                name == "env" or "." in name or name in module.symbols
                or name in module.instr_sigs or name in module.natives):
            raise self.rep.fail("E-NOT-CONSTANT", f"{self.exprs.constant_what} must be a "
                                "constant expression, and a call is not", name_sp,
                                "calls run on board; compute it from literals, `const` names, "
                                "operators, `min`, `max` and `abs`")
        if name == "env":
            return self.env_read(raw_args, sp)
        if "." in name and name in module.natives:  # another application's export
            return self.call_native(module.natives[name], raw_args, sp)
        if "." in name and name in module.failed:  # an import already reported
            raise Abort()
        if "." in name:
            return self.qualified_instr(name, raw_args, sp, name_sp)
        proc = self.exprs.proc
        if proc is not None and proc.lookup(name) is not None:
            raise self.rep.fail("E-TYPE", f"`{name}` is a local variable, not a function",
                                name_sp)
        if name in module.fn_sigs:
            sig = module.fn_sigs[name]
            args = self.args(name, sig.params, raw_args, sp)
            if proc is not None:
                proc.calls.append((name, name_sp))
            return ir.Call(name, args, sig.returns, sp)
        if name in module.instr_sigs:
            sigs = module.instr_sigs[name]
            own = [s for s in sigs if s.vmlet == module.own_name]
            sigs = own or sigs  # in a VMlet, its own instruction replaces the one below
            if len(sigs) > 1:
                which = ", ".join(f"`{s.vmlet}.{name}`" for s in sigs)
                raise self.rep.fail("E-AMBIGUOUS", f"`{name}` is defined by several VMlets in "
                                    "use", name_sp, f"qualify it: {which}")
            return self.call_instr(sigs[0], raw_args, sp, name_sp)
        if name in module.natives:
            return self.call_native(module.natives[name], raw_args, sp)
        raise self.not_callable(name, name_sp)

    def qualified_instr(self, name: str, raw: list[Any], sp: Span, name_sp: Span) -> ir.Expr:
        """A call of ``vmlet.instr``."""
        vmlet, instr = name.split(".", 1)
        sigs = [s for s in self.module.instr_sigs.get(instr, []) if s.vmlet == vmlet]
        if not sigs:
            known = [f"{s.vmlet}.{s.name}" for ss in self.module.instr_sigs.values() for s in ss]
            raise self.rep.fail("E-UNKNOWN-NAME", f"no VMlet in use defines `{name}`", name_sp,
                                did_you_mean(name, known))
        return self.call_instr(sigs[0], raw, sp, name_sp)

    def not_callable(self, name: str, name_sp: Span) -> Abort:
        """The error for a call of ``name``, which is nothing callable here."""
        module = self.module
        assert module.mission is not None
        if name in module.mission.natives:
            return self.rep.fail(*self.hidden_native(name, name_sp))
        if name in module.symbols:
            return self.rep.fail("E-TYPE", f"`{name}` is {module.kind_word(name)}, not a "
                                 "function", name_sp)
        callables = list(module.fn_sigs) + list(module.instr_sigs) + list(module.natives) + \
            ["min", "max", "abs", "env"]
        return self.rep.fail("E-UNKNOWN-NAME", f"unknown function `{name}`", name_sp,
                             did_you_mean(name, callables))

    def hidden_native(self, name: str, sp: Span) -> tuple[str, str, Span, str]:
        """Why native ``name`` of the mission is not visible here, as an error."""
        module = self.module
        assert module.mission is not None
        native = module.mission.natives[name]
        if module.kind is ir.ProgramKind.VMLET:
            return ("E-NATIVE-HIDDEN", f"native `{name}` is not exposed by this VMlet", sp,
                    f"add `expose {name};` if programs on this VMlet may use it")
        used = ", ".join(u.name for u in module.uses)
        if name in module.hidden_by:
            why = f"VMlet `{module.hidden_by[name]}` hides it"
        elif not used:
            why = "this configuration uses no VMlet (`uses NAME;`)"
        else:
            why = f"it is not exposed by {used}"
        return ("E-NATIVE-HIDDEN", f"native `{name}` is not visible here: {why}", sp,
                f"`{name}` needs the `{native.capability}` capability; use a VMlet that "
                "exposes it")

    def args(self, name: str, params: Sequence[tuple[str, ir.Type]], raw: list[Any],
             sp: Span) -> tuple[ir.Expr, ...]:
        """The arguments ``raw`` of a call of ``name``, checked against ``params``."""
        if len(raw) != len(params):
            sig = ", ".join(f"{p}: {t}" for p, t in params)
            raise self.rep.fail("E-ARITY", f"`{name}` takes {len(params)} argument"
                                f"{'s' if len(params) != 1 else ''}, {len(raw)} given", sp,
                                f"`{name}({sig})`")
        out = []
        for (pname, ptype), r in zip(params, raw, strict=True):
            value = self.exprs.expr(r)
            self.exprs.check_assignable(ptype, value, self.rep.span(r), f"argument `{pname}`")
            out.append(value)
        return tuple(out)

    def call_native(self, native: ir.NativeSig, raw: list[Any], sp: Span) -> ir.Expr:
        """A call of a visible native."""
        args = self.args(native.name, native.params, raw, sp)
        return ir.NativeCall(native, args, native.result, sp)

    def call_instr(self, sig: Signature, raw: list[Any], sp: Span, name_sp: Span) -> ir.Expr:
        """A call of a VMlet instruction (recorded for the instruction count)."""
        args = self.args(sig.name, sig.params, raw, sp)
        proc = self.exprs.proc
        if proc is not None and sig.vmlet == self.module.own_name:
            proc.calls.append((sig.name, name_sp))
        instr_uses = self.module.instr_uses
        first = instr_uses.setdefault((sig.vmlet, sig.name), name_sp)
        if (name_sp.line, name_sp.col) < (first.line, first.col):
            instr_uses[(sig.vmlet, sig.name)] = name_sp
        return ir.InstrCall(sig.vmlet, sig.name, args, sig.returns, sp)

    def builtin(self, name: str, raw: list[Any], sp: Span) -> ir.Expr:
        """`min`, `max` (two or more integers) or `abs` (one)."""
        exprs = self.exprs
        if name == "abs":
            if len(raw) != 1:
                raise self.rep.fail("E-ARITY", f"`abs` takes 1 argument, {len(raw)} given", sp)
            return exprs.unary_op(ir.UnOp.ABS, exprs.int_expr(raw[0], "the argument of `abs`"),
                                  sp)
        if len(raw) < 2:
            raise self.rep.fail("E-ARITY", f"`{name}` takes 2 or more arguments, {len(raw)} "
                                "given", sp)
        op = ir.BinOp.MIN if name == "min" else ir.BinOp.MAX
        values = [exprs.int_expr(r, f"an argument of `{name}`", typed_ok=True) for r in raw]
        result = values[0]
        for v in values[1:]:
            result = exprs.binary(op, result, v, sp)
        return result

    def conversion(self, name: str, raw: list[Any], sp: Span, name_sp: Span) -> ir.Expr:
        """`T(n)`: the integer ``n`` as a value of VMlet type ``T`` (held as ``n * scale``);
        `T(n, d)`: ``n / d`` (held as ``n * scale / d``, truncated toward zero); `int(x)`:
        the value ``x`` of a VMlet type as an integer (``x / scale``, truncated). Constant
        for constant arguments; otherwise the multiplication and division are the code
        (their overflow an obligation, as any)."""
        exprs = self.exprs
        if name == "int":
            if len(raw) != 1:
                raise self.rep.fail("E-ARITY", f"`int` takes 1 argument, {len(raw)} given", sp,
                                    "`int(x)` is the value x of a VMlet's type as an integer")
            value = exprs.expr(raw[0])
            if not isinstance(value.type, ir.IntType):
                raise self.rep.fail("E-TYPE", f"`int(...)` converts a value of a VMlet's type, "
                                    f"not {type_word(value.type)}", self.rep.span(raw[0]),
                                    "compare to get a boolean's opposite: `x != 0`")
            td = value.type.nominal
            if td is None:
                return value  # already an integer
            plain = relabel(value, value.type.plain)
            if td.scale == 1:
                return plain
            return exprs.binary(ir.BinOp.DIV, plain,
                                ir.Const(td.scale, ir.IntType(td.scale, td.scale), sp), sp)
        td = exprs.type_def(name, name_sp)
        most = 2 if td.scale > 1 else 1
        if not 1 <= len(raw) <= most:
            raise self.rep.fail("E-ARITY", f"`{name}` takes 1{' or 2' if most > 1 else ''} "
                                f"argument{'s' if most > 1 else ''}, {len(raw)} given", sp,
                                f"`{name}(n)` is the integer n as a {name}" + (
                                    f"; `{name}(n, d)` is n / d" if most > 1 else ""))
        values = []
        for r in raw:
            v = exprs.int_expr(r, f"the argument of `{name}(...)`")
            values.append(relabel(v, v.type.plain) if isinstance(v.type, ir.IntType) else v)
        if all(isinstance(v, ir.Const) for v in values):
            n, d = values[0].value, (values[1].value if len(values) == 2 else 1)  # type: ignore[union-attr]
            try:  # as the board computes it: `n * scale` first (d == 0 is E-DIV-ZERO below)
                held_value = apply_binary(ir.BinOp.DIV, apply_binary(ir.BinOp.MUL, n,
                                                                     td.scale), d or 1)
            except ArithmeticError_:
                held_value = None  # n * scale leaves 32 bits
            if held_value is None or not td.lo <= held_value <= td.hi:
                shown = f"{n}, {d}" if len(values) == 2 else f"{n}"
                raise self.rep.fail("E-OUT-OF-RANGE", f"{name}({shown}) is outside {name}",
                                    sp, f"a {name} is held in {td.lo} .. {td.hi}" + (
                                        f", numbers in {-(-td.lo // td.scale)} .. "
                                        f"{td.hi // td.scale}" if td.scale > 1 else ""))
        held = values[0]
        if td.scale > 1:
            held = exprs.binary(ir.BinOp.MUL, held,
                                ir.Const(td.scale, ir.IntType(td.scale, td.scale), sp), sp)
        if len(values) == 2:
            if not isinstance(values[1], ir.Const):
                raise self.rep.fail("E-NOT-CONSTANT", f"the divisor of `{name}(n, d)` must be "
                                    "a constant", values[1].span,
                                    f"`{name}(n, d)` writes a fraction such as `{name}(1, 8)`")
            held = exprs.binary(ir.BinOp.DIV, held, values[1], sp)
        assert isinstance(held.type, ir.IntType)
        return relabel(held, ir.IntType(held.type.lo, held.type.hi, td))

    def env_read(self, raw: list[Any], sp: Span) -> ir.Expr:
        """`env(key)`: the mission's environment key, with its range."""
        mission = self.module.mission
        assert mission is not None
        keys = mission.env
        key_operand = raw[0].operands[0] if len(raw) == 1 else None
        if key_operand is None or len(raw[0].operands) != 1 or key_operand.ops or \
                not key_operand.name:
            raise self.rep.fail("E-ARITY", "`env` takes one environment key: `env(ccd)`", sp,
                                f"keys of mission `{mission.name}`: {', '.join(keys)}")
        key = key_operand.name
        if key not in keys:
            raise self.rep.fail("E-UNKNOWN-NAME", f"mission `{mission.name}` has no "
                                f"environment key `{key}`", self.rep.span(raw[0]),
                                did_you_mean(key, keys) or f"keys: {', '.join(keys)}")
        k = keys[key]
        return ir.EnvRead(key, ir.IntType(k.lo, k.hi), sp)
