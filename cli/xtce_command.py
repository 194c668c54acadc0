"""The ``ccl xtce`` command: the XTCE database of the VVM's packets for a mission control
system (``ground/xtce.py``).

``ccl xtce --mission NAME [CONFIG.ccl...] -o FILE``: every packet the VVM sends and
receives, and the read-back packets of each configuration given (compiled here). Exit 0
when written, 1 for a configuration that does not compile or is of another mission, 2 for
usage errors (an unknown mission, a folder that does not exist).
"""

from __future__ import annotations

import click

from cli.compile_commands import compile_file, compiler_of
from cli.console import EXIT_REJECTED, emit_json, fail, note
from cli.files import output_path, readable_inputs, write_output
from cli.ground_commands import _mission
from cli.options import output_options


@click.command("xtce")
@click.argument("configs", metavar="[CONFIG.ccl...]", nargs=-1)
@click.option("--mission", "mission", required=True, metavar="NAME",
              help="The mission whose VVM the database describes (e.g. corot).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the XTCE document.")
@output_options
@click.pass_context
def xtce(ctx: click.Context, configs: tuple[str, ...], mission: str, output: str,
         as_json: bool) -> None:
    """Write the XTCE 1.2 database of the VVM's telemetry and telecommands (Yamcs)."""
    from ground.xtce import vvm_xtce  # heavy imports on use only (cli.lazy_group)

    profile = _mission(ctx, mission)
    path = output_path("", output, ".xml", "XTCE document")
    readable_inputs(configs)
    compiler = compiler_of(ctx)
    images = []
    for file in configs:
        image = compile_file(compiler, file).image
        if image.mission != profile.name:
            fail(f"{file}: a configuration of mission {image.mission}, not {profile.name}",
                 f"give configurations of {profile.name}", EXIT_REJECTED)
        images.append(image)
    document = vvm_xtce(profile.name, images)
    write_output(path, document, "XTCE document")
    if as_json:
        emit_json({"ok": True, "output": str(path), "bytes": len(document),
                   "configurations": [f"{i.name} v{i.version}" for i in images]})
    else:
        note(f"XTCE of mission {profile.name} ({len(images)} configuration(s)) written to "
             f"{path} ({len(document):,} bytes)")
