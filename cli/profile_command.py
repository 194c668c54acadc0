"""The ``ccl profile-pack`` command: new values of the mission profile's soft figures, checked
against the flight build's hard limits and packed into a profile patch.

The input is a small TOML file::

    mission = "corot"           # the profile (and variant) whose limits apply
    [figures]
    probation_frames = 300      # any of the soft figures the profile's [limits] ranges

The board checks the same limits again (``onboard.patching.conditions``); the ground checks
them first so that a figure out of its limit is never uplinked.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

import click

from ccl.pack import PackError, load_key
from cli.console import EXIT_OK, EXIT_REJECTED, fail, note, refuse
from cli.files import output_path, readable_inputs, regular_inputs, write_output
from cli.options import SEQUENCE_NUMBER, output_options
from cli.pack_commands import key_error_code
from onboard.mission import MissionError, UnknownMission, find_mission
from onboard.patching.conditions import ConditionRefused, check_values
from onboard.patching.patch_format import ProfilePatch, build_profile_patch


def _where(file: str, text: str, name: str) -> str:
    """``file:line:col`` of the figure ``name``'s key in the TOML text (the file if absent)."""
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(rf"\s*{re.escape(name)}\s*=", line)
        if match:
            return f"{file}:{number}:{line.index(name) + 1}"
    return file


@click.command("profile-pack")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--seq", type=SEQUENCE_NUMBER, required=True,
              help="Sequence number of the profile patch (above the last the board accepted).")
@click.option("--key", "key_path", type=click.Path(dir_okay=False),
              help="Key file (hex), the same as for configuration patches; default "
                   "$CCL_PATCH_KEY, else the development key.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Profile patch to write (default: FILE's name with suffix .vpp).")
@output_options
@click.pass_context
def profile_pack(ctx: click.Context, file: str, seq: int, key_path: str | None,
                 output: str | None, as_json: bool) -> None:
    """Check new values of soft figures against the flight build's limits and pack them into
    a profile patch."""
    readable_inputs([file])
    regular_inputs([key_path] if key_path else [])
    target = output_path(file, output, ".vpp", "profile patch")
    text = Path(file).read_text(encoding="utf-8", errors="replace")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        fail(f"not TOML: {exc}", "see docs/operations.md, \"Changing a soft figure\"",
             EXIT_REJECTED, file)
    figures = data.get("figures")
    if not isinstance(data.get("mission"), str) or not isinstance(figures, dict) or not figures:
        fail("a profile file names its `mission` and has a non-empty [figures] table",
             "mission = \"corot\" then [figures] probation_frames = 300", EXIT_REJECTED, file)
    for name, value in figures.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            fail(f"{name} = {value!r}: a figure is a non-negative integer", "",
                 EXIT_REJECTED, _where(file, text, name))
    extra = [Path(p) for p in (ctx.obj or {}).get("missions", ())]
    try:
        profile = find_mission(data["mission"], extra)
    except UnknownMission as exc:
        refuse(exc, EXIT_REJECTED)
    except MissionError as exc:
        refuse(exc, EXIT_REJECTED)
    try:
        check_values(profile, figures)
    except ConditionRefused as exc:
        name = exc.figure or ""
        fail(exc.message, "the flight build's [limits] in the mission profile fix what a "
             "profile patch may change, and how far", EXIT_REJECTED, _where(file, text, name))
    except ValueError as exc:  # a malformed [limits] table in the profile itself
        fail(str(exc), "", EXIT_REJECTED, str(profile.path))
    try:
        key = load_key(profile, Path(key_path) if key_path else None)
    except PackError as exc:
        refuse(exc, key_error_code(exc))
    patch = ProfilePatch(profile.mission_id, profile.spacecraft_id, seq, dict(figures))
    packed = build_profile_patch(patch, key.secret)
    write_output(target, packed, "profile patch")
    summary = {"ok": True, "file": file, "output": str(target), "bytes": len(packed),
               "mission": profile.name, "seq": seq, "figures": dict(figures),
               "key": key.source, "development_key": key.development}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        changes = ", ".join(f"{k} = {v}" for k, v in figures.items())
        click.echo(f"wrote {target}: profile patch seq {seq}, {len(packed)} bytes: {changes}")
        if key.development:
            note(f"note: signed with {key.source}; give --key FILE for a real mission")
    sys.exit(EXIT_OK)
