"""The ``vvm`` command: the onboard simulator's user interface.

It imports nothing of the ground toolchain (``ccl``, ``ground``): the onboard side stands
alone, and so does its simulator. The one exception is ``vvm repl`` (``cli.rvm``, the RVM:
a ground console attached to a simulated board, which compiles and proves what is typed at
it), named in ``LAZY_COMMANDS`` and imported only when it runs.

``vvm init/load/apply/run/status/dump`` drive a simulated VVM kept in a state directory
(``onboard.sim.simulator``), a board of one or several applications
(``onboard.sim.board_state``: ``apply/status/dump --app NAME``, ``run`` drives them all);
``vvm inspect`` reads an image as the satellite would; ``vvm dump`` reads back the values
of the configuration running.

The command line follows ``ccl``'s convention (``cli.options``): ``--missions``, ``--json``,
``--quiet`` and ``--version`` before the command, ``--json``/``--quiet`` (and ``--missions``)
after it too. Exit codes as in ``ccl``: 0 ok, 1 rejected input (a refused image or a
damaged state, a patch rejected or rolled back, a malformed key file), 2 usage (a missing or
unreadable input file or state directory, a bad duration), 130 interrupted (what ``vvm
run`` simulated until then is saved). Opening a state directory whose last run was cut short
reboots its VVM (``onboard.patching.boot``), with a note on stderr.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TypeVar

import click

from cli.console import (
    EXIT_INTERRUPTED,
    EXIT_REJECTED,
    EXIT_USAGE,
    Failure,
    emit_json,
    failure_json,
    note,
    progress,
    require_inputs,
    run_click,
    show,
)
from cli.files import regular_inputs
from cli.lazy_group import LazyCommand, LazyGroup
from cli.options import MAX_INPUT_BYTES, global_options, output_options
from onboard.mission import MissionError, UnknownMission
from onboard.patching.patch_format import Reason, key_from_text
from onboard.patching.patcher import Fate, FateStatus
from onboard.patching.reconfiguration import PatchEvent, is_profile_patch
from onboard.sim.board_state import BoardState
from onboard.sim.simulator import Simulator, StateError, parse_duration
from onboard.vm.board import DEFAULT_APPLICATION
from onboard.vm.image import Image, ImageError, decode_image
from onboard.vm.listing import listing
from onboard.vm.loader import LoadError
from onboard.vm.readback import Value, read_back

F = TypeVar("F", bound=Callable[..., Any])

DAY_MS = 86_400_000
MAX_RUN_DAYS = 400  # one run longer than this is a typo, or hours of host time
HOST_SECONDS_PER_DAY = 30  # what a simulated day of corot took on the development machines
NOTE_RUN_DAYS = 1  # a run longer than this says how long it will take
SHOWN_ELEMENTS = 12  # of a long array in `vvm dump`, unless --full


# ---------------------------------------------------------------------- shared plumbing


def _fail(message: str, hint: str = "", code: int = EXIT_REJECTED, where: str = "") -> NoReturn:
    """Show the failure and exit with ``code``. (A ``Failure`` is not raised through click:
    it is frozen, and the context managers click runs commands in set its traceback.)"""
    show(Failure(message, hint, code, where), "vvm")
    sys.exit(code)


def _missions(ctx: click.Context, own: tuple[str, ...]) -> tuple[Path, ...]:
    """The mission folders: the group's ``--missions`` then the command's own."""
    group = tuple((ctx.obj or {}).get("missions", ()))
    return tuple(Path(d) for d in (*group, *own))


def state_command(command: F) -> F:
    """The STATE argument and a per-command ``--missions`` (the older form, still
    accepted), on top of the output options."""
    command = click.option("--missions", "own_missions", multiple=True,
                           type=click.Path(exists=True, file_okay=False), metavar="DIR",
                           help="Extra folder of mission profiles (as the group option).")(
        command)
    command = click.argument("state", type=click.Path())(command)
    return output_options(command)


@contextmanager
def _onboard_errors(state: str) -> Iterator[None]:
    """The simulator's and the missions' errors as failures; a state directory that cannot
    be written (or read) as a usage error, not a crash."""
    try:
        yield
    except (StateError, MissionError) as exc:
        _fail(exc.message, exc.hint,
              EXIT_USAGE if isinstance(exc, UnknownMission) else EXIT_REJECTED)
    except OSError as exc:
        where = exc.filename if exc.filename is not None else state
        _fail(f"cannot use {where}: {exc.strerror or exc}",
              "check that the state directory is writable and the disk not full",
              EXIT_USAGE)


def _state_path(state: str, *, new: bool = False) -> Path:
    """The state directory ``state``: a usage failure if it is a file, or (unless ``new``)
    does not exist."""
    path = Path(state)
    if path.exists() and not path.is_dir():
        _fail(f"{state} is a file, not a state directory",
              "give a directory (`vvm init DIR --mission NAME` creates one)",
              EXIT_USAGE)
    if not new and not path.exists():
        _fail(f"no such state directory: {state}",
              f"create one with `vvm init {state} --mission NAME`", EXIT_USAGE)
    return path


def _open(state: str, missions: tuple[Path, ...],
          app: str = DEFAULT_APPLICATION) -> Simulator:
    """Open application ``app`` of the state directory; say so if its VVM had to reboot
    (its last run was cut short, e.g. by a power loss)."""
    return _opened(state, app, _board(state, missions).app(app))


def _board(state: str, missions: tuple[Path, ...]) -> BoardState:
    """The applications of the state directory (``onboard.sim.board_state``)."""
    return BoardState.open(_state_path(state), missions)


def _opened(state: str, app: str, sim: Simulator) -> Simulator:
    if sim.rebooted:
        store = sim.vvm.status().get("store") or {}
        whose = "" if app == DEFAULT_APPLICATION else f" application {app}:"
        note(f"note: {state}:{whose} the last run did not finish (power loss?): the VVM rebooted "
             f"from its store (now {store.get('phase')}, current "
             f"{(store.get('current') or '-')[:16]})", "vvm")
    return sim


def _read_input(name: str) -> bytes:
    """The bytes of input file ``name``; a usage failure if it is missing, unreadable (a
    directory, no permission) or not a regular file (a device such as /dev/zero, a pipe:
    as in ``ccl``), a rejected input if it is far too large to be one."""
    require_inputs([name])
    regular_inputs([name])
    try:
        with open(name, "rb") as file:  # at most a bit more than any input can be
            data = file.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        _fail(f"cannot read {name}: {exc.strerror}", "check the path", EXIT_USAGE)
    if len(data) > MAX_INPUT_BYTES:
        _fail(f"larger than {MAX_INPUT_BYTES >> 20} MiB: no image, patch or key is",
              "check the path", EXIT_REJECTED, name)
    return data


def _read_image(name: str) -> tuple[Image, bytes]:
    """The image in file ``name`` and its bytes; a ``Failure`` if it cannot be read or is
    not an image."""
    data = _read_input(name)
    try:
        return decode_image(data), data
    except ImageError as exc:
        where = f" at offset {exc.offset}" if exc.offset is not None else ""
        _fail(f"not an image: {exc.message}", "images are written by `ccl compile`",
              EXIT_REJECTED, f"{name}{where}")


def _read_key(name: str) -> bytes:
    """The patch key in file ``name``: unreadable is a usage error (2), malformed a
    rejected input (1), as in ``ccl``."""
    data = _read_input(name)
    try:
        return key_from_text(data.decode("utf-8"))
    except UnicodeDecodeError:
        _fail("not a key file: not text", "write one with `ccl keygen -o FILE`",
              EXIT_REJECTED, name)
    except ValueError as exc:
        _fail(f"not a key file: {exc}", "write one with `ccl keygen -o FILE`",
              EXIT_REJECTED, name)


def fate_line(e: PatchEvent) -> str:
    """What became of a patch, in one line (``vvm apply``, ``vvm status``, ``vvm repl``)."""
    f = e.fate
    text = f"  t = {e.time_ms / 1000:9.1f} s  patch {e.ticket}"
    text += f" (seq {f.seq})" if f.seq is not None else ""
    text += f"  {f.status.value}"
    if f.reason is not None:
        where = f" at {f.field}" if f.field else ""
        where += f", byte {f.offset}" if f.offset is not None else ""
        text += f" [{f.reason.value}{where}]"
    return text + (f": {f.message}" if f.message else "")


# ---------------------------------------------------------------------- the group


#: Commands imported when they run: ``repl`` reaches the compiler (``cli.rvm``), which
#: ``vvm``'s other commands, and ``vvm --help``, never import.
LAZY_COMMANDS = {
    "repl": LazyCommand("cli.rvm.command:repl", "An interactive session on a simulated "
                        "VVM: show and change it while it runs."),
}


@click.group(cls=LazyGroup, lazy=LAZY_COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@global_options("vvm")
@click.pass_context
def vvm(ctx: click.Context, missions: tuple[str, ...]) -> None:
    """The onboard VVM simulator: a simulated VVM kept in a state directory, fed images and
    patches, run on a simulated clock, and read back."""
    ctx.ensure_object(dict)
    ctx.obj["missions"] = missions


@vvm.command()
@click.argument("image")
@output_options
def inspect(image: str, as_json: bool) -> None:
    """Decode an IMAGE file as the VVM would and list it."""
    decoded, data = _read_image(image)
    if as_json:
        emit_json({"name": decoded.name, "version": decoded.version,
                   "mission": decoded.mission, "hash": decoded.content_hash.hex(),
                   "bytes": len(data)})
    else:
        click.echo("\n".join(listing(decoded)))


@vvm.command()
@state_command
@click.option("--mission", required=True, help="The mission's name (NAME or NAME:VARIANT).")
@click.option("--seed", type=click.IntRange(min=0, max=(1 << 63) - 1), default=1,
              show_default=True, help="Seed of the simulated spacecraft.")
@click.option("--key", metavar="FILE", help="The patch key (from `ccl keygen`); default: "
              "the mission's development key, which a flight profile refuses.")
@click.pass_context
def init(ctx: click.Context, state: str, own_missions: tuple[str, ...], mission: str,
         seed: int, key: str | None, as_json: bool) -> None:
    """Create a STATE directory holding a new VVM for a mission."""
    patch_key = _read_key(key) if key is not None else None
    with _onboard_errors(state):
        sim = Simulator.init(_state_path(state, new=True), mission, seed,
                             _missions(ctx, own_missions), patch_key)
    profile = sim.vvm.profile
    if as_json:
        emit_json({"ok": True, "state": state, "mission": profile.name, "seed": seed,
                   "share_cycles_per_frame": profile.share_cycles_per_frame,
                   "frame_ms": profile.frame_ms})
        return
    click.echo(f"{state}: VVM for mission {profile.name}, seed {seed}, "
               f"share {profile.share_cycles_per_frame} cycles per "
               f"{profile.frame_ms} ms frame")


def _application(state: str, board: BoardState, app: str, share: int | None) -> Simulator:
    """Application ``app`` of ``board``, added with ``share`` % of every frame if it is not
    on board yet (``vvm apply``, ``vvm load``); a usage failure without ``share`` then, or
    with another part than the one it has."""
    if app not in board.names():
        if share is None:
            _fail(f"no application `{app}` on {state} (on board: {', '.join(board.names())})",
                  "give its part of the share with --share PERCENT to add it",
                  EXIT_USAGE, "--app")
        try:
            board.add(app, share)
        except StateError as exc:
            _fail(f"application `{app}` refused: {exc.message}", exc.hint,
                  EXIT_REJECTED, "--share")
        note(f"note: application {app} added with {share} % of the share", "vvm")
    elif share is not None and share != board.part_of(app)[0]:
        _fail(f"application `{app}` has {board.part_of(app)[0]} % of the share, not "
              f"{share} %", "leave --share out for an application on board; a part "
              "is fixed when the application is added", EXIT_USAGE, "--share")
    return _opened(state, app, board.app(app))


def share_option(command: F) -> F:
    """``--share PERCENT``: the part of the share of an application this command adds."""
    return click.option("--share", "share", type=click.IntRange(min=1, max=100),
                        metavar="PERCENT",
                        help="The application's part of the share (its `share N %`), when "
                             "this command adds it to the board.")(command)


def app_option(command: F) -> F:
    """``--app NAME``: which application of the board (default: the default one)."""
    return click.option("--app", "app", default=DEFAULT_APPLICATION, show_default=True,
                        metavar="NAME", help="The application of the board.")(command)


@vvm.command()
@state_command
@click.argument("images", nargs=-1, required=True)
@app_option
@share_option
@click.pass_context
def load(ctx: click.Context, state: str, own_missions: tuple[str, ...],
         images: tuple[str, ...], app: str, share: int | None, as_json: bool) -> None:
    """Load VMlet and configuration IMAGES directly into application APP (as on the bench,
    no link); a new application is added with --share PERCENT of every frame."""
    require_inputs(list(images))
    decoded = [(name, _read_image(name)[0]) for name in images]  # all readable, or nothing
    loaded: list[dict[str, Any]] = []
    with _onboard_errors(state):
        sim = _application(state, _board(state, _missions(ctx, own_missions)), app, share)
        for name, image in decoded:
            try:
                what = sim.load(image)
            except LoadError as exc:
                _fail(f"refused ({exc.code}): {exc.message}",
                      "load the VMlets a configuration uses first; the images "
                      "before this one are loaded" if loaded else
                      "nothing was loaded; load the VMlets a configuration uses "
                      "first", EXIT_REJECTED, name)
            loaded.append({"file": name, "kind": image.kind.name.lower(), "name": image.name,
                           "version": image.version, "hash": image.content_hash.hex(),
                           "done": what})
            if not as_json:
                click.echo(what)
    if as_json:
        emit_json({"ok": True, "application": app, "loaded": loaded})


_REJECTION_HINT = ("re-pack it against the configuration on board (`vvm status` shows its "
                   "hash) with a sequence number above the last accepted")


_OVER_BUDGET_HINT = ("the configuration claims more than the application's part of the share "
                     "(`vvm status --app NAME` shows it) or the memory: give it a larger part "
                     "or pack one proven to need less (`ccl verify` shows its figures)")


_PROFILE_HINT = ("so are the figures in force (`vvm status` shows them); pack figures "
                 "within the flight build's [limits] that leave every configuration on "
                 "board what it is proven to need, with a sequence number above the last "
                 "profile patch's")


_ROLLBACK_HINT = ("the previous configuration runs on; its sequence number is used up, "
                  "re-pack the fix with a higher one")


@vvm.command()
@state_command
@click.argument("patch")
@app_option
@share_option
@click.pass_context
def apply(ctx: click.Context, state: str, own_missions: tuple[str, ...], patch: str,
          app: str, share: int | None, as_json: bool) -> None:
    """Hand application APP a PATCH and run until it is active or rejected (or, while
    another patch is handled, until it waits in the queue: the next `vvm run` takes it).
    The first patch for a new application adds it, with --share PERCENT of every frame."""
    data = _read_input(patch)
    with _onboard_errors(state):
        sim = _application(state, _board(state, _missions(ctx, own_missions)), app, share)
        events = sim.apply(data)
    last = events[-1].fate
    store = sim.vvm.status().get("store")
    refusal = _refusal(patch, last, profile=is_profile_patch(data))
    if as_json:
        answer: dict[str, Any] = {"ok": refusal is None}
        if refusal is not None:  # the one failure shape too, beside what became of it
            answer.update(failure_json(refusal))
        emit_json({**answer, "patch": patch, "application": app,
                   "fates": [e.to_json() for e in events], "store": store})
    else:
        click.echo(f"{patch}: {len(data)} bytes")
        click.echo("\n".join(fate_line(e) for e in events))
        if last.status is FateStatus.RECEIVED:
            note(f"note: it waits in the queue behind the patch the store holds "
                 f"({store.get('phase') if store else '-'}); `vvm run` goes on with it",
                 "vvm")
        elif refusal is not None:
            show(refusal, "vvm")
    if refusal is not None:
        raise SystemExit(refusal.code)


def _refusal(patch: str, fate: Fate, *, profile: bool = False) -> Failure | None:
    """A patch rejected, or rolled back at its switch, as a failure (exit 1): what became
    of it, where in its bytes, and what to do; None for any other fate. ``profile``: a
    profile patch (new soft figures), whose remedy is another figure, not another base."""
    if fate.status is FateStatus.REJECTED:
        remedy = _PROFILE_HINT if profile else _OVER_BUDGET_HINT \
            if fate.reason is Reason.OVER_BUDGET else _REJECTION_HINT
        hint = f"the state is unchanged; {remedy}"
    elif fate.status is FateStatus.ROLLED_BACK:
        hint = _ROLLBACK_HINT
    else:
        return None
    why = ""
    if fate.reason is not None:
        why = f" at {fate.field}" if fate.field else ""
        why += f", byte {fate.offset}" if fate.offset is not None else ""
        why = f" ({fate.reason.value}{why})"
    return Failure(f"patch {fate.status.value}{why}: {fate.message}", hint, EXIT_REJECTED,
                   patch)


def _host_time(ms: int) -> str:
    """Roughly how long simulating ``ms`` takes on this kind of machine, in words."""
    seconds = ms / DAY_MS * HOST_SECONDS_PER_DAY
    if seconds < 120:
        return f"about {seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"about {seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"about {seconds / 3600:.1f} h"
    if seconds < 2 * 365 * 86400:
        return f"about {seconds / 86400:.0f} days"
    return f"about {seconds / (365.25 * 86400):.0f} years"


def _duration(text: str) -> int:
    """``--for``'s milliseconds; a usage failure for what is not a duration or is longer
    than one run should be."""
    try:
        ms = parse_duration(text)
    except ValueError as exc:
        _fail(str(exc), "durations look like 90s, 30m, 6h, 2d", EXIT_USAGE,
              "--for")
    if ms > MAX_RUN_DAYS * DAY_MS:
        _fail(f"{text} is {ms / DAY_MS:g} days of simulated time: {_host_time(ms)} "
              f"of host time", f"one run simulates at most {MAX_RUN_DAYS} days; run "
              f"longer spans in parts (each `vvm run` goes on where the last "
              f"stopped)", EXIT_USAGE, "--for")
    return ms


@contextmanager
def _stop_on_interrupt() -> Iterator[Callable[[], bool]]:
    """While inside, Ctrl-C asks the run to stop at its next slice (so that what was
    simulated is saved) rather than raising; a second Ctrl-C raises as usual."""
    asked = [False]

    def handler(signum: int, frame: FrameType | None) -> None:
        if asked[0]:
            raise KeyboardInterrupt
        asked[0] = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (an in-process caller): no handler
        yield lambda: False
        return
    try:
        yield lambda: asked[0]
    finally:
        signal.signal(signal.SIGINT, previous)


def _ticking(ticker: Any, before: int) -> Callable[[int], None]:
    """The progress of one application's run, after ``before`` ms of the others'."""
    return lambda done: ticker.update((before + done) / 1000)


@vvm.command()
@state_command
@click.option("--for", "duration", required=True, metavar="DURATION",
              help="Simulated time to run, e.g. 90s, 30m, 6h, 2d.")
@click.pass_context
def run(ctx: click.Context, state: str, own_missions: tuple[str, ...], duration: str,
        as_json: bool) -> None:
    """Advance the simulated clock of every application of the board, running the tasks and
    the patches waiting. Ctrl-C stops early and keeps what was simulated (exit 130)."""
    ms = _duration(duration)
    with _onboard_errors(state):
        board = _board(state, _missions(ctx, own_missions))
        apps = [(name, _opened(state, name, sim)) for name, sim in board.all()]
        sim = apps[0][1]  # the default application
        seen = {name: len(a.reconfiguration.events) for name, a in apps}
        starts = {name: a.vvm.now_ms for name, a in apps}
        start = sim.vvm.now_ms
        complete = True
        with _stop_on_interrupt() as stop:
            if ms > NOTE_RUN_DAYS * DAY_MS:
                note(f"note: simulating {ms / DAY_MS:g} days takes {_host_time(ms)}; Ctrl-C "
                     f"stops and keeps what was simulated", "vvm")
            total = ms * len(apps) / 1000
            with progress("simulating", total=total, unit="s simulated") as ticker:
                # applications share nothing but the clock: one after the other is the
                # same as frame by frame (onboard.vm.board)
                # to one end for all: an apply runs only its application's clock on
                end = max(a.vvm.now_ms for _, a in apps) + ms
                for i, (_, a) in enumerate(apps):
                    complete = a.run(end - a.vvm.now_ms, stop=stop,
                                     advanced=_ticking(ticker, i * ms))
                    if not complete:
                        break
    tel = sim.vvm.telemetry
    ran = sim.vvm.now_ms - start
    fates = sim.reconfiguration.events[seen[DEFAULT_APPLICATION]:]
    # the other applications (none on a single-application board: the output is as it was)
    others: dict[str, dict[str, Any]] = {
        name: {"ran_ms": a.vvm.now_ms - starts[name], "time_ms": a.vvm.now_ms,
               "fault_count": a.vvm.telemetry.fault_count,
               "worst_frame_share_percent": round(100 * a.vvm.telemetry.worst_share(), 1),
               "events": a.reconfiguration.events[seen[name]:]}
        for name, a in apps[1:]}
    if as_json:
        answer: dict[str, Any] = {
            "ok": complete, "complete": complete, "ran_ms": ran,
            "time_ms": sim.vvm.now_ms, "fault_count": tel.fault_count,
            "worst_frame_share_percent": round(100 * tel.worst_share(), 1),
            "fates": [e.to_json() for e in fates]}
        if others:
            answer["applications"] = {
                name: {**{k: v for k, v in o.items() if k != "events"},
                       "fates": [e.to_json() for e in o["events"]]}
                for name, o in others.items()}
        emit_json(answer)
    else:
        click.echo(f"ran {ran / 1000:.1f} s of simulated time: now "
                   f"t = {sim.vvm.now_ms / 1000:.1f} s, {tel.fault_count} faults, worst "
                   f"frame {100 * tel.worst_share():.1f} % of the share")
        for e in fates:
            click.echo(fate_line(e))
        for name, o in others.items():
            click.echo(f"  app {name}: ran {o['ran_ms'] / 1000:.1f} s, {o['fault_count']} "
                       f"faults, worst frame {o['worst_frame_share_percent']} % of the share")
            for e in o["events"]:
                click.echo(f"  app {name}: {fate_line(e)}")
    if not complete:
        note(f"interrupted: stopped after {ran / 1000:.1f} s of the {ms / 1000:.1f} s asked "
             f"(now t = {sim.vvm.now_ms / 1000:.1f} s); what was simulated is saved", "vvm")
        raise SystemExit(EXIT_INTERRUPTED)


@vvm.command()
@state_command
@app_option
@click.pass_context
def status(ctx: click.Context, state: str, own_missions: tuple[str, ...], app: str,
           as_json: bool) -> None:
    """Print the telemetry of application APP: configuration, VMlets, frames, tasks,
    faults, store, patches (and, on a board of several, its part and the others')."""
    with _onboard_errors(state):
        board = _board(state, _missions(ctx, own_missions))
        sim = _opened(state, app, board.app(app))
    report = sim.vvm.status()
    if len(board.names()) > 1:
        report["application"] = app
        report["applications"] = {
            name: {"share_percent": board.part_of(name)[0],
                   "part_cycles": board.part_of(name)[1]} for name in board.names()}
    if as_json:
        # indent 1, as always: the golden transcripts and scripts read it so; "ok" first,
        # as in every other command's JSON
        click.echo(json.dumps({"ok": True, **report}, indent=1))
        return
    cfg = report["config"]
    lines = [f"mission {report['mission']}  t = {report['time_ms'] / 1000:.1f} s  "
             f"config {cfg['name'] or '-'} v{cfg['version']} {cfg['hash'][:16]}"]
    lines += [f"  vmlet {v['name']} v{v['version']} {v['hash'][:16]}  "
              f"visible: {', '.join(v['visible'])}" for v in report["vmlets"]]
    lines.append(f"  frames {report['frames']} ({report['busy_frames']} busy), worst frame "
                 f"{report['worst_frame_cycles']} cycles = "
                 f"{report['worst_frame_share_percent']} % of the share, "
                 f"{report['worst_frame_cpu_percent']} % of the CPU")
    lines += [f"  task {t['name']:<16} every {t['period_ms'] / 1000:g} s  runs {t['runs']}  "
              f"worst {t['worst_cycles']} cycles  overruns {t['overruns']}  "
              f"traps {t['traps']}" for t in report["tasks"]]
    lines.append(f"  faults {report['fault_count']}")
    for name, part in report.get("applications", {}).items():
        mark = "*" if name == app else " "
        share = f"{part['share_percent']} % of the share" if part["share_percent"] else \
            "the rest of the share"
        lines.append(f"  {mark}app {name}: {share}, {part['part_cycles']} cycles per frame")
    lines += [f"    t={f['time_ms'] / 1000:.1f} s {f['task']}: {f['code']} in {f['unit']} "
              f"+{f['offset']}" for f in report["faults"][-10:]]
    store = report["store"]
    lines.append(f"  store {store['phase']}, last sequence {store['last_seq']}, current "
                 f"{(store['current'] or '-')[:16]}, previous "
                 f"{(store['previous'] or '-')[:16]}")
    if report.get("patches_waiting"):
        lines.append(f"  patches waiting {report['patches_waiting']}")
    lines += [fate_line(e) for e in sim.reconfiguration.events[-10:]]
    for line in lines:
        click.echo(line)


def shown_value(value: Value, full: bool) -> str:
    """A datum in one line: scalar value, or the array's elements (the first and the last
    few of a long one, unless ``full``), with its declared range."""
    span = f"[{value.lo}..{value.hi}]"
    if value.scalar:
        return f"  {value.kind:<5} {value.name} = {value.values[0]}  {span}"
    items = [str(v) for v in value.values]
    if not full and len(items) > SHOWN_ELEMENTS:
        head = SHOWN_ELEMENTS - 4
        items = [*items[:head], f"... {len(items) - head - 4} more ...", *items[-4:]]
    return (f"  {value.kind:<5} {value.name}[{len(value.values)}] = {{{', '.join(items)}}}  "
            f"each {span}")


@vvm.command()
@state_command
@click.argument("names", nargs=-1)
@click.option("--full", is_flag=True, help="Every element of long arrays and tables.")
@app_option
@click.pass_context
def dump(ctx: click.Context, state: str, own_missions: tuple[str, ...],
         names: tuple[str, ...], full: bool, app: str, as_json: bool) -> None:
    """Read back the running configuration's parameters, state variables, tables and state
    arrays (all, or those called NAMES), with their values and declared ranges."""
    with _onboard_errors(state):
        sim = _open(state, _missions(ctx, own_missions), app)
    program = sim.vvm.program
    if program is None:
        _fail(f"{state}: no configuration runs", "load one (`vvm load`) or apply a "
              "patch (`vvm apply`) and `vvm run` it", EXIT_REJECTED)
    try:
        values = read_back(program, names)
    except KeyError as exc:
        known = ", ".join(v.name for v in read_back(program))
        _fail(f"no such name in {program.image.name} v{program.image.version}: "
              f"{exc.args[0]}", f"known names: {known or '(none)'}",
              EXIT_REJECTED)
    image = program.image
    if as_json:
        emit_json({"ok": True, "time_ms": sim.vvm.now_ms,
                   "config": {"name": image.name, "version": image.version,
                              "hash": image.content_hash.hex()},
                   "values": [v.to_json() for v in values]})
        return
    click.echo(f"config {image.name} v{image.version} {image.content_hash.hex()[:16]}  "
               f"t = {sim.vvm.now_ms / 1000:.1f} s")
    for value in values:
        click.echo(shown_value(value, full))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``vvm`` console script."""
    run_click(vvm, argv, "vvm")


if __name__ == "__main__":  # pragma: no cover
    main()
