"""The unknowns of a procedure: every value the verifier does not compute but quantifies over.

Parameters, state variables and arrays at the start of a run, table contents, native results,
environment values, loop counters, and the state a loop carries into an arbitrary iteration
("havocked" within its declared range: ranged types are the loop invariants). Each unknown is
a Z3 constant with a *fact*: the range it is known to lie in. A model of the solver is turned
back into a counterexample here: the values a person reads, and what a test needs to replay
the run on the VVM.

Everything an entry point does not touch stays uncreated: verification of one entry point
costs what that entry point reads, not the size of the whole program.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import z3

from ccl import ir
from ccl.verify.obligations import Counterexample, Replay, Value
from ccl.verify.terms import WIDTH, Val, in_range, selects_of, symbols_of


def _sort() -> z3.BitVecSortRef:
    """The sort of a machine word, in the current solver context (made per program)."""
    return z3.BitVecSort(WIDTH)


class Role(Enum):
    PARAM = "param"
    ARG = "argument"  # an argument of a procedure verified on its own
    VAR = "var"  # a state variable at the start of the run
    ARRAY = "array"  # a state array at the start of the run
    TABLE = "table"
    NATIVE = "native"  # the result of one native call
    ENV = "env"
    COUNTER = "counter"  # a loop counter, at an arbitrary iteration
    # a local or state variable at an arbitrary iteration of a loop, or a state variable
    # another task may have written while the job was suspended
    CARRIED = "carried"
    CARRIED_ARRAY = "carried array"
    CHOICE = "choice"  # which way an abstraction goes (e.g. whether a loop returned early)


_ORDER = {r: i for i, r in enumerate(Role)}
# Values an abstraction chose, not the start of a run: a model that uses one may not be
# reachable from the initial values it gives.
_INEXACT = frozenset({Role.CARRIED, Role.CARRIED_ARRAY, Role.CHOICE})


@dataclass(frozen=True)
class Input:
    key: str  # the Z3 constant's name
    role: Role
    name: str  # the program's name for it: parameter, native, array, local...
    term: z3.ExprRef
    lo: int
    hi: int
    args: tuple[z3.BitVecRef, ...] = ()  # for a native result: the call's arguments
    default: int | None = None  # the value the configuration gives it (parameters, state)


@dataclass(frozen=True)
class ProgramIndex:
    """A program's globals, arrays and functions by name (built once per verification:
    looking them up in the program's tuples would cost the size of the program each time)."""

    globals: dict[str, ir.Global]
    arrays: dict[str, ir.Array]
    functions: dict[str, ir.Procedure]

    @staticmethod
    def of(program: ir.Program) -> ProgramIndex:
        return ProgramIndex({g.name: g for g in program.globals},
                            {a.name: a for a in program.arrays},
                            {f.name: f for f in program.functions})


@dataclass(frozen=True)
class RuleFacts:
    """What the flight rules guarantee, grouped by the parameters they relate: a group is a
    set of parameters connected through rules, with the facts of those rules. An entry point
    that reads one parameter of a group assumes the group's facts (and sees all its
    parameters), and no others: a rule about parameters it never reads cannot change what
    it does, and assuming every rule everywhere would make verification quadratic in the
    size of the program."""

    groups: dict[str, tuple[tuple[str, ...], tuple[z3.BoolRef, ...]]]  # param: group

    @staticmethod
    def of(rules: Sequence[tuple[Sequence[str], z3.BoolRef]]) -> RuleFacts:
        """From (parameters a rule reads, what it guarantees), one pair per rule. A rule that
        reads no parameter constrains nothing an entry point can see."""
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for names, _fact in rules:
            for n in names:
                parent[find(n)] = find(names[0])
        members: dict[str, list[str]] = {}
        for n in list(parent):
            members.setdefault(find(n), []).append(n)
        facts: dict[str, list[z3.BoolRef]] = {}
        for names, fact in rules:
            if names:
                facts.setdefault(find(names[0]), []).append(fact)
        groups = {}
        for root, group_names in members.items():
            group = (tuple(sorted(group_names)), tuple(facts.get(root, ())))
            for n in group_names:
                groups[n] = group
        return RuleFacts(groups)


