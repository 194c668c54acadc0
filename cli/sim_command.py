"""The ``ccl sim`` command: run mission scenarios end to end.

``ccl sim SCENARIO... [--ledger PATH] [--workdir DIR] [--plot DIR] [--dump NAME...] [--json]``:
each SCENARIO is a scenario file or a folder of them (``*.toml``, in name order). Every file
is read and checked first; then for each: compile, verify, pack, uplink over the passes,
receive, apply and probation on board under the 10 % share, telemetry back, ledger updated
(see ``ground/scenario.py``), then a report. The ledger is the simulation's own, in memory,
unless ``--ledger FILE`` names one: simulated outcomes never reach the operational ledger by
default. Exit 0 when every scenario met its expectations and the ground's record agrees with
what is on board, 1 otherwise (or for a scenario file that cannot be run: empty, binary, not
a scenario), 2 for usage errors.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click

from ccl.driver import Compiler
from cli.console import (
    EXIT_REJECTED,
    EXIT_USAGE,
    Ticker,
    fail,
    note,
    out_console,
    progress,
    refuse,
)
from cli.executor import Executor, executor_options
from cli.ground_commands import existing_parent
from cli.options import output_options
from ground.errors import GroundError
from ground.ledger import Ledger
from ground.scenario import (
    DumpResult,
    PatchOutcome,
    Scenario,
    ScenarioError,
    ScenarioReport,
    check_dump_names,
    load_scenario,
    run_scenario,
)
from ground.tm_link import TmRecording, UdpTmLink, parse_address

out = out_console(markup=False)


def _scenario_files(args: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(f for f in p.glob("*.toml") if f.is_file())
            if not found:
                fail(f"{p} holds no scenario (*.toml)", "give a scenario file or a folder of "
                     "them", EXIT_REJECTED)
            files += found
        elif p.is_file():
            files.append(p)
        elif p.exists():  # a device or a pipe: reading it may never end
            fail(f"{p} is not a regular file", "give a scenario file or a folder of them",
                 EXIT_USAGE)
        else:
            fail(f"no scenario at {p}", "give a scenario file or a folder of them", EXIT_USAGE)
    return files


def _load(files: list[Path]) -> list[Scenario]:
    """Every scenario, read and checked before any is run: a file that is not one (empty,
    binary, not TOML, keys missing) stops the command at once (exit 1)."""
    scenarios = []
    for f in files:
        try:
            scenarios.append(load_scenario(f))
        except GroundError as exc:
            refuse(exc, EXIT_REJECTED)
    return scenarios


def _t(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S}" if t is not None else "-"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith("s") else "s")


def _outcome_lines(o: PatchOutcome) -> list[str]:
    """Two or three lines per configuration: what the ground did, what the satellite did."""
    name = o.name + (f" (again, after {o.recovery_of} was rejected)" if o.recovery_of else "")
    verdict = o.verdict + (f", {o.share_used_percent:.1f} % of the share at worst"
                           if o.share_used_percent is not None and o.verdict == "proven"
                           else "")
    check = "" if o.expected is None else \
        ("  [as expected]" if o.met else f"  [EXPECTED {o.expected}]")
    lines = [f"  step {o.step + 1}: {name}: {verdict}"]
    u = o.uplink
    if o.verdict != "proven":
        lines.append(f"    never uplinked: {o.detail}")
    elif u is not None:
        lines.append(f"    {o.kind} patch, {o.size} bytes, seq {o.seq}: "
                     f"{_plural(u.frames_sent, 'frame')} sent ({u.frames_lost} lost), "
                     f"complete on board {_t(u.completed_at)}, confirmed by telemetry "
                     f"{_t(u.confirmed_at)}")
    fates = ", ".join(f"{f.status} {f.time:%H:%M:%S}" for f in o.fates)
    lines.append(f"    on board: {fates or '-'} -> {o.final}{check}")
    return lines


def _dump_lines(d: DumpResult) -> list[str]:
    """What a dump read back: one line per value (an array's first values and its length)."""
    when = "at the end" if d.step is None else f"after step {d.step + 1}"
    a = d.answer
    if a is None or a.refused is not None:
        why = d.detail if a is None else f"refused on board: {a.refused}"
        return [f"  read-back {when} ({', '.join(d.names)}): {why}"]
    lines = [f"  read back {when} (on board {a.time:%Y-%m-%d %H:%M:%S}):"]
    for v in a.values:
        shown = str(v.values[0]) if v.scalar else \
            "[" + ", ".join(map(str, v.values[:8])) + (", ..." if len(v.values) > 8 else "") \
            + f"] ({len(v.values)} values)"
        lines.append(f"    {v.name} ({v.kind}, {v.lo}..{v.hi}) = {shown}")
    return lines


def _print(report: ScenarioReport) -> None:
    s = report.scenario
    out.print(f"  -- report: {s.name} ({s.path.name}, mission {s.mission}, seed {s.seed}, "
              f"frame loss {s.channel.loss:g})")
    for o in report.outcomes:
        for line in _outcome_lines(o):
            out.print(line)
    ob = report.onboard
    cfg = ob["config"]
    agree = "the ledger agrees" if report.consistent else \
        f"the ledger says {report.ground_config or 'nothing'}: it DISAGREES"
    runs = sum(t["runs"] for t in ob["tasks"])
    out.print(f"  on board at the end: {cfg['name'] or 'nothing'} v{cfg['version']} "
              f"({cfg['hash'][:16]}); {agree}")
    out.print(f"  VVM: worst frame {ob['worst_frame_share_percent']:.1f} % of the 10 % share "
              f"({ob['worst_frame_cpu_percent']:.2f} % of the CPU), "
              f"{_plural(runs, 'task run')}, {_plural(ob['fault_count'], 'fault')}")
    for name, a in ob.get("applications", {}).items():
        c = a["config"]
        out.print(f"  application {name} ({a['share_percent']} %): "
                  f"{c['name'] or 'nothing'} v{c['version']}, worst frame "
                  f"{a['worst_frame_cycles']:,} of its {a['part_cycles']:,} cycles, "
                  f"{_plural(sum(t['runs'] for t in a['tasks']), 'task run')}, "
                  f"{_plural(a['fault_count'], 'fault')}")
    out.print(f"  uplink: {report.bytes_sent:,} bytes in {_plural(report.frames_sent, 'frame')}"
              f" ({report.frames_lost} lost) = {report.bytes_sent / report.bytes_per_day:.3f} "
              f"days of the link budget; {_plural(report.passes_used, 'uplink pass')} from "
              f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC; "
              f"ledger run {report.run}")
    for d in report.dumps:
        for line in _dump_lines(d):
            out.print(line)
    out.print(f"  result: {'OK' if report.ok else 'NOT AS EXPECTED'}")


def _plot(report: ScenarioReport, path: Path, quiet: bool) -> None:
    from ground.timeline import plot_timeline  # matplotlib, only when asked for

    result, activations = report.timeline()
    if not result.windows:
        if not quiet:
            out.print(f"  (no uplink pass to draw for {path.name})")
        return
    try:
        plot_timeline(result, path, f"{report.scenario.name} (seed {report.scenario.seed})",
                      activations)
    except (OSError, ValueError) as exc:
        fail(f"cannot draw {path}: {exc}", "check the folder", EXIT_REJECTED)
    if not quiet:
        out.print(f"  timeline drawn to {path}")


class _Sink:
    """A TM packet sink with its resource (a file, a socket)."""

    def __init__(self, send: Callable[[bytes], None], close: Callable[[], None]) -> None:
        self.send, self.close = send, close


def _tm_sinks(tm_file: str | None, yamcs: str | None) -> list[_Sink]:
    """Where the TM Space Packets go (``--tm``, ``--yamcs``); usage errors exit 2."""
    sinks = []
    if yamcs:
        try:
            link = UdpTmLink(parse_address(yamcs))
        except ValueError as exc:
            fail(f"--yamcs: {exc}", "give the address of the Yamcs UDP TM link, e.g. "
                 "127.0.0.1:10015", EXIT_USAGE)
        sinks.append(_Sink(link, link.close))
    if tm_file:
        path = existing_parent(Path(tm_file), "--tm")
        try:
            handle = path.open("wb")
        except OSError as exc:
            fail(f"--tm {path}: {exc.strerror}", "give a file in a writable folder",
                 EXIT_USAGE)
        sinks.append(_Sink(TmRecording(handle), handle.close))
    return sinks


def _fan_out(sinks: list[_Sink]) -> Callable[[bytes], None] | None:
    if not sinks:
        return None

    def send(packet: bytes) -> None:
        for sink in sinks:
            sink.send(packet)
    return send


@dataclass(frozen=True)
class SimJob:
    """One scenario to run, with all it depends on (it may run in another process)."""

    index: int
    file: Path
    scenario: Scenario
    mission_dirs: tuple[Path, ...]
    ledger_file: Path | None  # None: a ledger of the scenario's own, in memory
    workdir: Path | None  # None: a temporary folder of the job's own
    dump: tuple[str, ...]
    live: bool  # print as it goes (in this process only); else return what it said


@dataclass(frozen=True)
class SimResult:
    """A scenario's report and what the ground said as it ran it, or why it could not
    be run (a ``GroundError``, as message, hint and where)."""

    report: ScenarioReport | None
    said: tuple[str, ...] = ()
    error: tuple[str, str, str] | None = None


def simulate(job: SimJob, ticker: Ticker | None = None,
             tm_sink: Callable[[bytes], None] | None = None) -> SimResult:
    """Run one scenario in a ledger of its own (or the ``--ledger`` file) and a store of
    its own: a pure job, the same report wherever it runs. ``ticker`` hears each step and
    ``tm_sink`` each telemetry packet (when run in this process)."""
    said: list[str] = []
    if job.live:
        out.print(f"== {job.scenario.name} ({job.file})")
    say = (lambda text: out.print(f"  {text}")) if job.live else said.append
    try:
        with Ledger(str(job.ledger_file) if job.ledger_file else ":memory:") as ledger, \
                tempfile.TemporaryDirectory(prefix="ccl-sim-") as tmp:
            root = job.workdir or Path(tmp)
            report = run_scenario(job.scenario, ledger, root / f"{job.index:02d}_{job.file.stem}",
                                  Compiler(mission_dirs=list(job.mission_dirs)),
                                  on_event=say, dump=job.dump,
                                  on_step=ticker.advance if ticker is not None else None,
                                  tm_sink=tm_sink)
    except GroundError as exc:
        return SimResult(None, tuple(said),
                         (exc.message, exc.hint, str(getattr(exc, "where", "") or "")))
    return SimResult(report, tuple(said))


@click.command("sim")
@click.argument("scenarios", metavar="SCENARIO...", nargs=-1, required=True)
@click.option("--ledger", "ledger_opt", type=click.Path(dir_okay=False),
              help="Record the runs in this ledger file, one scenario after another "
                   "(default: each scenario in a ledger of its own, in memory; never the "
                   "operational one unless given here).")
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Where the simulated satellites keep their stores (default: a temporary "
                   "folder).")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False),
              help="Draw each scenario's uplink timeline into this folder (SCENARIO.png).")
