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

from ccl.diagnostics import CclError
from ccl.pack import (
    KEY_ENV,
    PackError,
    diff_list,
    format_key,
    generate_key,
    load_key,
    pack,
    parse_key,
)
from ccl.verify.verdict import run_verifier
from cli.compile_commands import compiler_of, print_diagnostics
from cli.console import (
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_UNKNOWN,
    EXIT_USAGE,
    fail,
    note,
    refuse,
    require_inputs,
)
from cli.options import SEQUENCE_NUMBER, output_options
from ground.errors import GroundError
from ground.ledger import LEDGER_ENV, Ledger, ledger_path
from ground.link_key import LINK_KEY_ENV
from ground.planner import UplinkPatch
from onboard.mission import MissionError, MissionProfile, find_mission, mission_search_path
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
from onboard.vm.image import Image, ImageError, decode_image


def _read_image(path: str, what: str) -> Image:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        fail(f"cannot read {what} {path}: {exc.strerror}", "check the path")
    try:
        return decode_image(data)
    except ImageError as exc:
        where = f" at offset {exc.offset}" if exc.offset is not None else ""
        fail(f"{path}{where}: not an image: {exc.message}",
              f"the {what} is an image written by `ccl compile`", EXIT_REJECTED)


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
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Patch file to write (default: FILE with suffix .vvmp).")
@output_options
@click.pass_context
def pack_command(ctx: click.Context, file: str, base_path: str | None, seq: int | None,
                 ledger_opt: str | None, key_path: str | None, unverified: bool,
                 full: bool | None, output: str | None, as_json: bool) -> None:
    """Compile, verify and pack a configuration FILE into a patch."""

    require_inputs([file])
    compiler = compiler_of(ctx)
    try:
        compiled = compiler.compile(Path(file))
    except CclError as exc:
        print_diagnostics(exc.diagnostics, compiler)
        sys.exit(EXIT_REJECTED)
    base = _read_image(base_path, "base") if base_path else None
    profile = compiled.mission
    try:
        key = load_key(profile, Path(key_path) if key_path else None)
    except PackError as exc:
        refuse(exc, EXIT_USAGE)
    verdict = run_verifier(compiled)
    if verdict.status != "proven" and not unverified:
        code = EXIT_REJECTED if verdict.status == "refuted" else EXIT_UNKNOWN
        what = "cannot be verified" if verdict.status == "unavailable" \
            else f"is {verdict.status}"
        first = verdict.detail.splitlines()[0] if verdict.detail else ""
        fail(f"{file}: not packed: the configuration {what}" + (f" ({first})" if first else ""),
              "fix it (see `ccl verify`), or pack with --unverified to mark the patch", code)
    seq, seq_from, ledger = _sequence_number(seq, ledger_opt, compiled.image.version)
    try:
        packed = pack(compiled.image, [v.image for v in compiled.vmlets], profile,
                      key.secret, seq=seq,
                      base=base, full=full, unverified=verdict.status != "proven",
                      cycles_per_frame=verdict.cycles_per_frame)
    except PackError as exc:
        refuse(exc, EXIT_REJECTED)
    target = Path(output) if output else Path(file).with_suffix(".vvmp")
    try:
        target.write_bytes(packed.data)
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror}", "check the output path")
    if ledger is not None:
        _record(ledger, target.name, packed.data)
    h = packed.header
    summary = {
        "ok": True, "file": file, "output": str(target), "bytes": len(packed.data),
        "kind": "full" if h.full else "delta", "seq": h.seq, "verified": not h.unverified,
        "verifier": verdict.status, "key": key.source, "development_key": key.development,
        "name": compiled.image.name, "version": h.version,
        "base": h.base_hash.hex(), "target": h.target_hash.hex(),
        "image_bytes": len(compiled.image.encode()), "claims": vars(h.claims),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"{summary['name']} v{h.version} -> {target}: {summary['kind']} patch, "
                   f"{len(packed.data)} bytes (image {summary['image_bytes']} bytes), seq "
                   f"{h.seq} ({seq_from}), base {h.base_hash.hex()}, target {h.target_hash.hex()}"
                   + ("" if not h.unverified else ", UNVERIFIED"))
        if key.development:
            click.echo(f"note: signed with {key.source}; give --key FILE or ${KEY_ENV} "
                       f"for a real mission", err=True)
    sys.exit(EXIT_OK)


@click.command("inspect")
@click.argument("patch", type=click.Path(dir_okay=False))
@click.option("--base", "base_path", type=click.Path(dir_okay=False),
              help="Image of the base configuration: name what a delta changes.")
@click.option("--key", "key_path", type=click.Path(dir_okay=False),
              help=f"Key file to check the tag with (default ${KEY_ENV}).")
