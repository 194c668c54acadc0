"""The architecture, as a test: data flows one way and no arrow runs back.

Every import of our packages is read from the sources (top-level and inside functions: a
lazy import is a dependency too) and checked against the layers of docs/architecture.md:

    onboard  <-  ccl  <-  ground  <-  cli          missions  ->  onboard

``onboard`` imports nothing of ours outside itself (the flight side stands alone); inside it
``vm`` is below ``patching``, ``link`` beside them, ``sim`` on top. Inside ``ccl`` the front
end is below the driver, the proofs and the packer, which do not import one another, and
``soundness`` (proof = flight) is on top. The ``vvm`` command reaches only ``onboard`` and
the console, except ``vvm repl`` (``cli.rvm``, loaded when it runs), which compiles and
proves with ``ccl``. No package has an import cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("onboard", "ccl", "ground", "missions", "cli")

#: Which of our packages each package may import (besides itself).
ALLOWED = {
    "onboard": set(),
    "ccl": {"onboard"},
    "ground": {"ccl", "onboard"},
    "missions": {"onboard"},
    "cli": {"ccl", "ground", "onboard"},
}

#: Module prefixes that must not import other prefixes (inside one package).
FORBIDDEN = [
    # the VVM below patches; the link below neither; the simulated spacecraft on top
    ("onboard.vm", ("onboard.patching", "onboard.link", "onboard.sim")),
    ("onboard.patching", ("onboard.link", "onboard.sim")),
    ("onboard.link", ("onboard.vm", "onboard.patching", "onboard.sim")),
    ("onboard.mission", ("onboard.patching", "onboard.link", "onboard.sim")),
    # proofs and packing take what the front end made, not the driver; neither calls the other
    ("ccl.verify", ("ccl.driver", "ccl.pack", "ccl.soundness")),
    ("ccl.pack", ("ccl.driver", "ccl.verify", "ccl.soundness")),
    ("ccl.compiled", ("ccl.driver", "ccl.verify", "ccl.pack", "ccl.soundness")),
    ("ccl.codegen", ("ccl.driver", "ccl.verify", "ccl.pack", "ccl.soundness")),
    ("ccl.sema", ("ccl.driver", "ccl.verify", "ccl.pack", "ccl.soundness", "ccl.codegen")),
    ("ccl.semantics", ("ccl.driver", "ccl.verify", "ccl.pack", "ccl.soundness",
                       "ccl.codegen")),
    ("ccl.syntax", ("ccl.sema", "ccl.ir", "ccl.driver", "ccl.verify", "ccl.pack",
                    "ccl.codegen")),
    ("ccl.ir", ("ccl.sema", "ccl.semantics", "ccl.driver", "ccl.verify", "ccl.pack",
                "ccl.codegen")),
    # the ground's libraries print nothing: commands live in cli
    ("ground", ("cli",)),
]


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _type_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    return {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
            and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
            for stmt in block.body for n in ast.walk(stmt)}


def _imports(name: str, path: Path, *, typing: bool = True) -> Iterator[str]:
    """The modules of ours that module ``name`` imports, anywhere in its source (with
    ``typing=False``, not counting imports made only for the type checker)."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = set() if typing else _type_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # ``from pkg import module`` names a module; ``from module import name`` does not
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module
                       for a in node.names]
        else:
            continue
        yield from (t for t in targets if t.split(".")[0] in PACKAGES)


GRAPH = {name: set(_imports(name, path)) - {name} for name, path in MODULES.items()}
#: What runs: a mixin may name the class it is mixed into for the type checker alone.
RUNTIME = {name: set(_imports(name, path, typing=False)) - {name}
           for name, path in MODULES.items()}


def _inside(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_import_graph_is_read() -> None:
    """The reader sees the arrows we know are there (so an empty graph cannot pass)."""
    assert "onboard.vm.isa" in GRAPH["ccl.codegen"]
    assert "ccl.driver" in GRAPH["ground.scenario"]
    assert "onboard.vm.vvm" in GRAPH["onboard.patching.reconfiguration"]
    assert len(MODULES) > 80


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_the_layers_below(package: str) -> None:
    back = sorted(f"{m} -> {t}" for m, ts in GRAPH.items() if m.split(".")[0] == package
                  for t in ts if t.split(".")[0] not in ALLOWED[package] | {package})
    assert back == [], f"{package} imports a layer above it or beside it"


def test_no_arrow_runs_back_inside_a_package() -> None:
    back = sorted(f"{m} -> {t}" for source, targets in FORBIDDEN
                  for m, ts in GRAPH.items() if _inside(m, source)
                  for t in ts if any(_inside(t, f) for f in targets))
    assert back == []


def _reached(start: str) -> set[str]:
    """Every module of ours that ``start`` imports, directly or not."""
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m in seen or m not in GRAPH:
            continue
        seen.add(m)
        todo.extend(GRAPH[m])
    return seen


def test_the_vvm_command_stands_without_the_ground_toolchain() -> None:
    seen = _reached("cli.vvm")
    assert "onboard.vm.vvm" in seen
    # cli.files: the input checks both commands share (it reaches only console and options);
    # cli.lazy_group: the group that loads `vvm repl` only when it runs (it reaches nothing)
    assert sorted(m for m in seen if m.split(".")[0] not in {"onboard"}) == \
        ["cli.console", "cli.files", "cli.lazy_group", "cli.options", "cli.vvm"]


def test_only_the_repl_of_the_vvm_command_reaches_the_compiler() -> None:
    """The one exception to the rule above: ``vvm repl`` (``cli.rvm``) is a ground console
    attached to a simulated board, so it compiles and proves (``ccl``); ``vvm`` names it in
    its table of lazy commands, imported only when it runs, and nothing else of ``vvm``
    imports it. It never reaches the ground's link and passes (``ground``)."""
    from cli.vvm import LAZY_COMMANDS  # noqa: PLC0415 - the table, as the command has it

    assert {c.target.partition(":")[0] for c in LAZY_COMMANDS.values()} == {"cli.rvm.command"}
    assert not any(_inside(m, "cli.rvm") for m in _reached("cli.vvm"))
    repl = _reached("cli.rvm.command")
    assert "ccl.driver" in repl and "ccl.verify.program" in repl and "ccl.pack" in repl
    assert not any(_inside(m, "ground") for m in repl)
    assert not any(_inside(m, "cli.rvm") for name, targets in GRAPH.items()
                   if not _inside(name, "cli.rvm") for m in targets)


def test_no_package_has_an_import_cycle() -> None:
    """Tarjan's strongly connected components of the module graph as it runs (imports for
    the type checker alone left out): all of size one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in RUNTIME.get(v, ()):
            if w not in RUNTIME:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(RUNTIME):
        if v not in index:
            visit(v)
    assert cycles == []
