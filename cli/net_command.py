"""The ``ccl net`` commands: active networks of VVM nodes (docs/active-networks.md).

``ccl net sim SCENARIO [--trace] [--json] [--plot FILE.svg]``: read a network scenario (a
topology, the VMlets every node boots with, the packets senders inject, expectations),
compile and prove each packet's program on the sender's side, run the deterministic
simulator (``ground.network``), and report each node's meter, the deliveries, every drop
with its reason, and with ``--trace`` (always with ``--json``) every event; ``--plot``
draws each node's bytes in and out and memory held over the run (SVG). Exit 0 when every
expectation is met, 1 when one is not, or a program does not compile, or the file is not a
scenario (as ``ccl sim``), 2 for usage errors (no such file). ``--key FILE`` is the
network's key, which tags VMlets sent in band and which every node holds (default
``$CCL_PATCH_KEY``, else the mission's development key, as ``ccl pack``).

``ccl net run SCENARIO [--port-base N] [--dilation F] [--timeout S] [--key FILE] [--trace]
[--json]``:
the same, with every node a real process exchanging UDP datagrams on 127.0.0.1 (node ``a``
on port ``N + a``; ``ground.network.udp``), simulated time ``F`` times slower than the wall
clock; the same report, and how the run over UDP went. Exit 2 also for a busy port, 1 for a
run that did not end within ``S`` wall seconds.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.compile_commands import compiler_of, reject
from cli.console import EXIT_REJECTED, EXIT_USAGE, emit_json, fail, note, out_console
from cli.files import readable_inputs
from cli.options import output_options

out = out_console(markup=False)


@click.group()
def net() -> None:
    """Active networks: simulate networks of VVM routers running packets' programs."""


@net.command("sim")
@click.argument("scenario", metavar="SCENARIO")
@click.option("--trace", "show_trace", is_flag=True,
              help="Print every event of the run (the JSON output always has them).")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="Draw each node's traffic and memory over the run (an .svg file).")
@click.option("--key", "key_path", type=click.Path(dir_okay=False),
              help="The network's key file (hex), tagging VMlets sent in band; default "
                   "$CCL_PATCH_KEY, else the mission's development key.")
@output_options
@click.pass_context
def sim(ctx: click.Context, scenario: str, show_trace: bool, plot: str | None,
        key_path: str | None, as_json: bool) -> None:
    """Run a network SCENARIO: ping, traceroute, ... over simulated VVM routers."""
    # heavy imports on use only (cli.lazy_group)
    from ccl.diagnostics import CclError  # noqa: PLC0415
    from ccl.pack import PackError, load_key  # noqa: PLC0415
    from cli.pack_commands import key_error_code  # noqa: PLC0415
    from ground.network.scenario import NetScenarioError, load_net_scenario  # noqa: PLC0415
    from ground.network.sender import run_net_scenario  # noqa: PLC0415

    readable_inputs((scenario,))
    figure = _plot_path(plot) if plot else None
    compiler = compiler_of(ctx)
    try:
        spec = load_net_scenario(Path(scenario))
        key = load_key(compiler.mission(spec.mission), Path(key_path) if key_path else None)
        result = run_net_scenario(spec, compiler, key.secret)
    except PackError as exc:  # the network's key: unreadable, or refused by a flight profile
        fail(exc.message, exc.hint, key_error_code(exc), key_path or "")
    except NetScenarioError as exc:
        fail(exc.message, exc.hint or "see missions/activenet/scenarios/ for examples",
             EXIT_REJECTED, exc.where)
    except CclError as exc:  # a program or VMlet that does not compile: its diagnostics
        reject(exc, compiler, scenario)
    if figure is not None:
        from ground.network.node_series import plot_svg  # noqa: PLC0415

        figure.write_text(plot_svg(result.report, f"{spec.name} on "
                                   f"{spec.topology.name}: traffic and memory per node"),
                          encoding="utf-8")
    if as_json:
        emit_json({"ok": result.ok, **result.to_json(),
                   **({"plot": str(figure)} if figure is not None else {})})
    else:
        _print(result, show_trace)
        if figure is not None:
            out.print(f"  plot: {figure}")
    if not result.ok:
        note(f"scenario {spec.name}: an expectation is not met")
        raise SystemExit(EXIT_REJECTED)


