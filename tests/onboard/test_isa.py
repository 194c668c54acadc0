"""The VVM instruction set: varints, decoding, assembling and disassembling (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onboard.vm import isa
from onboard.vm.isa import Operand

U32 = st.integers(min_value=0, max_value=2**32 - 1)
I32 = st.integers(min_value=isa.INT_MIN, max_value=isa.INT_MAX)

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

JUMPS = {isa.JMP, isa.JZ, isa.JNZ, isa.FORPREP, isa.FORLOOP}
STRAIGHT = [op for op in isa.INSTRUCTIONS
            if not any(k in (Operand.FWD, Operand.BACK) for k in op.operands)
            and not op.ends_block]
assert STRAIGHT


# --------------------------------------------------------------------------- varints


@given(U32)
def test_uvarint_round_trip(value: int) -> None:
    out = bytearray()
    isa.encode_uvarint(value, out)
    assert len(out) == isa.uvarint_size(value) <= isa.MAX_VARINT_BYTES
    assert isa.decode_uvarint(bytes(out), 0) == (value, len(out))
    # at an offset, followed by garbage
    data = b"\xaa" + bytes(out) + b"\xff\x01"
    assert isa.decode_uvarint(data, 1) == (value, 1 + len(out))


@given(I32)
def test_svarint_round_trip(value: int) -> None:
    out = bytearray()
    isa.encode_svarint(value, out)
    assert len(out) <= isa.MAX_VARINT_BYTES
    assert isa.decode_svarint(bytes(out), 0) == (value, len(out))


@pytest.mark.parametrize("value", [0, 1, 127, 128, 16383, 16384, 2**28 - 1, 2**28, 2**32 - 1])
def test_uvarint_sizes_at_the_boundaries(value: int) -> None:
    out = bytearray()
    isa.encode_uvarint(value, out)
    assert len(out) == (value.bit_length() + 6) // 7 or (value == 0 and len(out) == 1)
    assert out[-1] < 0x80 and all(b >= 0x80 for b in out[:-1])


@pytest.mark.parametrize("value,encoded", [
    (0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (-64, b"\x7f"), (64, b"\x80\x01"),
    (isa.INT_MAX, b"\xfe\xff\xff\xff\x0f"), (isa.INT_MIN, b"\xff\xff\xff\xff\x0f"),
])
def test_zigzag_encoding(value: int, encoded: bytes) -> None:
    out = bytearray()
    isa.encode_svarint(value, out)
    assert bytes(out) == encoded


def test_varint_encoders_refuse_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        isa.encode_uvarint(-1, bytearray())
    with pytest.raises(ValueError):
        isa.encode_svarint(isa.INT_MAX + 1, bytearray())
    with pytest.raises(ValueError):
        isa.encode_svarint(isa.INT_MIN - 1, bytearray())


@pytest.mark.parametrize("data,reason", [
    (b"", "truncated"),
    (b"\x80", "truncated"),
    (b"\xff\xff\xff\xff", "truncated"),
    (b"\xff\xff\xff\xff\x1f", "exceeds 32 bits"),  # 2**35 - 1
    (b"\x80\x80\x80\x80\x80\x01", "longer than 5 bytes"),
])
def test_malformed_varints(data: bytes, reason: str) -> None:
    with pytest.raises(isa.DecodeError) as info:
        isa.decode_uvarint(data, 0)
    assert reason in info.value.reason
    assert info.value.offset == 0


# --------------------------------------------------------------------------- the table


def test_opcode_table_is_well_formed() -> None:
    codes = [op.code for op in isa.INSTRUCTIONS]
    names = [op.name for op in isa.INSTRUCTIONS]
    assert len(set(codes)) == len(codes)
    assert len(set(names)) == len(names)
    assert all(0 < c < isa.EXT_BASE for c in codes)
    assert isa.op_info(0x00) is None
    with pytest.raises(isa.DecodeError):
        list(isa.decode(b"\x00"))
    for op in isa.INSTRUCTIONS:
        assert isa.op_info(op.code) is op
        assert isa.BY_NAME[op.name] is op
        assert getattr(isa, op.name) == op.code
        if op.code not in (isa.CALL, isa.CALLN):
            assert op.pops is not None and op.pushes is not None
    for code in range(isa.EXT_BASE, 0x100):
        assert isa.op_info(code) is isa.EXT_INFO
    assert isa.EXT_COUNT == 0x100 - isa.EXT_BASE
    assert {op.code for op in isa.INSTRUCTIONS if op.ends_block} == {isa.JMP, isa.RET, isa.RETV}


def test_unassigned_codes_below_ext_base_are_invalid() -> None:
    for code in range(isa.EXT_BASE):
        if code in isa.BY_CODE:
            continue
        assert isa.op_info(code) is None
        with pytest.raises(isa.DecodeError) as info:
            list(isa.decode(bytes([code])))
        assert info.value.offset == 0


# --------------------------------------------------------------------------- decoding


@FAST
@given(st.binary(max_size=64))
def test_decode_raises_only_decode_error(data: bytes) -> None:
    pos = 0
    try:
        for ins in isa.decode(data):
            assert ins.offset == pos and ins.size >= 1
            pos = ins.end
    except isa.DecodeError as exc:
        assert 0 <= exc.offset <= len(data)
    else:
        assert pos == len(data)


@FAST
@given(st.binary(max_size=64))
def test_disassemble_never_raises_and_marks_the_error(data: bytes) -> None:
    lines = isa.disassemble(data)
    try:
        list(isa.decode(data))
        failed = False
    except isa.DecodeError as exc:
        failed = True
        assert lines and "??" in lines[-1] and exc.reason in lines[-1]
    if not failed:
        assert not any("??" in line for line in lines)


# --------------------------------------------------------------------------- assembling


def operand_value(kind: Operand) -> st.SearchStrategy[int]:
    return I32 if kind is Operand.IMM else U32


@st.composite
def instruction(draw: st.DrawFn) -> tuple[int, tuple[int, ...]]:
    """A random non-jump instruction with random operands (or an extension opcode)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.integers(isa.EXT_BASE, 0xFF)), ()
    op = draw(st.sampled_from(STRAIGHT))
    return op.code, tuple(draw(operand_value(k)) for k in op.operands)


