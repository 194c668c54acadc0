"""Validly signed hostile patches: structure-aware mutations of real patches, re-encoded and
signed with the test key, and the oracle that judges what the board does with them.

Mutating a patch's bytes mostly ends at a CRC or at the tag. Here a seed patch is decoded
into plain Python (its header, and each section's type, codec and body), a few mutations edit
that structure (counts, indices, ranges, chunk headers, code bytes and opcodes, entry points,
VMlet references and carried VMlet images, names, whole sections, codecs, the header's
claims), and the result is encoded again, framed with fresh CRCs and signed with the test key.
Three times out of four the header's target hash and code and data claims are then *fixed
up* to what the onboard rebuild makes of the mutated sections, so that mutations also get
past ``hash-mismatch`` and ``claim-mismatch`` and reach the bytecode verifier and, when the
patcher accepts them, the loader, the translator and a running VVM.

The invariant (``judge``): every patch is either rejected with a reason (never the internal
one) and the store is byte for byte unchanged, or accepted, and then the VVM loads it, runs
it for a few frames and calls each of its code units directly, without a host exception
(traps are the program's own, and fine).

Everything is deterministic: case ``i`` is a function of ``i`` alone (``random.Random(i)``).
Used by ``tests/onboard/test_hostile_patches.py`` (a fixed slice) and
``benchmarks/patch_fuzz.py`` (the long run).
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import tempfile
import traceback
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import construct as cs
from support import TEST_KEY

from ccl.driver import Compiled, Compiler
from ccl.pack import pack
from missions.corot.natives import make_host
from onboard.mission import MissionProfile
from onboard.patching.patch_format import (
    HASH_BYTES,
    TAG_BYTES,
    Codec,
    Flag,
    FormatError,
    Header,
    Reason,
    SectionType,
    assemble,
    build_body,
    build_frame,
    bundle_payload,
    check_order,
    compress,
    expand,
    memory_bytes,
    parse_body,
    parse_frames,
    parse_header,
    section_of,
    unbundle,
)
from onboard.patching.patcher import Patcher, PatchRejected, rebuild
from onboard.patching.store import Configuration, Phase, Store
from onboard.vm import isa
from onboard.vm.image import Array, Image, decode_image
from onboard.vm.loader import LoadError
from onboard.vm.vvm import VVM

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "missions" / "corot" / "configs"

#: The documented allocation bound of ``Patcher.check`` (docs/patch-format.md): the
#: tracemalloc peak while checking a patch of N bytes is at most PER_PATCH_BYTE x N +
#: PER_MEMORY_BYTE x (the profile's code bytes + data bytes). Python objects make both
#: factors: a decoded entry (a global, a task...) takes 150 to 250 bytes, and a patch may
#: decompress to EXPANSION_RATIO x N plus its claims.
PER_PATCH_BYTE = 512
PER_MEMORY_BYTE = 64

#: Frames an accepted patch runs for on the VVM, and the cycles each of its units gets when
#: called directly afterwards.
RUN_FRAMES = 3
CALL_BUDGET = 1_000_000


def allocation_bound(patch_bytes: int, profile: MissionProfile) -> int:
    """What checking a patch of ``patch_bytes`` may allocate at most (see above)."""
    return PER_PATCH_BYTE * patch_bytes + PER_MEMORY_BYTE * (profile.code_bytes
                                                             + profile.data_bytes)


# --------------------------------------------------------------------------- the corpus


@dataclass(frozen=True)
class Seed:
    """A valid patch for the configuration on board, and the image it rebuilds (whose
    declarations decode its PARAMS and ROWS)."""

    name: str
    data: bytes
    target: Image


@dataclass(frozen=True)
class Corpus:
    """What hostile patches are made from: exo_e1 v5 (with photometry) as the base on board,
    and valid patches from it that between them use every section type."""

    profile: MissionProfile
    base: Configuration
    base_patch: bytes  # the full patch that installs ``base`` (sequence number 1)
    seeds: tuple[Seed, ...]
    vmlets: tuple[Image, ...]  # photometry, deglitch: material for carried VMlets


def _compile(name: str) -> Compiled:
    return Compiler().compile(CONFIGS / f"{name}.ccl")


def make_corpus() -> Corpus:
    """Compile exo_e1 and its versions and pack the seed patches (a few seconds)."""
    v5, v6, v7, v9 = (_compile(n) for n in ("exo_e1", "exo_e1_v6", "exo_e1_v7", "exo_e1_v9"))
    profile = v5.mission
    base = v5.image
    photometry = [v.image for v in v5.vmlets]
    with_deglitch = [v.image for v in v7.vmlets]
    # A kept table with changed rows (ROWS), and a version that drops the rule, adds a
    # global, an array, a function and a task, and moves the entry point (REMOVALS,
    # GLOBALS, ARRAYS, CODE, TASKS, ENTRIES).
    star_x = base.arrays[0]
    rows = list(star_x.values)
    for i in (3, 4, 5, 900, 5999):
        rows[i] = (i * 37) % (star_x.hi + 1)
    moved = dataclasses.replace(base, version=11, arrays=(
        dataclasses.replace(star_x, values=tuple(rows)), *base.arrays[1:]))
    grown = dataclasses.replace(
        base, version=12, rules=(),
        globals=(*base.globals, dataclasses.replace(base.globals[0], name="spare", value=3)),
        arrays=(*base.arrays, Array("extra", True, -5, 5, (0, 1, -1, 5, -5) * 8)),
        functions=(*base.functions, base.functions[-1]),
        tasks=(*base.tasks, dataclasses.replace(base.tasks[0], name="again",
                                                function=len(base.functions))),
        on_apply=len(base.functions))

    # Both coordinates of 40 star windows at scattered places (SCATTERED, format 2).
    star_y = base.arrays[1]
    scattered_rows = range(17, 6000, 149)
    xs, ys = list(star_x.values), list(star_y.values)
    for i in scattered_rows:
        xs[i], ys[i] = star_x.hi - xs[i] or 1, star_y.hi - ys[i] or 1
    scattered = dataclasses.replace(base, version=13, arrays=(
        dataclasses.replace(star_x, values=tuple(xs)),
        dataclasses.replace(star_y, values=tuple(ys)), *base.arrays[2:]))

    def seed(name: str, target: Image, vmlets: list[Image], seq: int, full: bool) -> Seed:
        patch = pack(target, vmlets, profile, TEST_KEY, seq=seq, base=base, full=full)
        return Seed(name, patch.data, target)

    seeds = (
        seed("v6-delta", v6.image, photometry, 2, False),
        seed("v7-delta-carries-deglitch", v7.image, with_deglitch, 3, False),
        seed("v9-full", v9.image, photometry, 4, True),
        seed("rows-delta", moved, photometry, 5, False),
        seed("grown-delta", grown, photometry, 6, False),
        seed("scattered-delta", scattered, photometry, 8, False),
        Seed("v7-full-carries-both", pack(v7.image, with_deglitch, profile, TEST_KEY,
                                          seq=7).data, v7.image),
    )
    return Corpus(profile, Configuration(base, tuple(photometry)),
                  pack(base, photometry, profile, TEST_KEY, seq=1).data, seeds,
                  tuple(with_deglitch))


# --------------------------------------------------------------------------- structure


@dataclass
class Structure:
    """A decoded patch, as plain Python that mutations edit: the header, then per section
    ``[type, codec, body]``; a body is dicts, lists, ints, strings and bytes, or an
    ``Image`` for VMLET."""

    header: Header
    sections: list[list[Any]]
    target: Image  # the seed's target: the ranges PARAMS and ROWS are encoded with
    #: The codec of the BUNDLE the sections travel in (the seed's), or None: framed apart.
    bundle: Codec | None = None


def _plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):  # a Record or a Chunk
        value = value._asdict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _declarations(target: Image, body: Any = None) -> dict[str, Any]:
    """Parse/build parameters for PARAMS and ROWS from ``target``, padded so that indices a
    mutation pushed past the target's lists can still be encoded (the decoder refuses them)."""
    globals_ = [(g.lo, g.hi) for g in target.globals]
    arrays = [(a.lo, a.hi) for a in target.arrays]
    lengths = [a.length for a in target.arrays]
    top = 0
    if isinstance(body, dict) and "indices" in body:
        top = max((i for i in body["indices"] if isinstance(i, int)), default=0)
    elif isinstance(body, list):
        top = max((e["index"] for e in body if isinstance(e, dict)
                   and isinstance(e.get("index"), int)), default=0)
    top = min(top, 4096)
    globals_ += [(0, 255)] * max(0, top + 1 - len(globals_))
    arrays += [(0, 255)] * max(0, top + 1 - len(arrays))
    lengths += [16] * max(0, top + 1 - len(lengths))
    return {"global_ranges": globals_, "array_ranges": arrays, "array_lengths": lengths}


