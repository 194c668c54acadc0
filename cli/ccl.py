"""The ``ccl`` command, assembled: the compiler's, the verifier's and the packer's commands,
and the ground's (passes, uplink, status, sim).

This is the one place where the compiler and the ground are both visible, so neither
imports the other's commands. ``python -m cli.ccl`` runs it as the console script does.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from ccl.limits import recursion_headroom
from cli.compile_commands import check, compile, disasm
from cli.console import run_click
from cli.ground_commands import passes, status, uplink
from cli.options import global_options
from cli.pack_commands import inspect_command, keygen_command, pack_command
from cli.sim_command import sim
from cli.verify_command import verify


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@global_options("ccl")
@click.pass_context
def ccl(ctx: click.Context, missions: tuple[str, ...]) -> None:
    """CCL: check, compile, verify and pack configurations for the onboard VVM, and plan and
    simulate their uplink."""
    ctx.ensure_object(dict)
    ctx.obj["missions"] = missions


# In the order of the data flow: source, image, proof, patch, link, board.
for command in (check, compile, disasm, verify, pack_command, inspect_command, keygen_command,
                passes, uplink, status, sim):
    ccl.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``ccl`` console script."""
    with recursion_headroom():  # the verifier walks programs as deep as they nest, too
        run_click(ccl, argv, "ccl")


if __name__ == "__main__":  # pragma: no cover
    main()
