"""The compiler's commands: ``ccl check``, ``ccl compile`` and ``ccl disasm``.

Diagnostics and failures are shown through ``cli.console``; exit codes are its own.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ccl.diagnostics import CclError, Diagnostic, render
from ccl.driver import Compiled, Compiler
from cli.console import (
    EXIT_OK,
    EXIT_REJECTED,
    emit_json,
    fail,
    out_console,
    print_rendered,
    require_inputs,
)
from cli.options import output_options
from onboard.vm import isa
from onboard.vm.image import IMAGE_MAGIC, Image, ImageError, ImageKind, decode_image
from onboard.vm.listing import listing

out = out_console()


def print_diagnostics(diags: Sequence[Diagnostic], compiler: Compiler) -> None:
    """CCL diagnostics, each with its source line and caret, on stderr."""
    print_rendered(render(d, compiler.sources) for d in diags)


def compiler_of(ctx: click.Context) -> Compiler:
    """The compiler for this invocation: the mission folders of ``ccl --missions``."""
    return Compiler(mission_dirs=[Path(p) for p in (ctx.obj or {}).get("missions", ())])


def _summary(c: Compiled) -> dict[str, Any]:
    p, img = c.program, c.image
    return {
        "kind": p.kind.value,
        "name": p.name,
        "version": p.version,
        "mission": p.mission,
        "hash": img.content_hash.hex(),
        "image_bytes": len(img.encode()),
        "code_bytes": img.code_bytes(),
        "uses": [{"name": u.name, "version": u.version, "hash": u.hash.hex()} for u in img.uses],
        "params": len([g for g in img.globals if not g.writable]),
        "vars": len([g for g in img.globals if g.writable]) + len(
            [a for a in img.arrays if a.writable]),
        "tables": len([a for a in img.arrays if not a.writable]),
        "functions": len(p.functions),
        "tasks": [{"name": t.name, "period_ms": t.period_ms} for t in p.tasks],
        "instrs": [i.name for i in p.instrs],
        "rules": len(p.rules),
    }


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@output_options
@click.pass_context
def check(ctx: click.Context, files: tuple[str, ...], as_json: bool) -> None:
    """Parse and check CCL FILES: names, types, ranges, loops, recursion."""
    compiler = compiler_of(ctx)
    require_inputs(files)
    results = []
    failed = False
    for f in files:
        try:
            program = compiler.check(Path(f))
        except CclError as exc:
            failed = True
            results.append({"file": f, "ok": False,
                            "diagnostics": [d.to_json() for d in exc.diagnostics]})
            if not as_json:
                print_diagnostics(exc.diagnostics, compiler)
            continue
        results.append({"file": f, "ok": True, "kind": program.kind.value,
                        "name": program.name, "version": program.version, "diagnostics": []})
        if not as_json:
            what = f"{program.kind.value} {program.name} version {program.version}"
            detail = (f"{len(program.globals)} globals, {len(program.arrays)} arrays, "
                      f"{len(program.functions)} functions, {len(program.tasks)} tasks"
                      if program.kind.value == "config"
                      else f"{len(program.instrs)} instructions, exposes "
                      f"{', '.join(program.exposes) or 'nothing'}")
            out.print(f"[green]ok[/green] {f}: {what} ({detail})" if out.is_terminal
                      else f"ok {f}: {what} ({detail})")
    if as_json:
        emit_json({"ok": not failed, "files": results})
    sys.exit(EXIT_REJECTED if failed else EXIT_OK)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Image file to write (default: FILE with suffix .vvmi).")
@output_options
@click.pass_context
def compile(ctx: click.Context, file: str, output: str | None, as_json: bool) -> None:  # noqa: A001
    """Compile a CCL FILE to a VVM image."""
    require_inputs([file])
    compiler = compiler_of(ctx)
    try:
        compiled = compiler.compile(Path(file))
    except CclError as exc:
        if as_json:
            emit_json({"ok": False, "file": file,
                        "diagnostics": [d.to_json() for d in exc.diagnostics]})
        else:
            print_diagnostics(exc.diagnostics, compiler)
        sys.exit(EXIT_REJECTED)
    target = Path(output) if output else Path(file).with_suffix(".vvmi")
    try:
        target.write_bytes(compiled.image.encode())
    except OSError as exc:
        fail(f"cannot write {target}: {exc.strerror}", "check the output path")
    summary = _summary(compiled) | {"file": file, "output": str(target), "ok": True}
    if as_json:
        emit_json(summary)
    else:
        s = summary
        out.print(f"{s['kind']} {s['name']} version {s['version']} -> {target}: "
                  f"{s['image_bytes']} bytes ({s['code_bytes']} of code), hash {s['hash'][:16]}")
    sys.exit(EXIT_OK)


def _load_image(path: Path) -> Image:
    data = path.read_bytes()
    return decode_image(data)


@click.command()
@click.argument("target", type=click.Path(dir_okay=False))
@output_options
@click.pass_context
def disasm(ctx: click.Context, target: str, as_json: bool) -> None:
    """List an image (or compile a CCL file and list it): data, tables, code."""
    require_inputs([target])
    path = Path(target)
    compiler = compiler_of(ctx)
    local_names = None
    try:
        head = path.read_bytes()[:4]
    except OSError as exc:
        fail(f"cannot read {target}: {exc.strerror}", "check the path")
    if head == IMAGE_MAGIC:
        try:
            image = _load_image(path)
        except ImageError as exc:
            where = f" at offset {exc.offset}" if exc.offset is not None else ""
            fail(f"not an image: {exc.message}", "is this an image written by `ccl compile`?",
                 EXIT_REJECTED, f"{target}{where}")
    else:
        try:
            compiled = compiler.compile(path)
        except CclError as exc:
            print_diagnostics(exc.diagnostics, compiler)
            sys.exit(EXIT_REJECTED)
        image = compiled.image
        local_names = compiled.debug.local_names
    if as_json:
        emit_json(_image_json(image, local_names))
    else:
        click.echo("\n".join(listing(image, local_names)))
    sys.exit(EXIT_OK)


def _image_json(image: Image, local_names: Sequence[Sequence[str]] | None) -> dict[str, Any]:
    units = []
    for i, u in enumerate(image.functions):
        names = tuple(local_names[i]) if local_names else ()
        units.append({
            "index": i, "name": u.name, "params": u.n_params, "locals": u.n_locals,
            "returns": u.returns, "max_stack": u.max_stack, "bytes": len(u.code),
            "code": u.code.hex(),
            "listing": isa.disassemble(u.code, image.names_for(u, names)),
        })
    return {
        "kind": "config" if image.kind is ImageKind.CONFIG else "vmlet",
        "name": image.name, "version": image.version, "mission": image.mission,
        "hash": image.content_hash.hex(), "bytes": len(image.encode()),
        "uses": [{"name": u.name, "version": u.version, "hash": u.hash.hex()}
                 for u in image.uses],
        "globals": [dataclasses.asdict(g) for g in image.globals],
        "arrays": [{"name": a.name, "writable": a.writable, "lo": a.lo, "hi": a.hi,
                    "length": a.length} for a in image.arrays],
        "natives": list(image.natives), "env": list(image.env),
        "ext": [{"opcode": isa.EXT_BASE + k, "vmlet": e.vmlet, "instr": e.instr}
                for k, e in enumerate(image.ext)],
        "tasks": [dataclasses.asdict(t) for t in image.tasks],
        "rules": [dataclasses.asdict(r) for r in image.rules],
        "on_apply": image.on_apply, "on_load": image.on_load,
        "instrs": [dataclasses.asdict(d) for d in image.instrs],
        "exposes": list(image.exposes), "hides": list(image.hides),
        "functions": units,
    }