def decode(seed: Seed) -> Structure:
    """The structure of a seed patch."""
    data = seed.data
    parsed = parse_header(data)
    outer = parse_frames(data, parsed.size, len(data) - TAG_BYTES)
    frames = unbundle(outer)
    bundle = section_of(outer[0])[1] if any(f.bundled for f in frames) else None
    sections: list[list[Any]] = []
    for frame, (section, codec) in zip(frames, check_order(frames), strict=True):
        payload = expand(frame, codec)
        if section is SectionType.VMLET:
            body: Any = decode_image(payload)
        else:
            body = _plain(parse_body(section, payload, frame, **_declarations(seed.target)))
        sections.append([section, codec, body])
    return Structure(parsed.header, sections, seed.target, bundle)


class Unbuildable(Exception):
    """A mutation the format cannot express (the encoder refuses it)."""


def _payload(section: SectionType, body: Any, target: Image) -> bytes:
    if isinstance(body, Image):
        return body.encode()
    if isinstance(body, bytes):
        return body
    try:
        return build_body(section, body, **_declarations(target, body))
    except (cs.ConstructError, ValueError, TypeError, KeyError, AttributeError,
            OverflowError) as exc:
        raise Unbuildable(f"{section.name}: {exc}") from None


def frames_of(s: Structure) -> list[bytes]:
    """Each section framed (payload compressed with its codec), CRCs fresh."""
    out = []
    inner = []
    for section, codec, body in s.sections:
        payload = compress(_payload(section, body, s.target), codec)
        out.append(build_frame(section, payload, codec))
        inner.append((int(codec) << 5 | int(section), payload))
    if s.bundle is not None:
        return [build_frame(SectionType.BUNDLE, compress(bundle_payload(inner), s.bundle),
                            s.bundle)]
    return out


