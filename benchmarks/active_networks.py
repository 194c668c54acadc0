"""Active networks (issue 16): per workload and protocol, bytes on the wire, node memory and
delivery time; and the size of VMlet-PLAN and VMlet-ANTS against a hand-written router.

**Traffic and memory.** Each workload is one entry of ``WORKLOADS``: a scenario of
``missions/activenet/scenarios/`` and, optionally, the programs of its sends to keep. It is
run once per protocol (every send's ``protocol`` set to it; ``auto``, the per-packet choice,
when the scenario loader accepts it) with VMlet-PLAN and VMlet-ANTS loaded in every node,
caches empty (a first use), through the real sender and simulator (``ccl net sim``).
Figures per run:

* ``wire_bytes``: every byte every node sent on a link (packets, code requests and
  responses; lost ones included);
* ``peak_node_memory``: the largest, over nodes, of a node's peak memory, where a node's
  memory at an instant is the program in hand (a PLAN packet's, from its load to the end of
  its run) plus its code cache (ANTS), sampled by the simulator at every change (``memory``
  events; ``peak_memory_bytes`` of the meter); the VMlets and the VVM, the same in every
  node and for every protocol, and packets waiting in queues are not counted;
  ``network_memory`` is the sum over nodes of their peaks;
* ``retained_memory``: the sum over nodes of what they still hold when the run ends (the
  code ANTS caches stays; a PLAN program is let go after its run);
* ``again_wire_bytes``, ``again_load_cycles``: what the same sends cost once more, 10 s
  later, with the caches as the first use left them (the run twice, less the run once);
* ``delivery_ms``: the longest time from a packet's injection to the delivery of a value
  it caused (a ping's round trip, a traceroute's last report).

A workload whose scenario is not there (another branch adds it) is skipped, said on
stderr. Every protocol must deliver what PLAN delivers (the same number of values at each
node, the same values apart from round-trip times); a run that does not is reported with
``"same_as_plan": false``.

**Sizes.** CCL source bytes (as written, and without comments and blank lines) and bytecode
bytes (the encoded image) of each VMlet, against ``missions/activenet/reference/router.py``,
a plain Python router doing what PLAN and ANTS nodes do for these workloads (tested to
deliver the same: tests/ground/test_reference_router.py), without comments, docstrings and
blank lines. The VMlets do not stand alone: they expose the profile's host services
(``natives.py``), and packet handling, the code cache and demand loading are the router's
(``ground/network/simulator.py``, the methods named in ``ROUTER_METHODS``). So three ratios:
the reference over the VMlets alone (what the paper counted), over the VMlets and the
natives, and over all of what the VVM router adds to the VVM for this domain. The VVM
itself (verifier, translator, metering) is counted on neither side: the reference has none
of it (it trusts its code and charges a fixed cost).
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import re
import sys
import tokenize
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ccl.driver import Compiler  # noqa: E402
from ccl.syntax import blank_comments  # noqa: E402
from ground.network.choice import PROTOCOLS  # noqa: E402
from ground.network.scenario import NetScenario, load_net_scenario  # noqa: E402
from ground.network.sender import run_net_scenario  # noqa: E402
from ground.network.simulator import RunReport  # noqa: E402

NET = ROOT / "missions" / "activenet"
NAME = "active_networks"
AGAIN_MS = 10_000  # when a workload's sends go again (its first use is over by then)


class Workload(NamedTuple):  # not a dataclass: run.py's loader keeps no sys.modules entry
    """A workload: the sends of a scenario that it sends by PLAN (a scenario of a workload
    shows it by PLAN, then again by ANTS: one copy is kept), of ``programs`` only if given,
    from ``from_ms`` on. ``timed``: the values delivered are times (compared by count
    only). ``dest``, ``reach`` and ``replies``: the packet's shape for the sender's choice
    (``auto``, ground/network/choice.py); without ``dest``, the model does not describe
    the workload and it has no ``auto`` run."""

    name: str
    scenario: str
    programs: tuple[str, ...] = ()
    from_ms: int = 0
    timed: bool = False
    dest: int | None = None
    reach: str = "ends"
    replies: bool = True


WORKLOADS = (
    Workload("ping", "ping_traceroute.toml", ("ping.ccl",), timed=True, dest=5),
    Workload("traceroute", "ping_traceroute.toml", ("traceroute.ccl",), dest=5,
             reach="every-hop"),
    Workload("flood", "flood.toml"),  # everywhere: no one destination to price
    Workload("multicast", "multicast.toml"),  # a tree: no one destination to price
    Workload("reliable transfer", "reliable.toml", dest=4),
    # the sends once VMlet-MARK is installed (in band, at 20 ms; that flood is counted)
    Workload("record route, VMlet in band", "inband.toml", ("recordroute.ccl",), 100,
             dest=4, reach="every-hop", replies=False),
)

#: The simulator's methods that are the router's part of PLAN and ANTS, and ``CacheSpec``
#: (the rest of ``Network`` is the event machinery, links with their bandwidth and loss,
#: the trace and the meters, VMlets in band; ``_transmit``'s TTL check, 3 lines, is left
#: with the link it guards).
ROUTER_METHODS = ("_arrive", "_load", "_evaluate", "_capsule", "_fetch", "_timeout",
                  "_serve", "_receive_code", "_install", "_load_cycles", "_charge_load",
                  "_execute", "_route")

#: What natives.py holds for VMlet-SoftState (flood, reliable transfer), not PLAN or ANTS:
#: left out of the natives the VMlets rely on (the lines that name them in the host's
#: table of natives stay, 5 of them).
SOFT_STATE = ("StateSpec", "SoftState", "_ontimer", "_seen")

#: Published sizes of the original implementations, with their source.
PUBLISHED = {
    "ants": {"lines": 10_000, "language": "Java",
             "source": "D. Wetherall, 'Active network vision and reality: lessons from a "
                       "capsule-based system', SOSP 1999, talk slides: 'ANTS Toolkit: "
                       "user-level reference platform, ~10,000 lines, 100% Java' "
                       "(https://sigops.org/s/conferences/sosp/1999/slides/net1.tar.gz)"},
}


def emit(metric: str, value: float, unit: str, **context: Any) -> None:
    print(json.dumps({"benchmark": NAME, "metric": metric, "value": value, "unit": unit,
                      **context}), flush=True)


# --------------------------------------------------------------------------- traffic


def protocols(workload: Workload) -> tuple[str, ...]:
    """``plan`` and ``ants``, and ``auto`` for a workload of a shape the choice prices."""
    return PROTOCOLS if workload.dest is not None else ("plan", "ants")


def variant(scenario: NetScenario, workload: Workload, protocol: str,
            again: bool = False) -> NetScenario:
    """``scenario`` with only the workload's sends, all by ``protocol``, both VMlets; with
    ``again``, the same sends once more ``AGAIN_MS`` later."""
    sends = tuple(replace(s, protocol=protocol, dest=workload.dest, reach=workload.reach,
                          replies=workload.replies) for s in scenario.sends
                  if (not workload.programs or s.program.name in workload.programs)
                  and s.at_ms >= workload.from_ms and s.protocol == "plan")
    if again:
        sends += tuple(replace(s, at_ms=s.at_ms + AGAIN_MS) for s in sends)
    vmlets = scenario.vmlets + tuple(v for v in ("plan", "ants") if v not in scenario.vmlets)
    return replace(scenario, sends=sends, vmlets=vmlets, expect=())


def delivery_ms(report: RunReport) -> float:
    """The longest time from a packet's injection to the delivery of a value it caused
    (through the packets it spawned): a ping's round trip, a traceroute's last report."""
    injected = {e.packet: e.t_us for e in report.trace if e.event == "inject"}
    parent = {e.packet: int(str(e.detail["parent"])) for e in report.trace
              if e.event == "spawn"}
    longest = 0
    for e in report.trace:
        if e.event == "deliver":
            root = e.packet
            while root not in injected and root in parent:
                root = parent[root]
            if root in injected:
                longest = max(longest, e.t_us - injected[root])
    return longest / 1000


def deliveries(report: RunReport, timed: bool) -> dict[int, tuple[int, list[int]]]:
    """Per node: how many values, and which (none if they are times)."""
    return {n: (len(m.delivered), [] if timed else sorted(m.delivered))
            for n, m in report.nodes.items()}


def traffic(compiler: Compiler) -> list[dict[str, Any]]:
    rows = []
    for workload in WORKLOADS:
        path = NET / "scenarios" / workload.scenario
        if not path.is_file():
            print(f"# {NAME}: no {path.name} here: workload {workload.name} skipped",
                  file=sys.stderr)
            continue
        scenario = load_net_scenario(path)
        baseline = None
        for protocol in protocols(workload):
            result = run_net_scenario(variant(scenario, workload, protocol), compiler)
            report = result.report
            got = deliveries(report, workload.timed)
            baseline = got if baseline is None else baseline
            peak_node, peak = max(((n, m.peak_memory_bytes) for n, m in report.nodes.items()),
                                  key=lambda item: (item[1], -item[0]))
            chosen = [str(e.detail["protocol"]) for e in report.trace if e.event == "choose"]
            context = {"workload": workload.name, "protocol": protocol,
                       **({"chosen": chosen} if chosen else {}),
                       "topology": scenario.topology.name,
                       "nodes": len(scenario.topology.nodes),
                       "delivered": sum(len(m.delivered) for m in report.nodes.values()),
                       "same_as_plan": got == baseline, "complete": report.complete}
            row = {"wire_bytes": report.wire_bytes, "peak_node_memory": peak,
                   "network_memory": sum(m.peak_memory_bytes for m in report.nodes.values()),
                   "retained_memory": sum(m.memory_bytes for m in report.nodes.values()),
                   "delivery_ms": delivery_ms(report),
                   "fetches": sum(m.code_fetches for m in report.nodes.values()),
                   "load_cycles": sum(m.load_cycles for m in report.nodes.values())}
            emit("wire_bytes", row["wire_bytes"], "bytes", **context)
            emit("peak_node_memory", peak, "bytes", node=peak_node, **context)
            emit("network_memory", row["network_memory"], "bytes", **context)
            emit("retained_memory", row["retained_memory"], "bytes", **context)
            emit("delivery_ms", row["delivery_ms"], "ms", **context)
            emit("load_cycles", row["load_cycles"], "cycles", fetches=row["fetches"],
                 **context)
            twice = run_net_scenario(variant(scenario, workload, protocol, again=True),
                                     compiler).report
            assert twice.end_us >= AGAIN_MS * 1000 > report.end_us, "the second use overlaps"
            row["again_wire_bytes"] = row["again_load_cycles"] = None
            if sum(len(m.delivered) for m in twice.nodes.values()) == 2 * context["delivered"]:
                row["again_wire_bytes"] = twice.wire_bytes - report.wire_bytes
                row["again_load_cycles"] = sum(m.load_cycles for m in twice.nodes.values()) \
                    - row["load_cycles"]
                emit("again_wire_bytes", row["again_wire_bytes"], "bytes", **context,
                     what=f"the same sends again {AGAIN_MS} ms later, caches as the first "
                          "use left them")
                emit("again_load_cycles", row["again_load_cycles"], "cycles", **context)
            else:  # the same packets again are the same flood, the same segments: suppressed
                print(f"# {NAME}: {workload.name} by {protocol}: the same sends again "
                      "deliver nothing new (the nodes' state suppresses them): no `again` "
                      "figure", file=sys.stderr)
            rows.append({**context, **row})
    return rows


# --------------------------------------------------------------------------- sizes


def ccl_bytes(path: Path) -> tuple[int, int, int]:
    """Bytes as written, bytes without comments and blank lines, and those lines."""
    text = path.read_text(encoding="utf-8")
    lines = [line.rstrip() for line in blank_comments(text).splitlines()]
    kept = [line for line in lines if line]
    return len(text.encode()), sum(len(line.encode()) + 1 for line in kept), len(kept)


def python_code(text: str, leave_out: tuple[str, ...] = ()) -> list[str]:
    """The lines of Python ``text`` without comments, docstrings, blank lines, or the
    classes and functions named in ``leave_out``."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name in leave_out:
            first_line = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            docstrings.update(range(first_line, (node.end_lineno or 0) + 1))
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef |
                      ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                docstrings.update(range(first.lineno, (first.end_lineno or 0) + 1))
    cut: dict[int, int] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            cut[tok.start[0]] = tok.start[1]
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        if number in docstrings:
            continue
        line = line[:cut.get(number, len(line))].rstrip()
        if line:
            lines.append(line)
    return lines