class Inputs:
    """Creates the unknowns of one procedure and records the fact about each.

    Parameters, state variables and arrays are created when the procedure first reads them:
    an entry point of a large configuration touches few of its globals, and creating all of
    them for every entry point would make verification quadratic in the program's size."""

    def __init__(self, program: ir.Program, rules: RuleFacts | None = None,
                 index: ProgramIndex | None = None) -> None:
        self.by_key: dict[str, Input] = {}
        self.facts: list[z3.BoolRef] = []
        self._fresh = 0
        self.index = index or ProgramIndex.of(program)
        self._rules = rules or RuleFacts({})
        self._params: dict[str, Val] = {}
        self._vars: dict[str, Val] = {}
        self._arrays: dict[str, z3.ArrayRef] = {}
        self.env: dict[str, Val] = {}
        # Unknowns whose values are reachable only if an abstraction's guess holds (a loop
        # counter at an iteration that an earlier `return` may never let come).
        self.guessed: set[str] = set()

    # -- the program's globals at the start of the run

    @property
    def params(self) -> dict[str, Val]:
        """The parameters created so far (those the procedure read, and their rule groups)."""
        return self._params

    def param(self, name: str) -> Val:
        """Parameter ``name`` (and the rules that relate it to others, as facts)."""
        v = self._params.get(name)
        if v is None:
            v = self._new_param(name)
            names, facts = self._rules.groups.get(name, ((), ()))
            for other in names:
                if other not in self._params:
                    self._new_param(other)
            self.facts.extend(facts)
        return v

    def _new_param(self, name: str) -> Val:
        g = self.index.globals[name]
        v = self._params[name] = self._int(Role.PARAM, name, g.type, f"param:{name}",
                                           default=g.value)
        return v

    def var(self, name: str) -> Val:
        """State variable ``name`` at the start of the run."""
        v = self._vars.get(name)
        if v is None:
            g = self.index.globals[name]
            v = self._vars[name] = self._int(Role.VAR, name, g.type, f"var:{name}",
                                             default=g.value)
        return v

    def initial_array(self, name: str) -> z3.ArrayRef:
        """Array (table or state) ``name`` at the start of the run."""
        arr = self._arrays.get(name)
        if arr is None:
            a = self.index.arrays[name]
            arr = self._arrays[name] = self.array(Role.ARRAY if a.writable else Role.TABLE,
                                                  name, f"array:{name}", array_default(a))
        return arr

    # -- creating unknowns

    def _key(self, stem: str) -> str:
        self._fresh += 1
        return f"{stem}#{self._fresh}"

    def _int(self, role: Role, name: str, ty: ir.IntType, key: str,
             args: tuple[z3.BitVecRef, ...] = (), default: int | None = None) -> Val:
        term = z3.BitVec(key, WIDTH)
        self.by_key[key] = Input(key, role, name, term, ty.lo, ty.hi, args, default)
        if not ty.is_full:
            self.facts.append(in_range(term, ty.lo, ty.hi))
        return Val(term, ty.lo, ty.hi)

    def fresh(self, role: Role, name: str, ty: ir.Type,
              args: tuple[z3.BitVecRef, ...] = (), default: int | None = None) -> Val:
        """A new unknown of type ``ty`` (an integer in its range, or any Boolean)."""
        key = self._key(f"{role.value}:{name}")
        if isinstance(ty, ir.BoolType):
            term = z3.Bool(key)
            self.by_key[key] = Input(key, role, name, term, 0, 1)
            return Val(term, 0, 1)
        return self._int(role, name, ty, key, args, default)

    def array(self, role: Role, name: str, key: str | None = None,
              default: int | None = None) -> z3.ArrayRef:
        """A new unknown array (its elements' ranges are facts of each read)."""
        key = key or self._key(f"{role.value}:{name}")
        term = z3.Array(key, _sort(), _sort())
        self.by_key[key] = Input(key, role, name, term, 0, 0, default=default)
        return term

    def env_value(self, key: str, ty: ir.IntType) -> Val:
        if key not in self.env:
            self.env[key] = self._int(Role.ENV, key, ty, f"env:{key}")
        return self.env[key]

    def read(self, array: z3.ArrayRef, index: Val, ty: ir.IntType) -> Val:
        """An element of an array: unknown, but inside the array's declared range."""
        term = z3.Select(array, index.bv)
        if not ty.is_full:
            self.facts.append(in_range(term, ty.lo, ty.hi))
        return Val(term, ty.lo, ty.hi)

    # -- from a model back to values

    def preferences(self, formulas: Sequence[z3.ExprRef]) -> list[z3.BoolRef]:
        """Extreme values to try first for a counterexample, in order: each parameter, loop
        counter and loop-carried value the formulas depend on at the top of its range (where
        bounds usually break, and what a person checks first)."""
        support = symbols_of(*formulas)
        chosen = sorted((self.by_key[k] for k in support if k in self.by_key),
                        key=lambda i: (_ORDER[i.role], i.key))
        return [i.term == i.hi for i in chosen
                if i.role in (Role.PARAM, Role.COUNTER, Role.CARRIED)
                and isinstance(i.term, z3.BitVecRef)]

    def worst_preferences(self, formulas: Sequence[z3.ExprRef]) -> list[z3.BoolRef]:
        """Values to try first for a worst case, so that a run from the start reproduces it
        (the VVM replays one value per native and the contents of each table), most
        important first:

        * parameters at the top of their ranges, state (also the state a loop carries) at
          its initial value;
        * every table uniform (an arbitrary iteration of a loop reads one element: with all
          alike, every iteration reads what it did);
        * a loop that may return does so wherever its arbitrary iteration would (so that an
          iteration that does not return stands for all of them);
        * every call of one native returning the same value, and that value the top of the
          native's range.
        """
        support = symbols_of(*formulas)
        first: list[z3.BoolRef] = []
        uniform: list[z3.BoolRef] = []
        top: list[z3.BoolRef] = []
        natives: dict[str, list[z3.ExprRef]] = {}
        for inp in sorted((self.by_key[k] for k in support if k in self.by_key),
                          key=lambda i: (_ORDER[i.role], i.key)):
            if inp.role is Role.PARAM:
                first.append(inp.term == inp.hi)
            elif inp.role is Role.NATIVE:
                natives.setdefault(inp.name, []).append(inp.term)
                top.append(inp.term == inp.hi)
            elif inp.default is not None and inp.role in (Role.VAR, Role.CARRIED):
                first.append(inp.term == inp.default)
            elif inp.default is not None and inp.role in (Role.ARRAY, Role.CARRIED_ARRAY):
                first.append(inp.term == z3.K(_sort(), z3.BitVecVal(inp.default, WIDTH)))
            elif inp.role is Role.TABLE:
                uniform.append(inp.term == z3.K(_sort(), z3.BitVec(f"uniform:{inp.key}", WIDTH)))
            elif inp.role is Role.CHOICE and z3.is_bool(inp.term):
                uniform.append(inp.term == z3.BoolVal(True))
        for terms in natives.values():
            if len(terms) > 1:
                uniform.append(z3.And(*(t == terms[0] for t in terms[1:])))
        return [*first, *uniform, *top]

    def counterexample(self, model: z3.ModelRef, formulas: Sequence[z3.ExprRef],
                       detail: str = "") -> Counterexample:
        """The values of ``model`` that ``formulas`` depend on, and how to replay them."""
        support = symbols_of(*formulas)
        shown: dict[str, Value] = {}
        order: dict[str, tuple[int, str]] = {}
        for key in sorted(support):
            inp = self.by_key.get(key)
            if inp is None or inp.role in (Role.CHOICE, Role.ARRAY, Role.TABLE,
                                           Role.CARRIED_ARRAY):
                continue
            name = inp.name
            if inp.role is Role.NATIVE:
                name = f"{inp.name}({', '.join(str(_eval(model, a)) for a in inp.args)})"
            elif inp.role is Role.ENV:
                name = f"env({inp.name})"
            shown.setdefault(name, Value(name, _eval(model, inp.term), inp.role.value))
            order.setdefault(name, (_ORDER[inp.role], name))
        for array_key, index in selects_of(*formulas):
            inp = self.by_key.get(array_key)
            if inp is None:
                continue
            name = f"{inp.name}[{_eval(model, index)}]"
            value = _eval(model, z3.Select(inp.term, index))
            shown.setdefault(name, Value(name, value, inp.role.value))
            order.setdefault(name, (_ORDER[inp.role], name))
        values = tuple(shown[n] for n in sorted(shown, key=lambda n: order[n]))
        return Counterexample(values, self.replay(model, support), detail)

    def replay(self, model: z3.ModelRef, support: Iterable[str]) -> Replay:
        """How to reproduce ``model`` from the start of a run (see ``Replay``)."""
        support = set(support)
        globals_: list[tuple[str, int]] = []
        arrays = []
        natives: dict[str, set[int]] = {}
        env = []
        exact = True
        args = []
        for key, inp in self.by_key.items():
            if inp.role is Role.ARG:
                # Created first, in the procedure's parameter order; any value in the
                # declared type will do for one the run does not depend on.
                args.append(_eval(model, inp.term) if key in support
                            else min(max(0, inp.lo), inp.hi))
            elif inp.role in (Role.PARAM, Role.VAR):
                value = _eval(model, inp.term) if key in support or inp.default is None \
                    else inp.default
                globals_.append((inp.name, value))
            elif inp.role in (Role.ARRAY, Role.TABLE) and key in support:
                entries, default = _array_model(model, inp.term)
                arrays.append((inp.name, entries, default))
            elif inp.role is Role.NATIVE and key in support:
                natives.setdefault(inp.name, set()).add(_eval(model, inp.term))
            elif inp.role is Role.ENV and key in support:
                env.append((inp.name, _eval(model, inp.term)))
            elif (inp.role in _INEXACT or key in self.guessed) and key in support:
                exact = False
        if any(len(v) > 1 for v in natives.values()):
            exact = False
        return Replay(tuple(globals_), tuple(arrays),
                      tuple((n, max(v)) for n, v in sorted(natives.items())),
                      tuple(env), exact, tuple(args))


def array_default(a: ir.Array) -> int | None:
    """The value every element of ``a`` starts with, if they all start with the same."""
    first = a.values[0] if a.values else 0
    return first if all(v == first for v in a.values) else None


def _eval(model: z3.ModelRef, term: z3.ExprRef) -> int:
    v = model.eval(term, model_completion=True)
    if z3.is_true(v):
        return 1
    if z3.is_false(v):
        return 0
    assert isinstance(v, z3.BitVecNumRef), v
    return v.as_signed_long()


def _array_model(model: z3.ModelRef, term: z3.ExprRef) -> tuple[tuple[tuple[int, int], ...], int]:
    """A model's array as explicit entries and a default value."""
    v = model.eval(term, model_completion=True)
    entries: dict[int, int] = {}
    while z3.is_store(v):
        index, value = v.arg(1), v.arg(2)
        if isinstance(index, z3.BitVecNumRef) and isinstance(value, z3.BitVecNumRef):
            entries.setdefault(index.as_signed_long(), value.as_signed_long())
        v = v.arg(0)
    default = 0
    if z3.is_K(v) and isinstance(v.arg(0), z3.BitVecNumRef):
        default = v.arg(0).as_signed_long()
    return tuple(sorted(entries.items())), default
