"""The ``ccl`` command, assembled: the compiler's, the verifier's and the packer's commands,
and the ground's (passes, uplink, status, sim).

This is the one place where the compiler and the ground are both visible, so neither
imports the other's commands. ``python -m cli.ccl`` runs it as the console script does.

Each command's module (and the libraries it needs: Z3, textX, skyfield...) is imported only
when that command runs (``cli.lazy_group``), so ``ccl --help`` and ``ccl check`` start fast.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from ccl.limits import recursion_headroom
from cli.console import run_click
from cli.lazy_group import LazyCommand, LazyGroup
from cli.options import global_options

# In the order of the data flow: source, image, proof, patch, link, board. The summary is
# the first sentence of the command's help (a test keeps them equal).
COMMANDS = {
    "check": LazyCommand("cli.compile_commands:check", "Parse and check CCL FILES: names, "
                         "types, ranges, loops, recursion."),
    "compile": LazyCommand("cli.compile_commands:compile",
                           "Compile a CCL FILE to a VVM image."),
    "disasm": LazyCommand("cli.compile_commands:disasm", "List an image (or compile a CCL "
                          "file and list it): data, tables, code."),
    "verify": LazyCommand("cli.verify_command:verify", "Prove CCL FILES safe and within "
                          "budget: no overflow, division by zero, index or range error, "
                          "flight rules for every parameter set, worst-case cycles within "
                          "the CPU share, memory and uplink, with a counterexample for "
                          "anything that fails."),
    "pack": LazyCommand("cli.pack_commands:pack_command", "Compile, verify and pack a "
                        "configuration FILE into a patch."),
    "inspect": LazyCommand("cli.pack_commands:inspect_command", "Show every field and "
                           "section of a PATCH, what it changes, and whether its tag "
                           "verifies."),
    "profile-pack": LazyCommand("cli.profile_command:profile_pack", "Check new values of "
                                "soft figures against the flight build's limits and pack "
                                "them into a profile patch."),
    "keygen": LazyCommand("cli.pack_commands:keygen_command", "Write a fresh random "
                          "256-bit patch key (or link key), mode 0600."),
    "passes": LazyCommand("cli.ground_commands:passes", "Passes of the satellite over the "
                          "mission's ground stations, and which carry uplink."),
    "uplink": LazyCommand("cli.ground_commands:uplink",
                          "Plan and simulate sending patches over the coming passes."),
    "status": LazyCommand("cli.ground_commands:status", "What the ground knows is on "
                          "board: the ledger's configuration, transfers and passes."),
    "campaign": LazyCommand("cli.campaign_command:campaign", "Try the verifier's promise "
                            "on random CoRoT programs: verify each, fly the proven ones at "
                            "their worst cases and adversarial inputs, and judge every "
                            "flight."),
    "sim": LazyCommand("cli.sim_command:sim", "Run SCENARIOs end to end: compile, verify, "
                       "pack, uplink, apply on board, telemetry."),
    "xtce": LazyCommand("cli.xtce_command:xtce", "Write the XTCE 1.2 database of the VVM's "
                        "telemetry and telecommands (Yamcs)."),
    "yamcs": LazyCommand("cli.yamcs_command:yamcs", "Run a local Yamcs that shows the VVM's "
                         "telemetry (the mcs extra)."),
    "net": LazyCommand("cli.net_command:net", "Active networks: simulate networks of VVM "
                       "routers running packets' programs."),
    "lsp": LazyCommand("cli.lsp_command:lsp", "Run the CCL language server on stdin/stdout: "
                       "diagnostics as you type, hover, go to definition, completion, and "
                       "the verifier's refutations on save."),
}


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
@global_options("ccl")
@click.pass_context
def ccl(ctx: click.Context, missions: tuple[str, ...]) -> None:
    """CCL: check, compile, verify and pack configurations for the onboard VVM, and plan and
    simulate their uplink."""
    ctx.ensure_object(dict)
    ctx.obj["missions"] = missions


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``ccl`` console script."""
    with recursion_headroom():  # the verifier walks programs as deep as they nest, too
        run_click(ccl, argv, "ccl")


if __name__ == "__main__":  # pragma: no cover
    main()