def python_bytes(text: str, leave_out: tuple[str, ...] = ()) -> tuple[int, int, int]:
    lines = python_code(text, leave_out)
    return len(text.encode()), sum(len(line.encode()) + 1 for line in lines), len(lines)


def router_methods_source() -> str:
    """The source of the simulator's router methods (``ROUTER_METHODS``)."""
    path = ROOT / "ground" / "network" / "simulator.py"
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    network = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Network")
    found = {f.name: ast.get_source_segment(text, f) or "" for f in network.body
             if isinstance(f, ast.FunctionDef) and f.name in ROUTER_METHODS}
    cache = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CacheSpec")
    missing = [m for m in ROUTER_METHODS if m not in found]
    if missing:
        sys.exit(f"{NAME}: no method {', '.join(missing)} in {path}: update ROUTER_METHODS")
    return "\n".join([ast.get_source_segment(text, cache) or "",
                      *(found[m] for m in ROUTER_METHODS)])


def sizes(compiler: Compiler) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for vmlet in ("plan", "ants"):
        path = NET / "vmlets" / f"{vmlet}.ccl"
        written, code, lines = ccl_bytes(path)
        bytecode = len(compiler.compile(path).image.encode())
        figures[vmlet] = {"written": written, "code": code, "lines": lines,
                          "bytecode": bytecode}
        context = {"vmlet": vmlet, "file": str(path.relative_to(ROOT))}
        emit("vmlet_source_bytes", written, "bytes", **context)
        emit("vmlet_code_bytes", code, "bytes", lines=lines, **context,
             counted="without comments and blank lines")
        emit("vmlet_bytecode_bytes", bytecode, "bytes", **context)
    natives_text = (NET / "natives.py").read_text(encoding="utf-8")
    plan_code = blank_comments((NET / "vmlets" / "plan.ccl").read_text(encoding="utf-8"))
    exposed = sum(len(m.split(",")) for m in re.findall(r"\bexpose\s+([^;]+);", plan_code))
    reference_path = NET / "reference" / "router.py"
    parts = {"natives": python_bytes(natives_text, SOFT_STATE),
             "router_methods": python_bytes(router_methods_source()),
             "reference": python_bytes(reference_path.read_text(encoding="utf-8"))}
    emit("natives_exposed", exposed, "services", vmlet="plan",
         note="host services of the profile the VMlets expose")
    emit("natives_code_bytes", parts["natives"][1], "bytes", lines=parts["natives"][2],
         file="missions/activenet/natives.py", counted="without comments and docstrings, "
         f"nor VMlet-SoftState's services ({', '.join(SOFT_STATE)})")
    emit("router_code_bytes", parts["router_methods"][1], "bytes",
         lines=parts["router_methods"][2], file="ground/network/simulator.py",
         methods=list(ROUTER_METHODS), counted="without comments and docstrings")
    written, code, lines = parts["reference"]
    emit("reference_source_bytes", written, "bytes", file=str(reference_path.relative_to(ROOT)))
    emit("reference_code_bytes", code, "bytes", lines=lines,
         file=str(reference_path.relative_to(ROOT)), counted="without comments and docstrings")
    vmlets_code = figures["plan"]["code"] + figures["ants"]["code"]
    vmlets_bytecode = figures["plan"]["bytecode"] + figures["ants"]["bytecode"]
    ratios = {
        "ratio_reference_vs_vmlets": (vmlets_code, "VMlet-PLAN + VMlet-ANTS source"),
        "ratio_reference_vs_vmlet_bytecode": (vmlets_bytecode, "their bytecode"),
        "ratio_reference_vs_vmlets_and_natives": (vmlets_code + parts["natives"][1],
                                                  "the VMlets' source + natives.py"),
        "ratio_reference_vs_vvm_router": (vmlets_code + parts["natives"][1]
                                          + parts["router_methods"][1],
                                          "the VMlets + natives.py + the simulator's router "
                                          "methods"),
    }
    for metric, (against, what) in ratios.items():
        emit(metric, round(code / against, 2), "x", reference_bytes=code,
             against_bytes=against, against=what)
    vmlet_lines = figures["plan"]["lines"] + figures["ants"]["lines"]
    router_lines = vmlet_lines + parts["natives"][2] + parts["router_methods"][2]
    for vmlet, published in PUBLISHED.items():
        emit(f"original_{vmlet}_lines", published["lines"], "lines", **published)
        emit(f"ratio_original_{vmlet}_vs_vmlets", round(published["lines"] / vmlet_lines, 1),
             "x", vmlet_lines=vmlet_lines, counted="the original's lines as published, "
             "over the non-blank, non-comment lines of VMlet-PLAN + VMlet-ANTS "
             "(VMlet-ANTS is layered on VMlet-PLAN)")
        emit(f"ratio_original_{vmlet}_vs_vvm_router", round(published["lines"] / router_lines,
                                                            1),
             "x", vvm_router_lines=router_lines, counted="the original's lines as published, "
             "over the lines of the VMlets + natives.py + the simulator's router methods")
    return {**figures, **{k: v[1] for k, v in parts.items()}}


