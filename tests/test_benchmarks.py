"""Every benchmark script loads as ``python benchmarks/NAME.py`` would load it (its imports
resolve outside pytest, whose sys.path holds the test folders) and has a ``main``: a
benchmark that cannot start leaves a README figure that nothing can re-measure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(str(p) for p in (ROOT / "benchmarks").glob("*.py")
                    if not p.name.startswith("_"))

# One fresh interpreter loads each script in turn (not running main), from another folder.
LOADER = """
import importlib.util, json, sys
out = {}
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location("benchmark", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        out[path] = "ok" if callable(getattr(module, "main", None)) else "no main()"
    except Exception as exc:
        out[path] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def test_every_benchmark_loads_outside_pytest(tmp_path: Path) -> None:
    assert len(BENCHMARKS) >= 10
    proc = subprocess.run([sys.executable, "-c", LOADER, *BENCHMARKS], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert {Path(p).name: r for p, r in result.items() if r != "ok"} == {}


# The benchmarks that drive test helpers (tests/support.py, tests/onboard/*), at a tiny size:
# they import those helpers only once they run.
TINY = {
    "patch_fuzz.py": ["--examples", "20", "--hostile", "3"],
    "engine_fuzz.py": ["--programs", "20", "--workers", "1"],
    "soundness.py": ["--programs", "2", "--workers", "1"],
}


def test_the_benchmarks_built_on_test_helpers_run(tmp_path: Path) -> None:
    for name, args in TINY.items():
        proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{name}: {proc.stderr[-2000:]}"
        figures = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        assert figures and all(f["benchmark"] == name[:-3] for f in figures), name
