"""The ``ccl pack``, ``ccl inspect`` and ``ccl keygen`` commands.

``pack`` compiles a configuration, proves it with ``ccl verify`` (refusing a refuted or
unknown one unless ``--unverified``, which marks the patch), and packs it against the base
image the ground believes is on board. ``inspect`` shows every field and section of a patch,
and, when it can rebuild the target (a full patch, or ``--base``), what the patch changes
by name. ``keygen`` writes a fresh per-mission key.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ccl.conditions import ConditionsError, figures_in_force, figures_of, under_conditions
from ccl.pack import (
    ALL_CODECS,
    DEFAULT_CODECS,
    KEY_ENV,
    Key,
    KeyNeeded,
    KeyUnreadable,
    PackError,
    diff_list,
    format_key,
    generate_key,
    load_key,
    pack,
    parse_key,
    read_key_file,
)
from ccl.verify.program import verification_steps
from ccl.verify.verdict import run_verifier
from cli.compile_commands import compile_file, compiler_of
from cli.console import (
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNKNOWN,
    EXIT_USAGE,
    Failure,
    emit_json,
    fail,
    failure_json,
    note,
    progress,
    refuse,
    show,
)
from cli.files import output_path, readable_inputs, regular_inputs, write_output
from cli.options import SEQUENCE_NUMBER, output_options
from ground.errors import GroundError
from ground.ledger import LEDGER_ENV, Ledger, ledger_path
from ground.link_key import LINK_KEY_ENV
from ground.planner import UplinkPatch
from onboard.mission import MissionError, MissionProfile, find_mission, mission_search_path
from onboard.patching.context_mixing import ModelError, decoded_length
from onboard.patching.delta import LISTS, apply_sections, empty_config, read_sections
from onboard.patching.key_file import write_key_file
from onboard.patching.patch_format import (
    HEADER_FIELDS,
    NO_HASH,
    TAG_BYTES,
    Codec,
    Flag,
    FormatError,
    Frame,
    ListKind,
    Reason,
    SectionType,
    check_order,
    hash_prefix,
    parse_frames,
    parse_header,
    tag_ok,
)
from onboard.patching.patch_format import MAGIC as PATCH_MAGIC
from onboard.vm.image import Image, ImageError, decode_image


def _read_image(path: str, what: str) -> Image:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        fail(f"cannot read the {what}: {exc.strerror}", "check the path", where=path)
    try:
        return decode_image(data)
    except ImageError as exc:
        where = f" at offset {exc.offset}" if exc.offset is not None else ""
        patch = data[:2] == PATCH_MAGIC
        fail(f"the {what} is {'a patch, ' if patch else ''}not an image"
             + ("" if patch else f": {exc.message}"),
             f"the {what} is the image `ccl compile` wrote of the configuration on board",
             EXIT_REJECTED, path if patch else f"{path}{where}")


# --------------------------------------------------------------------------- sequence numbers


def _sequence_number(given: int | None, ledger_opt: str | None,
                     version: int) -> tuple[int, str, Path | None]:
    """The patch's sequence number, where it comes from (for the operator) and the ledger
    to record the patch in: ``--seq`` if given; else one above the highest the ledger has
    used (packed or sent) when there is a ledger; else the configuration's version."""
    path = ledger_path(ledger_opt)
    if ledger_opt and not path.is_file():
        fail(f"no ledger at {path}", f"give an existing ledger, or leave out --ledger "
             f"(default ${LEDGER_ENV} or ./ccl-ledger.sqlite)")
    last = None
    if path.is_file():
        try:
            with Ledger(path, read_only=True) as ledger:
                last = ledger.last_seq_used()
        except GroundError as exc:
            refuse(exc, EXIT_USAGE)
    if given is not None:
        if last is not None and given <= last:
            note(f"warning: --seq {given} is not above {last}, the last sequence number the "
                 f"ledger {path} has used: the board rejects it as a replay if {last} was "
                 "taken", "ccl")
        return given, "given with --seq", path if path.is_file() else None
    if last is not None:
        return last + 1, f"the next after {last} in the ledger {path}", path
    if path.is_file():
        return version, f"the configuration's version: the ledger {path} holds no patch", path
    return version, f"the configuration's version: no ledger at {path}", None