def _plot_path(text: str) -> Path:
    """The file ``--plot TEXT`` writes: an SVG file in a folder that exists."""
    from cli.ground_commands import existing_parent  # noqa: PLC0415

    path = Path(text)
    if path.suffix.lower() != ".svg":
        fail(f"--plot {path}: the plot is written as SVG", "end the name with .svg")
    return existing_parent(path, "--plot")


@net.command("run")
@click.argument("scenario", metavar="SCENARIO")
@click.option("--port-base", type=click.IntRange(1024, 65_280), default=47_000,
              show_default=True, help="Node a listens on UDP port PORT_BASE + a.")
@click.option("--dilation", type=click.FloatRange(0.1, 1000), default=10.0,
              show_default=True, help="Wall seconds per simulated second.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(1, 86_400), default=120.0,
              show_default=True, help="Wall seconds the run may take before it is given up.")
@click.option("--key", "key_path", type=click.Path(dir_okay=False),
              help="The network's key file (hex), tagging VMlets sent in band; default "
                   "$CCL_PATCH_KEY, else the mission's development key.")
@click.option("--trace", "show_trace", is_flag=True,
              help="Print every event of the run (the JSON output always has them).")
@output_options
@click.pass_context
def run(ctx: click.Context, scenario: str, port_base: int, dilation: float, timeout_s: float,
        key_path: str | None, show_trace: bool, as_json: bool) -> None:
    """Run a network SCENARIO with every node a process exchanging UDP datagrams."""
    from ccl.diagnostics import CclError  # noqa: PLC0415
    from ccl.pack import PackError, load_key  # noqa: PLC0415
    from cli.pack_commands import key_error_code  # noqa: PLC0415
    from ground.network.scenario import NetScenarioError, load_net_scenario  # noqa: PLC0415
    from ground.network.udp import PortBusyError, UdpRunError, run_udp_scenario  # noqa: PLC0415

    readable_inputs((scenario,))
    compiler = compiler_of(ctx)
    try:
        spec = load_net_scenario(Path(scenario))
        key = load_key(compiler.mission(spec.mission), Path(key_path) if key_path else None)
        result, stats = run_udp_scenario(spec, compiler, key.secret, port_base=port_base,
                                         dilation=dilation, timeout_s=timeout_s)
    except PackError as exc:  # the network's key: unreadable, or refused by a flight profile
        fail(exc.message, exc.hint, key_error_code(exc), key_path or "")
    except NetScenarioError as exc:
        fail(exc.message, exc.hint or "see missions/activenet/scenarios/ for examples",
             EXIT_REJECTED, exc.where)
    except CclError as exc:
        reject(exc, compiler, scenario)
    except UdpRunError as exc:
        fail(exc.message, exc.hint, EXIT_USAGE if isinstance(exc, PortBusyError)
             else EXIT_REJECTED, scenario)
    if as_json:
        emit_json({"ok": result.ok, **result.to_json(),
                   "udp": {**stats.to_json(), "dilation": dilation}})
    else:
        _print(result, show_trace)
        ports = sorted(stats.ports.values())
        out.print(f"  over UDP: {len(ports)} processes on 127.0.0.1 ports {ports[0]}.."
                  f"{ports[-1]}, {stats.datagrams} datagrams, {stats.wall_s:.2f} s of wall "
                  f"time at dilation {dilation:g} (booting {stats.boot_s:.2f} s), "
                  f"{stats.late} late")
    if stats.late:
        note(f"{stats.late} datagrams came after a later event at their node: the results "
             "may differ from `ccl net sim`; give a higher --dilation")
    if not result.ok:
        note(f"scenario {spec.name}: an expectation is not met")
        raise SystemExit(EXIT_REJECTED)


