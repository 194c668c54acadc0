"""The sender's side of an active network: compile a packet's program, prove it, build the
packet; and a scenario run end to end (boot the nodes, inject, simulate, judge).

A sender proves the program before it sends it (``ccl verify``: no trap, no overflow, and
its task ``main`` within one frame's share of a node, the most one packet may use at one
node) and checks that the packet's resource bound covers one evaluation at its proven worst
case. A refused program is not sent: the trace says so (``refused-at-sender``). A send
marked ``unverified`` skips both checks, to show what the nodes do with such a program.

A VMlet sent in band (``[[install]]``) is compiled and proven the same way (``ccl
verify`` of the VMlet: every obligation proven) and tagged with the network's key, the
mission's patch key (``ccl.pack.load_key``: ``$CCL_PATCH_KEY``, else the development key,
which a flight profile refuses), which every node holds. The proof is the sender's; the
nodes re-check what they can (the tag, the load-time bytecode verifier, the binding rules).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ccl.compiled import Compiled
from ccl.diagnostics import CclError
from ccl.driver import Compiler
from ccl.pack import load_key
from ccl.verify.program import verify_program
from ccl.verify.report import VerifyReport, diagnostic
from ground.network.choice import (
    GROUP_REACHES,
    Choice,
    ChoiceError,
    History,
    Sent,
    Shape,
    Weights,
    choose,
    estimate,
    shape_of,
)
from ground.network.packet import (
    CAPSULE_NEIGHBOUR,
    NEIGHBOUR,
    VMLET,
    VMLET_FLOOD,
    Packet,
    code_id,
    sign_vmlet,
)
from ground.network.scenario import (
    Expectation,
    Injection,
    Install,
    NetScenario,
    NetScenarioError,
)
from ground.network.simulator import ENTRY, CacheSpec, Network, RunReport
from onboard.patching.patch_format import development_key
from onboard.vm.image import Image

#: The key a ``forged`` install is tagged with: anything but the network's key.
FORGER_KEY = development_key("not the network")


class Medium(Protocol):
    """What a scenario's packets are sent into: the simulator's ``Network``, or its nodes
    as processes over UDP (``ground.network.udp.UdpNetwork``)."""

    def next_id(self) -> int: ...
    def inject(self, at_ms: int, node: int, packet: Packet,
               code: bytes | None = None) -> None: ...
    def refuse(self, at_ms: int, node: int, packet: int, why: str) -> None: ...
    def choose(self, at_ms: int, node: int, packet: int,
               detail: Mapping[str, object]) -> None: ...
    def run(self, until_ms: int | None = None) -> RunReport: ...


@dataclass(frozen=True)
class Verdict:
    """The sender's judgement of one program: sent or not, and why not."""

    proven: bool
    why: str = ""
    worst_cycles: int | None = None


def judge(compiled: Compiled, rb: int, report: VerifyReport | None = None) -> Verdict:
    """Whether a sender may send ``compiled`` with a bound of ``rb`` cycles."""
    report = report or verify_program(compiled)
    if report.status != "proven":
        return _unproven(report)
    try:
        worst = report.worst_case(ENTRY)
    except KeyError:
        return Verdict(False, f"`{compiled.program.name}` has no task `{ENTRY}`")
    if worst.bound > rb:
        return Verdict(False, f"its resource bound of {rb} cycles does not cover one "
                              f"evaluation of `{ENTRY}` ({worst.bound} cycles at worst)",
                       worst.bound)
    return Verdict(True, "", worst.bound)


def judge_vmlet(compiled: Compiled, report: VerifyReport | None = None) -> Verdict:
    """Whether a sender may send the VMlet ``compiled`` in band: all of it proven."""
    report = report or verify_program(compiled)
    return Verdict(True) if report.status == "proven" else _unproven(report)


def _unproven(report: VerifyReport) -> Verdict:
    """The verdict on a program or VMlet not proven: its first refuted or unknown
    obligation, where it is."""
    d = diagnostic((report.refuted or report.unknown)[0])
    where = f"{d.span.file}:{d.span.line}:{d.span.col}: " if d.span else ""
    return Verdict(False, f"{where}{d.code}: {d.message}")


def vmlet_packet(install: Install, image: Image, network: Medium, key: bytes) -> Packet:
    """The VMlet packet of ``install``: ``image`` (the VMlet alone: the layers it uses must
    be on the nodes already) tagged with ``key``."""
    kind = VMLET_FLOOD if install.flood else VMLET
    packet = Packet(kind, network.next_id(), install.node, install.dest, install.ttl, 0,
                    (0,) * 8, b"")
    return sign_vmlet(packet, image.encode(), key)