def _ledger_conditions(ledger: Path | None) -> tuple[bytes, int] | None:
    """The profile patch the ledger's latest run saw committed on board, if any."""
    if ledger is None or not ledger.is_file():
        return None
    try:
        with Ledger(ledger, read_only=True) as book:
            return book.conditions()
    except GroundError as exc:
        refuse(exc, EXIT_USAGE)


def _record(ledger: Path, name: str, data: bytes) -> None:
    """Record a packed patch in the ledger, so its sequence number counts as used."""
    try:
        with Ledger(ledger) as book:
            book.add_patch(UplinkPatch.from_bytes(name, data))
    except GroundError as exc:
        refuse(exc, EXIT_USAGE)


# --------------------------------------------------------------------------- commands


@click.command("pack")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--base", "base_path", type=click.Path(dir_okay=False),
              help="Image of the configuration on board: pack a delta from it.")
@click.option("--seq", type=SEQUENCE_NUMBER,
              help="Sequence number (default: one above the last the ledger has used, "
                   "else the configuration's version).")
@click.option("--ledger", "ledger_opt", type=click.Path(dir_okay=False),
              help=f"Ledger to take the sequence number from and record the patch in "
                   f"(default ${LEDGER_ENV}, else ./ccl-ledger.sqlite if it exists).")
@click.option("--key", "key_path", type=click.Path(dir_okay=False),
              help=f"Key file (hex); default ${KEY_ENV}, else the development key.")
@click.option("--unverified", is_flag=True,
              help="Pack even if not proven; the patch is marked unverified.")
@click.option("--full/--delta", "full", default=None,
              help="Force a full or a delta patch (default: the smaller).")
@click.option("--reprove", is_flag=True,
              help="Prove again, even if `ccl verify` has proven this very configuration "
                   "(same sources, images, mission and verifier).")
@click.option("--conditions", "conditions", type=click.Path(dir_okay=False),
              help="Prove and pack against the soft figures in force on board (the patch "
                   "reserve): the profile patch the board committed, or its conditions.vpp "
                   "(authenticated with --key).")
@click.option("--model", "model", is_flag=True,
              help="Also try the context-mixing MODEL codec on the bundled sections: "
                   "about a tenth smaller than LZMA, but decoding it costs the board "
                   "`model_per_byte` cycles of the patch reserve per decoded byte.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Patch file to write (default: FILE's name with suffix .vvmp, in the "
                   "current directory).")