def table(rows: list[dict[str, Any]]) -> str:
    """The traffic figures as a Markdown table, a row per workload and protocol."""
    out = ["| workload | protocol | bytes on the wire (again, warm) | peak node memory | "
           "network memory (retained at the end) | delivery | code fetches |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        again = "–" if r["again_wire_bytes"] is None else f"{r['again_wire_bytes']:,} B"
        chosen = Counter(r.get("chosen", ()))
        protocol = r["protocol"] + "".join(
            f" → {p}" + (f" ×{n}" if n > 1 else "") for p, n in sorted(chosen.items()))
        out.append(f"| {r['workload']} | {protocol} | {r['wire_bytes']:,} B "
                   f"({again}) | {r['peak_node_memory']:,} B | "
                   f"{r['network_memory']:,} B ({r['retained_memory']:,} B) | "
                   f"{r['delivery_ms']:g} ms | {r['fetches']} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--markdown", action="store_true",
                    help="also print the traffic figures as a Markdown table (stderr)")
    args = ap.parse_args()
    compiler = Compiler()
    sizes(compiler)
    rows = traffic(compiler)
    if args.markdown:
        print(table(rows), file=sys.stderr)
    wrong = [f"{r['workload']} by {r['protocol']}" for r in rows if not r["same_as_plan"]]
    if wrong:
        print(f"# {NAME}: not what PLAN delivers: {', '.join(wrong)}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
