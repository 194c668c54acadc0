"""A scenario's network as real processes exchanging UDP datagrams on 127.0.0.1.

``UdpNetwork`` takes what ``Network`` takes and offers what the sender uses of it
(``next_id``, ``inject``, ``refuse``, ``run``), so ``run_net_scenario`` proves and sends a
scenario's packets exactly as for the simulator (``run_udp_scenario``). Its ``run`` starts
one process per node (``ground.network.node_process``: the simulator's node logic on a UDP
port, ``port_base + address``), hands each its injections, starts them at one instant,
watches for the end and collects each node's meter and trace into one ``RunReport``.

**The end.** The run is over when every node is idle (no event due, no datagram waiting
for its link's delay) and the datagrams sent by all nodes equal those received by all,
twice in a row (the four-counter rule: a datagram in flight shows as sent and not yet
received). A datagram the OS lost, or a node that stops answering, shows as a run that does
not end within ``timeout_s``: an error, and the processes are stopped.

**No orphans.** Every node process is stopped when the run ends, fails or is interrupted
(Ctrl-C: the processes are in their own session, so the terminal's signal reaches the
driver only, which stops them): asked, then terminated, then killed. A node process also
ends by itself when its stdin closes, which the kernel does when the driver dies, even
killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccl.driver import Compiler
from ground.network.node_process import Boot, decode_object, encode_object
from ground.network.packet import Packet
from ground.network.scenario import NetScenario
from ground.network.sender import NetResult, run_net_scenario
from ground.network.simulator import NodeMeter, RunReport, Topology, TopologyError, TraceEvent
from onboard.mission import MissionProfile
from onboard.vm.image import Image

#: The default first port: node ``a`` listens on ``PORT_BASE + a``.
PORT_BASE = 47_000
#: Default wall seconds per simulated second.
DILATION = 10.0
#: Default wall seconds a run may take from the start before it is given up.
TIMEOUT_S = 120.0
#: Wall seconds between two looks at the nodes for the end of the run.
POLL_S = 0.05
#: Wall seconds a node process is given to boot (import, load its VMlets, bind its port).
BOOT_S = 60.0
ROOT = Path(__file__).resolve().parents[2]


class UdpRunError(RuntimeError):
    """A run over UDP that could not be done: ``hint`` says what to change."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class PortBusyError(UdpRunError):
    """A node's port is held by another program."""


@dataclass
class UdpStats:
    """How a run over UDP went, beside its report."""

    ports: dict[int, int] = field(default_factory=dict)  # node: port
    pids: dict[int, int] = field(default_factory=dict)  # node: process id
    wall_s: float = 0.0  # from the common start to the end of the run
    boot_s: float = 0.0  # starting the processes until all were ready
    datagrams: int = 0
    late: int = 0  # datagrams a node received after a later event: results may differ

    def to_json(self) -> dict[str, object]:
        return {"ports": {str(n): p for n, p in sorted(self.ports.items())},
                "wall_s": round(self.wall_s, 3), "boot_s": round(self.boot_s, 3),
                "datagrams": self.datagrams, "late": self.late}


class UdpNetwork:
    """The nodes of ``topology`` as processes; the arguments are ``Network``'s."""

    def __init__(self, topology: Topology, profile: MissionProfile,
                 vmlets: Sequence[Image] = (), seed: int = 1,
                 node_profiles: Mapping[int, MissionProfile] | None = None,
                 *, port_base: int = PORT_BASE, dilation: float = DILATION,
                 timeout_s: float = TIMEOUT_S, **options: Any) -> None:
        if not 1024 <= port_base <= 65_535 - 255:
            raise UdpRunError(f"port base {port_base} is outside 1024..{65_535 - 255}",
                              "node a listens on port base + a")
        if dilation <= 0:
            raise UdpRunError(f"dilation {dilation} is not positive",
                              "wall seconds per simulated second, e.g. 10")
        self.topology = topology
        self.args = (topology, profile, tuple(vmlets), seed, dict(node_profiles or {}))
        self.options = options
        self.port_base, self.dilation, self.timeout_s = port_base, dilation, timeout_s
        self.orders: dict[int, list[dict[str, object]]] = {n: [] for n in topology.nodes}
        self.stats = UdpStats()
        self._ids = 0

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def inject(self, at_ms: int, node: int, packet: Packet, code: bytes | None = None) -> None:
        """As ``Network.inject``: ``node``'s process is handed ``packet`` at ``at_ms``."""
        if node not in self.orders:
            raise TopologyError(f"no node {node} to send from")
        self.orders[node].append({"inject": {"at_ms": at_ms, "packet": packet.encode().hex(),
                                             "code": None if code is None else code.hex()}})

    def refuse(self, at_ms: int, node: int, packet: int, why: str) -> None:
        """As ``Network.refuse``: the sender at ``node`` did not send packet ``packet``."""
        self.orders[node].append({"refuse": {"at_ms": at_ms, "packet": packet, "why": why}})

    def choose(self, at_ms: int, node: int, packet: int, detail: Mapping[str, object]) -> None:
        """As ``Network.choose``: the sender at ``node`` chose a protocol for ``packet``."""
        self.orders[node].append({"choose": {"at_ms": at_ms, "packet": packet,
                                             "detail": dict(detail)}})

    def run(self, until_ms: int | None = None) -> RunReport:
        """Start the node processes, run the injections, stop them; the merged report."""
        return asyncio.run(self._run(None if until_ms is None else until_ms * 1000))

    # ------------------------------------------------------------------ the processes

    async def _run(self, until_us: int | None) -> RunReport:
        nodes: dict[int, _Child] = {}
        try:
            began = time.monotonic()
            for address in self.topology.nodes:
                boot = Boot(address, self.args, self.options, self.port_base, self.dilation,
                            until_us)
                nodes[address] = await _Child.start(address, boot)
            for child in nodes.values():
                child.ready(await child.answer("ready", BOOT_S))
                self.stats.ports[child.address] = child.port
                self.stats.pids[child.address] = child.process.pid
            self.stats.boot_s = time.monotonic() - began
            for address, child in nodes.items():
                for order in self.orders[address]:
                    child.say(order)
            start = time.monotonic() + 0.05  # every node has the order before it comes
            for child in nodes.values():
                child.say({"start": start})
            await self._until_quiet(nodes, start)
            self.stats.wall_s = time.monotonic() - start
            reports = []
            for child in nodes.values():
                child.say({"stop": True})
            for child in nodes.values():
                answer = await child.answer("report", 30.0)
                self.stats.late += int(answer["late"])
                reports.append(decode_object(answer["report"]))
            return _merge(reports)
        finally:
            await asyncio.shield(_stop_all(nodes.values()))

    async def _until_quiet(self, nodes: Mapping[int, _Child], start: float) -> None:
        last: tuple[int, int] | None = None
        asked = 0
        while True:
            await asyncio.sleep(POLL_S)
            if time.monotonic() - start > self.timeout_s:
                raise UdpRunError(f"the run did not end within {self.timeout_s:g} s of wall "
                                  "time (a datagram lost by the OS, or a node that does not "
                                  "answer)", "give more --timeout, or a lower --dilation")
            asked += 1
            for child in nodes.values():
                child.say({"status": asked})
            answers = [await child.answer("status", 30.0) for child in nodes.values()]
            sent = sum(int(a["sent"]) for a in answers)
            received = sum(int(a["received"]) for a in answers)
            self.stats.datagrams = sent
            quiet = all(a["idle"] for a in answers) and sent == received
            if quiet and last == (sent, received):
                return
            last = (sent, received) if quiet else None


