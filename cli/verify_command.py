"""The ``ccl verify`` command.

``ccl verify FILE... [--json] [--timeout SECONDS]``: compile each file, prove it, print the
report (rich on a terminal, plain text when piped, JSON with ``--json``). Exit 0 when every
file is proven, 1 when one is refuted or does not check (its front-end diagnostics are
printed), 3 when the solver could not decide an obligation in time (named in the report).
"""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from ccl.compiled import Compiled
from ccl.conditions import ConditionsError, figures_in_force, under_conditions
from ccl.diagnostics import CclError, Diagnostic, Source, render
from ccl.driver import Compiler
from ccl.pack import PackError, load_key
from ccl.verify.applications import Member, SetVerdict, check_set
from ccl.verify.program import DEFAULT_TIMEOUT_MS, verification_steps, verify_program
from ccl.verify.report import (
    VerifyReport,
    budget_rows,
    diagnostic,
    group_lines,
    render_text,
    worst_case_line,
)
from ccl.verify.verdict import keep_verdict
from cli.compile_commands import error_json
from cli.console import (
    EXIT_OK,
    EXIT_UNKNOWN,
    out_console,
    print_rendered,
    progress,
    text_table,
)
from cli.console import EXIT_REJECTED as EXIT_REFUTED
from cli.executor import Executor, executor_options
from cli.files import readable_inputs, regular_inputs
from cli.options import FiniteFloat, output_options
from onboard.mission import MissionError, MissionProfile, find_mission


@dataclass(frozen=True)
class VerifyJob:
    """One file to verify, with all it depends on (it may run in another process)."""

    file: str
    mission_dirs: tuple[Path, ...]
    timeout: float
    steps: bool = False  # show the proof's progress step by step (in this process only)
    conditions: str | None = None  # the profile patch of the figures in force on board
    key_path: str | None = None  # its key (default $CCL_PATCH_KEY, else the development key)


@dataclass(frozen=True)
class FileVerdict:
    """What verifying one file gave: its exit code, its entry of the JSON report, its
    failure in the one shape (if any), and what the text report prints."""

    file: str
    code: int
    result: dict[str, Any]
    error: dict[str, Any] | None
    report: VerifyReport | None = None
    diagnostics: tuple[Diagnostic, ...] = ()  # the front end's, when the file is rejected
    mission_error: str = ""
    sources: dict[str, Source] = field(default_factory=dict)
    application: Member | None = None  # the file's application clause, if it has one


#: One compiler per mission folders for one invocation (in a worker, for the worker's
#: life): it caches missions and VMlets across the files it compiles.
_COMPILERS: dict[tuple[Path, ...], Compiler] = {}


def verify_file(job: VerifyJob) -> FileVerdict:
    """Compile and prove ``job.file`` (a pure job: the same verdict wherever it runs)."""
    compiler = _COMPILERS.setdefault(job.mission_dirs,
                                     Compiler(mission_dirs=list(job.mission_dirs)))
    f = job.file
    try:
        compiled = compiler.compile(Path(f))
    except CclError as exc:
        return FileVerdict(f, EXIT_REFUTED, {"file": f, "status": "rejected", "diagnostics": [
            d.to_json() for d in exc.diagnostics]}, error_json(exc.diagnostics[0], f),
            diagnostics=tuple(exc.diagnostics), sources=dict(compiler.sources))
    try:
        if job.conditions is not None:
            compiled = under_conditions(compiled, _in_force(compiled.mission, job))
        report = prove(compiled, f, job.timeout, steps=job.steps)
    except (ConditionsError, PackError) as exc:
        return FileVerdict(f, EXIT_REFUTED, {"file": f, "status": "rejected", "diagnostics": [
            {"message": exc.message, "hint": exc.hint}]},
            {"message": f"error[E-CONDITIONS]: {exc.message}", "where": job.conditions or f,
             "hint": exc.hint, "exit_code": EXIT_REFUTED}, mission_error=exc.message)
    except MissionError as exc:
        return FileVerdict(f, EXIT_REFUTED, {"file": f, "status": "rejected", "diagnostics": [
            {"message": exc.message, "hint": exc.hint}]},
            {"message": f"error[E-MISSION]: {exc.message}", "where": f, "hint": exc.hint,
             "exit_code": EXIT_REFUTED}, mission_error=exc.message)
    code = {"proven": EXIT_OK, "refuted": EXIT_REFUTED}.get(report.status, EXIT_UNKNOWN)
    failing = (*report.refuted, *report.unknown)
    app = compiled.program.application
    member = Member(app.name, app.share_percent, app.span, compiled.mission.name) \
        if app is not None else None
    return FileVerdict(f, code, report.to_json(),
                       error_json(diagnostic(failing[0]), f, code) if failing else None,
                       report, sources=dict(compiler.sources) if failing else {},
                       application=member)


