"""``vvm repl``: the RVM, an interactive session on a simulated VVM.

``vvm repl STATE`` opens a state directory (``vvm init``); ``vvm repl --mission NAME``
starts on a fresh one (in a new temporary directory, or in STATE if it does not exist
yet). At the prompt: CCL declarations (``fn``, ``param``, ``var``, ``table``, ``const``,
``task``, ``rule``, ``on apply``, ``instr``, or a whole ``vmlet NAME { ... }``), ended by a
``;`` or by the brace that closes them (or by a blank line), each sent to the board as a
patch (``cli.rvm.session``); ``= EXPR`` evaluates an expression; commands start with ``:``
(``:help`` lists them).

Not on a terminal, it reads standard input, prints no prompt (``--echo`` prints each entry
after a prompt, as golden transcripts show it), uses no host time, and exits 0 if every
entry succeeded, else 1. On a terminal: line editing, history (kept in the state
directory) and completion of commands and names (readline).
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import click

from cli.console import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, note
from cli.options import output_options
from cli.rvm.session import WORKSPACE_DIR, Evaluation, Refused, Session
from cli.rvm.workspace import SESSION_FILE, NotADeclaration
from cli.vvm import (
    _application,
    _board,
    _fail,
    _missions,
    _onboard_errors,
    _state_path,
    app_option,
    share_option,
    shown_value,
)
from onboard.sim.simulator import Simulator
from onboard.vm.board import DEFAULT_APPLICATION
from onboard.vm.readback import read_back

PROMPT = "rvm> "
MORE = "...> "
SHOWN_FRAMES = 20  # `:run` lists each busy frame up to this many frames run

HELP = """\
CCL typed at the prompt is a change, sent to the board as a patch (compiled, proven,
packed, checked on board, applied at a frame boundary, probation, committed):
  instr NAME(a: int, ...) -> int { ... }   an instruction of the session's VMlet
  fn / param / var / table / const / task / rule / on apply ...   a declaration
  vmlet NAME { ... }                       a whole VMlet, which the configuration uses
