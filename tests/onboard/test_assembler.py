"""The assembler, the disassembler's inverse: the text round trip on every program we have
(the CoRoT configurations and VMlets, the compiler's test cases, the verifier's ``.vasm``
corpus) and on generated code, and clear errors on text that is not bytecode."""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from bytecode_programs import cases
from hypothesis import given, settings
from hypothesis import strategies as st
from test_verifier import CASE_FILES, load_case

from ccl.driver import Compiler
from onboard.vm import isa
from onboard.vm.assembler import AssemblyError, assemble
from onboard.vm.image import CodeUnit

REPO = Path(__file__).resolve().parents[2]
CCL_SOURCES = sorted([*(REPO / "missions" / "corot" / "configs").glob("*.ccl"),
                      *(REPO / "missions" / "corot" / "vmlets").glob("*.ccl"),
                      *(REPO / "tests" / "ccl" / "cases").glob("*.ccl")])


def canonical(code: bytes) -> bool:
    """Whether ``code`` decodes to the end, with minimal varints and every jump landing on
    an instruction (or the end): the code the assembler can write, so the round trip is
    exact. (Non-minimal varints decode too: ``80 00`` is 0 in two bytes.)"""
    try:
        decoded = list(isa.decode(code))
    except isa.DecodeError:
        return False
    starts = {ins.offset for ins in decoded} | {len(code)}
    for ins in decoded:
        minimal = bytearray([ins.opcode])
        for kind, value in zip(ins.info.operands, ins.operands, strict=True):
            encode = isa.encode_svarint if kind is isa.Operand.IMM else isa.encode_uvarint
            encode(value, minimal)
        if len(minimal) != ins.size or (ins.target() is not None
                                        and ins.target() not in starts):
            return False
    return True


@functools.cache
def corpus() -> tuple[tuple[str, CodeUnit, isa.Names], ...]:
    """Every code unit of every program that compiles, with its listing names, and of every
    ``.vasm`` case (with the image's names)."""
    units: list[tuple[str, CodeUnit, isa.Names]] = []
    compiler = Compiler()
    for path in CCL_SOURCES:
        try:
            compiled = compiler.compile(path)
        except Exception:  # noqa: BLE001 - cases the compiler refuses have no code
            continue
        image = compiled.image
        for unit, local_names in zip(image.functions, compiled.debug.local_names,
                                     strict=True):
            units.append((f"{path.name}:{unit.name}", unit,
                          image.names_for(unit, tuple(local_names))))
    for path in CASE_FILES:
        image = load_case(path).image
        units += [(f"{path.name}:{u.name}", u, image.names_for(u)) for u in image.functions]
    return tuple(units)


def _unique(names: isa.Names) -> bool:
    """Whether every name in ``names`` stands for one index (sibling scopes may reuse a
    local's name: ``for i`` twice gives two slots both listed as ``i``)."""
    tables = (names.locals, names.globals, names.arrays, names.functions, names.natives,
              names.env, names.ext)
    return all(len(set(t)) == len(t) for t in tables)


def test_the_corpus_round_trips_with_and_without_names() -> None:
    exact = named = 0
    for where, unit, names in corpus():
        if not canonical(unit.code):
            continue
        plain = isa.disassemble(unit.code)
        assert assemble(plain) == unit.code, where
        assert isa.disassemble(assemble(plain)) == plain, where
        exact += 1
        if _unique(names):
            text = isa.disassemble(unit.code, names)
            assert assemble(text, names) == unit.code, where
            assert isa.disassemble(assemble(text, names), names) == text, where
            named += 1
    # Not vacuous: nearly every unit is canonical, and nearly every one has unique names.
    assert exact >= 0.9 * len(corpus()) and exact >= 200, (exact, len(corpus()))
    assert named >= 0.9 * exact, (named, exact)


def test_the_listing_of_a_compiled_configuration_assembles_back() -> None:
    compiled = Compiler().compile(REPO / "missions" / "corot" / "configs" / "exo_e1.ccl")
    image = compiled.image
    for unit, local_names in zip(image.functions, compiled.debug.local_names, strict=True):
        names = image.names_for(unit, tuple(local_names))
        listing = "\n".join(isa.disassemble(unit.code, names))
        assert assemble(listing, names) == unit.code


