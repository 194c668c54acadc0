"""Checks over a whole file once its procedures are analyzed: no recursion, at most
EXT_COUNT VMlet instructions called, no code nested deeper than MAX_NESTING (counting
through calls, as the verifier inlines them)."""

from __future__ import annotations

from collections.abc import Sequence

from ccl import ir
from ccl.diagnostics import Span
from ccl.limits import MAX_NESTING
from ccl.sema.reporter import Reporter
from onboard.vm.isa import EXT_COUNT

#: Calls from each procedure, by name, each with the span of its name.
CallGraph = dict[str, list[tuple[str, Span]]]

#: A procedure that can be called: (program, "fn" or "instr", name).
ProcKey = tuple[str, str, str]


def check_recursion(rep: Reporter, call_graph: CallGraph) -> None:
    """Report cycles of calls among functions (and instructions), each once.

    One depth-first walk over the call graph (linear in its size): a call to a
    procedure still on the walk's path closes a cycle."""
    reported: set[frozenset[str]] = set()
    done: set[str] = set()
    for start in call_graph:
        if start in done:
            continue
        path = [start]
        on_path = {start: 0}
        pending = [iter(call_graph[start])]
        while pending:
            step = next(pending[-1], None)
            if step is None:
                pending.pop()
                finished = path.pop()
                del on_path[finished]
                done.add(finished)
                continue
            callee, sp = step
            if callee in on_path:
                cycle = path[on_path[callee]:] + [callee]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    rep.err("E-RECURSION", "recursion: " + " -> ".join(cycle), sp,
                            "CCL has no recursion (calls are inlined for verification); "
                            "use a `for` loop")
            elif callee not in done and callee in call_graph:
                on_path[callee] = len(path)
                path.append(callee)
                pending.append(iter(call_graph[callee]))


def check_instr_count(rep: Reporter, instr_uses: dict[tuple[str, str], Span],
                      kind: ir.ProgramKind | None) -> None:
    """E-TOO-MANY-INSTRS at the first call of the first VMlet instruction beyond the
    EXT_COUNT an image can bind (in the order of the text)."""
    if len(instr_uses) <= EXT_COUNT:
        return
    firsts = sorted(instr_uses.items(), key=lambda item: (item[1].line, item[1].col))
    (vmlet, instr), sp = firsts[EXT_COUNT]
    what = "configuration" if kind is ir.ProgramKind.CONFIG else "VMlet"
    rep.err("E-TOO-MANY-INSTRS", f"`{vmlet}.{instr}` is the {EXT_COUNT + 1}th VMlet "
            f"instruction this {what} calls; an image can call at most {EXT_COUNT}", sp,
            f"it calls {len(firsts)} different ones; each takes one of the "
            f"{EXT_COUNT} extension opcodes of the image; write some as functions (`fn`) "
            "of this file instead")


def check_nesting(rep: Reporter, own_name: str, uses: Sequence[ir.Program],
                  functions: Sequence[ir.Procedure], instrs: Sequence[ir.Procedure],
                  others: Sequence[ir.Procedure]) -> None:
    """E-TOO-DEEP where code nests deeper than MAX_NESTING, counting through calls:
    the verifier inlines every call, so a call nests its callee's body where it is.
    Callees are measured before their callers, with a loop and its own stack (call
    chains may be long); each procedure reports its first point too deep, once."""
    # This file's functions are ("", "fn", name), as its calls name them; a VMlet's
    # instructions are (vmlet, "instr", name) wherever they are called from.
    index: dict[ProcKey, ir.Procedure] = {}
    for program, fns, ins in (("", functions, ()), (own_name, (), instrs),
                              *((u.name, u.functions, u.instrs) for u in uses)):
        index.update({(program, "fn", f.name): f for f in fns})
        index.update({(program, "instr", i.name): i for i in ins})
    own = {("", "fn", f.name) for f in functions} | \
        {(own_name, "instr", i.name) for i in instrs}
    depths: dict[ProcKey, int] = {}
    for key in index:
        pending = [key]
        while pending:
            k = pending[-1]
            if k in depths:
                pending.pop()
                continue
            program = "" if k in own else k[0]  # whose functions its calls name
            missing = [c for c in _callees(program, index[k])
                       if c in index and c not in depths]
            if missing and len(pending) <= len(index):  # (no cycles: recursion is refused)
                pending.extend(missing)
                continue
            pending.pop()
            depths[k] = nesting_depth(rep, program, index[k], depths, report=k in own)
    for proc in others:
        nesting_depth(rep, "", proc, depths, report=True)


def nesting_depth(rep: Reporter, program: str, proc: ir.Procedure,
                  depths: dict[ProcKey, int], report: bool) -> int:
    """How deep ``proc`` nests, through calls: the depths of its callees are in
    ``depths``; its calls of functions are of ``program``'s ("" for this file's). If
    ``report``, E-TOO-DEEP where it first nests too deep."""
    deepest = 0
    for node, depth in ir.nested(proc.body):
        key = _callee_key(program, node)
        inner = depths.get(key, 0) if key is not None else 0
        # (A callee too deep has reported it: its callers do not repeat it.)
        if report and depth + inner > MAX_NESTING >= max(deepest, inner):
            _too_deep(rep, node, depth, inner)
        deepest = max(deepest, depth + inner)
    return deepest


def _too_deep(rep: Reporter, node: ir.Stmt | ir.Expr, depth: int, inner: int) -> None:
    limit = (f"code may nest at most {MAX_NESTING} levels: each enclosing statement, "
             "operator, call and index counts one, and a call counts the levels of the "
             "body it calls too")
    if isinstance(node, (ir.Call, ir.InstrCall)) and depth <= MAX_NESTING:
        name = node.function if isinstance(node, ir.Call) else node.instr
        rep.err("E-TOO-DEEP", f"this call nests {depth + inner} levels deep: `{name}` "
                f"nests {inner} levels itself (calls are inlined for verification)",
                node.span, limit)
    else:
        rep.err("E-TOO-DEEP", f"this nests more than {MAX_NESTING} levels deep",
                node.span, limit + "; split a long expression with `let` locals "
                "(`a + b + c` nests one level per operator)")


def _callee_key(program: str, node: ir.Stmt | ir.Expr) -> ProcKey | None:
    """The procedure ``node`` (in code of ``program``) calls, if it is a call of one."""
    if isinstance(node, ir.Call):
        return (program, "fn", node.function)
    if isinstance(node, ir.InstrCall):
        return (node.vmlet, "instr", node.instr)
    return None


def _callees(program: str, proc: ir.Procedure) -> list[ProcKey]:
    return [k for node, _ in ir.nested(proc.body)
            if (k := _callee_key(program, node)) is not None]
