"""Human-readable dump of an image: header, data, import tables and every code unit.

Every binary the product makes has a readable form; this is the one for images (``ccl
disasm``, ``vvm status``). Local variable names are not in images; a caller that has them
(the compiler's debug information) may pass them in, and so the names of the types a VMlet
defines (the board knows only the ranges they rest on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from onboard.vm import isa
from onboard.vm.image import Image, ImageKind


def _range(lo: int, hi: int, type_name: str = "") -> str:
    held = "int" if (lo, hi) == (isa.INT_MIN, isa.INT_MAX) else f"int[{lo}..{hi}]"
    return f"{type_name} as {held}" if type_name else held


def listing(image: Image, local_names: Sequence[Sequence[str]] | None = None,
            type_names: Mapping[str, str] | None = None) -> list[str]:
    """The full listing of ``image`` as lines of text; ``type_names`` gives the type, by
    its name, of globals and arrays of a type a VMlet defines (``alpha: q16[0..1]``)."""
    types = type_names or {}
    kind = "config" if image.kind is ImageKind.CONFIG else "vmlet"
    out = [f"{kind} {image.name} version {image.version}  (mission {image.mission})",
           f"hash {image.content_hash.hex()}",
           f"size {len(image.encode())} bytes, code {image.code_bytes()} bytes"]
    for u in image.uses:
        out.append(f"uses {u.name} version {u.version}  ({u.hash.hex()[:16]})")
    if image.globals:
        out.append("")
        out.append("globals:")
        for i, g in enumerate(image.globals):
            what = "var  " if g.writable else "param"
            held = _range(g.lo, g.hi, types.get(g.name, ""))
            out.append(f"  g{i:<3d} {what} {g.name} : {held} = {g.value}")
    if image.arrays:
        out.append("")
        out.append("arrays:")
        for i, a in enumerate(image.arrays):
            what = "var  " if a.writable else "table"
            distinct = len(set(a.values))
            content = f"all {a.values[0]}" if distinct == 1 else f"{distinct} distinct values"
            out.append(f"  a{i:<3d} {what} {a.name}[{a.length}] : "
                       f"{_range(a.lo, a.hi, types.get(a.name, ''))}  "
                       f"({content})")
    for title, table in (("natives", image.natives), ("env", image.env),
                         ("exposes", image.exposes), ("hides", image.hides)):
        if table:
            out.append(f"{title}: {', '.join(table)}")
    if image.ext:
        out.append("instructions from VMlets: " + ", ".join(
            f"0x{isa.EXT_BASE + k:02x}={e.vmlet}.{e.instr}" for k, e in enumerate(image.ext)))
    entry: dict[int, str] = {}
    for t in image.tasks:
        entry[t.function] = f"task {t.name} every {t.period_ms} ms"
    for r in image.rules:
        entry[r.function] = f"rule {r.text}"
    for d in image.instrs:
        entry[d.function] = f"instr {d.name}"
    if image.on_apply is not None:
        entry[image.on_apply] = "on apply"
    if image.on_load is not None:
        entry[image.on_load] = "on load"
    for i, unit in enumerate(image.functions):
        names = tuple(local_names[i]) if local_names and i < len(local_names) else ()
        out.append("")
        what = entry.get(i, f"fn {unit.name}")
        out.append(f"f{i} {what}: {unit.n_params} params, {unit.n_locals} locals, "
                   f"stack {unit.max_stack}, {len(unit.code)} bytes"
                   + (", returns a value" if unit.returns else ""))
        out.extend(isa.disassemble(unit.code, image.names_for(unit, names)))
    return out