@click.option("--dump", "dump", multiple=True, metavar="NAME[,NAME...]",
              help="At the end of each scenario, read these parameters, state variables or "
                   "tables back from the board over the link, and show them (repeatable).")
@click.option("--tm", "tm_file", type=click.Path(dir_okay=False),
              help="Record the telemetry as CCSDS Space Packets into this file (what "
                   "`ccl xtce` describes).")
@click.option("--yamcs", "yamcs", metavar="HOST:PORT",
              help="Stream the telemetry's Space Packets over UDP to a Yamcs TM link "
                   "(`ccl yamcs serve` prints its address).")
@executor_options
@output_options
@click.pass_context
def sim(ctx: click.Context, scenarios: tuple[str, ...], ledger_opt: str | None,
        workdir: str | None, plot_dir: str | None, dump: tuple[str, ...],
        tm_file: str | None, yamcs: str | None, executor: Executor, as_json: bool) -> None:
    """Run SCENARIOs end to end: compile, verify, pack, uplink, apply on board, telemetry."""
    names = tuple(n.strip() for d in dump for n in d.split(",") if n.strip())
    if dump:
        try:
            check_dump_names(names, "--dump")
        except ScenarioError as exc:
            refuse(exc, EXIT_USAGE)
    files = _scenario_files(scenarios)
    if plot_dir and not Path(plot_dir).is_dir():
        fail(f"--plot {plot_dir}: no such folder", "create the folder first, or give another")
    ledger_file = existing_parent(Path(ledger_opt), "--ledger") if ledger_opt else None
    loaded = _load(files)
    if ledger_file is not None:
        try:  # refused before any scenario runs
            Ledger(str(ledger_file)).close()
        except GroundError as exc:
            refuse(exc, EXIT_USAGE)
        # one ledger records the runs in order (sequence numbers go on from run to run)
        if executor.asked and (executor.ray_address or executor.workers(len(files)) > 1):
            note("with --ledger the scenarios run one after another, in this process: "
                 "they record into one ledger, in order")
        executor = Executor(1)
    sinks = _tm_sinks(tm_file, yamcs)
    if sinks:  # a file or a socket: the scenarios send their packets from this process
        if executor.asked and (executor.ray_address or executor.workers(len(files)) > 1):
            note("with --tm or --yamcs the scenarios run one after another, in this "
                 "process: their packets go out in order")
        executor = Executor(1)
    missions = tuple(Path(p) for p in (ctx.obj or {}).get("missions", ()))
    in_process = executor.workers(len(files)) == 1 and executor.ray_address is None
    live = in_process and not as_json
    jobs = [SimJob(i, f, s, missions, ledger_file, Path(workdir) if workdir else None, names,
                   live) for i, (f, s) in enumerate(zip(files, loaded, strict=True))]
    reports: list[ScenarioReport] = []
    # made before the progress is drawn: local workers are forked then (no thread to fork)
    results = iter(()) if in_process else executor.map(simulate, jobs)
    try:
        with progress("scenario steps", total=sum(len(s.steps) for s in loaded),
                      unit="steps") as ticker:
            if in_process:  # one after another in this process (printed as they go)
                send = _fan_out(sinks)
                results = (simulate(job, ticker, send) for job in jobs)
            for job, result in zip(jobs, results, strict=True):
                if not live and not as_json:
                    out.print(f"== {job.scenario.name} ({job.file})")
                    for text in result.said:
                        out.print(f"  {text}")
                if result.report is None:
                    assert result.error is not None
                    fail(*result.error[:2], EXIT_REJECTED, result.error[2])
                if not in_process:
                    ticker.advance(len(job.scenario.steps))
                report = result.report
                reports.append(report)
                if not as_json:
                    _print(report)
                if plot_dir:
                    _plot(report, Path(plot_dir) / f"{job.file.stem}.png", as_json)
    finally:
        for sink in sinks:
            sink.close()
    if ledger_file is None and not as_json:
        note("the runs were recorded in ledgers of the simulation's own, now gone; give "
             "--ledger FILE to keep them")
    if as_json:
        click.echo(json.dumps([r.to_json() for r in reports], indent=2, default=str))
    elif len(reports) > 1:
        bad = [r.scenario.name for r in reports if not r.ok]
        out.print(f"{len(reports)} scenarios: "
                  + ("all as expected" if not bad else f"NOT as expected: {', '.join(bad)}"))
    sys.exit(0 if all(r.ok for r in reports) else 1)