def sign(s: Structure) -> bytes:
    """The structure as a patch signed with the test key."""
    return assemble(s.header, frames_of(s), TEST_KEY)


# --------------------------------------------------------------------------- mutations


INTERESTING = (0, 1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 33, 63, 64, 127, 128, 255, 256, 1000,
               1023, 1024, 4095, 4096, 5999, 6000, 6001, 65535, 65536, 2**20 - 1, 2**20,
               2**20 + 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1, 2**64 - 1)
SIGNED_FIELDS = {"lo", "hi"}
NAMES = ("", "flux", "noise", "flag", "heater_set", "ccd", "photometry", "deglitch", "med3",
         "spike", "cosmic_filter", "clamp", "exo_e1", "x" * 300, "\u00e9\u00e8\u4e2d")


def _paths(value: Any, want: Callable[[Any], bool], path: tuple[Any, ...] = (),
           ) -> Iterator[tuple[Any, ...]]:
    """Paths to the parts of ``value`` for which ``want`` holds (depth first)."""
    if want(value):
        yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, want, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, want, (*path, i))


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        value = value[k]
    return value


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    _get(value, path[:-1])[path[-1]] = new
    return value


def _number(rng: random.Random, old: int, signed: bool) -> int:
    pick = rng.random()
    if pick < 0.3:
        v = old + rng.choice((-2, -1, 1, 2))
    elif pick < 0.8:
        v = rng.choice(INTERESTING)
    else:
        v = rng.randrange(0, 1 << rng.choice((4, 8, 16, 32, 64)))
    if signed and rng.random() < 0.4:
        v = -v
    lo = -(1 << 63) if signed else 0
    return max(lo, min(v, (1 << 63) - 1 if signed else (1 << 64) - 1))


class Skip(Exception):
    """The mutation does not apply to this structure."""


def _body_section(s: Structure, rng: random.Random, images: bool = False) -> list[Any]:
    candidates = [sec for sec in s.sections if isinstance(sec[2], Image) == images
                  and not isinstance(sec[2], bytes)]
    if not candidates:
        raise Skip
    return rng.choice(candidates)


def mutate_int(s: Structure, rng: random.Random) -> str:
    """An integer field (index, count, range bound, chunk header, length, version...)."""
    sec = _body_section(s, rng)
    paths = list(_paths(sec[2], lambda v: isinstance(v, int) and not isinstance(v, bool)))
    if not paths:
        raise Skip
    path = rng.choice(paths)
    old = _get(sec[2], path)
    new = _number(rng, old, bool(path) and path[-1] in SIGNED_FIELDS)
    sec[2] = _set(sec[2], path, new)
    return f"{sec[0].name}{list(path)}: {old} -> {new}"