def _merge(reports: Sequence[RunReport]) -> RunReport:
    """One report of the nodes' own: their meters, their traces in time order."""
    meters: dict[int, NodeMeter] = {}
    trace: list[TraceEvent] = []
    for report in reports:
        meters.update(report.nodes)
        trace += report.trace
    trace.sort(key=lambda e: e.t_us)  # stable: a node's own events keep their order
    return RunReport(tuple(trace), dict(sorted(meters.items())),
                     max((r.end_us for r in reports), default=0),
                     all(r.complete for r in reports))


class _Child:
    """One node process and its protocol lines."""

    def __init__(self, address: int, process: asyncio.subprocess.Process,
                 errors: Any) -> None:
        self.address = address
        self.process = process
        self.errors = errors  # its stderr, a temporary file
        self.port = 0

    @staticmethod
    async def start(address: int, boot: Boot) -> _Child:
        errors = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by _stop
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ground.network.node_process",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=errors,
            env=env, start_new_session=True, limit=1 << 26)
        child = _Child(address, process, errors)
        child.say({"boot": encode_object(boot)})
        return child

    def say(self, order: Mapping[str, object]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(order) + "\n").encode())

    async def answer(self, key: str, within_s: float) -> dict[str, Any]:
        """The node's next line, which must carry ``key`` (else its error, raised)."""
        assert self.process.stdout is not None
        assert self.process.stdin is not None
        await self.process.stdin.drain()
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), within_s)
        except TimeoutError:
            raise UdpRunError(f"node {self.address}'s process did not answer within "
                              f"{within_s:g} s", "the machine may be overloaded") from None
        if not line:
            raise UdpRunError(f"node {self.address}'s process ended: {self.tail()}",
                              "its error output is above")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            if "port" in answer:
                raise PortBusyError(answer["error"], "another program holds that port: "
                                    "stop it, or choose another --port-base")
            raise UdpRunError(answer["error"])
        if key not in answer:
            raise UdpRunError(f"node {self.address} answered {sorted(answer)}, not {key}")
        return answer

    def ready(self, answer: Mapping[str, Any]) -> None:
        self.port = int(answer["ready"])

    def tail(self) -> str:
        self.errors.seek(0)
        text = self.errors.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(text[-3:]) or "no error output"

    async def stop(self) -> None:
        """Stop the process whatever its state: close its stdin (it ends), then SIGTERM,
        then SIGKILL; and reap it."""
        process = self.process
        try:
            if process.returncode is None and process.stdin is not None:
                process.stdin.close()
            for sig, wait in ((None, 2.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
                if process.returncode is not None:
                    break
                if sig is not None:
                    try:
                        process.send_signal(sig)
                    except ProcessLookupError:
                        pass
                try:
                    await asyncio.wait_for(process.wait(), wait)
                except TimeoutError:
                    continue
        finally:
            self.errors.close()


async def _stop_all(children: Any) -> None:
    await asyncio.gather(*(child.stop() for child in list(children)),
                         return_exceptions=True)


def run_udp_scenario(scenario: NetScenario, compiler: Compiler | None = None,
                     key: bytes | None = None, *,
                     port_base: int = PORT_BASE, dilation: float = DILATION,
                     timeout_s: float = TIMEOUT_S) -> tuple[NetResult, UdpStats]:
    """``run_net_scenario`` with its network as UDP processes (``key``: the network's, as
    there): the same proofs, sends, report and judgement; and how the run over UDP went."""
    made: list[UdpNetwork] = []

    def medium(*args: Any, **options: Any) -> UdpNetwork:
        made.append(UdpNetwork(*args, port_base=port_base, dilation=dilation,
                               timeout_s=timeout_s, **options))
        return made[-1]

    result = run_net_scenario(scenario, compiler, key, medium=medium)
    return result, made[0].stats