@dataclass(frozen=True)
class NetResult:
    """A scenario run: the simulator's report, each expectation met or not."""

    scenario: NetScenario
    report: RunReport
    verdicts: tuple[tuple[Injection, Verdict | None], ...]  # None: sent unverified
    expectations: tuple[tuple[Expectation, bool, str], ...]
    program_bytes: dict[str, int]
    installs: tuple[tuple[Install, Verdict | None, int], ...] = ()  # and the packet's bytes
    choices: tuple[Choice | None, ...] = ()  # per send: the sender's choice (protocol auto)

    @property
    def ok(self) -> bool:
        return all(met for _, met, _ in self.expectations)

    def protocol(self, k: int) -> str:
        """The protocol send ``k`` went by (the sender's choice for ``auto``)."""
        choice = self.choices[k] if k < len(self.choices) else None
        return choice.protocol if choice is not None else self.verdicts[k][0].protocol

    @property
    def protocols(self) -> dict[str, int]:
        """Packets sent (refused ones aside) per protocol, and how many the sender chose."""
        sent = [k for k, (_, v) in enumerate(self.verdicts) if v is None or v.proven]
        counts = {p: sum(self.protocol(k) == p for k in sent) for p in ("plan", "ants")}
        chosen = [self.protocol(k) for k in sent
                  if k < len(self.choices) and self.choices[k] is not None]
        return {**counts, "auto_plan": chosen.count("plan"), "auto_ants": chosen.count("ants")}

    def to_json(self) -> dict[str, object]:
        return {"scenario": self.scenario.name, "ok": self.ok,
                "topology": self.scenario.topology.name,
                "programs": self.program_bytes,
                "protocols": self.protocols,
                "sends": [{"node": i.node, "at_ms": i.at_ms, "program": i.program.name,
                           "sent": v is None or v.proven,
                           "verified": v is not None,
                           "protocol": self.protocol(k),
                           **({"choice": c.to_json()} if (c := self._choice(k)) else {}),
                           **({"why": v.why} if v is not None and v.why else {}),
                           **({"worst_cycles": v.worst_cycles}
                              if v is not None and v.worst_cycles is not None else {})}
                          for k, (i, v) in enumerate(self.verdicts)],
                "installs": [{"node": i.node, "at_ms": i.at_ms, "vmlet": i.vmlet,
                              "flood": i.flood, "dest": i.dest, "forged": i.forged,
                              "sent": v is None or v.proven, "verified": v is not None,
                              "bytes": size, **({"why": v.why} if v and v.why else {})}
                             for i, v, size in self.installs],
                "expectations": [{"expect": e.describe(), "met": met, "seen": seen}
                                 for e, met, seen in self.expectations],
                **self.report.to_json()}


    def _choice(self, k: int) -> Choice | None:
        return self.choices[k] if k < len(self.choices) else None


def run_net_scenario(scenario: NetScenario, compiler: Compiler | None = None,
                     key: bytes | None = None, *,
                     medium: Callable[..., Medium] = Network) -> NetResult:
    """Compile the VMlets and programs, boot the network, inject, run, judge; raises
    ``CclError`` for a source that does not compile, ``NetScenarioError`` for a node
    variant the profile lacks. ``key`` is the network's key, which tags VMlets sent in band
    and which every node holds (default: the mission's patch key, ``ccl.pack.load_key``);
    ``ccl.pack.PackError`` if that key cannot be read or is refused. ``medium`` makes the
    network from ``Network``'s arguments (the simulator's, or ``ground.network.udp``'s
    processes)."""
    compiler = compiler or Compiler()
    profile = compiler.mission(scenario.mission)
    if key is None:
        key = load_key(profile, None).secret
    vmlets: list[Image] = []
    for name in scenario.vmlets:
        compiled = compiler.compile(profile.directory / "vmlets" / f"{name}.ccl")
        vmlets += [*(v.image for v in compiled.vmlets), compiled.image]  # lower layers first
    unique = list({v.name: v for v in vmlets}.values())
    try:
        own = {node: compiler.mission(f"{scenario.mission}:{variant}")
               for node, variant in scenario.variants.items()}
    except CclError as exc:
        d = exc.diagnostics[0]
        raise NetScenarioError(d.message, f"{scenario.path}: [topology.variant]",
                               d.hint) from None
    network: Any = medium(scenario.topology, profile, unique, scenario.seed, own, key=key)
    reports: dict[Path, VerifyReport] = {}
    verdicts: list[tuple[Injection, Verdict | None]] = []
    sizes: dict[str, int] = {}
    codes: list[bytes] = []
    for send in scenario.sends:
        compiled = compiler.compile(send.program)
        sizes[send.program.name] = len(compiled.image.encode())
        verdict = None
        if not send.unverified:
            if send.program not in reports:
                reports[send.program] = verify_program(compiled)
            verdict = judge(compiled, send.rb, reports[send.program])
        verdicts.append((send, verdict))
        codes.append(compiled.image.encode())
    try:
        weights = Weights.of(profile)
    except ChoiceError as exc:
        raise NetScenarioError(str(exc), f"{profile.directory / 'mission.toml'}: [choice]",
                               "see missions/activenet/mission.toml") from None
    choices = sender_choices(scenario, [v is None or v.proven for _, v in verdicts], codes,
                             weights, CacheSpec.of(profile))
    for (send, verdict), code, choice in zip(verdicts, codes, choices, strict=True):
        # the capsule names its code; the sender's node has it
        ants = (choice.protocol if choice is not None else send.protocol) == "ants"
        packet = Packet(CAPSULE_NEIGHBOUR if ants else NEIGHBOUR, network.next_id(), send.node,
                        send.node, send.ttl, send.rb, send.data, code_id(code) if ants else code)
        if verdict is not None and not verdict.proven:
            network.refuse(send.at_ms, send.node, packet.id, verdict.why)
            continue
        if choice is not None:
            network.choose(send.at_ms, send.node, packet.id, choice.to_json())
        network.inject(send.at_ms, send.node, packet, code if ants else None)
    installs = []
    for install in scenario.installs:
        compiled = compiler.compile(profile.directory / "vmlets" / f"{install.vmlet}.ccl")
        verdict = None if install.unverified else judge_vmlet(compiled)
        packet = vmlet_packet(install, compiled.image, network,
                              FORGER_KEY if install.forged else key)
        installs.append((install, verdict, packet.size))
        if verdict is not None and not verdict.proven:
            network.refuse(install.at_ms, install.node, packet.id, verdict.why)
            continue
        network.inject(install.at_ms, install.node, packet)
    report = network.run(scenario.until_ms)
    went = [(c.protocol if c is not None else s.protocol) for s, c in zip(scenario.sends,
                                                                          choices, strict=True)]
    return NetResult(scenario, report, tuple(verdicts),
                     tuple(_judge_expectation(e, report, went) for e in scenario.expect),
                     sizes, choices=tuple(choices), installs=tuple(installs))


