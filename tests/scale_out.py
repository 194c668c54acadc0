"""What the scaling tests and benchmark share: a local Ray cluster (``ray start --head`` of a
few CPUs on 127.0.0.1, a free port and a temporary folder of its own, stopped, and every
process of its session with it, when the ``with`` block ends, even on failure; no other Ray
on the machine is touched), and a command's JSON report without its times, to compare the
reports of serial and parallel runs.

Importable from every test module (``tests/`` is on the path) and from the benchmarks
(``benchmarks/scaling.py`` puts ``tests/`` on its path).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

START_SECONDS = 120  # a loaded 2-core machine takes a few seconds; never wait for ever


@contextmanager
def local_ray(cpus: int = 2) -> Iterator[str]:
    """The address (``127.0.0.1:PORT``) of a Ray head of ``cpus`` CPUs, for the block."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray is None:
        raise RuntimeError("Ray is not installed: pip install -e '.[scale]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's sockets live there
    # --block keeps `ray start` the parent of Ray's processes, in a session of their own
    head = subprocess.Popen([ray, "start", "--head", f"--port={port}", f"--num-cpus={cpus}",
                             "--node-ip-address=127.0.0.1", f"--temp-dir={temp}",
                             "--include-dashboard=false", "--disable-usage-stats",
                             "--block"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if head.poll() is not None:
                    err = head.stderr.read().decode(errors="replace") if head.stderr else ""
                    raise RuntimeError(f"ray start failed: {err[-2000:]}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Ray did not start in {START_SECONDS} s") from None
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()  # `ray start` drains the node and stops its processes (~5 s)
        try:
            head.wait(timeout=40)
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever is left of its session
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        shutil.rmtree(temp, ignore_errors=True)


def timeless(data: Any) -> Any:
    """A JSON report without the wall-clock times it states (all that may differ between a
    serial run and a parallel one) and without where it ran."""
    if isinstance(data, dict):
        return {k: timeless(v) for k, v in data.items()
                if k not in ("seconds", "verify_seconds", "ran_on")}
    if isinstance(data, list):
        return [timeless(v) for v in data]
    return data