@output_options
@click.pass_context
def inspect_command(ctx: click.Context, patch: str, base_path: str | None,
                    key_path: str | None, as_json: bool) -> None:
    """Show every field and section of a PATCH, and what it changes."""
    try:
        data = Path(patch).read_bytes()
    except OSError as exc:
        fail(f"cannot read {patch}: {exc.strerror}", "check the path")
    base = _read_image(base_path, "base") if base_path else None
    key = None
    if key_path or os.environ.get(KEY_ENV):
        try:
            key = parse_key(Path(key_path).read_text() if key_path else os.environ[KEY_ENV],
                            key_path or f"${KEY_ENV}")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read key file {key_path}: {exc}", "check the path")
        except PackError as exc:
            refuse(exc, EXIT_USAGE)
    extra = [Path(p) for p in (ctx.obj or {}).get("missions", ())]
    try:
        report = describe(data, base, key, extra)
    except FormatError as exc:
        field = f" (field `{exc.field}`)" if exc.field else ""
        where = f" at offset {exc.offset}" if exc.offset is not None else ""
        click.echo(f"{patch}{where}: error[{exc.reason.value}]: {exc.message}{field}",
                   err=True)
        hint = {Reason.WRONG_BASE: "give the image the patch was packed against (--base)",
                Reason.BAD_TAG: "check the key (--key or $CCL_PATCH_KEY)"}.get(
            exc.reason, "is this a patch written by `ccl pack`, complete and undamaged?")
        if data[:4] == b"VVMI":
            hint = "this is an image: `ccl disasm` lists images"
        click.echo(f"  hint: {hint}", err=True)
        sys.exit(EXIT_REJECTED)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo("\n".join(_render(report)))
    sys.exit(EXIT_REJECTED if report["tag"]["status"] == "invalid" else EXIT_OK)


@click.command("keygen")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Key file to write (mode 0600).")
@click.option("--mission", help="Mission the key is for (a comment in the file).")
@click.option("--link", is_flag=True, help="A TC link key (frame authentication) rather "
              "than a patch key.")
@click.option("--force", is_flag=True, help="Replace an existing key file (never written "
              "through: a symbolic link is replaced, not followed).")
def keygen_command(output: str, mission: str | None, link: bool, force: bool) -> None:
    """Write a fresh random 256-bit patch key (or link key), mode 0600."""
    path = Path(output)
    kind = "link" if link else "patch"
    try:
        write_key_file(path, format_key(generate_key(), mission, kind), force=force)
    except FileExistsError:
        fail(f"{path} exists", "give --force to replace it (the old key is lost)")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}", "check the path")
    use = (f"--link-key {path} or export {LINK_KEY_ENV}=<the hex line>" if link else
           f"--key {path} or export {KEY_ENV}=<the hex line>")
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
        "magic": "VP", "format": 1, "flags": [str(f.name).lower() for f in Flag
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
                else ("valid" if tag_ok(key, data) else "invalid")},
    }
    for frame, section, codec, payload, body in read_sections(frames):
        entry: dict[str, Any] = {"type": section.name, "codec": codec.name.lower(),
                                 "offset": frame.offset, "bytes": frame.size,
                                 "payload_bytes": len(payload), "crc": "ok"}
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
    lines = [f"patch: {report['bytes']} bytes, {report['kind']}"
             + (" (applies on any base)" if report["any_base"] else "")]
    lines.append(f"header ({report['header_bytes']} bytes):")
    for f in report["header"]:
        lines.append(f"  {f['offset']:5}  {f['field']:<11} {f['value']}")
    lines.append("sections:")
    for s in report["sections"]:
        detail = {k: v for k, v in s.items() if k not in ("type", "codec", "offset", "bytes",
                                                          "payload_bytes", "crc")}
        lines.append(f"  {s['offset']:5}  {s['type']:<9} {s['bytes']:5} bytes "
                     f"({s['codec']}, payload {s['payload_bytes']}), crc {s['crc']}"
                     + (f": {json.dumps(detail)}" if detail else ""))
    t = report["tag"]
    lines.append(f"  {t['offset']:5}  TAG       {t['bytes']:5} bytes, {t['status']}")
    if "target" in report:
        tg = report["target"]
        lines.append(f"target: {tg['name']} v{tg['version']} {tg['hash'][:16]} "
                     f"({'matches' if tg['matches_header'] else 'DOES NOT match'} the header), "
                     f"image {tg['image_bytes']} bytes")
    lines.append("changes:")
    for k, v in report.get("changes", {}).items():
        lines.append(f"  {k}: {json.dumps(v)}")
    return lines