@settings(max_examples=60, deadline=None)
@given(cases())
def test_generated_programs_round_trip(case) -> None:  # type: ignore[no-untyped-def]
    for image in (case.image, *case.vmlets):
        for unit in image.functions:
            assert canonical(unit.code)
            names = image.names_for(unit)
            text = isa.disassemble(unit.code, names)
            assert assemble(text, names) == unit.code
            assert isa.disassemble(assemble(text, names), names) == text


_OPS = sorted(isa.BY_NAME.values(), key=lambda op: op.code)


def _instructions(rng: random.Random, n: int) -> Iterator[str]:
    """``n`` random instructions in the short text form, with labels placed among them
    and jumps to them in the direction their opcode allows."""
    spots = sorted(rng.sample(range(n + 1), rng.randint(0, min(4, n + 1))))
    for i in range(n + 1):
        if i in spots:
            yield f"L{i}:"
        if i == n:
            return
        if rng.random() < 0.1:
            yield f"EXT{rng.randrange(isa.EXT_COUNT)}"
            continue
        op = rng.choice(_OPS)
        operands = []
        for kind in op.operands:
            if kind is isa.Operand.IMM:
                operands.append(str(rng.choice((0, 1, -1, 63, -64, 64, isa.INT_MIN,
                                                isa.INT_MAX, rng.randint(-9999, 9999)))))
            elif kind in (isa.Operand.FWD, isa.Operand.BACK):
                reachable = [s for s in spots if (s > i if kind is isa.Operand.FWD
                                                  else s <= i + 1)]
                operands.append(f"L{rng.choice(reachable)}" if reachable else "0")
            else:
                operands.append(str(rng.choice((0, 1, 127, 128, rng.randint(0, 70000)))))
        yield f"{op.name} {', '.join(operands)}".rstrip()


@settings(max_examples=300, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 60))
def test_generated_text_assembles_to_code_that_round_trips(rng: random.Random,
                                                             n: int) -> None:
    code = assemble(list(_instructions(rng, n)))
    assert canonical(code)
    text = isa.disassemble(code)
    assert assemble(text) == code
    assert isa.disassemble(assemble(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_listing_assembles_back_or_is_refused(data: bytes) -> None:
    """Whatever the bytes, the listing of them assembles to them again (canonical code),
    or is refused with an ``AssemblyError``, never another exception."""
    text = isa.disassemble(data)
    try:
        code = assemble(text)
    except AssemblyError:
        assert not canonical(data)
        return
    assert code == data or not canonical(data)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("PUSH 1\nFROB 2", 2, "unknown instruction 'FROB'"),
    ("PUSH 1, 2", 1, "PUSH takes 1 operand"),
    ("JMP nowhere", 1, "never placed"),
    ("  7  ?? unknown opcode 0xbf", 1, "undecodable"),
    ("LOAD_G local#0", 1, "where a global is expected"),
    ("LOAD_G speed", 1, "'speed' names no global"),
    ("PUSH x", 1, "an immediate is a number"),
    ("LOAD_L -1", 1, "0 .. 2**32 - 1"),
    ("EXT64", 1, "64 extension opcodes"),
])
def test_text_that_is_not_bytecode_is_refused_with_its_line(text: str, line: int,
                                                            words: str) -> None:
    with pytest.raises(AssemblyError) as caught:
        assemble(text)
    assert caught.value.line == line
    assert words in str(caught.value)


def test_a_name_two_locals_share_is_refused_as_ambiguous() -> None:
    names = isa.Names(locals=("i", "i"))
    with pytest.raises(AssemblyError, match="'i' names 2 entries of the local table"):
        assemble("LOAD_L i", names)
    assert assemble("LOAD_L local#1", names) == bytes([isa.BY_NAME["LOAD_L"].code, 1])


def test_extension_opcodes_by_name_number_and_comment() -> None:
    names = isa.Names(ext=("photometry.med3", "deglitch.clip"))
    listing = ["     0  deglitch.clip  ; VMlet instruction (0xc1)", "EXT0", "ext1", "RET"]
    assert assemble(listing, names) == bytes([isa.EXT_BASE + 1, isa.EXT_BASE,
                                              isa.EXT_BASE + 1, isa.BY_NAME["RET"].code])