def sender_choices(scenario: NetScenario, sent: list[bool], codes: list[bytes],
                   weights: Weights, cache: CacheSpec) -> list[Choice | None]:
    """The choice of every ``auto`` send of ``scenario`` (None for the others), each sender
    going by what it sent before, in time order (``sent[k]``: send ``k`` is not refused;
    ``codes[k]``: its encoded program). Raises ``NetScenarioError`` for a send the model
    cannot price (its destination unreachable)."""
    histories: dict[int, History] = {}
    choices: list[Choice | None] = [None] * len(codes)
    order = sorted(range(len(codes)), key=lambda k: scenario.sends[k].at_ms)
    for k in order:
        send, code = scenario.sends[k], codes[k]
        if not sent[k]:
            continue
        history = histories.get(send.node, History())
        active: tuple[int, ...] = (send.node,)
        targets = None if send.dest is None else frozenset({send.dest})
        protocol = send.protocol
        shape = _shape(scenario, k)
        if shape is not None:
            active, targets = shape.active, shape.targets
            if protocol == "auto":
                guess = estimate(history, send.at_ms, code_id(code), len(code), shape,
                                 weights, cache)
                choice = choose(len(code), shape, guess, weights, cache)
                choices[k], protocol = choice, choice.protocol
        histories[send.node] = history.after(
            Sent(send.at_ms, code_id(code), len(code), targets, active, protocol))
    return choices


def _shape(scenario: NetScenario, k: int) -> Shape | None:
    """The shape of send ``k``, if it says one (a ``dest``, or a flood or multicast).
    Raises ``NetScenarioError`` for an ``auto`` send the model cannot price; another
    send's shape only informs later choices: None if it cannot be priced."""
    send = scenario.sends[k]
    if send.dest is None and send.reach not in GROUP_REACHES:
        return None
    try:
        return shape_of(scenario.topology, send.node, send.dest, send.reach, send.replies,
                        send.members, send.retransmit)
    except ChoiceError as exc:
        if send.protocol != "auto":
            return None
        raise NetScenarioError(str(exc), f"{scenario.path}: [[send]] {k + 1}",
                               "send it to nodes the sender can reach") from None


def _judge_expectation(e: Expectation, report: RunReport, protocols: list[str]
                       ) -> tuple[Expectation, bool, str]:
    if e.protocols is not None:
        return e, protocols == list(e.protocols), f"went by {protocols}"
    if e.installed is not None:
        at = [n for n, m in sorted(report.nodes.items())
              if any(v.split()[0] == e.installed for v in m.installed)]
        return e, at == list(e.nodes), f"installed at {at}"
    if e.drop is not None:
        n = len(report.drops(e.drop))
        return e, (n == e.count if e.count is not None else n > 0), f"{n} dropped"
    assert e.node is not None
    got = report.delivered(e.node) if e.node in report.nodes else []
    if e.delivered is not None:
        return e, got == list(e.delivered), f"delivered {got}"
    return e, len(got) == e.deliveries, f"{len(got)} delivered"