@output_options
@click.pass_context
def pack_command(ctx: click.Context, file: str, base_path: str | None, seq: int | None,
                 ledger_opt: str | None, key_path: str | None, unverified: bool,
                 full: bool | None, reprove: bool, conditions: str | None, model: bool,
                 output: str | None, as_json: bool) -> None:
    """Compile, verify and pack a configuration FILE into a patch. A proof that `ccl
    verify` made of the very same configuration is reused (--reprove to prove again)."""

    readable_inputs([file, *([base_path] if base_path else [])])
    regular_inputs([p for p in (key_path, conditions) if p])
    target = output_path(file, output, ".vvmp", "patch")  # a bad -o is refused before the proof
    compiler = compiler_of(ctx)
    compiled = compile_file(compiler, file)
    # Before the proof: a ledger that cannot be read stops the command at once.
    seq, seq_from, ledger = _sequence_number(seq, ledger_opt, compiled.image.version)
    base = _read_image(base_path, "base") if base_path else None
    profile = compiled.mission
    try:
        key = load_key(profile, Path(key_path) if key_path else None)
    except PackError as exc:
        refuse(exc, key_error_code(exc))
    in_force = _ledger_conditions(ledger) if conditions is None else None
    if conditions is not None or in_force is not None:
        where = conditions or ""
        try:
            if conditions is not None:
                profile = figures_in_force(profile, Path(conditions), key.secret)
            else:
                assert in_force is not None and ledger is not None
                where = f"{ledger} (run {in_force[1]})"
                profile = figures_of(profile, in_force[0], key.secret, where)
                note(f"note: proving against the soft figures the board committed, as "
                     f"telemetry told the ledger {where}: patch reserve "
                     f"{profile.patch_reserve_cycles_per_frame} cycles per frame; "
                     "--conditions FILE to give others", "ccl")
        except ConditionsError as exc:
            fail(exc.message, exc.hint, EXIT_REJECTED, where)
        compiled = under_conditions(compiled, profile)
    with progress(f"verifying {file}", verification_steps(compiled.program),
                  "steps") as ticker:
        verdict = run_verifier(compiled, step=ticker.advance, reuse=not reprove)
    if verdict.reused:
        note(f"note: {file} was proven before (same sources, images, mission and verifier): "
             "that proof is reused; --reprove to prove it again")
    if verdict.status != "proven" and not unverified:
        code = EXIT_REJECTED if verdict.status == "refuted" else EXIT_UNKNOWN
        what = "cannot be verified" if verdict.status == "unavailable" \
            else f"is {verdict.status}"
        first = verdict.detail.splitlines()[0] if verdict.detail else ""
        fail(f"{file}: not packed: the configuration {what}" + (f" ({first})" if first else ""),
              "fix it (see `ccl verify`), or pack with --unverified to mark the patch", code)
    try:
        packed = pack(compiled.image, [v.image for v in compiled.vmlets], profile,
                      key.secret, seq=seq,
                      base=base, full=full, unverified=verdict.status != "proven",
                      cycles_per_frame=verdict.cycles_per_frame,
                      codecs=ALL_CODECS if model else DEFAULT_CODECS)
    except PackError as exc:
        refuse(exc, EXIT_REJECTED)
    write_output(target, packed.data, "patch")
    if ledger is not None:
        _record(ledger, target.name, packed.data)
    h = packed.header
    summary = {
        "ok": True, "file": file, "output": str(target), "bytes": len(packed.data),
        "kind": "full" if h.full else "delta", "seq": h.seq, "verified": not h.unverified,
        "verifier": verdict.status, "proof": "reused" if verdict.reused else "new",
        "key": key.source, "development_key": key.development,
        "name": compiled.image.name, "version": h.version,
        "base": h.base_hash.hex(), "target": h.target_hash.hex(),
        "image_bytes": len(compiled.image.encode()), "claims": vars(h.claims),
        **({} if conditions is None and in_force is None else {
            "conditions": conditions or "ledger",
                                          "patch_reserve_cycles_per_frame":
                                          profile.patch_reserve_cycles_per_frame}),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"{summary['name']} v{h.version}: wrote {target}, {summary['kind']} patch, "
                   f"patch file {len(packed.data)} bytes (image {summary['image_bytes']} "
                   f"bytes), seq {h.seq} ({seq_from}), base {h.base_hash.hex()}, target "
                   f"{h.target_hash.hex()}" + ("" if not h.unverified else ", UNVERIFIED"))
        if key.development:
            note(f"note: signed with {key.source}; give --key FILE or ${KEY_ENV} "
                 f"for a real mission")
    sys.exit(EXIT_OK)


def key_error_code(exc: PackError) -> int:
    """A key file that cannot be read is a usage error (2), like a missing input; one that
    is read but holds no key is rejected input (1); a flight profile refusing the
    development key asks for an option (2)."""
    if isinstance(exc, (KeyUnreadable, KeyNeeded)):
        return EXIT_USAGE
    return EXIT_REJECTED


@click.command("inspect")
@click.argument("patch", type=click.Path(dir_okay=False))
@click.option("--base", "base_path", type=click.Path(dir_okay=False),
              help="Image of the base configuration: name what a delta changes.")
@click.option("--key", "key_path", type=click.Path(dir_okay=False),
              help=f"Key file to check the tag with (default ${KEY_ENV}, else the key "
                   "`ccl pack` signs with for the patch's mission).")
