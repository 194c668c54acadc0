"""Declarations: the file's header (mission, `config`/`vmlet`, version), where each
declaration may stand, the VMlets a configuration `uses` and what a VMlet exposes, the
module-level names, and the data a configuration declares (parameters, state, tables)
and the signatures of its procedures."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ccl import ir
from ccl.diagnostics import CclError, Span, did_you_mean
from ccl.sema.expressions import ExpressionChecker
from ccl.sema.reporter import Abort
from ccl.sema.symbols import (
    BUILTINS,
    KEYWORDS,
    ArraySymbol,
    ConstSymbol,
    DataSymbol,
    GlobalSymbol,
    ProcSymbol,
    Signature,
    Symbol,
    TypeSymbol,
)
from ccl.sema.table_files import read_table_file
from onboard.mission import MissionProfile
from onboard.vm.isa import INT_MAX

MAX_TABLE_LENGTH = 1 << 20

#: Loads a mission's profile by name (provided by ``ccl.driver``).
MissionLoader = Callable[[str, Span], MissionProfile]
#: Loads the checked IR of a VMlet by name, for ``uses`` (provided by ``ccl.driver``).
VmletLoader = Callable[[str, Span], ir.Program]

#: Resolves `import APP.FN;` (provided by ``ccl.driver``): the exported function as a native
#: named ``APP.FN``, its cost the callee's proven worst case. Raises ``CclError``.
ImportLoader = Callable[[str, str, Span], ir.NativeSig]

#: Syntax nodes by class name, in the order of the text.
ByType = dict[str, list[Any]]

_CONFIG_ONLY = {"ApplicationDecl": "application", "ImportDecl": "import", "ParamDecl": "param",
                "RuleDecl": "rule", "TableDecl": "table", "VarDecl": "var", "TaskDecl": "task"}
_VMLET_ONLY = {"InstrDecl": "instr", "ExposeDecl": "expose", "HideDecl": "hide",
               "TypeDecl": "type"}
_NAMED = {"ConstDecl": "const", "ParamDecl": "param", "TableDecl": "table",
          "VarDecl": "var", "FnDecl": "fn", "InstrDecl": "instr", "TaskDecl": "task",
          "TypeDecl": "type"}


class Declarations:
    """Analyzes one file's declarations into its ``ModuleScope`` and data."""

    def __init__(self, exprs: ExpressionChecker, mission_loader: MissionLoader,
                 vmlet_loader: VmletLoader) -> None:
        self.exprs = exprs
        self.mission_loader = mission_loader
        self.vmlet_loader = vmlet_loader
        self.rep = exprs.rep
        self.module = exprs.module
        self.version = 0
        self.globals: list[ir.Global] = []
        self.arrays: list[ir.Array] = []
        self.own_exposes: set[str] = set()  # a VMlet's `expose`d natives
        self.own_hides: set[str] = set()  # a VMlet's `hide`s: withdrawn from its layers too

    # ------------------------------------------------------------------ header

    def header(self, by_type: ByType) -> None:
        """The mission and the `config`/`vmlet` head (its kind, name and version)."""
        rep = self.rep
        missions = by_type.get("MissionDecl", [])
        start = rep.src.span(0)
        if not missions:
            rep.err("E-NO-MISSION", "missing `mission NAME;`", start,
                    "every CCL file names its mission first, e.g. `mission corot;`")
        for extra in missions[1:]:
            rep.err("E-DUPLICATE", "`mission` is declared twice", rep.span(extra),
                    f"the first is at {rep.span(missions[0])}")
        self.head(by_type.get("ConfigDecl", []), by_type.get("VmletDecl", []))
        if missions:
            try:
                self.module.mission = self.mission_loader(
                    missions[0].name, rep.name_span(missions[0], missions[0].name))
            except CclError as exc:
                rep.diags.extend(exc.diagnostics)

    def head(self, configs: list[Any], vmlets: list[Any]) -> None:
        """The one `config` or `vmlet` declaration."""
        rep = self.rep
        start = rep.src.span(0)
        heads = configs + vmlets
        if not heads:
            rep.err("E-NO-HEADER", "missing `config NAME version N;` or `vmlet NAME version N;`",
                    start, "a file is either a configuration or a VMlet")
        for extra in heads[1:]:
            rep.err("E-DUPLICATE", "a file holds one `config` or `vmlet` declaration",
                    rep.span(extra), f"the first is at {rep.span(heads[0])}")
        if not heads:
            return
        self.module.kind = ir.ProgramKind.CONFIG if configs else ir.ProgramKind.VMLET
        self.module.own_name = heads[0].name
        try:
            self.version = rep.literal(heads[0].version,
                                       rep.name_span(heads[0], heads[0].version))
        except Abort:
            return
        if not 0 < self.version <= INT_MAX:
            rep.err("E-VERSION", f"version {self.version} is out of range", rep.span(heads[0]),
                    "versions are positive integers that increase with every change")

    def application(self, found: list[Any]) -> ir.Application | None:
        """The configuration's `application NAME share N %;`, if any: once, with a part
        of at least 1 % and at most the mission's share."""
        rep = self.rep
        for extra in found[1:]:
            rep.err("E-DUPLICATE", "`application` is declared twice", rep.span(extra),
                    f"the first is at {rep.span(found[0])}")
        if not found or self.module.kind is not ir.ProgramKind.CONFIG:
            return None
        decl = found[0]
        span = rep.name_span(decl, decl.share)
        try:
            share = rep.literal(decl.share, span)
        except Abort:
            return None
        mission = self.module.mission
        most = mission.share_percent if mission is not None else 100
        if not 1 <= share <= most:
            rep.err("E-SHARE", f"a part of {share} % is outside 1 .. {most} %", span,
                    f"the mission's whole share is {most} % of every frame, the patch "
                    "reserve included; the parts of all applications on board share it")
            return None
        return ir.Application(decl.name, share, rep.span(decl))

    def imports(self, found: list[Any], loader: ImportLoader | None) -> tuple[ir.NativeSig, ...]:
        """`import APP.FN;`: each becomes a native `APP.FN` visible to this configuration."""
        out: list[ir.NativeSig] = []
        for decl in found:
            span = self.rep.span(decl)
            name = f"{decl.app}.{decl.fn}"
            if self.module.kind is not ir.ProgramKind.CONFIG:
                continue  # E-PLACEMENT already
            if any(s.name == name for s in out):
                self.rep.err("E-DUPLICATE", f"`import {name}` is given twice", span)
                continue
            if loader is None:
                self.rep.err("E-IMPORT", f"`import {name}` cannot be resolved here", span,
                             "imports are resolved by the compiler (`ccl check`/`compile`)")
                continue
            try:
                sig = loader(decl.app, decl.fn, span)
            except CclError as exc:
                self.rep.diags.extend(exc.diagnostics)
                self.module.failed.add(name)  # its calls say nothing more
                continue
            self.module.natives[name] = sig
            out.append(sig)
        return tuple(out)

    def exports(self, fns: list[Any], application: ir.Application | None) -> tuple[str, ...]:
        """The names of the `export fn`s: typed functions of an application."""
        out = []
        for f in fns:
            if not getattr(f, "exported", False):
                continue
            span = self.rep.name_span(f, f.name)
            if self.module.kind is not ir.ProgramKind.CONFIG or application is None:
                self.rep.err("E-EXPORT", f"`export fn {f.name}`: only an application exports",
                             span, "declare `application NAME share N %;` in this "
                             "configuration (a VMlet offers instructions instead)")
            elif f.ret is None:
                self.rep.err("E-EXPORT", f"`export fn {f.name}` returns nothing", span,
                             "an exported function returns a typed value: `-> int[lo..hi]`")
            else:
                out.append(f.name)
        return tuple(out)

    def check_placement(self, decls: list[Any]) -> None:
        """E-PLACEMENT for declarations of a configuration in a VMlet and vice versa."""
        kind = self.module.kind
        for d in decls:
            t = type(d).__name__
            if kind is ir.ProgramKind.VMLET and t in _CONFIG_ONLY:
                self.rep.err("E-PLACEMENT", f"`{_CONFIG_ONLY[t]}` belongs in a configuration, "
                             "not in a VMlet", self.rep.span(d),
                             "a VMlet defines instructions, exposes natives and has `on load`")
            elif kind is ir.ProgramKind.CONFIG and t in _VMLET_ONLY:
                self.rep.err("E-PLACEMENT", f"`{_VMLET_ONLY[t]}` belongs in a VMlet, "
                             "not in a configuration", self.rep.span(d),
                             "put it in a `vmlet` file and `uses` that VMlet")

    # ------------------------------------------------------------------ what is visible

    def uses(self, by_type: ByType) -> None:
        """The VMlets a configuration (or a VMlet: the layers below it) `uses`, in the order
        of the text."""
        self.own_hides = {n for h in by_type.get("HideDecl", []) for n in h.names}
        for u in by_type.get("UsesDecl", []):
            for k, name in enumerate(u.names):
                self.use_vmlet(name, self.rep.name_span(u, name, u.names[:k].count(name)))

    def use_vmlet(self, name: str, span: Span) -> None:
        """`uses name`: what the VMlet offers becomes visible: its instructions and those
        of its layers it does not replace, and the natives it and its layers expose, less
        what it hides (and, in a VMlet, less what this one hides)."""
        module = self.module
        assert module.mission is not None
        if any(u.name == name for u in module.uses):
            self.rep.err("E-DUPLICATE", f"VMlet `{name}` is used twice", span)
            return
        try:
            vm = self.vmlet_loader(name, span)
        except CclError as exc:
            # an error in the VMlet's file: say where this file brought it in
            used_at = f"in VMlet `{name}`, used at {span}"
            self.rep.diags.extend(
                d if d.span is None or d.span.file == span.file
                or any(n.startswith("in VMlet `") for n in d.notes)
                else dataclasses.replace(d, notes=(*d.notes, used_at))
                for d in exc.diagnostics)
            return
        if vm.mission != module.mission.name:
            self.rep.err("E-MISSION-MISMATCH", f"VMlet `{name}` is for mission "
                         f"`{vm.mission}`, not `{module.mission.name}`", span)
            return
        module.uses.append(vm)
        self.use_types(vm, span)
        for layer in (vm, *reversed(vm.stack)):  # the highest layer hiding it is the reason
            for native in layer.hides:
                module.hidden_by.setdefault(native, layer.name)
        for native_sig in vm.natives:
            if native_sig.name in self.own_hides:
                module.hidden_by.setdefault(native_sig.name, module.own_name)
            else:
                module.natives[native_sig.name] = native_sig
        # a VMlet image of before layering offers exactly its own instructions
        offered = vm.offered_instrs or tuple((name, p.name) for p in vm.instrs)
        for owner, instr in offered:
            sigs = module.instr_sigs.setdefault(instr, [])
            if any(s.vmlet == owner for s in sigs):
                continue  # offered by two of the VMlets used (one builds on the other)
            proc = vm.instr(owner, instr)
            sigs.append(Signature(proc.name, ir.ProcKind.INSTR,
                                  tuple((p.name, p.type) for p in proc.params), proc.returns,
                                  None, owner))

    def use_types(self, vm: ir.Program, span: Span) -> None:
        """The types VMlet ``vm`` and its layers define become visible. Two types of one
        name from two VMlets would make `q16` mean two things: E-AMBIGUOUS at this `uses`
        (a type cannot be qualified the way an instruction can: its values flow through
        the signatures of both VMlets' instructions)."""
        types = self.module.types
        for layer in (vm, *vm.stack):
            for td in layer.types:
                seen = types.get(td.name)
                if seen is not None and seen != td:
                    self.rep.err("E-AMBIGUOUS", f"type `{td.name}` is defined by VMlet "
                                 f"`{seen.vmlet}` and by VMlet `{td.vmlet}`, both in use",
                                 span, "a program sees one type of a name: use one of the "
                                 "two VMlets, or rename one of the types")
                    continue
                types[td.name] = td

    def vmlet_exposure(self, by_type: ByType) -> None:
        """Check `expose`/`hide` of a VMlet; its own code sees what it exposes."""
        mission = self.module.mission
        assert mission is not None
        exposed: dict[str, Span] = {}
        for kind in ("ExposeDecl", "HideDecl"):
            for d in by_type.get(kind, []):
                for k, name in enumerate(d.names):
                    sp = self.rep.name_span(d, name, d.names[:k].count(name))
                    if name not in mission.natives:
                        self.rep.err("E-UNKNOWN-NATIVE",
                                     f"mission `{mission.name}` has no native `{name}`", sp,
                                     did_you_mean(name, mission.natives)
                                     or f"natives: {', '.join(mission.natives)}")
                    elif kind == "ExposeDecl":
                        self.own_exposes.add(name)
                        if name in exposed:
                            self.rep.err("E-DUPLICATE", f"`{name}` is exposed twice", sp)
                        exposed[name] = sp
                    elif name in exposed:
                        self.rep.err("E-EXPOSE-HIDE", f"`{name}` is both exposed and hidden",
                                     sp, f"it is exposed at {exposed[name]}")
        for name in exposed:
            sig = _native_sig(mission, name)
            if sig is not None:
                self.module.natives[name] = sig

    # ------------------------------------------------------------------ module names

    def declare_names(self, decls: list[Any]) -> None:
        """Give every named declaration its symbol: E-DUPLICATE, E-RESERVED, E-SHADOW."""
        module = self.module
        for d in decls:
            kind = _NAMED.get(type(d).__name__)
            if kind is None:
                continue
            name = d.name
            sp = self.rep.name_span(d, name)
            if name in module.declared_at:
                self.rep.err("E-DUPLICATE", f"`{name}` is already defined",
                             sp, f"the first definition is at {module.declared_at[name]}")
                continue
            if name in BUILTINS or name in KEYWORDS:
                self.rep.err("E-RESERVED", f"`{name}` is a reserved word of CCL", sp,
                             "choose another name")
                continue
            if kind == "instr" and self.instr_takes_other_name(d, name, sp):
                continue
            if name in module.types:
                self.rep.err("E-SHADOW", f"`{name}` is already a type of VMlet "
                             f"`{module.types[name].vmlet}` visible here", sp,
                             "a VMlet in use defines it; choose another name")
                continue
            replacing = kind == "instr" and getattr(d, "replaces", None) == name
            if name in module.natives or (name in module.instr_sigs and not replacing):
                what = "a native" if name in module.natives else "a VMlet instruction"
                where = ("this VMlet exposes it" if module.kind is ir.ProgramKind.VMLET
                         else "a VMlet in use provides it")
                self.rep.err("E-SHADOW", f"`{name}` is already {what} visible here", sp,
                             f"{where}; choose another name")
                continue
            module.declared_at[name] = sp
            symbol: Symbol
            if kind == "const":
                symbol = ConstSymbol(d)
                self.exprs.constants.declare(name, d)
            elif kind in ("param", "var", "table"):
                symbol = DataSymbol(kind, d)
            elif kind == "type":
                symbol = TypeSymbol(d)
            else:
                symbol = ProcSymbol(kind, d)
            module.symbols[name] = symbol

    def instr_takes_other_name(self, d: Any, name: str, sp: Span) -> bool:
        """E-SHADOW for an instruction named like a host service of the mission or an
        instruction of a VMlet below this one, unless it says `replaces NAME`; E-REPLACES
        for a `replaces` that names something else, or nothing there is to replace.
        True if an error was reported."""
        module = self.module
        assert module.mission is not None
        replaced = getattr(d, "replaces", None)
        lower = [s for s in module.instr_sigs.get(name, []) if s.vmlet != module.own_name]
        if replaced is None:
            if name in module.mission.natives and name not in self.own_exposes:
                self.rep.err("E-SHADOW", f"instruction `{name}` takes the name of the host "
                             f"service `{name}`", sp,
                             f"calls of `{name}` would silently run it instead of the host's: "
                             f"rename it, or say `replaces {name}` if that is the intent (the "
                             "verifier then holds it to the service's range and cost)")
                return True
            if lower:
                self.rep.err("E-SHADOW", f"instruction `{name}` takes the name of "
                             f"`{lower[0].vmlet}.{name}`, an instruction of a VMlet this one "
                             "uses", sp, f"rename it, or say `replaces {name}` if that is the "
                             "intent (the verifier then holds it to that one's range and cost)")
                return True
            return False
        module.natives.pop(name, None)  # a host service a layer below offers: replaced
        rsp = self.replaces_span(d)
        if replaced == name and name in self.own_exposes:
            self.rep.err("E-SHADOW", f"instruction `{name}` replaces the host service "
                         f"`{name}`, which this VMlet also exposes", rsp,
                         f"remove `{name}` from `expose`: the instruction takes its place")
            return True
        if replaced != name:
            self.rep.err("E-REPLACES", f"instruction `{name}` says `replaces {replaced}`: an "
                         "instruction replaces only the service or instruction of its own "
                         "name", rsp, f"name it `{replaced}`, or write `replaces {name}`")
            return True
        native = module.mission.natives.get(name)
        if not lower and native is not None and native.result is None:
            self.rep.err("E-REPLACES", f"`replaces {name}`: the host service `{name}` returns "
                         "nothing, and an instruction returns a value", rsp,
                         "a replacement must be callable wherever the replaced one is")
            return True
        if name not in module.mission.natives and not lower:
            self.rep.err("E-REPLACES", f"`replaces {name}`: there is no host service and no "
                         f"instruction of a VMlet below this one called `{name}`", rsp,
                         did_you_mean(name, [*module.mission.natives, *module.instr_sigs])
                         or "remove `replaces`: a new instruction needs none")
            return True
        return False

    def replaces_span(self, d: Any) -> Span:
        """The span of the name after `replaces` in instruction ``d`` (before its body)."""
        text = self.rep.src.text
        head_end = d.body._tx_position if d.body is not None else d._tx_position_end
        at = text.rfind(d.replaces, d._tx_position, head_end)
        return self.rep.src.span(at, at + len(d.replaces)) if at >= 0 else self.rep.span(d)

    # ------------------------------------------------------------------ data

    def param(self, d: Any) -> None:
        """`param name : int[..] = value;`"""
        exprs = self.exprs
        ty = exprs.int_type(d.type, "a parameter")
        sp = self.rep.name_span(d, d.name)
        if d.value is None:
            raise self.rep.fail("E-PARAM-VALUE", f"parameter `{d.name}` has no value", sp,
                                f"give it one: `param {d.name} : {ty} = {ty.lo};`")
        value = exprs.constant(d.value, "a parameter's value")
        exprs.check_assignable(ty, value, self.rep.span(d.value), "initial value")
        g = ir.Global(d.name, ir.GlobalKind.PARAM, ty, value.value, len(self.globals), sp)
        self.globals.append(g)
        self.module.symbols[d.name] = GlobalSymbol(g)

    def var(self, d: Any) -> None:
        """`var name : int[..] = value;` or a state array `var name[N] : ...`."""
        exprs = self.exprs
        ty = exprs.int_type(d.type, "a state variable")
        sp = self.rep.name_span(d, d.name)
        init = 0
        if d.value is not None:
            c = exprs.constant(d.value, "a state variable's initial value")
            exprs.check_assignable(ty, c, self.rep.span(d.value), "initial value")
            init = c.value
        elif not ty.contains(0):
            raise self.rep.fail("E-OUT-OF-RANGE", f"`{d.name}` starts at 0, which is outside "
                                f"{ty}", sp, f"give an initial value: `= {ty.lo}`")
        if d.size is None:
            g = ir.Global(d.name, ir.GlobalKind.VAR, ty, init, len(self.globals), sp)
            self.globals.append(g)
            self.module.symbols[d.name] = GlobalSymbol(g)
            return
        length = self.array_length(d)
        a = ir.Array(d.name, ir.ArrayKind.VAR, ty, length, (init,) * length, len(self.arrays), sp)
        self.arrays.append(a)
        self.module.symbols[d.name] = ArraySymbol(a)

    def array_length(self, d: Any) -> int:
        """The size of array ``d``, within 1 .. MAX_TABLE_LENGTH."""
        length = self.exprs.constant_int(d.size, "an array size")
        if not 0 < length <= MAX_TABLE_LENGTH:
            raise self.rep.fail("E-SIZE", f"array size {length} must be in 1 .. "
                                f"{MAX_TABLE_LENGTH}", self.rep.span(d.size))
        return length

    def table(self, d: Any) -> None:
        """`table name[N] : int[..]` zero-filled, `= [ ... ]` or `= from "file.csv"`."""
        exprs = self.exprs
        ty = exprs.int_type(d.type, "a table")
        sp = self.rep.name_span(d, d.name)
        length = self.array_length(d)
        init = d.init
        if init is None:
            if not ty.contains(0):
                raise self.rep.fail("E-OUT-OF-RANGE",
                                    f"table `{d.name}` is zero-filled, but 0 is outside {ty}",
                                    sp, "give its contents: `= [ ... ]` or `from \"file.csv\"`")
            values: tuple[int, ...] = (0,) * length
        elif type(init).__name__ == "ListInit":
            items = [exprs.constant(v, "a table value") for v in init.values]
            if len(items) != length:
                raise self.rep.fail("E-SIZE", f"table `{d.name}` has {length} entries but "
                                    f"{len(items)} values are given", self.rep.span(init),
                                    "give exactly one value per entry")
            for item in items:
                exprs.check_assignable(ty, item, item.span, "table value")
            values = tuple(i.value for i in items)
        else:
            values = read_table_file(self.rep, d, init, ty, length)
        a = ir.Array(d.name, ir.ArrayKind.TABLE, ty, length, values, len(self.arrays), sp)
        self.arrays.append(a)
        self.module.symbols[d.name] = ArraySymbol(a)

    # ------------------------------------------------------------------ signatures

    def collect_signatures(self, by_type: ByType) -> None:
        """The signatures of this file's functions and instructions (before any body is
        analyzed: bodies call procedures declared after them)."""
        module = self.module
        for kind_name, kind in (("FnDecl", ir.ProcKind.FUNCTION), ("InstrDecl", ir.ProcKind.INSTR)):
            for d in by_type.get(kind_name, []):
                symbol = module.symbols.get(d.name)
                if not (isinstance(symbol, ProcSymbol) and symbol.decl is d):
                    continue  # a duplicate, already reported
                try:
                    params = tuple((p.name, self.exprs.type_of(p.type)) for p in d.params)
                    returns = self.exprs.type_of(d.ret) if d.ret is not None else None
                except Abort:
                    continue
                sig = Signature(d.name, kind, params, returns, d, module.own_name)
                if kind is ir.ProcKind.FUNCTION:
                    module.fn_sigs[d.name] = sig
                else:
                    module.instr_sigs.setdefault(d.name, []).append(sig)


def _native_sig(mission: MissionProfile, name: str) -> ir.NativeSig | None:
    n = mission.natives.get(name)
    if n is None:
        return None
    params = tuple((a.name, ir.IntType(a.lo, a.hi)) for a in n.args)
    result = ir.IntType(*n.result) if n.result is not None else None
    return ir.NativeSig(n.name, params, result, n.cost.text, n.capability)
