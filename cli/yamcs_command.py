"""The ``ccl yamcs`` commands: a local Yamcs that shows the VVM's telemetry live
(``ground/yamcs_server.py``; needs the ``mcs`` extra: ``pip install -e '.[mcs]'``).

``ccl yamcs serve --mission NAME [CONFIG.ccl...] [--http-port P] [--tm-port P] [--dir DIR]``
writes the XTCE of the mission (and the read-back of the configurations given), starts Yamcs
with it and a UDP TM link, prints the web interface's address and the link's, and serves
until interrupted (Ctrl-C, SIGTERM), then stops Yamcs. Port 0 picks a free one. With
``--json`` the addresses come as one JSON line on stdout once Yamcs runs. Exit 0 after a
clean stop, 1 if Yamcs cannot start or is not installed, 2 for usage errors.
"""

from __future__ import annotations

import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType

import click

from cli.compile_commands import compile_file, compiler_of
from cli.console import EXIT_REJECTED, emit_json, fail, note, out_console
from cli.files import readable_inputs
from cli.ground_commands import _mission
from cli.options import output_options

out = out_console(markup=False)


@click.group("yamcs")
def yamcs() -> None:
    """Run a local Yamcs that shows the VVM's telemetry (the mcs extra)."""


@yamcs.command("serve")
@click.argument("configs", metavar="[CONFIG.ccl...]", nargs=-1)
@click.option("--mission", "mission", required=True, metavar="NAME",
              help="The mission whose VVM telemetry Yamcs shows (e.g. corot).")
@click.option("--http-port", type=click.IntRange(0, 65535), default=8090, show_default=True,
              help="Port of the web interface and API (0: a free one).")
@click.option("--tm-port", type=click.IntRange(0, 65535), default=10015, show_default=True,
              help="UDP port of the TM link `ccl sim --yamcs` sends to (0: a free one).")
@click.option("--dir", "folder", type=click.Path(file_okay=False),
              help="Keep Yamcs's configuration, archive and log here (default: a temporary "
                   "folder, removed at the end).")
@output_options
@click.pass_context
def serve(ctx: click.Context, configs: tuple[str, ...], mission: str, http_port: int,
          tm_port: int, folder: str | None, as_json: bool) -> None:
    """Start Yamcs with the mission's XTCE and a UDP TM link; serve until interrupted."""
    import socket

    from ground.xtce import vvm_xtce
    from ground.yamcs_server import (
        YamcsConfig,
        YamcsError,
        YamcsServer,
        free_port,
        installation,
    )

    profile = _mission(ctx, mission)
    try:
        installation()
    except YamcsError as exc:
        fail(exc.message, exc.hint, EXIT_REJECTED)
    if folder and not Path(folder).parent.is_dir():
        fail(f"--dir {folder}: no folder {Path(folder).parent}", "create it first")
    readable_inputs(configs)
    compiler = compiler_of(ctx)
    images = [compile_file(compiler, f).image for f in configs]
    with tempfile.TemporaryDirectory(prefix="ccl-yamcs-") as tmp:
        root = Path(folder) if folder else Path(tmp)
        root.mkdir(exist_ok=True)
        xtce = root / f"{profile.name}.xml"
        xtce.write_bytes(vvm_xtce(profile.name, images))
        config = YamcsConfig(root, profile.name, xtce, http_port or free_port(),
                             tm_port or free_port(socket.SOCK_DGRAM))
        server = YamcsServer(config)
        stop = threading.Event()

        def interrupted(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, interrupted)
        try:
            note(f"starting Yamcs ({root})")
            try:
                server.start()
            except YamcsError as exc:
                fail(exc.message, exc.hint, EXIT_REJECTED)
            info = {"ok": True, "url": config.url, "instance": profile.name,
                    "tm": f"127.0.0.1:{config.tm_port}", "started_s": round(
                        server.started_s or 0.0, 1), "folder": str(root)}
            if as_json:
                emit_json(info)
            else:
                out.print(f"Yamcs runs (started in {info['started_s']} s): web interface "
                          f"{config.url}/{profile.name}, TM link UDP {info['tm']}")
                out.print(f"send it a scenario: ccl sim SCENARIO --yamcs {info['tm']}")
                out.print("Ctrl-C stops it")
            try:
                while not stop.wait(0.5):
                    if server.process is None or server.process.poll() is not None:
                        fail(f"Yamcs stopped: {server.log_tail()}", f"see {config.log}",
                             EXIT_REJECTED)
            except KeyboardInterrupt:
                pass
        finally:
            server.stop()
            signal.signal(signal.SIGTERM, previous)
    note("Yamcs stopped")
