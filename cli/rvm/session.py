"""A ``vvm repl`` session: a simulated VVM changed only through the uplink's path.

Every change (a declaration typed, ``:undo``) is compiled by ``ccl`` from the workspace's
sources, proven (``ccl verify``, reusing a kept proof of the very same configuration),
packed as a patch against the configuration on board (a delta when that is smaller), and
handed to the board's patcher, which checks it, stages it, switches to it at a frame
boundary and keeps it on probation; the session runs the clock until the patch is
committed or rolled back. A change refused anywhere on the way says why (the compiler's
diagnostic, the verifier's counterexample, the packer's or the board's refusal) and the
workspace keeps what runs; a change refused before the board leaves the state directory
byte-identical.

``:undo`` sends the snapshot before the last change again, as a new patch (a higher
sequence number) through the same path. An expression (``= EXPR``) is compiled into a
tiny unit beside the running configuration, loaded beside it (not switched to), given
the running configuration's state, and run once outside the scheduler, metered.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ccl.compiled import Compiled
from ccl.diagnostics import CclError, render
from ccl.driver import Compiler
from ccl.pack import PackError, pack
from ccl.verify import proof_cache
from ccl.verify.program import verify_program
from ccl.verify.report import diagnostic, worst_case_line
from ccl.verify.verdict import Verdict, keep_verdict, verdict_of
from cli.rvm.workspace import Snapshot, Workspace, write_sources
from cli.vvm import fate_line
from onboard.patching.patch_format import key_from_text
from onboard.patching.patcher import FateStatus
from onboard.patching.store import Phase
from onboard.sim.simulator import KEY_FILE, Simulator
from onboard.vm.board import DEFAULT_APPLICATION
from onboard.vm.image import ImageKind
from onboard.vm.loader import LoadError
from onboard.vm.vvm import carry, run_unit

EVAL_UNIT = "rvm_eval"
WORKSPACE_DIR = "rvm"


class Refused(Exception):
    """A change or an evaluation refused: the lines that say why."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)


@dataclass(frozen=True)
class Evaluation:
    """An expression's value (None if it trapped), its cycles and the trap."""

    value: int | None
    cycles: int
    trap: str | None