@output_options
@click.pass_context
def inspect_command(ctx: click.Context, patch: str, base_path: str | None,
                    key_path: str | None, as_json: bool) -> None:
    """Show every field and section of a PATCH, what it changes, and whether its tag
    verifies."""
    readable_inputs([patch, *([base_path] if base_path else [])])
    regular_inputs([key_path] if key_path else [])
    data = Path(patch).read_bytes()
    base = _read_image(base_path, "base") if base_path else None
    extra = [Path(p) for p in (ctx.obj or {}).get("missions", ())]
    try:
        key, why = _inspect_key(data, key_path, extra)
        report = describe(data, base, key.secret if key else None, extra)
    except PackError as exc:
        refuse(exc, key_error_code(exc))
    except FormatError as exc:
        malformed = _format_failure(exc, patch, data)
        fail(malformed.message, malformed.hint, malformed.code, malformed.where)
    report["tag"].update({"key": key.source if key else None, "note": why})
    failure = None
    if report["tag"]["status"] == "failed":
        failure = Failure(f"the tag does not verify with {report['tag']['key']}",
                          f"the patch was signed with another key: give the mission's key "
                          f"with --key FILE or ${KEY_ENV}", EXIT_REJECTED,
                          f"{patch} at offset {report['tag']['offset']}")
    if as_json:
        head: dict[str, Any] = {"ok": failure is None}
        if failure is not None:
            head["error"] = failure_json(failure)["error"]
        emit_json(head | report)
    else:
        click.echo("\n".join(_render(report)))
        if failure is not None:
            show(failure, "ccl")
    sys.exit(EXIT_OK if failure is None else failure.code)


def _inspect_key(data: bytes, key_path: str | None,
                 mission_dirs: Sequence[Path]) -> tuple[Key | None, str]:
    """The key ``inspect`` checks the tag with, as ``pack`` signs: ``--key``, else
    $CCL_PATCH_KEY, else the development key of the patch's mission (unless it is a flight
    profile); or None and why the tag is not checked."""
    if key_path:
        return Key(parse_key(read_key_file(Path(key_path)), key_path), key_path), ""
    if os.environ.get(KEY_ENV):
        return Key(parse_key(os.environ[KEY_ENV], f"${KEY_ENV}"), f"${KEY_ENV}"), ""
    mission_id = parse_header(data).header.mission_id
    profile = _mission_by_id(mission_id, mission_dirs)
    if profile is None:
        return None, f"no mission with id {mission_id} found: give --key FILE"
    try:
        return load_key(profile, None, environ={}), ""
    except KeyNeeded as exc:  # a flight profile refuses the development key
        return None, f"{exc.message}: give --key FILE or ${KEY_ENV}"


def _format_failure(exc: FormatError, patch: str, data: bytes) -> Failure:
    """A malformed patch as a failure: the reason, the field and the offset."""
    field = f" (field `{exc.field}`)" if exc.field else ""
    where = f" at offset {exc.offset}" if exc.offset is not None else ""
    hint = {Reason.WRONG_BASE: "give the image the patch was packed against (--base)",
            Reason.BAD_TAG: f"check the key (--key or ${KEY_ENV})"}.get(
        exc.reason, "is this a patch written by `ccl pack`, complete and undamaged?")
    if data[:4] == b"VVMI":
        hint = "this is an image: `ccl disasm` lists images"
    return Failure(f"{exc.message}{field} [{exc.reason.value}]", hint, EXIT_REJECTED,
                   f"{patch}{where}")


@click.command("keygen")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Key file to write (mode 0600).")
@click.option("--mission", help="Mission the key is for (a comment in the file).")
@click.option("--link", is_flag=True, help="A TC link key (frame authentication) rather "
              "than a patch key.")
@click.option("--force", is_flag=True, help="Replace an existing key file (never written "
              "through: a symbolic link is replaced, not followed).")
