"""Benchmark: ``ccl verify`` on the CoRoT configurations and on generated ones at 1x and 10x.

Two sets of figures, all of verification alone (``verify_program`` on an already compiled
program: parsing and code generation are ``benchmarks/compile.py``'s business):

- ``verify_seconds`` for every configuration in ``missions/corot/configs/`` and for the
  ``photometry`` VMlet, one line each with a ``config`` key (files the front end refuses,
  such as ``bad_syntax.ccl``, have nothing to verify and are skipped). The target is that
  ``exo_e1`` verifies in about a second.
- ``verify_seconds`` for a generated configuration of ``--units`` independent units and for
  one ten times larger (``size`` key ``1x`` / ``10x``), and ``scaling_ratio_10x``, the time
  at 10x over the time at 1x (target <= 12: the verifier must stay close to linear in the
  size of the program). A unit is a realistic slice of a photometry configuration: ranged
  parameters and a flight rule over them, a table and state, a function with ranged
  arguments and result, and periodic tasks with loops bounded by ranged parameters, table
  indexing, the corot natives and ``med3`` through ``uses photometry``, and clamped state
  updates; four kinds of unit alternate. The generated programs are written so that the
  verifier proves them: the script checks that the status is ``proven`` (and stops with the
  refutations otherwise), so that every figure times real proofs.

Each time is the median of ``--runs`` runs; the two generated sizes are timed alternately in
the same process, so that they see the same machine. Prints one JSON line per figure::

    {"benchmark": "verify", "metric": "verify_seconds", "value": ..., "unit": "s", ...}

Usage: ``python benchmarks/verify.py [--runs N] [--units N] [--seed N] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ccl.diagnostics import CclError  # noqa: E402
from ccl.driver import Compiled, Compiler  # noqa: E402
from ccl.verify import VerifyReport, verify_program  # noqa: E402

SEED = 20_061_227  # CoRoT's launch date
UNITS = 16  # units of the 1x configuration (the 10x one has ten times as many)
SCALING_TARGET = 12
CONFIGS = ROOT / "missions" / "corot" / "configs"
VMLETS = ROOT / "missions" / "corot" / "vmlets"


# --------------------------------------------------------------------------- generator


def _filter_unit(r: random.Random, k: int) -> list[str]:
    """Cosmic-ray rejection over a ranged number of stars, as in exo_e1."""
    n_hi = r.choice([256, 384, 512])
    return [
        f"param n_{k} : int[0..{n_hi}] = {n_hi // 2};",
        f"param k10_{k} : int[20..100] = {r.randint(20, 100)};",
        f"param gain_{k} : int[1..16] = {r.randint(1, 16)};",
        f"rule n_{k} * gain_{k} <= {n_hi * 16};",
        f"var hits_{k} : int[0..1000000];",
        f"var hist_{k}[64] : int[0..16777215];",
        "",
        f"fn score_{k}(f: int[0..16777215], m: int[0..16777215], g: int[1..16])"
        " -> int[0..16777215] {",
        "    let d = abs(f - m);",
        "    if d > 1000000 { return 16777215; }",
        "    return min(d * g, 16777215);",
        "}",
        "",
        f"task filter_{k} every {r.choice([32, 64])} s {{",
        f"    for s in 0 .. n_{k} {{",
        "        let f = flux(s);",
        f"        let m = med3(f, hist_{k}[s % 64], hist_{k}[(s + 1) % 64]);",
        f"        if score_{k}(f, m, gain_{k}) * 10 > k10_{k} * noise(s) {{",
        "            flag(s, 1);",
        f"            hits_{k} = min(hits_{k} + 1, 1000000);",
        "        }",
        f"        hist_{k}[s % 64] = f;",
        "    }",
        "}",
    ]


def _window_unit(r: random.Random, k: int) -> list[str]:
    """Window sums with sizes looked up in a table, the brightest kept."""
    size = r.choice([32, 64])
    values = ", ".join(str(r.randint(1, 16)) for _ in range(size))
    return [
        f"param m_{k} : int[0..{size}] = {size // 2};",
        f"param base_{k} : int[0..5000] = {r.randint(0, 5000)};",
        f"table side_{k}[{size}] : int[1..16] = [{values}];",
        f"var best_{k} : int[0..268431360];",
        f"var seen_{k} : int[0..100000];",
        "",
        f"fn star_{k}(i: int[0..{size - 1}], base: int[0..5000]) -> int[0..5999] {{",
        f"    return min(base + i * {r.randint(2, 12)}, 5999);",
        "}",
        "",
        f"task windows_{k} every {r.choice([10, 20])} s {{",
        "    let top : int[0..268431360] = 0;",
        f"    for i in 0 .. m_{k} {{",
        f"        let w = side_{k}[i];",
        f"        let v = window_sum(star_{k}(i, base_{k}), w, w);",
        "        top = max(top, v);",
        "    }",
        f"    best_{k} = top;",
        f"    seen_{k} = min(seen_{k} + m_{k}, 100000);",
        "}",
    ]


def _calib_unit(r: random.Random, k: int) -> list[str]:
    """A calibration pass: a guarded division, table indexing, a clamped running mean."""
    return [
        f"param div_{k} : int[0..64] = {r.randint(1, 64)};",
        f"param off_{k} : int[-1000..1000] = {r.randint(-1000, 1000)};",
        f"param cnt_{k} : int[0..200] = {r.randint(0, 200)};",
        f"table gainc_{k}[16] : int[0..255];",
        f"var mean_{k} : int[-100000..100000];",
        f"var bins_{k}[16] : int[0..1000000];",
        "",
        f"fn norm_{k}(v: int[0..65535], d: int[0..64]) -> int[0..65535] {{",
        "    if d == 0 { return v; }",
        "    return v / d;",
        "}",
        "",
        f"task calib_{k} every {r.choice([5, 10])} s {{",
        f"    for s in 0 .. cnt_{k} {{",
        f"        let g = gainc_{k}[s % 16];",
        f"        let v = norm_{k}(noise(s), div_{k}) * g / 256;",
        f"        mean_{k} = min(max((mean_{k} * 7 + v + off_{k}) / 8, -100000), 100000);",
        f"        bins_{k}[v % 16] = min(bins_{k}[v % 16] + 1, 1000000);",
        "    }",
        "}",
    ]


def _scan_unit(r: random.Random, k: int) -> list[str]:
    """Nested loops: a few small windows per star, every so often a flag."""
    return [
        f"param rows_{k} : int[0..60] = {r.randint(0, 60)};",
        f"param reps_{k} : int[1..4] = {r.randint(1, 4)};",
        f"param lim_{k} : int[0..65535] = {r.randint(100, 60000)};",
        f"var total_{k} : int[0..1000000000];",
        f"var loud_{k} : int[0..100000];",
        "",
        f"task scan_{k} every {r.choice([30, 60])} s {{",
        "    let acc : int[0..1000000000] = 0;",
        f"    for s in 0 .. rows_{k} {{",
        f"        for j in 0 .. reps_{k} {{",
        "            acc = min(acc + window_sum(s * 4 + j, 4, 4), 1000000000);",
        "        }",
        f"        if noise(s) > lim_{k} {{",
        "            flag(s, 2);",
        f"            loud_{k} = min(loud_{k} + 1, 100000);",
        "        }",
        "    }",
        f"    total_{k} = acc;",
        "}",
    ]


_UNITS: tuple[Callable[[random.Random, int], list[str]], ...] = (
    _filter_unit, _window_unit, _calib_unit, _scan_unit)


def generate(units: int, seed: int) -> str:
    """A configuration of ``units`` independent units (the four kinds in turn)."""
    r = random.Random(seed)
    lines = ["// Generated by benchmarks/verify.py: independent photometry units.",
             "mission corot;", f"config verify_bench_{units} version 1;", "uses photometry;",
             ""]
    for k in range(units):
        lines += [f"// unit {k}", *_UNITS[k % len(_UNITS)](r, k), ""]
    lines += ["on apply {", *(f"    hits_{k} = 0;" for k in range(0, units, len(_UNITS))),
              "}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- timing


def _verify_seconds(compiled: Compiled) -> tuple[float, VerifyReport]:
    t = time.perf_counter()
    report = verify_program(compiled)
    return time.perf_counter() - t, report


def _emit(metric: str, value: float, unit: str, **context: object) -> None:
    print(json.dumps({"benchmark": "verify", "metric": metric, "value": round(value, 4),
                      "unit": unit, **context}), flush=True)


def _require_proven(report: VerifyReport, what: str) -> None:
    """The generated programs must be proven: otherwise the figures time refutations."""
    if report.status != "proven":
        bad = [f"{o.kind.value} in {o.where}: {o.message}"
               for o in (*report.refuted, *report.unknown)]
        raise SystemExit(f"benchmarks/verify.py: the {what} configuration is "
                         f"{report.status}, not proven:\n  " + "\n  ".join(bad))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--units", type=int, default=UNITS)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--keep", type=Path, help="also write the generated files to this folder")
    args = ap.parse_args(argv)
    common = {"runs": args.runs, "python": sys.version.split()[0]}

    # -- the contract's configurations and the photometry VMlet
    for path in [*sorted(CONFIGS.glob("*.ccl")), VMLETS / "photometry.ccl"]:
        try:
            compiled = Compiler().compile(path)
        except CclError:
            continue  # refused by the front end (bad_syntax.ccl): nothing to verify
        times, reports = zip(*(_verify_seconds(compiled) for _ in range(args.runs)),
                             strict=True)
        report = reports[-1]
        _emit("verify_seconds", statistics.median(times), "s", config=path.stem,
              kind=report.kind, status=report.status, obligations=len(report.obligations),
              **common)

    # -- generated configurations, 1x and 10x, timed alternately
    sizes = {"1x": args.units, "10x": 10 * args.units}
    with tempfile.TemporaryDirectory(prefix="ccl-verify-bench-") as tmp:
        compiled_by_size: dict[str, Compiled] = {}
        lines: dict[str, int] = {}
        for label, units in sizes.items():
            text = generate(units, args.seed)
            path = Path(tmp) / f"verify_bench_{label}.ccl"
            path.write_text(text, encoding="utf-8")
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                (args.keep / path.name).write_text(text, encoding="utf-8")
            compiled_by_size[label] = Compiler().compile(path)
            lines[label] = text.count("\n")
        samples: dict[str, list[float]] = {label: [] for label in sizes}
        last: dict[str, VerifyReport] = {}
        for _ in range(args.runs):
            for label in sizes:
                seconds, last[label] = _verify_seconds(compiled_by_size[label])
                _require_proven(last[label], label)
                samples[label].append(seconds)
    medians = {label: statistics.median(s) for label, s in samples.items()}
    for label, units in sizes.items():
        report = last[label]
        _emit("verify_seconds", medians[label], "s", size=label, units=units,
              lines=lines[label], obligations=len(report.obligations),
              entry_points=len(report.budgets.worst_cases), status=report.status,
              seed=args.seed, **common)
    _emit("scaling_ratio_10x", medians["10x"] / medians["1x"], "ratio",
          target=SCALING_TARGET, units_1x=sizes["1x"], units_10x=sizes["10x"],
          note="verify time of the 10x configuration over that of the 1x one",
          seed=args.seed, **common)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
