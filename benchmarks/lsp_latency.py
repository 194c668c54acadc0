"""Benchmark: how fast ``ccl lsp`` answers typing in a 1,000-line configuration.

Generates a configuration of ``--lines`` lines (1,000) with ``benchmarks/compile.py``'s
generator (same seed: realistic CoRoT code using the ``photometry`` VMlet), starts the real
``ccl lsp`` as a process, opens the file with pygls's language client
(``tests/e2e/lsp_session.py``), then makes ``--edits`` edits one after the other, as an
author types: each renames a name used in a task body (so the buffer is wrong:
``E-UNKNOWN-NAME``) or puts it back (clean again), half of each. For every edit it times
the interval from sending ``didChange`` to receiving the ``publishDiagnostics`` of that
version, and checks that the diagnostics are the right ones. Target: about 200 ms.

Wall time on a shared machine is inflated by its load: the server's CPU time per edit
(from ``/proc``, user + system) is reported too, as is the load average at the start.

The interval includes the server's debounce (``ccl lsp --debounce``, 30 ms by default),
the JSON-RPC round trip and the whole front end (parse and check of the buffer; the
mission profile and the VMlet are compiled once and kept). For context it also times the
front end alone in this process (``ccl.lsp.document.FrontEnd.check``, the same edits),
median of the same number of runs, and the same front end parsing the whole buffer at
every edit (the reference, interleaved): ``reuse_over_whole_parse_cpu`` is their CPU
ratio. It does not cover the verifier (on save, in a process
of its own) nor hover or completion.

Prints one JSON line per figure::

    {"benchmark": "lsp_latency", "metric": "median_ms", "value": ..., "unit": "ms", ...}

Usage: ``python benchmarks/lsp_latency.py [--lines N] [--edits N] [--seed N]``
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ccl.lsp.document import FrontEnd  # noqa: E402

TARGET_MS = 200


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _edit_site(text: str) -> tuple[int, int, str]:
    """A use of a state variable inside a task body: 0-based line, character, name."""
    lines = text.splitlines()
    in_task = False
    for i, line in enumerate(lines[len(lines) // 2:], start=len(lines) // 2):
        if line.startswith("task "):
            in_task = True
        m = re.match(r"\s+(\w+) = ", line) if in_task else None
        if m and not line.lstrip().startswith("let "):
            return i, m.start(1), m.group(1)
    raise SystemExit("lsp_latency: no assignment in a task body to edit")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_ms(pid: int) -> float:
    """CPU time (user + system) the process ``pid`` has used so far, in ms (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


async def _type(session_module: ModuleType, path: Path, edits: int
                ) -> tuple[list[float], float, float]:
    """Latencies (ms) of ``edits`` edits, the time to the first diagnostics (ms), and the
    server's CPU time per edit (ms; the machine's load does not inflate it)."""
    s = session_module.Session()
    await s.start()
    try:
        text = path.read_text()
        line, col, name = _edit_site(text)
        t0 = time.perf_counter()
        uri = s.open(path)
        first = await s.diagnostics(uri)
        if first.diagnostics:
            raise SystemExit(f"lsp_latency: the generated file does not check: "
                             f"{first.diagnostics[0].message}")
        opened_ms = (first.at - t0) * 1000
        latencies = []
        pid = s.client._server.pid  # the `ccl lsp` process pygls's client started
        cpu_before = _cpu_ms(pid)
        for i in range(edits):
            mark = len(s.published)
            broken = i % 2 == 0
            sent = time.perf_counter()
            if broken:  # `name = ...` -> `namex = ...`: an unknown name
                v = s.replace(uri, line, col + len(name), col + len(name), "x")
            else:
                v = s.replace(uri, line, col + len(name), col + len(name) + 1, "")
            got = await s.diagnostics(uri, mark, lambda p, v=v: p.version == v)
            latencies.append((got.at - sent) * 1000)
            codes = [d.code for d in got.diagnostics]
            if (codes[:1] == ["E-UNKNOWN-NAME"]) != broken:
                raise SystemExit(f"lsp_latency: edit {i}: unexpected diagnostics {codes}")
        return latencies, opened_ms, (_cpu_ms(pid) - cpu_before) / edits
    finally:
        await s.stop()


def front_end_cpu_ms(path: Path, runs: int) -> tuple[float, float, float]:
    """The front end alone on ``path``, after an edit (the VMlet kept, as in the server):
    median wall and CPU ms reusing the parse trees of unchanged declarations, and median
    CPU ms parsing the whole buffer (the reference), the two interleaved."""
    reusing, whole = FrontEnd(), FrontEnd(reuse_parses=False)
    text = path.read_text()
    line, col, name = _edit_site(text)
    lines = text.split("\n")
    edited = lines[line][:col + len(name)] + "x" + lines[line][col + len(name):]
    variants = [text, "\n".join([*lines[:line], edited, *lines[line + 1:]])]
    for front in (reusing, whole):
        front.check(path, text)
    wall, cpu, cpu_whole = [], [], []
    for i in range(runs):
        for front, out in ((reusing, cpu), (whole, cpu_whole)):
            t, c = time.perf_counter(), time.process_time()
            front.check(path, variants[i % 2])
            out.append((time.process_time() - c) * 1000)
            if front is reusing:
                wall.append((time.perf_counter() - t) * 1000)
    return statistics.median(wall), statistics.median(cpu), statistics.median(cpu_whole)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=40)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]  # the machine is shared: how busy it was
    generator = _load("compile_benchmark", ROOT / "benchmarks" / "compile.py")
    session_module = _load("lsp_session", ROOT / "tests" / "e2e" / "lsp_session.py")
    seed = generator.SEED if args.seed is None else args.seed
    with tempfile.TemporaryDirectory(prefix="ccl-lsp-bench-") as tmp:
        path = Path(tmp) / "exo_bench.ccl"
        path.write_text(generator.generate(seed, args.lines))
        lines = path.read_text().count("\n")
        latencies, opened_ms, server_cpu = asyncio.run(
            _type(session_module, path, args.edits))
        alone, alone_cpu, whole_cpu = front_end_cpu_ms(path, args.edits)
    context = {"lines": lines, "edits": args.edits, "seed": seed, "debounce_ms": 30,
               "target_ms": TARGET_MS, "load_average": round(load, 1),
               "covers": "didChange to publishDiagnostics of that version, real ccl lsp "
                         "over stdio"}
    figures = [
        ("median_ms", statistics.median(latencies)),
        ("p95_ms", percentile(latencies, 0.95)),
        ("min_ms", min(latencies)),
        ("max_ms", max(latencies)),
        ("open_ms", opened_ms),
        ("server_cpu_per_edit_ms", server_cpu),
        ("front_end_alone_median_ms", alone),
        ("front_end_alone_cpu_median_ms", alone_cpu),
        ("front_end_whole_parse_cpu_median_ms", whole_cpu),
    ]
    for metric, value in figures:
        print(json.dumps({"benchmark": "lsp_latency", "metric": metric,
                          "value": round(value, 1), "unit": "ms", **context}), flush=True)
    print(json.dumps({"benchmark": "lsp_latency", "metric": "reuse_over_whole_parse_cpu",
                      "value": round(alone_cpu / whole_cpu, 3), "unit": "ratio",
                      "reference": "the same front end parsing the whole buffer at every "
                                   "edit, interleaved in this process", **context}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