@output_options
def keygen_command(output: str, mission: str | None, link: bool, force: bool,
                   as_json: bool) -> None:
    """Write a fresh random 256-bit patch key (or link key), mode 0600."""
    path = Path(output)
    kind = "link" if link else "patch"
    if not path.parent.is_dir():
        fail(f"cannot write {path}: no directory {path.parent}",
             f"create {path.parent} first, or give another path with -o", where=str(path))
    try:
        write_key_file(path, format_key(generate_key(), mission, kind), force=force)
    except FileExistsError:
        fail(f"{path} exists", "give --force to replace it (the old key is lost)")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}", "check the path")
    use = (f"--link-key {path} or export {LINK_KEY_ENV}=<the hex line>" if link else
           f"--key {path} or export {KEY_ENV}=<the hex line>")
    if as_json:
        emit_json({"ok": True, "output": str(path), "kind": kind, "mission": mission,
                   "use": use})
    else:
        click.echo(f"wrote a new {kind} key to {path}; use it with {use}")
    sys.exit(EXIT_OK)


# --------------------------------------------------------------------------- inspection


def _mission_by_id(mission_id: int, extra: Sequence[Path]) -> MissionProfile | None:
    for folder in mission_search_path(extra):
        for toml in sorted(folder.glob("*/mission.toml")) if folder.is_dir() else []:
            try:
                profile = find_mission(toml.parent.name, [folder])
            except MissionError:
                continue
            if profile.mission_id == mission_id:
                return profile
    return None


def _section_summary(section: SectionType, body: Any) -> dict[str, Any]:
    """What a section says, without the target's declarations."""
    if section is SectionType.IDENTITY:
        return {"name": body.name}
    if section is SectionType.USES:
        return {"uses": [{"index": e.index, "name": e.name, "version": e.version,
                          "hash": bytes(e.hash).hex() or "implied"} for e in body]}
    if section is SectionType.REMOVALS:
        return {"removals": {_list_name(g.list): list(g.indices) for g in body}}
    if section is SectionType.GLOBALS:
        return {"globals": [{"index": e.index, "name": e.name, "writable": bool(e.writable),
                             "range": [e.lo, e.hi], "value": v}
                            for e, v in zip(body.entries, body.packed, strict=True)]}
    if section is SectionType.ARRAYS:
        return {"arrays": [{"index": e.index, "name": e.name, "writable": bool(e.writable),
                            "range": [e.lo, e.hi], "length": e.length,
                            "chunks": len(e.chunks)} for e in body]}
    if section is SectionType.IMPORTS:
        return {"natives": [e.name for e in body.natives], "env": [e.name for e in body.env],
                "ext": [f"{e.vmlet}.{e.instr}" for e in body.ext]}
    if section is SectionType.CODE:
        return {"functions": [{"index": e.index, "name": e.name, "bytes": len(e.code)}
                              for e in body]}
    if section is SectionType.TASKS:
        return {"tasks": [{"index": e.index, "name": e.name, "period_ms": e.period_ms}
                          for e in body]}
    if section is SectionType.RULES:
        return {"rules": [{"index": e.index, "text": e.text} for e in body]}
    if section is SectionType.ENTRIES:
        return {"on_apply": body.on_apply - 1 if body.on_apply else None}
    return {}


def _list_name(code: int) -> str:
    try:
        return ListKind(code).name.lower()
    except ValueError:
        return f"list {code}"


