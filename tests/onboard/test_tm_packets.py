"""Packets declared once (``onboard.link.packet_definition``) and the telemetry as Space
Packets (``onboard.sim.tm_packets``): a definition's Struct is the layout the link always had
(the TMD1 event record, the dump packet, the report head, the segment header), the encoder
and our reader agree, and the packetizer sends each event, dump packet and read-back once."""

from __future__ import annotations

from pathlib import Path

import construct as cs
import pytest

from ccl.driver import Compiler
from ground.tm_stream import TmReader, TmStreamError
from onboard.link.downlink import FATE_REPORT, PatchEvent
from onboard.link.dump_format import DUMP_DEFINITION, DUMP_REQUEST, DumpPacket, encode_request
from onboard.link.link_security import development_link_key
from onboard.link.packet_definition import Field, PacketDefinition, signed_bits, text, uint
from onboard.link.receiver import LINK_REPORT, REPORT_MAGIC
from onboard.link.tc_frames import PATCH_SEGMENT, SEGMENT_HEADER
from onboard.mission import find_mission
from onboard.patching.patch_format import development_key
from onboard.sim.spacecraft import Spacecraft
from onboard.sim.tm_packets import (
    HOUSEKEEPING,
    Declaration,
    TmPacketizer,
    declarations,
    readback_definition,
    space_packet,
    split_packets,
)
from onboard.vm.dump_stream import encode_values
from onboard.vm.readback import Value

ROOT = Path(__file__).resolve().parents[2]


def test_the_definitions_keep_the_link_s_layouts() -> None:
    # The layouts as they were written by hand before the definitions (big-endian).
    event = cs.Struct("number" / cs.Int32ub, "time_ms" / cs.Int64ub, "ticket" / cs.Int32ub,
                      "code" / cs.Int8ub, "message" / cs.Prefixed(cs.Int8ub, cs.GreedyBytes))
    values = {"number": 7, "time_ms": 123_456_789_012, "ticket": 65_537, "code": 0x21,
              "message": "staged é"}
    raw = FATE_REPORT.build(values)
    assert raw == event.build({**values, "message": values["message"].encode()})
    assert FATE_REPORT.parse(raw) == values
    dump = DumpPacket(3, 9, 1, 1, 42, b"\x01\x02")
    old = cs.Struct("number" / cs.Int32ub, "request" / cs.Int16ub, "index" / cs.Int16ub,
                    "flags" / cs.Int8ub, "time_ms" / cs.Int64ub,
                    "data" / cs.Prefixed(cs.Int16ub, cs.GreedyBytes))
    assert DUMP_DEFINITION.build(vars(dump)) == old.build(vars(dump))
    assert SEGMENT_HEADER is not None and PATCH_SEGMENT.tail == "share_bytes"
    assert SEGMENT_HEADER.sizeof() == 11
    assert LINK_REPORT.struct.sizeof() == 8 + 32 + 6 * 4
    # A one-name dump request is the definition's bytes.
    assert encode_request(5, ["cr_k10"]) == DUMP_REQUEST.build(
        {"request": 5, "count": 1, "name": "cr_k10"})


def test_a_field_checks_its_width_and_a_range_gets_the_narrowest_signed_width() -> None:
    with pytest.raises(ValueError, match="12 bits"):
        uint("x", 12)
    with pytest.raises(ValueError, match="unknown kind"):
        Field("x", "float", 32)
    assert [signed_bits(lo, hi) for lo, hi in
            [(0, 127), (0, 128), (-128, 127), (0, 16_777_215), (-(1 << 40), 0)]] == \
        [8, 16, 8, 32, 64]
    with pytest.raises(ValueError, match="64 bits"):
        signed_bits(0, 1 << 63)


def test_a_space_packet_round_trips_and_a_cut_stream_is_refused() -> None:
    p = space_packet(0x153, 16_385, b"abc")
    assert p[:2] == bytes([0x01, 0x53]) and p[2:4] == bytes([0xC0, 0x01])  # count mod 2^14
    assert p[4:6] == (2).to_bytes(2, "big")
    assert split_packets(p + space_packet(0x152, 0, b"z")) == [(0x153, b"abc"), (0x152, b"z")]
    with pytest.raises(ValueError, match="cut short"):
        split_packets(p[:-1])
    with pytest.raises(ValueError):
        space_packet(0x153, 0, b"")