class Session:
    """A simulated VVM (``sim``) and the workspace of what was typed at it."""

    def __init__(self, sim: Simulator, workspace: Workspace,
                 mission_dirs: tuple[Path, ...] = (), board: Path | None = None) -> None:
        self.sim = sim
        self.workspace = workspace
        self.mission_dirs = mission_dirs
        #: the state directory of the whole board (``onboard.sim.board_state``)
        self.board = board if board is not None else sim.directory

    @staticmethod
    def attach(sim: Simulator, base: tuple[str, ...],
               mission_dirs: tuple[Path, ...] = (), *,
               application: tuple[str, int] | None = None,
               board: Path | None = None) -> Session:
        """The session of the state directory ``sim`` runs in (its saved workspace, or a
        new one on the mission VMlets ``base``); ``application`` (name, percent of the
        share) when ``sim`` is that application of the board in ``board``."""
        workspace = Workspace.open(sim.directory / WORKSPACE_DIR, sim.vvm.profile.name, base,
                                   application)
        return Session(sim, workspace, mission_dirs, board)

    @property
    def application(self) -> str:
        """The name of the board application the session changes."""
        app = self.workspace.application
        return app[0] if app is not None else DEFAULT_APPLICATION

    # ------------------------------------------------------------------ changes

    def change(self, text: str) -> list[str]:
        """Add or redefine the declaration ``text`` on board. Raises ``Refused``
        (``NotADeclaration`` for text that is none)."""
        ws = self.workspace
        number = ws.counter + 1
        target = (ws.current or Snapshot()).with_entry(text, number)
        return self._send(target, number, undo=False)

    def undo(self) -> list[str]:
        """Send the snapshot before the last change again. Raises ``Refused``."""
        ws = self.workspace
        if not ws.history:
            if ws.current is not None and not ws.current.empty:
                raise Refused(["nothing to undo: before this session's first change the "
                               "board ran a configuration not made in a session, whose "
                               "source is unknown here",
                               "hint: send it again as any patch (`ccl pack --base`, "
                               "`vvm apply`)"])
            raise Refused(["nothing to undo: no change of this session is on board"])
        target = ws.history[-1]
        if target.empty:  # the board ran nothing: the equivalent is a configuration of
            # nothing, which was never on board, so it takes a number of its own
            return self._send(replace(target, config_version=ws.counter + 1),
                              ws.counter + 1, undo=True)
        return self._send(target, ws.counter, undo=True)

    def _send(self, target: Snapshot, number: int, *, undo: bool) -> list[str]:
        ws = self.workspace
        trial = ws.directory / "try"
        running_before = self.sim.vvm.program
        try:
            lines = self._through_the_uplink(target, trial)
        finally:
            shutil.rmtree(trial, ignore_errors=True)
        if undo:
            ws.history.pop()
        elif ws.current is not None:
            ws.history.append(ws.current)
        elif running_before is None:
            ws.history.append(Snapshot())  # the board ran nothing before
        ws.current = target
        ws.counter = number
        ws.save()
        return lines

    def _through_the_uplink(self, target: Snapshot, trial: Path) -> list[str]:
        sim = self.sim
        self._settle()
        shutil.rmtree(trial, ignore_errors=True)
        config = write_sources(trial, self.workspace.sources(target))
        compiler, compiled = self._compile(config)
        verdict, lines = self._prove(compiler, compiled)
        key = key_from_text((sim.directory / KEY_FILE).read_text())
        running = sim.vvm.program
        seq = sim.reconfiguration.patcher.store.state().last_seq + 1
        try:
            packed = pack(compiled.image, [v.image for v in compiled.vmlets],
                          compiled.mission, key, seq=seq,
                          base=running.image if running is not None else None,
                          cycles_per_frame=verdict.cycles_per_frame)
        except PackError as exc:
            raise Refused([f"not packed: {exc.message}"] +
                          ([f"hint: {exc.hint}"] if exc.hint else [])) from None
        image = compiled.image
        lines.append(f"packed: {'full' if packed.full else 'delta'} patch of "
                     f"{image.name} v{image.version}, {len(packed.data)} bytes, seq {seq}")
        seen = len(sim.reconfiguration.events)
        sim.apply(packed.data)
        self._settle()
        events = sim.reconfiguration.events[seen:]
        lines += [f"board:{fate_line(e)[1:]}" for e in events]
        last = events[-1].fate if events else None
        if last is None or last.status is not FateStatus.COMMITTED:
            raise Refused([*lines, "refused on board: the configuration that ran before "
                           "runs on" + (f" ({last.status.value})" if last else "")])
        return lines

    def _settle(self) -> None:
        """Run the clock until no patch is waiting, staged or on probation."""
        sim = self.sim
        profile = sim.vvm.profile
        probation_ms = (profile.reconfig.probation_frames + 1) * profile.frame_ms
        store = sim.reconfiguration.patcher.store
        while store.phase is not Phase.IDLE or sim.reconfiguration.pending:
            sim.run(probation_ms)

    def _compile(self, config: Path) -> tuple[Compiler, Compiled]:
        compiler = Compiler(mission_dirs=self.mission_dirs)
        try:
            return compiler, compiler.compile(Path(os.path.relpath(config)))
        except CclError as exc:
            raise Refused([render(d, compiler.sources) for d in exc.diagnostics]) from None

    def _prove(self, compiler: Compiler, compiled: Compiled) -> tuple[Verdict, list[str]]:
        """The verdict on ``compiled`` (a kept proof of the very same configuration, or a
        new proof), after proving the session's own VMlets it uses (a configuration's proof
        covers only the instructions it calls; the board will hold them all); ``Refused``
        with the counterexamples unless all are proven."""
        lines: list[str] = []
        trial = self.workspace.directory.resolve()
        for vmlet in compiled.vmlets:
            if Path(vmlet.program.file).resolve().is_relative_to(trial):
                lines += self._proof(compiler, vmlet)[1]
        verdict, more = self._proof(compiler, compiled)
        return verdict, lines + more

    @staticmethod
    def _proof(compiler: Compiler, unit: Compiled) -> tuple[Verdict, list[str]]:
        what = f"{unit.image.kind.name.lower()} {unit.image.name} v{unit.image.version}"
        kept = proof_cache.recall(unit)
        if kept is not None:
            verdict = Verdict(**kept, reused=True)  # type: ignore[arg-type]
            return verdict, [f"proven {what} (the kept proof of this very text)"
                             + (f": {verdict.detail}" if unit.image.kind is ImageKind.CONFIG
                                else "")]
        report = verify_program(unit)
        keep_verdict(unit, report)
        verdict = verdict_of(report)
        if report.status != "proven":
            failing = [*report.refuted, *report.unknown]
            raise Refused([f"{what} not proven ({report.status}): the board is not asked",
                           *(render(diagnostic(o), compiler.sources) for o in failing)])
        lines = [f"proven {what}" + (f": {verdict.detail}" if unit.image.kind is
                                     ImageKind.CONFIG else "")]
        lines += [f"  {worst_case_line(w)}" for w in report.budgets.worst_cases]
        return verdict, lines

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, expression: str) -> Evaluation:
        """Run ``expression`` once in the running configuration, outside the scheduler.
        Raises ``Refused`` if it does not compile or cannot be loaded."""
        ws = self.workspace
        unit = f"fn {EVAL_UNIT}() -> int {{ return {expression.strip()}; }}"
        snapshot = (ws.current or Snapshot()).with_entry(unit, ws.counter)
        scratch = ws.directory / "eval"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            config = write_sources(scratch, ws.sources(snapshot))
            _, compiled = self._compile(config)
            vvm = self.sim.vvm
            try:
                program = vvm.prepare(compiled.image, [v.image for v in compiled.vmlets])
            except LoadError as exc:
                raise Refused([f"refused by the board's loader ({exc.code}): "
                               f"{exc.message}"]) from None
            if vvm.program is not None:
                carry(vvm.program, program)
            out = run_unit(program, EVAL_UNIT, (), None, vvm.now_ms)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        trap = None if out.fault is None else \
            f"trap {out.fault.code.name.lower()} in {out.fault.unit} +{out.fault.offset}"
        return Evaluation(out.result, out.cycles, trap)