def describe(data: bytes, base: Image | None, key: bytes | None,
             mission_dirs: Sequence[Path] = ()) -> dict[str, Any]:
    """Every field and section of a patch; what it changes when the target can be rebuilt.
    Raises ``FormatError`` (with field and offset) on a malformed patch."""
    parsed = parse_header(data)
    h = parsed.header
    if parsed.size + TAG_BYTES > len(data):
        raise FormatError(Reason.TRUNCATED, "the patch ends before its tag", "tag", len(data))
    if not parsed.crc_ok:
        raise FormatError(Reason.HEADER_CRC, "the header's CRC does not match", "crc",
                          parsed.offsets["crc"])
    frames = parse_frames(data, parsed.size, len(data) - TAG_BYTES)
    types = check_order(frames)
    values = {
        "magic": "VP", "format": h.format, "flags": [str(f.name).lower() for f in Flag
                                              if f in h.flags],
        "mission": h.mission_id, "spacecraft": h.spacecraft_id, "seq": h.seq,
        "version": h.version, "base": h.base_hash.hex(), "target": h.target_hash.hex(),
        "cycles": h.claims.cycles_per_frame, "share": h.claims.share_bp,
        "code": h.claims.code_bytes, "data": h.claims.data_bytes, "crc": "ok",
    }
    report: dict[str, Any] = {
        "bytes": len(data), "kind": "full" if h.full else "delta",
        "any_base": h.full and h.base_hash == NO_HASH,
        "header": [{"field": f, "offset": parsed.offsets[f], "value": values[f]}
                   for f in HEADER_FIELDS],
        "header_bytes": parsed.size,
        "sections": [],
        "tag": {"offset": len(data) - TAG_BYTES, "bytes": TAG_BYTES,
                "status": "unchecked" if key is None
                else ("verified" if tag_ok(key, data) else "failed")},
    }
    if types and types[0][0] is SectionType.BUNDLE:
        report["bundle"] = {"offset": frames[0].offset, "bytes": frames[0].size,
                            "codec": types[0][1].name.lower(), "crc": "ok"}
    if any(_primed(f) for f in frames):
        # Coded after the VMlets of the base on board, which inspect does not hold.
        report["changes"] = {"note": "the sections are coded (MODEL) after the VMlets of "
                                     f"base {h.base_hash.hex()}, which the board holds: "
                                     "they are not shown here"}
        return report
    for frame, section, codec, payload, body in read_sections(frames):
        entry: dict[str, Any] = {"type": section.name, "codec": codec.name.lower(),
                                 "offset": frame.offset, "bytes": frame.size,
                                 "payload_bytes": len(payload), "crc": "ok"}
        if frame.bundled:  # its offset is the bundle's; the bundle's CRC covers it
            entry.update(codec="in the bundle", crc="the bundle's")
        if section is SectionType.VMLET:
            try:
                vm = decode_image(payload)
                entry["vmlet"] = {"name": vm.name, "version": vm.version,
                                  "hash": vm.content_hash.hex()}
            except ImageError as exc:
                raise FormatError(Reason.BAD_IMAGE, f"carried VMlet: {exc.message}", "vmlet",
                                  frame.payload_offset) from None
        elif body is not None:
            entry.update(_section_summary(section, body))
        report["sections"].append(entry)
    profile = _mission_by_id(h.mission_id, mission_dirs)
    if profile is None:
        report["changes"] = {"note": f"no mission with id {h.mission_id} found"}
        return report
    if not h.full and base is None:
        report["changes"] = {"note": "a delta: give --base IMAGE to name what it changes"}
        return report
    if base is not None and h.base_hash not in (NO_HASH, hash_prefix(base)):
        raise FormatError(Reason.WRONG_BASE, f"the patch applies to configuration "
                          f"{h.base_hash.hex()}, the base given is {hash_prefix(base).hex()}",
                          "base", parsed.offsets["base"])
    start = base if base is not None and not h.full else None
    target, _ = apply_sections(h, frames, base, profile)
    report["target"] = {"name": target.name, "version": target.version,
                        "hash": target.content_hash.hex(),
                        "matches_header": target.content_hash.startswith(h.target_hash),
                        "image_bytes": len(target.encode())}
    report["changes"] = _changes(start, target, frames, types)
    return report


def _primed(frame: Frame) -> bool:
    """Whether ``frame`` is MODEL-coded after the VMlets of the patch's base."""
    if frame.codec_code != Codec.MODEL:
        return False
    try:
        return decoded_length(frame.payload)[1]
    except ModelError:
        return False  # reported as malformed when it is decoded


#: How ``ccl inspect`` names the entries of the lists it reports, in its order.
_LABELS: dict[str, Callable[[Any], str]] = {
    "globals": lambda g: g.name, "arrays": lambda a: a.name, "functions": lambda u: u.name,
    "tasks": lambda t: t.name, "rules": lambda r: r.text, "natives": lambda n: n,
    "uses": lambda u: f"{u.name} v{u.version}",
}


