"""Simulation speed: one simulated day of the ``exo_e1`` configuration on the VVM.

Metric ``sim_speedup``: simulated seconds per host second (target >= 10,000), with the
frames, task runs and cycles simulated for context. Idle frames are skipped; every frame
with work runs the translated code under exact metering.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccl.driver import Compiler  # noqa: E402
from missions.corot.natives import make_host  # noqa: E402
from onboard.vm.vvm import VVM  # noqa: E402

DAY_MS = 86_400_000


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    compiled = Compiler().compile(root / "missions/corot/configs/exo_e1.ccl")
    vm = VVM(compiled.mission, make_host(compiled.mission, 1))
    for v in compiled.vmlets:
        vm.load_vmlet(v.image)
    vm.load(compiled.image)
    t = time.perf_counter()
    vm.run_for(DAY_MS)
    elapsed = time.perf_counter() - t
    tel = vm.telemetry
    print(json.dumps({"benchmark": "sim_speed", "metric": "sim_speedup",
                      "value": round(DAY_MS / 1000 / elapsed, 1), "unit": "sim_s/host_s",
                      "host_seconds": round(elapsed, 3), "busy_frames": tel.busy_frames,
                      "task_runs": tel.tasks["cosmic_filter"].runs,
                      "cycles": tel.cycles_used}))


if __name__ == "__main__":
    main()
