"""Run every benchmark in this folder, one process each, and pass their JSON lines through.

    python benchmarks/run.py                       # all of them
    python benchmarks/run.py vvm_speed uplink      # some of them
    python benchmarks/run.py --markdown FIGURES.md # also write the figures as a table

Each ``benchmarks/NAME.py`` (not ``_*.py``, not this file) prints one JSON line per figure:
``{"benchmark": NAME, "metric": METRIC, "value": NUMBER, "unit": UNIT, ...context}``.
Their own ratios are measured side by side inside one run (the machine is noisy); this
script only runs them in turn. Exit 1 if a benchmark fails or prints a line that is not
such a figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REQUIRED = ("benchmark", "metric", "value", "unit")


def scripts(names: list[str]) -> list[Path]:
    """The benchmark scripts to run, in name order (all of them if ``names`` is empty)."""
    every = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_")
                   and p.name != Path(__file__).name)
    if not names:
        return every
    by_name = {p.stem: p for p in every}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        sys.exit(f"run.py: no benchmark {', '.join(unknown)} (have: {', '.join(by_name)})")
    return [by_name[n] for n in names]


def run(script: Path) -> tuple[list[dict[str, Any]], str | None]:
    """Run one script; its figures, and what went wrong if anything did."""
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=HERE.parent)
    figures: list[dict[str, Any]] = []
    problem = None
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.strip()
        if not line:
            continue
        print(line, flush=True)
        try:
            figure = json.loads(line)
        except ValueError:
            problem = problem or f"a line that is not JSON: {line[:80]!r}"
            continue
        if not isinstance(figure, dict) or not all(k in figure for k in REQUIRED):
            problem = problem or f"a line without {', '.join(REQUIRED)}: {line[:80]!r}"
            continue
        figures.append(figure)
    stderr = proc.stderr.read() if proc.stderr else ""
    if proc.wait() != 0:
        problem = f"exit {proc.returncode}: {stderr.strip().splitlines()[-1:] or ''}"
    elif not figures:
        problem = "printed no figure"
    return figures, problem


def markdown(figures: list[dict[str, Any]]) -> str:
    """The figures as a Markdown table (benchmark, metric, value, unit, target)."""
    rows = ["| benchmark | metric | value | unit | context |", "|---|---|---|---|---|"]
    for f in figures:
        context = ", ".join(f"{k} {v}" for k, v in f.items() if k not in REQUIRED
                            and not isinstance(v, (dict, list)))
        value = f["value"]
        shown = f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"
        rows.append(f"| {f['benchmark']} | {f['metric']} | {shown} | {f['unit']} | "
                    f"{context} |")
    return "\n".join(rows) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    ap.add_argument("--markdown", type=Path, help="also write the figures to this file")
    args = ap.parse_args()
    figures: list[dict[str, Any]] = []
    failed = []
    for script in scripts(args.names):
        start = time.perf_counter()
        got, problem = run(script)
        figures += got
        took = time.perf_counter() - start
        print(f"# {script.stem}: {len(got)} figures in {took:.1f} s"
              + (f"; FAILED: {problem}" if problem else ""), file=sys.stderr, flush=True)
        if problem:
            failed.append(script.stem)
    if args.markdown:
        args.markdown.write_text(markdown(figures))
    if failed:
        print(f"# failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