def _changes(base: Image | None, target: Image, frames: Sequence[Frame],
             types: Sequence[tuple[SectionType, Codec]]) -> dict[str, Any]:
    """What the patch changes, by name: the lists aligned on what a delta keeps of an
    entry (``onboard.patching.delta.LISTS``)."""
    b = base or empty_config(target.mission)
    out: dict[str, Any] = {"config": {"name": target.name, "from_version": b.version,
                                      "to_version": target.version}}
    keys = {lst.attr: lst.key for lst in LISTS}
    for name, label in _LABELS.items():
        entry = _list_changes(name, getattr(b, name), getattr(target, name), keys[name], label)
        if entry:
            out[name] = entry
    sizes: dict[str, int] = {}
    for frame, (section, _) in zip(frames, types, strict=True):
        sizes[section.name] = sizes.get(section.name, 0) + frame.size
    out["section_bytes"] = sizes
    return out


def _list_changes(name: str, old: Sequence[Any], new: Sequence[Any], key: Any,
                  label: Any) -> dict[str, Any]:
    """Entries added, removed and changed (by label); for globals the new values, for
    arrays the changed rows."""
    removed, added, pairs = diff_list(old, new, key)
    gone = {label(old[i]) for i in removed}
    came = {label(new[j]) for j in added}
    entry: dict[str, Any] = {"added": sorted(came - gone), "removed": sorted(gone - came),
                             "changed": sorted(gone & came)}
    entry = {k: v for k, v in entry.items() if v}
    if name == "globals":
        values = [{"name": new[j].name, "from": old[i].value, "to": new[j].value}
                  for i, j in pairs if old[i].value != new[j].value]
        if values:
            entry["values"] = values
    if name == "arrays":
        rows = []
        for i, j in pairs:
            diff = [k for k, (x, y) in enumerate(zip(old[i].values, new[j].values,
                                                     strict=True)) if x != y]
            if diff:
                rows.append({"name": new[j].name, "rows": len(diff), "first": diff[0],
                             "last": diff[-1]})
        if rows:
            entry["rows"] = rows
    return entry


def _render(report: dict[str, Any]) -> list[str]:
    lines = [f"patch file: {report['bytes']} bytes, {report['kind']}"
             + (" (applies on any base)" if report["any_base"] else "")]
    lines.append(f"header ({report['header_bytes']} bytes):")
    for f in report["header"]:
        lines.append(f"  {f['offset']:5}  {f['field']:<11} {f['value']}")
    bundle = report.get("bundle")
    lines.append("sections:" if bundle is None else
                 f"sections, in one BUNDLE at offset {bundle['offset']}: {bundle['bytes']} "
                 f"bytes ({bundle['codec']}), crc {bundle['crc']}:")
    for s in report["sections"]:
        detail = {k: v for k, v in s.items() if k not in ("type", "codec", "offset", "bytes",
                                                          "payload_bytes", "crc")}
        lines.append(f"  {s['offset']:5}  {s['type']:<9} {s['bytes']:5} bytes "
                     f"({s['codec']}, payload {s['payload_bytes']}), crc {s['crc']}"
                     + (f": {json.dumps(detail)}" if detail else ""))
    t = report["tag"]
    verdict = {"verified": f"verified with {t.get('key')}",
               "failed": f"FAILED with {t.get('key')}"}.get(
        t["status"], "unchecked" + (f" ({t['note']})" if t.get("note") else ""))
    lines.append(f"  {t['offset']:5}  TAG       {t['bytes']:5} bytes, {verdict}")
    if "target" in report:
        tg = report["target"]
        lines.append(f"target: {tg['name']} v{tg['version']} {tg['hash'][:16]} "
                     f"({'matches' if tg['matches_header'] else 'DOES NOT match'} the header), "
                     f"image {tg['image_bytes']} bytes")
    lines.append("changes:")
    for k, v in report.get("changes", {}).items():
        lines.append(f"  {k}: {json.dumps(v)}")
    return lines

