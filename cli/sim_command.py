"""The ``ccl sim`` command: run mission scenarios end to end.

``ccl sim SCENARIO... [--ledger PATH] [--workdir DIR] [--plot DIR] [--dump NAME...] [--json]``:
each SCENARIO is a
scenario file or a folder of them (``*.toml``, in name order). For each: compile, verify,
pack, uplink over the passes, receive, apply and probation on board under the 10 % share,
telemetry back, ledger updated (see ``ground/scenario.py``), then a report. Exit 0 when every
scenario met its expectations and the ground's record agrees with what is on board, 1
otherwise (or for a scenario file that cannot be run), 2 for usage errors.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console

from ccl.driver import Compiler
from cli.console import EXIT_REJECTED, EXIT_USAGE, fail, refuse
from cli.options import output_options
from ground.errors import GroundError
from ground.ledger import Ledger, ledger_path
from ground.scenario import (
    DumpResult,
    PatchOutcome,
    ScenarioError,
    ScenarioReport,
    check_dump_names,
    load_scenario,
    run_scenario,
)

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def _scenario_files(args: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(p.glob("*.toml"))
            if not found:
                fail(f"{p} holds no scenario (*.toml)", "give a scenario file", EXIT_USAGE)
            files += found
        elif p.is_file():
            files.append(p)
        else:
            fail(f"no scenario at {p}", "give a scenario file or a folder of them", EXIT_USAGE)
    return files


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
        path.parent.mkdir(parents=True, exist_ok=True)
        plot_timeline(result, path, f"{report.scenario.name} (seed {report.scenario.seed})",
                      activations)
    except (OSError, ValueError) as exc:
        fail(f"cannot draw {path}: {exc}", "check the folder", EXIT_REJECTED)
    if not quiet:
        out.print(f"  timeline drawn to {path}")


@click.command("sim")
@click.argument("scenarios", metavar="SCENARIO...", nargs=-1, required=True)
@click.option("--ledger", "ledger_opt", type=click.Path(dir_okay=False),
              help="Ledger file (default $CCL_LEDGER or ./ccl-ledger.sqlite).")
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Where the simulated satellites keep their stores (default: a temporary "
                   "folder).")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False),
              help="Draw each scenario's uplink timeline into this folder (SCENARIO.png).")
@click.option("--dump", "dump", multiple=True, metavar="NAME[,NAME...]",
              help="At the end of each scenario, read these parameters, state variables or "
                   "tables back from the board over the link, and show them (repeatable).")
@output_options
@click.pass_context
def sim(ctx: click.Context, scenarios: tuple[str, ...], ledger_opt: str | None,
        workdir: str | None, plot_dir: str | None, dump: tuple[str, ...],
        as_json: bool) -> None:
    """Run SCENARIOs end to end: compile, verify, pack, uplink, apply on board, telemetry."""
    names = tuple(n.strip() for d in dump for n in d.split(",") if n.strip())
    if dump:
        try:
            check_dump_names(names, "--dump")
        except ScenarioError as exc:
            refuse(exc, EXIT_USAGE)
    files = _scenario_files(scenarios)
    compiler = Compiler(mission_dirs=[Path(p) for p in (ctx.obj or {}).get("missions", ())])
    reports: list[ScenarioReport] = []
    with tempfile.TemporaryDirectory(prefix="ccl-sim-") as tmp:
        root = Path(workdir) if workdir else Path(tmp)
        try:
            with Ledger(ledger_path(ledger_opt)) as ledger:
                for i, f in enumerate(files):
                    scenario = load_scenario(f)
                    if not as_json:
                        out.print(f"== {scenario.name} ({f})")
                    say = None if as_json else (lambda text: out.print(f"  {text}"))
                    report = run_scenario(scenario, ledger, root / f"{i:02d}_{f.stem}",
                                          compiler, on_event=say, dump=names)
                    reports.append(report)
                    if not as_json:
                        _print(report)
                    if plot_dir:
                        _plot(report, Path(plot_dir) / f"{f.stem}.png", as_json)
        except GroundError as exc:
            refuse(exc, EXIT_REJECTED)
    if as_json:
        click.echo(json.dumps([r.to_json() for r in reports], indent=2, default=str))
    elif len(reports) > 1:
        bad = [r.scenario.name for r in reports if not r.ok]
        out.print(f"{len(reports)} scenarios: "
                  + ("all as expected" if not bad else f"NOT as expected: {', '.join(bad)}"))
    sys.exit(0 if all(r.ok for r in reports) else 1)
