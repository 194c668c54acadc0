"""The compiler driver: file in, checked program and image out.

It is the one place that touches the file system for the front end: it reads sources,
finds missions (``onboard.mission.find_mission``) and the VMlets a configuration ``uses``,
and keeps every source it read so that diagnostics can be rendered with their lines.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ccl import ir
from ccl.compiled import Compiled
from ccl.diagnostics import CclError, Diagnostic, Source, Span
from ccl.sema import analyze
from ccl.syntax import ParseCache
from onboard.mission import (
    ArgSpec,
    CostFormula,
    MissionError,
    MissionProfile,
    Native,
    find_mission,
)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the duration (re-entrant).

    A compile builds a large graph of objects (the syntax tree, the IR, the code) that all
    live until it ends: the collector would traverse them again and again, for a third of
    the compile time, and find nothing to free. They are collected afterwards as usual."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> Diagnostic:
    """E-READ at the first byte of ``path`` that is not UTF-8."""
    before = exc.object[:exc.start].decode("utf-8", errors="replace")
    line = before.count("\n") + 1
    col = len(before) - (before.rfind("\n") + 1) + 1
    return Diagnostic("E-READ", f"cannot read {path}: not UTF-8 text (byte "
                      f"0x{exc.object[exc.start]:02x})", Span(str(path), line, col, line, col + 1),
                      "CCL sources are UTF-8 text")


@dataclass
class Compiler:
    """Compiles CCL files; caches missions and VMlets across files of one invocation."""

    mission_dirs: Iterable[Path] = ()
    sources: dict[str, Source] = field(default_factory=dict)
    # Texts to read instead of the files on disk, by resolved path: the unsaved buffers of
    # an editor (``ccl lsp``), so that what is checked is what the author sees.
    buffers: dict[Path, str] = field(default_factory=dict)
    # Parse trees kept between checks of a file being edited, by resolved path (``ccl lsp``).
    parse_caches: dict[Path, ParseCache] = field(default_factory=dict)
    _missions: dict[str, MissionProfile] = field(default_factory=dict)
    _vmlets: dict[Path, Compiled] = field(default_factory=dict)  # by resolved path
    _current_dir: Path = field(default=Path("."))
    _compiling: set[Path] = field(default_factory=set)  # files being analyzed (resolved)
    _using: list[tuple[Path, str]] = field(default_factory=list)  # VMlets being loaded
    # Other applications' exported functions imported so far, as the natives they become
    # to the importer (``app.fn``), their cost the callee's proven worst case.
    _exports: dict[str, Native] = field(default_factory=dict)

    # -- public

    def check(self, path: Path) -> ir.Program:
        """Parse and check ``path``; raises CclError."""
        with collector_paused():
            return self._analyze(path)

    def compile(self, path: Path) -> Compiled:
        """Check and compile ``path`` (and the VMlets it uses); raises CclError."""
        with collector_paused():
            program = self._analyze(path)
            mission = self._missions[program.mission]
            if program.imports:  # the importer's spacecraft offers it the imports as natives
                mission = replace(mission, natives={
                    **mission.natives, **{s.name: self._exports[s.name]
                                          for s in program.imports}})
            # every layer, lower ones first: the order they are loaded in on board
            vmlets = tuple(self._vmlets[Path(vm.file).resolve()] for vm in program.stack)
            # imported here: `ccl check` (which only analyzes) need not load the code generator
            from ccl import codegen  # noqa: PLC0415
            image, debug = codegen.generate(program, {vm.program.name: vm.image for vm in vmlets})
            return Compiled(program, image, debug, mission, vmlets)

    def mission(self, name: str, span: Span | None = None) -> MissionProfile:
        if name not in self._missions:
            try:
                self._missions[name] = find_mission(name, self.mission_dirs)
            except MissionError as exc:
                raise CclError([Diagnostic("E-MISSION", exc.message, span, exc.hint)]) from None
        return self._missions[name]

    # -- internals

    def _read(self, path: Path) -> Source:
        buffered = self.buffers.get(path.resolve()) if self.buffers else None
        if buffered is not None:
            source = Source.of(path, buffered.removeprefix("\ufeff"))
            self.sources[source.path] = source
            return source
        try:
            text = path.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is not code
        except FileNotFoundError:
            raise CclError([Diagnostic("E-READ", f"no such file: {path}", None,
                                       "check the path")]) from None
        except UnicodeDecodeError as exc:
            raise CclError([_not_utf8(path, exc)]) from None
        except OSError as exc:
            raise CclError([Diagnostic("E-READ", f"cannot read {path}: {exc.strerror}", None,
                                       "")]) from None
        source = Source.of(path, text)
        self.sources[source.path] = source
        return source

    def _analyze(self, path: Path) -> ir.Program:
        source = self._read(path)
        saved, self._current_dir = self._current_dir, path.parent
        self._compiling.add(path.resolve())
        try:
            return analyze(source, self.mission, self._load_vmlet,
                           self.parse_caches.get(path.resolve()), self._load_export)
        finally:
            self._current_dir = saved
            self._compiling.discard(path.resolve())

    def _load_export(self, app: str, fn: str, span: Span) -> ir.NativeSig:
        """`import app.fn;`: compile and prove application ``app`` (``app.ccl`` beside the
        importer) and give its exported ``fn`` to the importer as a native ``app.fn``
        whose cost is ``fn``'s proven worst case (charged to the caller) and whose result
        range is ``fn``'s declared one."""
        path = self._current_dir / f"{app}.ccl"

        def refuse(message: str, hint: str) -> CclError:
            return CclError([Diagnostic("E-IMPORT", message, span, hint)])
        if not path.is_file():
            raise refuse(f"unknown application `{app}`",
                         f"looked for {app}.ccl in {self._current_dir}")
        if path.resolve() in self._compiling:
            raise refuse(f"application `{app}` imports from this one, which imports from it",
                         "applications may not import from each other in a cycle")
        compiled = self.compile(path)
        program = compiled.program
        if program.application is None or program.application.name != app:
            raise refuse(f"{path} is not application `{app}`",
                         f"its configuration declares `application {app} share N %;`")
        if fn not in program.exports:
            exported = ", ".join(program.exports) or "none"
            raise refuse(f"application `{app}` exports no function `{fn}`",
                         f"its exported functions: {exported}")
        proc = program.function(fn)
        written = _state_written(program, fn)
        if written is not None:
            raise refuse(f"`{app}.{fn}` writes `{written.name}`, state of application "
                         f"`{app}` (at {written.span})", "an exported function only reads "
                         "its application's state: applications share no memory, and a "
                         "caller must not change the callee's")
        types = [p.type for p in proc.params] + [proc.returns]
        if not all(isinstance(t, ir.IntType) for t in types):
            raise refuse(f"`{app}.{fn}` takes or returns a bool",
                         "an exported function passes and returns integers")
        # imported here: only a file that imports needs the verifier
        from ccl.verify.program import verify_program  # noqa: PLC0415
        report = verify_program(compiled)
        worst = next((w for w in report.budgets.worst_cases
                      if w.kind == "fn" and w.name == fn), None)
        if report.status != "proven" or worst is None:
            raise refuse(f"application `{app}` is not proven ({report.status}): `{fn}` has "
                         "no proven bound to charge its callers",
                         f"run `ccl verify {path}` and fix what it reports")
        name = f"{app}.{fn}"
        params = tuple((p.name, p.type) for p in proc.params)
        result = proc.returns
        assert isinstance(result, ir.IntType)
        args = tuple(ArgSpec(p.name, t.lo, t.hi) for p in proc.params
                     if isinstance(t := p.type, ir.IntType))
        self._exports[name] = Native(
            name, args, (result.lo, result.hi),
            CostFormula.parse(str(worst.bound), (a.name for a in args)), "",
            f"exported by application {app} ({path.name})")
        return ir.NativeSig(name, params, result, str(worst.bound), "")  # type: ignore[arg-type]

    def _is_vmlet(self, key: Path) -> bool:
        """Whether the file being compiled at ``key`` is a VMlet (by its header)."""
        source = next((s for s in self.sources.values() if Path(s.path).resolve() == key),
                      None)
        return source is not None and re.search(r"^\s*vmlet\b", source.text, re.M) is not None

    def _load_vmlet(self, name: str, span: Span) -> ir.Program:
        """Find, check and compile VMlet ``name`` for the configuration being analyzed."""
        here = self._current_dir
        candidates = [here / f"{name}.ccl", here / "vmlets" / f"{name}.ccl",
                      here.parent / "vmlets" / f"{name}.ccl"]
        candidates += [m.directory / "vmlets" / f"{name}.ccl" for m in self._missions.values()]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            searched = ", ".join(sorted({str(c.parent) for c in candidates}))
            raise CclError([Diagnostic("E-UNKNOWN-VMLET", f"unknown VMlet `{name}`", span,
                                       f"looked for {name}.ccl in {searched}")])
        key = path.resolve()
        if key in self._vmlets:
            return self._vmlets[key].program
        if key in self._compiling and self._is_vmlet(key):
            names = [n for p, n in self._using[[p for p, _ in self._using].index(key) + 1:]] \
                if key in (p for p, _ in self._using) else [n for _, n in self._using]
            cycle = " -> ".join([name, *names, name])
            raise CclError([Diagnostic("E-CYCLE", f"VMlet `{name}` uses itself: {cycle}", span,
                                       "a VMlet builds only on VMlets below it; move what "
                                       "both need into a third one that both use")])
        if key in self._compiling:  # a configuration being compiled: it is not a VMlet
            raise CclError([Diagnostic("E-UNKNOWN-VMLET", f"{path} does not define VMlet "
                                       f"`{name}`: it is a configuration being compiled, which "
                                       "uses it", span, "a configuration cannot use itself; "
                                       f"a VMlet file starts with `vmlet {name} version N;`")])
        self._using.append((key, name))
        try:
            compiled = self.compile(path)
        finally:
            self._using.pop()
        if compiled.program.kind is not ir.ProgramKind.VMLET or compiled.program.name != name:
            raise CclError([Diagnostic("E-UNKNOWN-VMLET", f"{path} does not define VMlet "
                                       f"`{name}`", span, "its header must be "
                                       f"`vmlet {name} version N;`")])
        self._vmlets[key] = compiled
        return compiled.program


@dataclass(frozen=True)
class _Write:
    name: str
    span: Span


def _state_written(program: ir.Program, fn: str) -> _Write | None:
    """The first state variable or array that ``fn`` or a function it calls assigns."""
    from ccl.verify import irwalk  # noqa: PLC0415 - with the verifier, only for imports
    seen, todo = set(), [fn]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        body = program.function(name).body
        for s in irwalk.statements(body):
            if isinstance(s, ir.AssignGlobal):
                return _Write(s.glob.name, s.span)
            if isinstance(s, ir.AssignElement):
                return _Write(s.array.name, s.span)
        todo += sorted(irwalk.callees(body))
    return None
