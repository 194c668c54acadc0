"""One editor buffer, checked by the compiler's front end as the author types.

The buffer is checked by ``ccl.driver.Compiler`` exactly as ``ccl check`` checks the file
(same codes, spans and hints), with the unsaved text given to the compiler in place of the
file. The compiler is kept between checks, so the mission profile and the VMlets a
configuration uses are read and compiled once, not at every keystroke, and the parse trees
of the declarations that did not change are reused (``ccl.syntax.parse_reusing``: only
the declaration being typed in is parsed again); ``forget`` drops them when a VMlet or a
mission may have changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ccl import ir
from ccl.diagnostics import CclError, Diagnostic
from ccl.driver import Compiler
from ccl.syntax import ParseCache
from onboard.mission import MissionError, MissionProfile


@dataclass(frozen=True)
class Checked:
    """The result of checking one buffer: its diagnostics (empty when it checks) and its
    program when it does."""

    path: Path
    diagnostics: tuple[Diagnostic, ...]
    program: ir.Program | None
    mission: MissionProfile | None


@dataclass
class FrontEnd:
    """Checks buffers with one long-lived compiler (its missions and VMlets cached)."""

    mission_dirs: tuple[Path, ...] = ()
    reuse_parses: bool = True  # False: every check parses the whole buffer (a reference)
    _compiler: Compiler | None = field(default=None, repr=False)

    def forget(self) -> None:
        """Drop the cached missions and VMlets: a VMlet or a profile may have changed."""
        self._compiler = None

    def check(self, path: Path, text: str, buffers: Iterable[tuple[Path, str]] = ()
              ) -> Checked:
        """Check ``text`` as the content of ``path``; ``buffers`` are the other open
        buffers (a VMlet being edited is read from its buffer too)."""
        if self._compiler is None:
            self._compiler = Compiler(mission_dirs=self.mission_dirs)
        compiler = self._compiler
        compiler.buffers = {p.resolve(): t for p, t in buffers}
        compiler.buffers[path.resolve()] = text
        # the declarations of the buffer that did not change are not parsed again
        if self.reuse_parses:
            compiler.parse_caches.setdefault(path.resolve(), ParseCache())
        try:
            program = compiler.check(path)
        except CclError as exc:
            return Checked(path, exc.diagnostics, None, None)
        try:
            mission = compiler.mission(program.mission)
        except (CclError, MissionError):  # it checked, so its mission was found: defensive
            mission = None
        return Checked(path, (), program, mission)
