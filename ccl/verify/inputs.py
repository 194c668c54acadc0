"""The unknowns of a procedure: every value the verifier does not compute but quantifies over.

Parameters, state variables and arrays at the start of a run, table contents, native results,
environment values, loop counters, and the state a loop carries into an arbitrary iteration
("havocked" within its declared range: ranged types are the loop invariants). Each unknown is
a Z3 constant with a *fact*: the range it is known to lie in. A model of the solver is turned
back into a counterexample here: the values a person reads, and what a test needs to replay
the run on the VVM.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import z3

from ccl import ir
from ccl.verify.obligations import Counterexample, Replay, Value
from ccl.verify.terms import WIDTH, Val, in_range, selects_of, symbols_of

_SORT = z3.BitVecSort(WIDTH)


class Role(Enum):
    PARAM = "param"
    ARG = "argument"  # an argument of a procedure verified on its own
    VAR = "var"  # a state variable at the start of the run
    ARRAY = "array"  # a state array at the start of the run
    TABLE = "table"
    NATIVE = "native"  # the result of one native call
    ENV = "env"
    COUNTER = "counter"  # a loop counter, at an arbitrary iteration
    CARRIED = "carried"  # a local or state variable at an arbitrary iteration of a loop
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


class Inputs:
    """Creates the unknowns of one procedure and records the fact about each."""

    def __init__(self, program: ir.Program) -> None:
        self.by_key: dict[str, Input] = {}
        self.facts: list[z3.BoolRef] = []
        self._fresh = 0
        self.params = {g.name: self._int(Role.PARAM, g.name, g.type, f"param:{g.name}",
                                         default=g.value)
                       for g in program.globals if not g.writable}
        self.vars = {g.name: self._int(Role.VAR, g.name, g.type, f"var:{g.name}",
                                       default=g.value)
                     for g in program.globals if g.writable}
        self.arrays = {a.name: self.array(Role.ARRAY if a.writable else Role.TABLE, a.name,
                                          f"array:{a.name}", array_default(a))
                       for a in program.arrays}
        self.env: dict[str, Val] = {}
        # Unknowns whose values are reachable only if an abstraction's guess holds (a loop
        # counter at an iteration that an earlier `return` may never let come).
        self.guessed: set[str] = set()

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
        term = z3.Array(key, _SORT, _SORT)
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
        """Values to try first for a worst case, so that a run from the start reproduces it:
        parameters and native results at the top of their ranges, state (also the state a
        loop carries) at its initial value."""
        support = symbols_of(*formulas)
        out = []
        for inp in sorted((self.by_key[k] for k in support if k in self.by_key),
                          key=lambda i: (_ORDER[i.role], i.key)):
            if inp.role in (Role.PARAM, Role.NATIVE):
                out.append(inp.term == inp.hi)
            elif inp.default is not None and inp.role in (Role.VAR, Role.CARRIED):
                out.append(inp.term == inp.default)
            elif inp.default is not None and inp.role in (Role.ARRAY, Role.CARRIED_ARRAY):
                out.append(inp.term == z3.K(_SORT, z3.BitVecVal(inp.default, WIDTH)))
        return out

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
        for key, inp in self.by_key.items():
            if inp.role in (Role.PARAM, Role.VAR):
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
                      tuple(env), exact)


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