def mutate_list(s: Structure, rng: random.Random) -> str:
    """A list: an entry duplicated, repeated, dropped, swapped or emptied."""
    sec = _body_section(s, rng)
    paths = [p for p in _paths(sec[2], lambda v: isinstance(v, list))]
    if not paths:
        raise Skip
    path = rng.choice(paths)
    items = _get(sec[2], path)
    op = rng.choice(("dup", "repeat", "drop", "swap", "clear", "reverse"))
    if op == "clear" or not items:
        items[:] = []
        op = "clear"
    elif op == "dup":
        i = rng.randrange(len(items))
        items.insert(rng.randrange(len(items) + 1), _copy(items[i]))
    elif op == "repeat":
        i = rng.randrange(len(items))
        items[i + 1:i + 1] = [_copy(items[i]) for _ in range(rng.choice((2, 10, 100)))]
    elif op == "drop":
        del items[rng.randrange(len(items))]
    elif op == "swap" and len(items) > 1:
        i, j = rng.sample(range(len(items)), 2)
        items[i], items[j] = items[j], items[i]
    else:
        items.reverse()
    return f"{sec[0].name}{list(path)}: {op}"


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def mutate_name(s: Structure, rng: random.Random) -> str:
    """A name or rule text."""
    sec = _body_section(s, rng)
    paths = list(_paths(sec[2], lambda v: isinstance(v, str)))
    if not paths:
        raise Skip
    path = rng.choice(paths)
    new = rng.choice(NAMES)
    sec[2] = _set(sec[2], path, new)
    return f"{sec[0].name}{list(path)} = {new[:12]!r}"


def mutate_bytes(s: Structure, rng: random.Random) -> str:
    """A byte string: a code unit's bytecode (instruction-aware) or a VMlet hash."""
    sec = _body_section(s, rng)
    paths = list(_paths(sec[2], lambda v: isinstance(v, bytes)))
    if not paths:
        raise Skip
    path = rng.choice(paths)
    old = _get(sec[2], path)
    if path[-1] == "code":
        new, what = mutate_code(old, rng)
    else:
        choice = rng.choice(("empty", "cut", "random", "flip"))
        new = {"empty": b"", "cut": old[:rng.randrange(len(old) + 1)],
               "random": rng.randbytes(32),
               "flip": bytes(b ^ (1 if i == 0 else 0) for i, b in enumerate(old))}[choice]
        what = choice
    sec[2] = _set(sec[2], path, new)
    return f"{sec[0].name}{list(path)}: {what}"


def _instructions(code: bytes) -> list[bytes]:
    try:
        return [code[d.offset:d.end] for d in isa.decode(code)]
    except isa.DecodeError:
        return []


def _random_instruction(rng: random.Random) -> bytes:
    if rng.random() < 0.1:
        return bytes([rng.randrange(isa.EXT_BASE, 0x100)])
    op = rng.choice(isa.INSTRUCTIONS)
    out = bytearray([op.code])
    for kind in op.operands:
        if kind is isa.Operand.IMM:
            isa.encode_svarint(rng.choice((0, 1, -1, 7, isa.INT_MAX, isa.INT_MIN, 255)), out)
        else:
            isa.encode_uvarint(rng.choice((0, 1, 2, 3, 5, 8, 64, 1000, 2**20, 2**32 - 1)),
                               out)
    return bytes(out)


_SAME_SHAPE = (
    (isa.ADD, isa.SUB, isa.MUL, isa.DIV, isa.MOD, isa.MIN, isa.MAX, isa.EQ, isa.NE, isa.LT,
     isa.LE, isa.GT, isa.GE),
    (isa.NEG, isa.ABS, isa.NOT),
    (isa.JZ, isa.JNZ),
    (isa.LOAD_L, isa.LOAD_G),
    (isa.STORE_L, isa.STORE_G),
)


def _encode(opcode: int, operands: list[int]) -> bytes | None:
    info = isa.op_info(opcode)
    assert info is not None
    out = bytearray([opcode])
    try:
        for kind, value in zip(info.operands, operands, strict=True):
            if kind is isa.Operand.IMM:
                isa.encode_svarint(value, out)
            else:
                isa.encode_uvarint(value, out)
    except ValueError:
        return None
    return bytes(out)