def _print(result: object, show_trace: bool) -> None:
    from ground.network.sender import NetResult  # noqa: PLC0415

    assert isinstance(result, NetResult)
    report = result.report
    out.print(f"scenario {result.scenario.name} on {result.scenario.topology.name}: "
              f"{'ok' if result.ok else 'FAILED'} (simulated {report.end_us / 1000:g} ms, "
              f"{report.wire_bytes:,} bytes on the wire)")
    for k, (send, verdict) in enumerate(result.verdicts):
        state = ("sent unverified" if verdict is None else
                 f"proven, {verdict.worst_cycles} cycles at worst" if verdict.proven else
                 f"REFUSED by the sender: {verdict.why}")
        out.print(f"  send {send.program.name} from {send.node} at {send.at_ms} ms: {state}"
                  + ("" if verdict is not None and not verdict.proven else
                     f", by {result.protocol(k)}"))
        choice = result.choices[k] if k < len(result.choices) else None
        if choice is not None and (verdict is None or verdict.proven):
            ants = "does not fit a cache" if choice.ants is None else f"{choice.ants.total:,.0f}"
            out.print(f"    chose {choice.protocol}: plan {choice.plan.total:,.0f}, ants {ants}"
                      f" (code cached at {sorted(choice.estimate.cached) or 'no node'}, "
                      f"{choice.estimate.reuse} more expected)"
                      + (f": {choice.shape}" if choice.shape else ""))
    counts = result.protocols
    if result.verdicts:
        out.print(f"  sent by plan {counts['plan']}, by ants {counts['ants']} (the sender "
                  f"chose plan {counts['auto_plan']}, ants {counts['auto_ants']})")
    for install, verdict, size in result.installs:
        state = ("sent unverified" if verdict is None else "proven" if verdict.proven else
                 f"REFUSED by the sender: {verdict.why}")
        where = "flooded" if install.flood else f"for node {install.dest}"
        forged = ", forged" if install.forged else ""
        out.print(f"  install VMlet {install.vmlet} from {install.node} at {install.at_ms} ms "
                  f"({size} bytes, {where}{forged}): {state}")
    if show_trace:
        for e in report.trace:
            detail = " ".join(f"{k}={v}" for k, v in e.detail.items())
            out.print(f"  {e.t_us / 1000:10.3f} ms  node {e.node:3}  {e.event:9} "
                      f"#{e.packet} {detail}")
    for node, m in sorted(report.nodes.items()):
        drops = ", ".join(f"{r} {n}" for r, n in sorted(m.drops.items())) or "none"
        out.print(f"  node {node}: {m.evaluations} evaluated ({m.cycles:,} cycles, "
                  f"{m.load_cycles:,} loading), {m.forwarded} forwarded, "
                  f"{m.bytes_out:,} bytes out ({m.plan_out} PLAN packets, {m.capsules_out} "
                  f"capsules), memory peak {m.peak_memory_bytes:,} bytes, "
                  f"delivered {m.delivered}, drops: {drops}")
        if m.cache_hits or m.cache_misses or m.code_served:
            out.print(f"    code cache: {m.cache_hits} hits, {m.cache_misses} misses, "
                      f"{m.code_fetches} fetches, {m.code_served} served, {m.evictions} "
                      f"evicted, {m.cache_bytes:,} bytes held (peak {m.peak_cache_bytes:,})")
        if m.peak_state_bytes or m.timers:
            out.print(f"    soft state: {m.state_bytes:,} bytes held (peak "
                      f"{m.peak_state_bytes:,}), {m.state_evictions} evicted, {m.timers} "
                      "timers")
        if m.installed:
            out.print(f"    installed in band: {', '.join(m.installed)}")
    for e in report.trace:
        if e.event == "drop":
            out.print(f"  dropped #{e.packet} at node {e.node} ({e.t_us / 1000:g} ms): "
                      f"{e.detail['reason']}: {e.detail['why']}")
    for expectation, met, seen in result.expectations:
        out.print(f"  expect {expectation.describe()}: {'met' if met else 'NOT MET'} "
                  f"({seen})")
