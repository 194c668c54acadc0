"""Random CCL configurations (a hypothesis strategy) for differential tests of the engines.

The programs are small but use everything the execution engines must get right: arithmetic
that may overflow or divide by zero, array accesses that may go out of bounds, stores that
may leave a declared range, nested ifs with ``&&``/``||``, counted loops, function calls and
the photometry VMlet's ``med3`` instruction. Programs that the front end rejects (a constant
division by zero, say) are filtered out by the tests with ``assume``.
"""

from __future__ import annotations

from hypothesis import strategies as st

_SMALL = st.integers(-20, 20)
_ANY = st.one_of(_SMALL, st.sampled_from([0, 1, -1, 1000, 65535, 2**31 - 1, -(2**31) + 1,
                                          46341, 2**30]))


class _Gen:
    def __init__(self, draw: st.DrawFn, n_array: int) -> None:
        self.draw = draw
        self.locals: list[str] = []  # readable
        self.assignable: list[str] = []  # `let` locals (not arguments or loop counters)
        self.in_function = False  # f may not call itself
        self.counters: list[str] = []  # loop counters in scope (an index may be one)
        self.n_array = n_array
        self.n = 0

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def atom(self, depth: int) -> str:
        choices = ["lit", "param", "var", "arr"] + (["local"] if self.locals else [])
        kind = self.draw(st.sampled_from(choices))
        if kind == "lit":
            v = self.draw(_ANY)
            return str(v) if v >= 0 else f"({v})"
        if kind == "param":
            return self.draw(st.sampled_from(["p0", "p1", "p2"]))
        if kind == "var":
            return self.draw(st.sampled_from(["v0", "v1"]))
        if kind == "arr":
            return f"a0[{self.index(depth + 1)}]"
        return self.draw(st.sampled_from(self.locals))

    def index(self, depth: int) -> str:
        """Mostly in bounds (a constant out of bounds is a compile-time error); a loop's
        counter reads the array in order (the translator may iterate the array then)."""
        kinds = ["lit", "clamp", "clamp", "raw"] + (["counter"] * 2 if self.counters else [])
        kind = self.draw(st.sampled_from(kinds))
        if kind == "counter":
            return self.draw(st.sampled_from(self.counters))
        if kind == "lit":
            return str(self.draw(st.integers(0, self.n_array - 1)))
        if kind == "clamp":
            return f"min(max({self.expr(depth + 1)}, 0), {self.n_array - 1})"
        return f"({self.expr(depth + 1)} + v1)"  # not constant: may trap at run time

    def expr(self, depth: int = 0) -> str:
        if depth >= 2 or self.draw(st.integers(0, 3)) == 0:
            return self.atom(depth)
        kinds = ["bin", "bin", "builtin", "neg", "med3"] + ([] if self.in_function else ["fn"])
        kind = self.draw(st.sampled_from(kinds))
        if kind == "bin":
            op = self.draw(st.sampled_from(["+", "-", "*", "/", "%"]))
            return f"({self.expr(depth + 1)} {op} {self.expr(depth + 1)})"
        if kind == "fn":
            return f"f({self.expr(depth + 1)}, {self.expr(depth + 1)})"
        if kind == "builtin":
            b = self.draw(st.sampled_from(["min", "max"]))
            return f"{b}({self.expr(depth + 1)}, {self.expr(depth + 1)})"
        if kind == "neg":
            return f"abs({self.expr(depth + 1)})" if self.draw(st.booleans()) else \
                f"-({self.expr(depth + 1)})"
        return f"med3({self.expr(depth + 1)}, {self.expr(depth + 1)}, {self.expr(depth + 1)})"

    def cond(self) -> str:
        op = self.draw(st.sampled_from(["<", "<=", "==", "!=", ">", ">="]))
        c = f"{self.expr(1)} {op} {self.expr(1)}"
        join = self.draw(st.sampled_from(["", "&&", "||"]))
        if join:
            c = f"{c} {join} {self.expr(2)} < {self.expr(2)}"
        return c

    def block(self, depth: int, indent: str) -> list[str]:
        out = []
        saved = list(self.locals), list(self.assignable)
        for _ in range(self.draw(st.integers(1, 4))):
            out += self.stmt(depth, indent)
        self.locals, self.assignable = saved
        return out

    def stmt(self, depth: int, indent: str) -> list[str]:
        kinds = ["let", "var", "arr"] + (["if", "for"] if depth < 2 else [])
        if self.assignable:
            kinds.append("assign")
        kind = self.draw(st.sampled_from(kinds))
        if kind == "let":
            name = self.name("x")
            line = f"{indent}let {name} = {self.expr()};"
            self.locals.append(name)
            self.assignable.append(name)
            return [line]
        if kind == "assign":
            return [f"{indent}{self.draw(st.sampled_from(self.assignable))} = {self.expr()};"]
        if kind == "var":
            return [f"{indent}{self.draw(st.sampled_from(['v0', 'v1']))} = {self.expr()};"]
        if kind == "arr":
            return [f"{indent}a0[{self.index(1)}] = {self.expr()};"]
        if kind == "if":
            lines = [f"{indent}if {self.cond()} {{", *self.block(depth + 1, indent + "    ")]
            if self.draw(st.booleans()):
                lines += [f"{indent}}} else {{", *self.block(depth + 1, indent + "    ")]
            return [*lines, f"{indent}}}"]
        i = self.name("i")
        hi = self.draw(st.sampled_from(["p0", "4", "p1"]))
        self.locals.append(i)
        self.counters.append(i)
        body = self.block(depth + 1, indent + "    ")
        self.locals.remove(i)
        self.counters.remove(i)
        return [f"{indent}for {i} in 0 .. {hi} {{", *body, f"{indent}}}"]


@st.composite
def configurations(draw: st.DrawFn) -> str:
    """The text of a random configuration with a function ``f`` and a task ``t``."""
    n_array = draw(st.integers(1, 6))
    g = _Gen(draw, n_array)
    p0 = draw(st.integers(0, 6))
    p1 = draw(st.integers(0, 6))
    p2 = draw(_ANY)
    lo = draw(st.integers(-1000, 0))
    hi = draw(st.integers(0, 100000))
    g.locals = ["a", "b"]
    g.in_function = True
    fbody = g.block(1, "    ")
    fret = g.expr()
    g.locals = []
    g.in_function = False
    tbody = g.block(0, "    ")
    return "\n".join([
        "mission corot;",
        "config gen version 1;",
        "uses photometry;",
        f"param p0 : int[0..6] = {p0};",
        f"param p1 : int[0..6] = {p1};",
        f"param p2 : int = {p2};",
        f"var v0 : int[{lo}..{hi}];",
        "var v1 : int;",
        f"var a0[{n_array}] : int[{lo}..{hi}];",
        "fn f(a: int, b: int) -> int {",
        *fbody,
        f"    return {fret};",
        "}",
        "task t every 1 s {",
        *tbody,
        "}",
        "",
    ])