@FAST
@given(st.lists(instruction(), max_size=40))
def test_straight_line_programs_round_trip(program: list[tuple[int, tuple[int, ...]]]) -> None:
    asm = isa.Assembler()
    for opcode, operands in program:
        asm.emit(opcode, *operands)
    code = asm.assemble()
    decoded = list(isa.decode(code))
    assert [(d.opcode, d.operands) for d in decoded] == program
    assert sum(d.size for d in decoded) == len(code)
    assert all(d.target() is None for d in decoded)


@FAST
@given(st.lists(st.tuples(st.sampled_from([isa.JMP, isa.JZ, isa.JNZ]),
                          st.lists(instruction(), max_size=60)), min_size=1, max_size=4))
def test_forward_jumps_resolve_to_their_label(
        blocks: list[tuple[int, list[tuple[int, tuple[int, ...]]]]]) -> None:
    # jump_k over block_k, then label_k: nested so that later jumps span earlier ones.
    asm = isa.Assembler()
    labels = [isa.Label(f"l{k}") for k in range(len(blocks))]
    for (opcode, body), label in zip(blocks, labels, strict=True):
        asm.emit(opcode, label)
        for op, operands in body:
            asm.emit(op, *operands)
    for label in reversed(labels):
        asm.place(label)
        asm.emit(isa.RET)
    code = asm.assemble()
    decoded = list(isa.decode(code))
    jumps = [d for d in decoded if d.opcode in (isa.JMP, isa.JZ, isa.JNZ)]
    rets = [d for d in decoded if d.opcode == isa.RET]
    assert len(jumps) == len(blocks) == len(rets)
    for k, jump in enumerate(jumps):
        # label_k is placed just before the (len - k)-th RET from the end
        assert jump.target() == rets[len(blocks) - 1 - k].offset
        assert jump.opcode == blocks[k][0]