def test_a_read_back_packet_is_laid_out_by_the_configuration() -> None:
    table = Declaration("star_mask", "table", 0, 255, 3)
    d = readback_definition(4, table)
    assert d.fields[-1].kind == "values" and d.fields[-1].bits == 16 and d.fields[-1].size == 3
    raw = d.build({"time_ms": 1, "request": 2, "config": 3, "value": 4,
                   "star_mask": [0, 255, 7]})
    assert raw[-6:] == bytes([0, 0, 0, 255, 0, 7])
    scalar = readback_definition(0, Declaration("cr_k10", "param", 20, 100, 1))
    assert scalar.fields[-1].kind == "int" and scalar.fields[-1].bits == 8


def test_the_packetizer_sends_each_event_dump_and_read_back_once() -> None:
    decls = (Declaration("cr_k10", "param", 20, 100, 1),
             Declaration("star_mask", "table", 0, 255, 2))
    stream = encode_values([Value("cr_k10", "param", 20, 100, (60,)),
                            Value("star_mask", "table", 0, 255, (1, 2))])
    half = len(stream) // 2
    first = DumpPacket(1, 9, 0, 0, 500, stream[:half])
    last = DumpPacket(2, 9, 1, 1, 600, stream[half:])
    hk = {f.name: 0 for f in HOUSEKEEPING.fields} | {"config_hash": bytes(32),
                                                      "config_name": ""}
    report = {f.name: 0 for f in LINK_REPORT.fields} | {"config_hash": bytes(32)}
    events = [PatchEvent(1, 10, 1, 0, "received"), PatchEvent(2, 20, 1, 1, "staged")]
    tm = TmPacketizer()
    one = split_packets(b"".join(tm.pass_packets(hk, report, events[:1], [first], decls, 7)))
    assert [a for a, _ in one] == [0x153, 0x154, 0x152, 0x155]  # no read-back: half an answer
    two = split_packets(b"".join(tm.pass_packets(hk, report, events, [first, last], decls, 7)))
    assert [a for a, _ in two] == [0x153, 0x154, 0x152, 0x155, 0x151, 0x151]
    assert FATE_REPORT.parse(two[2][1])["message"] == "staged"
    mask = readback_definition(1, decls[1]).parse(two[-1][1])
    assert mask == {"time_ms": 600, "request": 9, "config": 7, "value": 1, "star_mask": [1, 2]}
    three = split_packets(b"".join(tm.pass_packets(hk, report, events, [first, last], decls,
                                                   7)))
    assert [a for a, _ in three] == [0x153, 0x154]
    assert tm.counts[0x153] == 3


def test_a_spacecraft_s_packets_read_back_by_our_reader(tmp_path: Path) -> None:
    profile = find_mission("corot")
    compiled = Compiler().compile(ROOT / "missions" / "corot" / "configs" / "exo_e1.ccl")
    sc = Spacecraft.create(profile, tmp_path / "store", development_key("corot"),
                           development_link_key("corot"))
    sc.install(compiled.image, [v.image for v in compiled.vmlets])
    sc.run_until(60_000)
    packets = TmReader([compiled.image]).read(b"".join(sc.tm_packets()))
    hk = next(p for p in packets if p.name == "Housekeeping").values
    assert hk["config_name"] == "exo_e1" and hk["config_version"] == 5
    assert hk["config_hash"] == compiled.image.content_hash
    assert hk["time_ms"] == sc.now_ms and hk["task_runs"] > 0 and hk["store_slots"] == 1
    assert hk["worst_share_ppm"] == hk["worst_frame_cycles"] * 1_000_000 // hk["share_cycles"]
    link = next(p for p in packets if p.name == "LinkReport").values
    report = sc.report()
    assert link == LINK_REPORT.parse(report[len(REPORT_MAGIC):][:LINK_REPORT.struct.sizeof()])
    assert [d.name for d in declarations(compiled.image)][:3] == ["exposure_s", "coadd",
                                                                  "cr_k10"]
    with pytest.raises(TmStreamError, match="no TM packet on APID"):
        TmReader().read(space_packet(0x7FF, 0, b"x"))
    with pytest.raises(TmStreamError, match="no configuration"):
        TmReader().read(space_packet(0x151, 0, bytes(16)))


def test_a_definition_may_not_share_an_apid() -> None:
    from onboard.link.packet_definition import definitions_by_apid

    a = PacketDefinition("A", 1, "", (text("t", 8),))
    with pytest.raises(ValueError, match="share APID"):
        definitions_by_apid([a, PacketDefinition("B", 1, "", ())])
