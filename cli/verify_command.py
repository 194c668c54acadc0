"""The ``ccl verify`` command.

``ccl verify FILE... [--json] [--timeout SECONDS]``: compile each file, prove it, print the
report (rich on a terminal, plain text when piped, JSON with ``--json``). Exit 0 when every
file is proven, 1 when one is refuted or does not check (its front-end diagnostics are
printed), 3 when the solver could not decide an obligation in time (named in the report).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from ccl.compiled import Compiled
from ccl.diagnostics import CclError, Source, render
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
from cli.compile_commands import compiler_of, error_json, print_diagnostics
from cli.console import EXIT_OK, EXIT_UNKNOWN, out_console, progress, text_table
from cli.console import EXIT_REJECTED as EXIT_REFUTED
from cli.files import readable_inputs
from cli.options import FiniteFloat, output_options
from onboard.mission import MissionError


@click.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@output_options
@click.option("--timeout", type=FiniteFloat(min=0.001),
              default=DEFAULT_TIMEOUT_MS / 1000, show_default=True,
              help="Seconds the solver may spend on one obligation.")
@click.pass_context
def verify(ctx: click.Context, files: tuple[str, ...], as_json: bool, timeout: float) -> None:
    """Prove CCL FILES safe and within budget: no overflow, division by zero, index or range
    error, flight rules for every parameter set, worst-case cycles within the CPU share,
    memory and uplink, with a counterexample for anything that fails."""
    readable_inputs(files)
    compiler = compiler_of(ctx)
    out = out_console(markup=False)  # names like `t[i]` are text, never markup
    results: list[dict[str, Any]] = []
    codes = []
    errors: list[dict[str, Any]] = []  # each failure, as --json shows it
    for f in files:
        try:
            compiled = compiler.compile(Path(f))
        except CclError as exc:
            codes.append(EXIT_REFUTED)
            errors.append(error_json(exc.diagnostics[0], f))
            results.append({"file": f, "status": "rejected",
                            "diagnostics": [d.to_json() for d in exc.diagnostics]})
            if not as_json:
                print_diagnostics(exc.diagnostics, compiler)
            continue
        try:
            report = prove(compiled, f, timeout)
        except MissionError as exc:
            codes.append(EXIT_REFUTED)
            errors.append({"message": f"error[E-MISSION]: {exc.message}", "where": f,
                           "hint": exc.hint, "exit_code": EXIT_REFUTED})
            results.append({"file": f, "status": "rejected",
                            "diagnostics": [{"message": exc.message, "hint": exc.hint}]})
            if not as_json:
                click.echo(f"{f}: error[E-MISSION]: {exc.message}", err=True)
            continue
        codes.append({"proven": EXIT_OK, "refuted": EXIT_REFUTED}.get(report.status,
                                                                        EXIT_UNKNOWN))
        results.append(report.to_json())
        failing = (*report.refuted, *report.unknown)
        if failing:
            errors.append(error_json(diagnostic(failing[0]), f, codes[-1]))
        if as_json:
            continue
        if out.is_terminal:
            _print_rich(out, report, compiler.sources)
        else:
            click.echo(render_text(report, compiler.sources))
    if as_json:
        statuses = [r["status"] for r in results]
        ok = all(s == "proven" for s in statuses)
        click.echo(json.dumps({"ok": ok, **({} if ok else {"error": errors[0]}),
                               "files": results}, indent=2))
    code = EXIT_REFUTED if EXIT_REFUTED in codes else EXIT_UNKNOWN if EXIT_UNKNOWN in codes \
        else EXIT_OK
    sys.exit(code)


def prove(compiled: Compiled, file: str, timeout: float | None = None) -> VerifyReport:
    """``verify_program`` with its progress shown (on a terminal): it takes seconds."""
    timeout_ms = DEFAULT_TIMEOUT_MS if timeout is None else max(1, round(timeout * 1000))
    with progress(f"verifying {file}", verification_steps(compiled.program),
                  "steps") as ticker:
        report = verify_program(compiled, timeout_ms=timeout_ms, step=ticker.advance)
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