def _in_force(profile: MissionProfile, job: VerifyJob) -> MissionProfile:
    """The flight build ``profile`` with the soft figures of ``job.conditions``. Raises
    ``ConditionsError`` or ``PackError`` (the key)."""
    assert job.conditions is not None
    key = load_key(profile, Path(job.key_path) if job.key_path else None)
    return figures_in_force(profile, Path(job.conditions), key.secret)


@click.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@output_options
@click.option("--timeout", type=FiniteFloat(min=0.001),
              default=DEFAULT_TIMEOUT_MS / 1000, show_default=True,
              help="Seconds the solver may spend on one obligation.")
@click.option("--conditions", "conditions", type=click.Path(dir_okay=False),
              help="Prove against the soft figures in force on board (the patch reserve): "
                   "the profile patch the board committed, or its conditions.vpp.")
@click.option("--key", "key_path", type=click.Path(dir_okay=False),
              help="Key of the --conditions file (hex); default $CCL_PATCH_KEY, else the "
                   "development key.")
@executor_options
@click.pass_context
def verify(ctx: click.Context, files: tuple[str, ...], as_json: bool, timeout: float,
           conditions: str | None, key_path: str | None, executor: Executor) -> None:
    """Prove CCL FILES safe and within budget: no overflow, division by zero, index or range
    error, flight rules for every parameter set, worst-case cycles within the CPU share,
    memory and uplink, with a counterexample for anything that fails."""
    readable_inputs(files)
    regular_inputs([p for p in (conditions, key_path) if p])
    _COMPILERS.clear()  # a file changed since an earlier invocation in this process is read anew
    missions = tuple(Path(p) for p in (ctx.obj or {}).get("missions", ()))
    out = out_console(markup=False)  # names like `t[i]` are text, never markup
    alone = executor.workers(len(files)) == 1 and executor.ray_address is None
    jobs = [VerifyJob(f, missions, timeout, steps=alone, conditions=conditions,
                      key_path=key_path) for f in files]
    results: list[dict[str, Any]] = []
    codes = []
    errors: list[dict[str, Any]] = []  # each failure, as --json shows it
    members: list[Member] = []  # the applications the files declare: the set on board
    verdicts = executor.map(verify_file, jobs)
    shown = nullcontext(None) if alone else \
        progress(f"verifying on {executor.describe(len(files))}", len(files), "files")
    with shown as ticker:
        for v in verdicts:
            if ticker is not None:
                ticker.advance()
            codes.append(v.code)
            results.append(v.result)
            if v.application is not None:
                members.append(v.application)
            if v.error is not None:
                errors.append(v.error)
            if as_json:
                continue
            if v.diagnostics:
                print_rendered(render(d, v.sources) for d in v.diagnostics)
            elif v.mission_error:
                assert v.error is not None  # E-MISSION or E-CONDITIONS, and its hint
                click.echo(f"{v.file}: {v.error['message']}"
                           + (f"\n  hint: {v.error['hint']}" if v.error["hint"] else ""),
                           err=True)
            elif v.report is not None and out.is_terminal:
                _print_rich(out, v.report, v.sources)
            elif v.report is not None:
                click.echo(render_text(v.report, v.sources))
    together = _applications_together(members, missions, jobs[0])
    extra: dict[str, Any] = {}
    if together is not None:
        extra["applications"] = together.to_json()
        failure = together.diagnostic()
        if failure is not None:
            codes.append(EXIT_REFUTED)
            errors.append(error_json(failure, str(failure.span), EXIT_REFUTED))
            if not as_json:
                span = failure.span
                sources = {span.file: Source.of(span.file, Path(span.file).read_text(
                    encoding="utf-8"))} if span is not None else {}
                print_rendered([render(failure, sources)])
        elif not as_json:
            click.echo(f"applications: {together.message}")
    if as_json:
        statuses = [r["status"] for r in results]
        ok = all(s == "proven" for s in statuses) and (together is None or together.ok)
        click.echo(json.dumps({"ok": ok, **({} if ok else {"error": errors[0]}),
                               "files": results, **extra}, indent=2))
    code = EXIT_REFUTED if EXIT_REFUTED in codes else EXIT_UNKNOWN if EXIT_UNKNOWN in codes \
        else EXIT_OK
    sys.exit(code)