@FAST
@given(st.lists(instruction(), min_size=0, max_size=80), st.integers(0, 3))
def test_counted_loops_resolve_both_ways(body: list[tuple[int, tuple[int, ...]]],
                                         slot: int) -> None:
    asm = isa.Assembler()
    top, exit_ = isa.Label("top"), isa.Label("exit")
    asm.emit(isa.FORPREP, slot, exit_)
    asm.place(top)
    for opcode, operands in body:
        asm.emit(opcode, *operands)
    asm.emit(isa.FORLOOP, slot, top)
    asm.place(exit_)
    asm.emit(isa.RET)
    decoded = list(isa.decode(asm.assemble()))
    prep, loop = decoded[0], decoded[-2]
    assert (prep.opcode, loop.opcode) == (isa.FORPREP, isa.FORLOOP)
    assert prep.operands[0] == loop.operands[0] == slot
    assert prep.target() == decoded[-1].offset  # the RET after the loop
    assert loop.target() == prep.end  # the first instruction of the body


def test_long_jumps_use_wider_offsets() -> None:
    asm = isa.Assembler()
    label = isa.Label("far")
    asm.emit(isa.JMP, label)
    for _ in range(200):
        asm.emit(isa.PUSH, 1)
        asm.emit(isa.POP)
    asm.place(label)
    asm.emit(isa.RET)
    decoded = list(isa.decode(asm.assemble()))
    assert decoded[0].size == 3  # opcode + 2-byte offset of 600
    assert decoded[0].operands == (600,)
    assert decoded[0].target() == decoded[-1].offset


def test_assembler_refuses_malformed_input() -> None:
    with pytest.raises(ValueError):
        isa.Assembler().emit(0x00)
    with pytest.raises(ValueError):
        isa.Assembler().emit(isa.PUSH)  # missing operand
    asm = isa.Assembler()
    asm.emit(isa.JMP, isa.Label("nowhere"))
    with pytest.raises(ValueError, match="never placed"):
        asm.assemble()
    asm = isa.Assembler()
    back = isa.Label("back")
    asm.place(back)
    asm.emit(isa.PUSH, 1)
    asm.emit(isa.JMP, back)  # forward-only jump to an earlier label
    with pytest.raises(ValueError, match="wrong side"):
        asm.assemble()
    asm = isa.Assembler()
    asm.emit(isa.PUSH, isa.Label("x"))
    with pytest.raises(ValueError):
        asm.assemble()


# --------------------------------------------------------------------------- disassembly


def test_disassembly_names_operands_and_labels() -> None:
    asm = isa.Assembler()
    end = isa.Label("end")
    asm.emit(isa.LOAD_G, 0)
    asm.emit(isa.JZ, end)
    asm.emit(isa.LOAD_L, 1)
    asm.emit(isa.CALLN, 0)
    asm.emit(isa.PUSH, -5)
    asm.emit(0xC1)
    asm.place(end)
    asm.emit(isa.RET)
    names = isa.Names(locals=("a", "b"), globals=("gain",), natives=("flux",),
                      ext=("photometry.med3", "photometry.clip"))
    lines = isa.disassemble(asm.assemble(), names)
    text = "\n".join(lines)
    assert "LOAD_G   gain" in text
    assert "JZ       L1" in text
    assert "LOAD_L   b" in text
    assert "CALLN    flux" in text
    assert "PUSH     -5" in text
    assert "photometry.clip" in text and "0xc1" in text
    assert lines[-2] == "L1:" and lines[-1].strip().endswith("RET")
    # unnamed indices fall back to kind#index
    assert "global#0" in "\n".join(isa.disassemble(bytes([isa.LOAD_G, 0])))
