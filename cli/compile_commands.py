"""The compiler's commands: ``ccl check``, ``ccl compile`` and ``ccl disasm``.

Diagnostics and failures are shown through ``cli.console``; exit codes are its own.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.text import Text

from ccl.diagnostics import CclError, Diagnostic, render
from ccl.driver import Compiled, Compiler
from cli.console import (
    EXIT_OK,
    EXIT_REJECTED,
    MODE,
    emit_json,
    fail,
    out_console,
    print_rendered,
    progress,
)
from cli.files import output_path, readable_inputs, write_output
from cli.options import output_options

if TYPE_CHECKING:  # `ccl check` loads no image code: disasm imports it when it runs
    from onboard.vm.image import Image

out = out_console(markup=False)  # a path may hold brackets: never read them as markup


def print_diagnostics(diags: Sequence[Diagnostic], compiler: Compiler) -> None:
    """CCL diagnostics, each with its source line and caret, on stderr."""
    print_rendered(render(d, compiler.sources) for d in diags)


def error_json(diag: Diagnostic, file: str, code: int = EXIT_REJECTED) -> dict[str, Any]:
    """A diagnostic in the one shape of a failure ``--json`` shows: what, where, hint."""
    return {"message": f"{diag.severity}[{diag.code}]: {diag.message}",
            "where": str(diag.span) if diag.span else file, "hint": diag.hint,
            "exit_code": code}


def ccl_failure_json(file: str, diags: Sequence[Diagnostic]) -> dict[str, Any]:
    """Rejected CCL as ``--json`` shows it: the failure's one shape (the first diagnostic)
    and every diagnostic."""
    return {"ok": False, "file": file, "error": error_json(diags[0], file),
            "diagnostics": [d.to_json() for d in diags]}


def reject(exc: CclError, compiler: Compiler, file: str) -> NoReturn:
    """A file the compiler rejects: its diagnostics (JSON on stdout with ``--json``, else
    rendered on stderr), exit 1."""
    if MODE.json:
        emit_json(ccl_failure_json(file, exc.diagnostics))
    else:
        print_diagnostics(exc.diagnostics, compiler)
    sys.exit(EXIT_REJECTED)


def compile_file(compiler: Compiler, file: str) -> Compiled:
    """Compile ``file`` (a spinner on a terminal when it is big); exits 1 if rejected."""
    try:
        with _busy("compiling", file):
            return compiler.compile(Path(file))
    except CclError as exc:
        reject(exc, compiler, file)


BIG_SOURCE_BYTES = 256 * 1024  # about 5,000 lines: a front end of a second or more


@contextmanager
def _busy(doing: str, file: str) -> Iterator[None]:
    """A spinner (no total: the front end reports no steps) while a big file is read."""
    try:
        big = Path(file).stat().st_size >= BIG_SOURCE_BYTES
    except OSError:
        big = False
    if not big:
        yield
        return
    with progress(f"{doing} {file}"):
        yield


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
    readable_inputs(files)
    results = []
    failed: dict[str, Any] | None = None  # the first failure, as --json shows it
    for f in files:
        try:
            with _busy("checking", f):
                program = compiler.check(Path(f))
        except CclError as exc:
            failed = failed or error_json(exc.diagnostics[0], f)
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
                      else "".join(f"type {t.name}, " for t in program.types)
                      + f"{len(program.instrs)} instructions, exposes "
                      f"{', '.join(program.exposes) or 'nothing'}")
            out.print(Text.assemble(("ok", "green" if out.is_terminal else ""),
                                    f" {f}: {what} ({detail})"))
    if as_json:
        emit_json({"ok": not failed, **({"error": failed} if failed else {}),
                   "files": results})
    sys.exit(EXIT_REJECTED if failed else EXIT_OK)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Image file to write (default: FILE's name with suffix .vvmi, in the "
                   "current directory).")
@output_options
@click.pass_context
def compile(ctx: click.Context, file: str, output: str | None, as_json: bool) -> None:  # noqa: A001
    """Compile a CCL FILE to a VVM image."""
    readable_inputs([file])
    target = output_path(file, output, ".vvmi", "image")
    compiler = compiler_of(ctx)
    compiled = compile_file(compiler, file)
    write_output(target, compiled.image.encode(), "image")
    summary = _summary(compiled) | {"file": file, "output": str(target), "ok": True}
    if as_json:
        emit_json(summary)
    else:
        s = summary
        out.print(f"{s['kind']} {s['name']} version {s['version']}: wrote {target}, "
                  f"{s['image_bytes']} bytes ({s['code_bytes']} of code), hash {s['hash'][:16]}")
    sys.exit(EXIT_OK)


@click.command()
@click.argument("target", type=click.Path(dir_okay=False))
@output_options
@click.pass_context
def disasm(ctx: click.Context, target: str, as_json: bool) -> None:
    """List an image (or compile a CCL file and list it): data, tables, code."""
    from onboard.patching.patch_format import MAGIC as PATCH_MAGIC  # noqa: PLC0415
    from onboard.vm.image import IMAGE_MAGIC  # noqa: PLC0415
    from onboard.vm.listing import listing  # noqa: PLC0415

    readable_inputs([target])
    compiler = compiler_of(ctx)
    local_names = None
    type_names: dict[str, str] = {}
    try:
        data = Path(target).read_bytes()
    except OSError as exc:
        fail(f"cannot read {target}: {exc.strerror}", "check the path", where=target)
    if Path(target).suffix != ".ccl" and (data.startswith(IMAGE_MAGIC)
                                          or Path(target).suffix == ".vvmi"):
        image = _decode(data, target)
    elif Path(target).suffix == ".ccl":
        compiled = compile_file(compiler, target)
        image, local_names = compiled.image, compiled.debug.local_names
        type_names = _type_names(compiled)
    elif not data.strip():
        fail("the file is empty: neither an image nor a CCL source",
                      "give an image written by `ccl compile`, or a .ccl file",
                      EXIT_REJECTED, target)
    elif data.startswith(PATCH_MAGIC):
        fail("a patch, not an image", "`ccl inspect` shows patches", EXIT_REJECTED, target)
    elif not _text(data):
        fail("neither an image (it does not start with VVMI) nor a CCL source (it "
                      "is not UTF-8 text)", "give an image written by `ccl compile`, or a "
                      ".ccl file; `ccl inspect` shows patches", EXIT_REJECTED, target)
    else:
        compiled = compile_file(compiler, target)
        image = compiled.image
        local_names = compiled.debug.local_names
        type_names = _type_names(compiled)
    if as_json:
        emit_json(_image_json(image, local_names, type_names))
    else:
        click.echo("\n".join(listing(image, local_names, type_names)))
    sys.exit(EXIT_OK)


def _type_names(compiled: Compiled) -> dict[str, str]:
    """The globals and arrays of a type a VMlet defines, and that type as written."""
    p = compiled.program
    data = [(g.name, g.type) for g in p.globals] + [(a.name, a.type) for a in p.arrays]
    return {name: str(t) for name, t in data if t.nominal is not None}


def _typed(name: str, type_names: dict[str, str] | None) -> dict[str, str]:
    """``{"type": "q16[0..1]"}`` for a datum of a type a VMlet defines, else nothing."""
    return {"type": type_names[name]} if type_names and name in type_names else {}


def _text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode(data: bytes, target: str) -> Image:
    """The image in ``data``; a failure naming the offset where it goes wrong."""
    from onboard.patching.patch_format import MAGIC as PATCH_MAGIC  # noqa: PLC0415
    from onboard.vm.image import ImageError, decode_image  # noqa: PLC0415

    try:
        return decode_image(data)
    except ImageError as exc:
        where = f" at offset {exc.offset}" if exc.offset is not None else ""
        hint = ("this is a patch: `ccl inspect` shows patches" if data.startswith(PATCH_MAGIC)
                else "is this an image written by `ccl compile`, complete and undamaged?")
        fail(f"not an image: {exc.message}", hint, EXIT_REJECTED, f"{target}{where}")


def _image_json(image: Image, local_names: Sequence[Sequence[str]] | None,
                type_names: dict[str, str] | None = None) -> dict[str, Any]:
    from onboard.vm import isa  # noqa: PLC0415
    from onboard.vm.image import ImageKind  # noqa: PLC0415

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
        "globals": [dataclasses.asdict(g) | _typed(g.name, type_names) for g in image.globals],
        "arrays": [{"name": a.name, "writable": a.writable, "lo": a.lo, "hi": a.hi,
                    "length": a.length} | _typed(a.name, type_names) for a in image.arrays],
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