Typing a name again redefines it. An entry ends with `;` or its closing brace, or a blank line.
  = EXPR, :eval EXPR   evaluate EXPR in the running configuration (outside the scheduler)
  :run N               run N frames; cycles per task and per frame
  :apps                the board's applications: part, cycles, state
  :vmlets              the VMlets loaded          :instrs      their instructions
  :services            host services, visible or hidden
  :describe NAME       what NAME is               :source      the configuration's source
  :state               values of the running configuration
  :cycles              cycle use since the VVM started
  :undo                send the configuration before the last change again
  :help                this text                  :quit        leave (end of input too)"""

COMMANDS = ("eval", "run", "apps", "vmlets", "instrs", "services", "describe", "source", "state",
            "cycles", "undo", "help", "quit")


def entries(lines: Iterable[str | None]) -> Iterator[str]:
    """The entries in ``lines``: a command on one line, or CCL up to the ``;`` or ``}``
    that ends it at brace depth 0, or up to a blank line. None (Ctrl-C on a terminal)
    drops the entry being typed."""
    buffer: list[str] = []
    for line in lines:
        if line is None:
            buffer = []
            continue
        stripped = line.strip()
        if not buffer:
            if not stripped or stripped.startswith("//"):
                continue
            if stripped.startswith((":", "=")):
                yield stripped
                continue
        if not stripped:
            yield "\n".join(buffer).strip()
            buffer = []
            continue
        buffer.append(line.rstrip("\n"))
        text = "\n".join(buffer)
        if whole_entry(text):
            yield text.strip()
            buffer = []
    if buffer:
        yield "\n".join(buffer).strip()


def whole_entry(text: str) -> bool:
    """Whether CCL ``text`` is a whole entry: a command, or ended by ``;`` or ``}`` with
    its braces closed (comments aside)."""
    code = re.sub(r"//[^\n]*", "", text).strip()
    if code.startswith((":", "=")):
        return True
    return code.count("{") <= code.count("}") and code.endswith((";", "}"))


class Console:
    """Dispatches entries to the session and says what happened (``out``: one line)."""

    def __init__(self, session: Session, out: Callable[[str], None]) -> None:
        self.session = session
        self.out = out
        self.failures = 0
        self.done = False

    def handle(self, entry: str) -> None:
        try:
            self._dispatch(entry)
        except Refused as exc:
            self.failures += 1
            for line in exc.lines:
                self.out(line if line.startswith(("error", "warning", "hint:", "board:",
                                                         "proven", "packed:", " "))
                         or "\n" in line else f"error: {line}")

    def _dispatch(self, entry: str) -> None:
        if entry.startswith("="):
            self._eval(entry[1:])
            return
        if not entry.startswith(":"):
            try:
                lines = self.session.change(entry)
            except NotADeclaration as exc:
                raise Refused([f"`{exc}` is not a declaration: type one of fn, param, var, "
                               f"table, const, task, rule, on apply, instr, vmlet, or a "
                               f"command (:help)"]) from None
            for line in lines:
                self.out(line)
            return
        name, _, rest = entry[1:].partition(" ")
        rest = rest.strip()
        method = getattr(self, f"_cmd_{name}", None) if name in COMMANDS else None
        if method is None:
            raise Refused([f"no such command: :{name} (:help lists them)"])
        method(rest)

    def _eval(self, expression: str) -> None:
        if not expression.strip():
            raise Refused(["= what? give an expression: = 1 + 2"])
        result: Evaluation = self.session.evaluate(expression)
        if result.trap is not None:
            raise Refused([f"{result.trap} after {result.cycles} cycles"])
        self.out(f"{result.value}   ({result.cycles} cycles)")

    # ------------------------------------------------------------------ commands

    def _cmd_eval(self, rest: str) -> None:
        self._eval(rest)

    def _cmd_help(self, rest: str) -> None:
        self.out(HELP)

    def _cmd_quit(self, rest: str) -> None:
        self.done = True

    def _cmd_undo(self, rest: str) -> None:
        for line in self.session.undo():
            self.out(line)

    def _cmd_source(self, rest: str) -> None:
        ws = self.session.workspace
        if ws.current is None:
            self.out("(no configuration of this session is on board yet)")
            return
        self.out(ws.sources(ws.current)["config.ccl"].rstrip())

    def _cmd_run(self, rest: str) -> None:
        try:
            frames = int(rest)
        except ValueError:
            raise Refused([f":run N: N is a number of frames, not {rest!r}"]) from None
        if not 0 < frames <= 1_000_000:
            raise Refused([f":run N: N from 1 to 1000000, not {frames}"])
        sim = self.session.sim
        tel = sim.vvm.telemetry
        frame_ms = sim.vvm.profile.frame_ms
        start_ms = sim.vvm.now_ms
        first = start_ms // frame_ms
        before = {t.name: (t.runs, t.total_cycles, t.traps, t.overruns)
                  for t in tel.tasks.values()}
        seen = len(sim.reconfiguration.events)
        sim.run(frames * frame_ms)
        self.out(f"ran {frames} frames: t = {start_ms / 1000:.1f} s -> "
                 f"{sim.vvm.now_ms / 1000:.1f} s")
        for t in tel.tasks.values():
            runs0, total0, traps0, over0 = before.get(t.name, (0, 0, 0, 0))
            runs, total = t.runs - runs0, t.total_cycles - total0
            each = f" ({total // runs} per run)" if runs and total % runs == 0 else ""
            self.out(f"  task {t.name} every {t.period_ms / 1000:g} s: {runs} runs, "
                     f"{total} cycles{each}, traps {t.traps - traps0}, "
                     f"overruns {t.overruns - over0}")
        busy = [(f, c) for f, c in zip(tel.frames, tel.cycles, strict=True) if f >= first]
        worst = max((c for _, c in busy), default=0)
        share = sim.vvm.profile.share_cycles_per_frame
        self.out(f"  frames: {len(busy)} busy of {frames}, {sum(c for _, c in busy)} "
                 f"cycles, worst {worst} = {100 * worst / share:.2f} % of the share")
        if frames <= SHOWN_FRAMES:
            for f, c in busy:
                self.out(f"    frame {f}: {c} cycles")
        from cli.vvm import fate_line  # noqa: PLC0415 - patches waiting that the run took
        for e in sim.reconfiguration.events[seen:]:
            self.out(fate_line(e))

    def _cmd_apps(self, rest: str) -> None:
        # Every application of the board (onboard.sim.board_state), the session's own (the
        # default one) as it runs now, the others as their state directories hold them.
        from onboard.sim.board_state import BoardState  # noqa: PLC0415 - on use only

        session = self.session
        board = BoardState.open(session.board, session.mission_dirs)
        for name in board.names():
            sim = session.sim if name == session.application else board.app(name)
            percent, part = board.part_of(name)
            share = f"{percent} %" if percent else "the rest of the share"
            if len(board.names()) == 1:
                share = "the whole share"
            vvm = sim.vvm
            tel = vvm.telemetry
            program = vvm.program
            if program is None:
                what = "(nothing runs)"
            else:
                image = program.image
                stack = ", ".join(v.image.name for v in program.vmlets) or "-"
                tasks = ", ".join(f"{t.name} every {t.period_ms / 1000:g} s"
                                  for t in image.tasks) or "-"
                what = (f"{image.name} v{image.version} {image.short_hash} on {stack}: "
                        f"tasks {tasks}")
            store = (vvm.status().get("store") or {}).get("phase", "-")
            self.out(f"{name}: {share} ({part} cycles per frame), worst frame "
                     f"{tel.worst_cycles} cycles, {tel.cycles_used} cycles used, "
                     f"{tel.fault_count} faults, store {store}")
            self.out(f"  {what}")

    def _cmd_cycles(self, rest: str) -> None:
        vvm = self.session.sim.vvm
        tel = vvm.telemetry
        self.out(f"t = {vvm.now_ms / 1000:.1f} s: {tel.busy_frames} busy frames, "
                 f"{tel.cycles_used} cycles, worst frame {tel.worst_cycles} = "
                 f"{100 * tel.worst_share():.2f} % of the share")
        for t in tel.tasks.values():
            self.out(f"  task {t.name} every {t.period_ms / 1000:g} s: {t.runs} runs, "
                     f"{t.total_cycles} cycles, worst {t.worst_cycles}, traps {t.traps}, "
                     f"overruns {t.overruns}")

    def _cmd_state(self, rest: str) -> None:
        vvm = self.session.sim.vvm
        if vvm.program is None:
            self.out("(no configuration runs)")
            return
        image = vvm.program.image
        self.out(f"config {image.name} v{image.version} {image.short_hash}  "
                 f"t = {vvm.now_ms / 1000:.1f} s")
        try:
            values = read_back(vvm.program, rest.split())
        except KeyError as exc:
            raise Refused([f"no such name in {image.name}: {exc.args[0]}"]) from None
        for value in values:
            self.out(shown_value(value, False))

    def _cmd_vmlets(self, rest: str) -> None:
        vmlets = self.session.sim.vvm.vmlets
        if not vmlets:
            self.out("(no VMlet loaded)")
        for v in vmlets.values():
            below = ", ".join(w.image.name for w in v.lower)
            self.out(f"{v.image.name} v{v.image.version} {v.image.short_hash}"
                     + (f" on {below}" if below else "")
                     + f": instrs {', '.join(i.name for i in v.image.instrs) or '-'}; "
                     f"visible {', '.join(sorted(v.visible)) or '-'}")

    def _cmd_instrs(self, rest: str) -> None:
        shown = False
        for v in self.session.sim.vvm.vmlets.values():
            for i in v.image.instrs:
                self.out(f"{i.name}  ({v.image.name} v{v.image.version})")
                shown = True
        if not shown:
            self.out("(no instruction beyond the built-in ones)")

    def _visible(self) -> set[str]:
        program = self.session.sim.vvm.program
        if program is None:
            return set()
        return {n for v in program.vmlets for w in v.stack().values() for n in w.visible}

    def _cmd_services(self, rest: str) -> None:
        visible = self._visible()
        for name, native in self.session.sim.vvm.profile.natives.items():
            args = ", ".join(a.name for a in native.args)
            result = f" -> int[{native.result[0]}..{native.result[1]}]" \
                if native.result else ""
            self.out(f"{'visible' if name in visible else 'hidden '}  {name}({args}){result}")

    def _cmd_describe(self, rest: str) -> None:
        if not rest:
            raise Refused([":describe NAME: which name?"])
        ws = self.session.workspace
        typed = (ws.current.names() if ws.current is not None else {}).get(rest)
        if typed is not None:
            self.out(typed)
            return
        vvm = self.session.sim.vvm
        if rest in vvm.vmlets:
            v = vvm.vmlets[rest]
            self.out(f"vmlet {rest} v{v.image.version} {v.image.short_hash}: instrs "
                     f"{', '.join(i.name for i in v.image.instrs) or '-'}; exposes "
                     f"{', '.join(v.image.exposes) or '-'}; visible "
                     f"{', '.join(sorted(v.visible)) or '-'}")
            return
        for v in vvm.vmlets.values():
            if any(i.name == rest for i in v.image.instrs):
                self.out(f"instr {rest}: of VMlet {v.image.name} v{v.image.version} (not "
                         f"typed in this session)")
                return
        native = vvm.profile.natives.get(rest)
        if native is not None:
            self.out(f"host service {rest}({', '.join(a.name for a in native.args)}), "
                     f"{'visible' if rest in self._visible() else 'hidden'}"
                     + (f": {native.doc}" if native.doc else ""))
            return
        if vvm.program is not None:
            try:
                for value in read_back(vvm.program, [rest]):
                    self.out(shown_value(value, False))
                return
            except KeyError:
                pass
        raise Refused([f"unknown name: {rest}"])


def _interactive(console: Console, directory: Path) -> None:
    """Read entries from the terminal with line editing, history and completion."""
    import readline  # noqa: PLC0415 - only on a terminal

    history = directory / "history"
    try:
        readline.read_history_file(history)
    except OSError:
        pass

    def complete(text: str, state: int) -> str | None:
        ws = console.session.workspace
        vvm = console.session.sim.vvm
        names = [f":{c}" for c in COMMANDS]
        names += list(ws.current.names()) if ws.current is not None else []
        names += [i.name for v in vvm.vmlets.values() for i in v.image.instrs]
        names += list(vvm.profile.natives)
        found = sorted(n for n in set(names) if n.startswith(text))
        return found[state] if state < len(found) else None

    readline.set_completer(complete)
    readline.set_completer_delims(" \t\n(),;=+-*/<>")
    readline.parse_and_bind("tab: complete")

    def lines() -> Iterator[str | None]:
        pending = ""  # what was typed of an entry not yet whole
        while not console.done:
            try:
                line = input(MORE if pending else PROMPT)
            except EOFError:
                return
            except KeyboardInterrupt:  # drops the entry being typed
                click.echo("")
                pending = ""
                yield None
                continue
            yield line
            pending = "" if not line.strip() or whole_entry(pending + "\n" + line) \
                else pending + "\n" + line

    try:
        for entry in entries(lines()):
            console.handle(entry)
            if console.done:
                break
    finally:
        try:
            readline.write_history_file(history)
        except OSError:
            pass


@click.command("repl")
@click.argument("state", required=False)
@click.option("--mission", help="Start a fresh VVM for this mission (in STATE if it does "
              "not exist yet, else in a new temporary directory).")
@click.option("--uses", "base", multiple=True, metavar="VMLET",
              help="A mission VMlet the session's configuration runs on (repeatable; "
                   "at a session's start only).")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True,
              help="Seed of a fresh VVM's simulated spacecraft.")
@click.option("--echo", is_flag=True, help="Not on a terminal: print each entry after a "
              "prompt before what it did (a readable transcript).")
@app_option
@share_option
@output_options
@click.pass_context
def repl(ctx: click.Context, state: str | None, mission: str | None, base: tuple[str, ...],
         seed: int, echo: bool, app: str, share: int | None, as_json: bool) -> None:
    """An interactive session on a simulated VVM: show and change it while it runs. With
    --app NAME, on that application of the board (added with --share PERCENT if new): its
    configuration is proven within its part and patched through its own patcher."""
    if as_json:
        _fail("vvm repl has no --json output", "run it without --json", EXIT_USAGE)
    missions = _missions(ctx, ())
    if state is None and mission is None:
        _fail("give a state directory or --mission NAME",
              "`vvm repl STATE` or `vvm repl --mission corot`", EXIT_USAGE)
    fresh = mission is not None and (state is None or not Path(state).exists())
    if state is None:
        state = tempfile.mkdtemp(prefix="vvm-repl-")
        note(f"note: a fresh VVM in {state} (kept: `vvm repl {state}` goes on)", "vvm")
    with _onboard_errors(state):
        if fresh:
            assert mission is not None
            Simulator.init(_state_path(state, new=True), mission, seed, missions)
        elif mission is not None:
            _fail(f"{state} exists: it has its mission already",
                  "drop --mission, or give a new directory", EXIT_USAGE)
        board = _board(state, missions)
        sim = _application(state, board, app, share)
        if not fresh and base and (sim.directory / WORKSPACE_DIR / SESSION_FILE).exists():
            _fail(f"{state} holds a session already, on the VMlets it started on",
                  "drop --uses (a typed `vmlet NAME { uses ...; }` adds a layer)",
                  EXIT_USAGE)
        part = None if app == DEFAULT_APPLICATION else (app, board.part_of(app)[0])
        session = Session.attach(sim, base, missions, application=part,
                                 board=board.directory)
        console = Console(session, click.echo)
        if sys.stdin.isatty():
            click.echo(f"vvm repl: mission {sim.vvm.profile.name}, state {state}; "
                       f":help lists the commands")
            _interactive(console, session.workspace.directory)
        else:
            for entry in entries(sys.stdin):
                if echo:
                    click.echo(PROMPT + entry.replace("\n", "\n" + MORE))
                console.handle(entry)
                if console.done:
                    break
    sys.exit(EXIT_REJECTED if console.failures else EXIT_OK)