def _retouched(ins: bytes, rng: random.Random) -> bytes:
    """One instruction with its opcode swapped for one of the same shape, or one operand
    changed (immediates to extremes, indices and offsets by a little)."""
    (d,) = isa.decode(ins)
    operands = list(d.operands)
    group = next((g for g in _SAME_SHAPE if d.opcode in g), None)
    if group is not None and (not operands or rng.random() < 0.5):
        return _encode(rng.choice(group), operands) or ins
    if not operands:
        return ins
    k = rng.randrange(len(operands))
    kind = d.info.operands[k]
    if kind is isa.Operand.IMM:
        operands[k] = rng.choice((0, 1, -1, 2, isa.INT_MAX, isa.INT_MIN, isa.INT_MAX // 2,
                                  operands[k] + 1, -operands[k]))
    else:
        operands[k] = max(0, operands[k] + rng.choice((-2, -1, 1, 2)))
    return _encode(d.opcode, operands) or ins


def mutate_code(code: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Bytecode with one edit: an instruction retouched (same-shape opcode, an operand),
    inserted, dropped, duplicated, swapped or replaced, or (when it does not decode) a byte
    flipped."""
    ins = _instructions(code)
    op = rng.choice(("retouch", "retouch", "retouch", "insert", "drop", "dup", "swap",
                     "replace", "byte", "cut"))
    if not ins or op == "byte":
        if not code:
            return _random_instruction(rng), "random instruction"
        i = rng.randrange(len(code))
        return code[:i] + bytes([code[i] ^ (1 << rng.randrange(8))]) + code[i + 1:], \
            f"flip byte {i}"
    i = rng.randrange(len(ins))
    if op == "retouch":
        ins[i] = _retouched(ins[i], rng)
    elif op == "insert":
        ins.insert(i, _random_instruction(rng))
    elif op == "drop":
        del ins[i]
    elif op == "dup":
        ins.insert(i, ins[i])
    elif op == "swap" and i + 1 < len(ins):
        ins[i], ins[i + 1] = ins[i + 1], ins[i]
    elif op == "replace":
        ins[i] = _random_instruction(rng)
    elif op == "cut":
        del ins[i:]
    return b"".join(ins), f"{op} instruction {i}"


def mutate_unit(s: Structure, rng: random.Random, corpus: Corpus) -> str:
    """A code unit's bytecode (``mutate_code``), or its frame: in the CODE section; a delta
    without one gets one that replaces a unit of the base (a removal and a new entry)."""
    code = next((sec for sec in s.sections if sec[0] is SectionType.CODE), None)
    if code is None or not code[2]:
        if s.header.full:
            raise Skip
        units = corpus.base.config.functions
        i = rng.randrange(len(units))
        u = units[i]
        removals = next((sec for sec in s.sections if sec[0] is SectionType.REMOVALS), None)
        if removals is None:
            removals = [SectionType.REMOVALS, Codec.NONE, []]
            s.sections.append(removals)
        group = next((g for g in removals[2] if g["list"] == 6), None)
        if group is None:
            group = {"list": 6, "indices": []}
            removals[2].append(group)
            removals[2].sort(key=lambda g: g["list"])
        if i in group["indices"]:
            raise Skip
        group["indices"] = sorted([*group["indices"], i])
        code = [SectionType.CODE, Codec.NONE, [{
            "index": i, "name": u.name, "n_params": u.n_params, "n_locals": u.n_locals,
            "returns": u.returns, "max_stack": u.max_stack, "code": u.code}]]
        s.sections = [sec for sec in s.sections if sec[0] is not SectionType.CODE]
        s.sections.append(code)
        s.sections.sort(key=lambda sec: int(sec[0]))
    entry = rng.choice(code[2])
    if rng.random() < 0.15:
        what = rng.choice(("n_locals", "max_stack", "n_params", "returns"))
        entry[what] = (not entry[what]) if what == "returns" else max(
            0, entry[what] + rng.choice((-1, 1, 2, 64)))
        return f"CODE unit {entry['index']}: {what} = {entry[what]}"
    entry["code"], how = mutate_code(entry["code"], rng)
    return f"CODE unit {entry['index']} ({entry['name']}): {how}"


def mutate_vmlet(s: Structure, rng: random.Random, corpus: Corpus) -> str:
    """A carried VMlet image (one is added if the patch carries none): its code, entry
    points, instructions, exposed and hidden natives, identity, or a table it should not
    have."""
    carried = [sec for sec in s.sections if isinstance(sec[2], Image)]
    if not carried or rng.random() < 0.2:
        image = rng.choice(corpus.vmlets)
        at = next((i for i, sec in enumerate(s.sections) if sec[0] > SectionType.VMLET),
                  len(s.sections))
        s.sections.insert(at, [SectionType.VMLET, Codec.NONE, image])
        carried = [s.sections[at]]
    sec = rng.choice(carried)
    vm: Image = sec[2]
    what = rng.choice(("code", "on_load", "instr", "exposes", "hides", "version", "name",
                       "kind", "array", "n_locals", "uses"))
    if what == "code" and vm.functions:
        i = rng.randrange(len(vm.functions))
        code, how = mutate_code(vm.functions[i].code, rng)
        units = list(vm.functions)
        units[i] = dataclasses.replace(units[i], code=code)
        vm = dataclasses.replace(vm, functions=tuple(units))
        what = f"code of unit {i}: {how}"
    elif what == "on_load":
        vm = dataclasses.replace(vm, on_load=rng.choice((None, 0, 1, len(vm.functions), 99)))
    elif what == "instr" and vm.instrs:
        instrs = list(vm.instrs)
        i = rng.randrange(len(instrs))
        instrs[i] = dataclasses.replace(instrs[i], function=rng.choice(
            (0, len(vm.functions) - 1, len(vm.functions), 2**20)))
        vm = dataclasses.replace(vm, instrs=tuple(instrs))
    elif what == "exposes":
        vm = dataclasses.replace(vm, exposes=(*vm.exposes, rng.choice(NAMES)))
    elif what == "hides":
        vm = dataclasses.replace(vm, hides=(*vm.hides, rng.choice(NAMES)))
    elif what == "version":
        vm = dataclasses.replace(vm, version=_number(rng, vm.version, False))
    elif what == "name":
        vm = dataclasses.replace(vm, name=rng.choice(NAMES))
    elif what == "kind":
        vm = dataclasses.replace(vm, kind=rng.choice(list(type(vm.kind))))
    elif what == "array":
        vm = dataclasses.replace(vm, arrays=(Array("t", False, 0, 0, (0,) * rng.choice(
            (1, 1000, 2**17))),))
    elif what == "n_locals" and vm.functions:
        units = list(vm.functions)
        i = rng.randrange(len(units))
        units[i] = dataclasses.replace(units[i], n_locals=rng.choice((0, 255, 2**17, 2**32)),
                                       max_stack=rng.choice((0, 1, 64, 65, 2**20)))
        vm = dataclasses.replace(vm, functions=tuple(units))
    else:
        vm = dataclasses.replace(vm, uses=(*vm.uses, *corpus.base.config.uses))
    sec[2] = vm
    return f"VMLET {vm.name}: {what}"


def mutate_section(s: Structure, rng: random.Random, corpus: Corpus) -> str:
    """Whole sections: dropped, duplicated, moved, recompressed, or taken from another seed;
    an entry point or task added."""
    op = rng.choice(("drop", "dup", "move", "codec", "borrow", "entries", "task"))
    if op in ("drop", "dup", "move", "codec") and not s.sections:
        raise Skip
    if op == "drop":
        sec = s.sections.pop(rng.randrange(len(s.sections)))
        return f"drop {sec[0].name}"
    if op == "dup":
        i = rng.randrange(len(s.sections))
        s.sections.insert(i, [s.sections[i][0], s.sections[i][1], _copy(s.sections[i][2])])
        return f"duplicate {s.sections[i][0].name}"
    if op == "move":
        sec = s.sections.pop(rng.randrange(len(s.sections)))
        s.sections.insert(rng.randrange(len(s.sections) + 1), sec)
        return f"move {sec[0].name}"
    if op == "codec":
        sec = rng.choice(s.sections)
        sec[1] = rng.choice(list(Codec))
        return f"{sec[0].name} stored {sec[1].name}"
    if op == "borrow":
        other = decode(rng.choice(corpus.seeds))
        if not other.sections:
            raise Skip
        new = rng.choice(other.sections)
        kept = [sec for sec in s.sections if sec[0] != new[0] or new[0] is SectionType.VMLET]
        kept.append(new)
        s.sections = sorted(kept, key=lambda sec: int(sec[0]))
        return f"borrow {new[0].name}"
    if op == "entries":
        section, body = SectionType.ENTRIES, {"on_apply": rng.choice((0, 1, 2, 3, 7, 2**20))}
    else:
        section, body = SectionType.TASKS, [{
            "index": rng.choice((0, 1, 2, 5)), "name": "t",
            "period_ms": rng.choice((0, 1, 100, 32000, 2**32)),
            "function": rng.choice((0, 1, 2, 3, 10, 2**20))}]
    s.sections = [sec for sec in s.sections if sec[0] != section]
    s.sections.append([section, Codec.NONE, body])
    s.sections.sort(key=lambda sec: int(sec[0]))
    return f"set {section.name} {body}"


def mutate_header(s: Structure, rng: random.Random) -> str:
    """The claims, the flags, the version, the sequence number or the hashes."""
    h = s.header
    what = rng.choice(("code", "data", "cycles", "share", "full", "version", "seq", "target"))
    c = h.claims
    if what in ("code", "data", "cycles", "share"):
        attr = {"code": "code_bytes", "data": "data_bytes", "cycles": "cycles_per_frame",
                "share": "share_bp"}[what]
        new = _number(rng, getattr(c, attr), False)
        h = dataclasses.replace(h, claims=dataclasses.replace(c, **{attr: new}))
        what = f"{what} claim {new}"
    elif what == "full":
        h = dataclasses.replace(h, flags=h.flags ^ Flag.FULL)
    elif what == "version":
        h = dataclasses.replace(h, version=_number(rng, h.version, False))
    elif what == "seq":
        h = dataclasses.replace(h, seq=rng.choice((0, 1, 2, 2**63)))
    else:
        h = dataclasses.replace(h, target_hash=rng.randbytes(HASH_BYTES))
    s.header = h
    return f"header {what}"


MUTATIONS: tuple[tuple[str, int], ...] = (
    ("int", 6), ("list", 4), ("bytes", 2), ("code", 6), ("name", 1), ("vmlet", 3),
    ("section", 2), ("header", 1))


def _apply(s: Structure, name: str, rng: random.Random, corpus: Corpus) -> str:
    if name == "int":
        return mutate_int(s, rng)
    if name == "list":
        return mutate_list(s, rng)
    if name == "bytes":
        return mutate_bytes(s, rng)
    if name == "code":
        return mutate_unit(s, rng, corpus)
    if name == "name":
        return mutate_name(s, rng)
    if name == "vmlet":
        return mutate_vmlet(s, rng, corpus)
    if name == "section":
        return mutate_section(s, rng, corpus)
    return mutate_header(s, rng)


def fix_up(s: Structure, corpus: Corpus) -> bool:
    """Set the header's target hash and code and data claims to what the onboard rebuild
    makes of the sections, if it makes anything (then a mutation passes the hash and claim
    checks). Returns whether it did."""
    p = corpus.profile
    roomy = dataclasses.replace(s.header, claims=dataclasses.replace(
        s.header.claims, code_bytes=p.code_bytes, data_bytes=p.data_bytes))
    try:
        body = b"".join(frames_of(s))
        frames = parse_frames(body, 0, len(body))
        rebuilt = rebuild(roomy, frames, corpus.base, p)
        code, data = memory_bytes(rebuilt.config, rebuilt.vmlets)
    except (FormatError, Unbuildable):
        return False
    s.header = dataclasses.replace(s.header, target_hash=rebuilt.hash[:HASH_BYTES],
                                   claims=dataclasses.replace(s.header.claims,
                                                              code_bytes=code, data_bytes=data))
    return True


@dataclass(frozen=True)
class Case:
    """One hostile patch: how it was made, and its bytes."""

    number: int
    seed: str
    mutations: tuple[str, ...]
    fixed_up: bool
    data: bytes

    def describe(self) -> str:
        return (f"case {self.number} (seed {self.seed}, {len(self.data)} bytes"
                f"{', fixed up' if self.fixed_up else ''}): {'; '.join(self.mutations)}")


def hostile_case(corpus: Corpus, number: int) -> Case:
    """Hostile patch number ``number``: one to three mutations of a seed, re-encoded,
    fixed up three times out of four, and signed."""
    rng = random.Random(number)
    seed = rng.choice(corpus.seeds)
    names = [n for n, _ in MUTATIONS]
    weights = [w for _, w in MUTATIONS]
    for _attempt in range(20):
        s = decode(seed)
        done = []
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            try:
                done.append(_apply(s, rng.choices(names, weights)[0], rng, corpus))
            except Skip:
                continue
        if not done:
            continue
        fixed = rng.random() < 0.75 and fix_up(s, corpus)
        try:
            data = sign(s)
        except Unbuildable:
            continue
        return Case(number, seed.name, tuple(done), fixed, data)
    return Case(number, seed.name, ("none applied",), False, seed.data)


# --------------------------------------------------------------------------- the oracle


@dataclass
class Verdict:
    """What the board did with one patch."""

    outcome: str  # "rejected:<reason>", "accepted:ran", "accepted:load-refused:<code>"
    host_exception: str | None = None  # "<where>: <type>: <message>", the invariant broken
    where: str | None = None  # module of the innermost frame of a host exception
    peak: int | None = None  # tracemalloc peak of Patcher.check, when measured
    traps: int = 0
    located: bool = True  # a rejection names the field or the offset


@dataclass
class Board:
    """A patcher over a store holding the corpus's base (none if its ``base_patch`` is
    empty), the way every case meets it."""

    corpus: Corpus
    directory: Path
    patcher: Patcher = field(init=False)

    def __post_init__(self) -> None:
        store = Store.init(self.directory)
        self.patcher = Patcher(self.corpus.profile, store, TEST_KEY, probation_frames=1)
        if not self.corpus.base_patch:
            return
        fate = self.patcher.receive(self.corpus.base_patch)
        assert fate.reason is None, fate
        self.patcher.activate()
        self.patcher.commit()
        assert self.patcher.store.phase is Phase.IDLE

    def snapshot(self) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.directory.iterdir())}


def new_board(corpus: Corpus) -> Board:
    return Board(corpus, Path(tempfile.mkdtemp(prefix="hostile-board-")))


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if "/onboard/" in frame.filename:
            return "onboard/" + frame.filename.rsplit("/onboard/", 1)[1]
    return frames[-1].filename if frames else "?"


def judge(board: Board, case: Case, *, measure: bool = False) -> Verdict:
    """Check ``case`` on ``board`` and, if accepted, load and run it on a fresh VVM.
    Never raises for what the board does; the verdict says it."""
    before = board.snapshot()
    state = board.patcher.store.state()
    if measure:
        tracemalloc.start()
    try:
        accepted = board.patcher.check(case.data)
    except PatchRejected as exc:
        verdict = Verdict(f"rejected:{exc.reason.value}",
                          located=exc.field is not None or exc.offset is not None)
        if exc.reason is Reason.INTERNAL:
            cause = exc.__cause__ or exc
            verdict.host_exception = f"{_where(cause)}: {exc.message}"
            verdict.where = _where(cause)
    else:
        verdict = Verdict("accepted:ran")
    finally:
        if measure:
            verdict_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    if measure:
        verdict.peak = verdict_peak
    if board.snapshot() != before or board.patcher.store.state() != state:
        verdict.host_exception = (verdict.host_exception or "") + " the store changed"
        verdict.where = verdict.where or "onboard/patching/patcher.py"
    if verdict.outcome.startswith("rejected"):
        return verdict
    run(board.corpus, accepted.configuration, verdict)
    return verdict


def run(corpus: Corpus, configuration: Configuration, verdict: Verdict) -> None:
    """Load ``configuration`` on a VVM that runs the base (as at a switch), run a few
    frames, and record a load refusal, traps, or a host exception in ``verdict``."""
    profile = corpus.profile
    vm = VVM(profile, make_host(profile, seed=3))
    try:
        vm.load(corpus.base.config, corpus.base.vmlets)
        program = vm.prepare(configuration.config, configuration.vmlets)
    except LoadError as exc:
        verdict.outcome = f"accepted:load-refused:{exc.code}"
        return
    except Exception as exc:  # noqa: BLE001 - the verdict reports it
        verdict.host_exception = f"prepare: {type(exc).__name__}: {exc}"[:300]
        verdict.where = _where(exc)
        return
    try:
        vm.activate(program)
        vm.run_for(RUN_FRAMES * profile.frame_ms)
        verdict.traps = vm.telemetry.fault_count
        # Every unit once more, called directly (rules and helpers too), with two arguments.
        for unit in program.image.functions:
            for arg in (0, 7):
                try:
                    outcome = vm.call(unit.name, [arg] * unit.n_params, budget=CALL_BUDGET)
                except LoadError:  # needs more cycles than the budget: not a fault
                    continue
                verdict.traps += outcome.fault is not None
    except Exception as exc:  # noqa: BLE001 - the verdict reports it
        verdict.host_exception = f"run: {type(exc).__name__}: {exc}"[:300]
        verdict.where = _where(exc)