def _applications_together(members: list[Member], missions: tuple[Path, ...],
                           job: VerifyJob) -> SetVerdict | None:
    """The set of applications the files declare, proven to fit in the share together
    beside the patch reserve in force (None when no file declares one)."""
    if not members:
        return None
    profile = find_mission(members[0].mission, missions)
    if job.conditions is not None:
        profile = _in_force(profile, job)  # read fine by every file's proof already
    return check_set(members, profile)


def prove(compiled: Compiled, file: str, timeout: float | None = None, *,
          steps: bool = True) -> VerifyReport:
    """``verify_program`` with its progress shown (on a terminal, with ``steps``): it takes
    seconds."""
    timeout_ms = DEFAULT_TIMEOUT_MS if timeout is None else max(1, round(timeout * 1000))
    with progress(f"verifying {file}", verification_steps(compiled.program),
                  "steps") if steps else nullcontext(None) as ticker:
        report = verify_program(compiled, timeout_ms=timeout_ms,
                                step=ticker.advance if ticker is not None else None)
    keep_verdict(compiled, report)  # so that `ccl pack` need not prove it again
    return report


_STATUS_STYLE = {"proven": "bold green", "refuted": "bold red", "unknown": "bold yellow"}


def _print_rich(out: Console, report: VerifyReport, sources: dict[str, Source]) -> None:
    head = Text(f"{report.file}: {report.kind} {report.name}: ")
    head.append(report.status.upper(), style=_STATUS_STYLE[report.status])
    head.append(f"  ({len(report.obligations)} obligations, {report.seconds:.2f} s)")
    out.print(head)
    proofs = text_table(title="proofs", title_justify="left", show_header=False, box=None,
                   padding=(0, 2))
    for kind, verdict in group_lines(report):
        style = "red" if "refuted" in verdict else "yellow" if "unknown" in verdict else ""
        proofs.add_row(kind, Text(verdict, style=style))
    out.print(proofs)
    if report.budgets.worst_cases:
        out.print(Text("worst cases", style="italic"))
        for w in report.budgets.worst_cases:
            out.print(f"  {worst_case_line(w)}")
    table = text_table(title="budgets", title_justify="left")
    for column in ("budget", "used", "limit", "verdict"):
        table.add_column(column)
    for name, used, limit, verdict in budget_rows(report.budgets):
        table.add_row(name, used, limit,
                      Text(verdict, style="bold red" if "OVER" in verdict else "green"))
    out.print(table)
    for o in (*report.refuted, *report.unknown):
        styled = Text(render(diagnostic(o), sources))
        styled.highlight_regex(r"(error|warning)\[[A-Z0-9-]+\]", "bold red")
        styled.highlight_regex(r"\^+", "bold red")
        styled.highlight_regex(r"note:|hint:", "bold cyan")
        out.print(styled)
