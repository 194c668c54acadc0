"""The XTCE database (`ccl xtce`) against the OMG XTCE 1.2 schema, and against a decoder we
did not write: the telemetry of each CoRoT scenario, recorded from `ccl sim --tm`, decoded
by `space_packet_parser` with our XTCE, gives every value our own reader gives
(`ground.tm_stream`), and both agree with what the ground's report says (the patch fates,
the configuration on board, the values read back).

The schema (tests/ground/xtce/SpaceSystem.xsd) is OMG's XTCE 1.2 SpaceSystem.xsd,
unmodified (as the space_packet_parser package bundles it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from space_packet_parser.xtce.definitions import XtcePacketDefinition

from ccl.driver import Compiler
from ground.tm_stream import TmPacket, TmReader
from onboard.link.packet_definition import Field
from onboard.patching.patcher import read_fate_code
from onboard.sim.tm_packets import READBACK_HEAD_FIELDS, split_packets

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).parent / "xtce" / "SpaceSystem.xsd"
CONFIGS = sorted((ROOT / "missions" / "corot" / "configs").glob("exo_e1*.ccl"))
SCENARIOS = sorted((ROOT / "missions" / "corot" / "scenarios").glob("*.toml"))
DUMP = "cr_k10,star_mask"  # a parameter and a 6,000-element table, read back at the end


def _ccl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.ccl", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMA))


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The XTCE of CoRoT with the read-back of every exo_e1 version."""
    out = tmp_path_factory.mktemp("xtce") / "corot.xml"
    run = _ccl("xtce", "--mission", "corot", *map(str, CONFIGS), "-o", str(out), "--json")
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    assert answer["ok"] and len(answer["configurations"]) == len(CONFIGS)
    return out


@pytest.fixture(scope="module")
def reader() -> TmReader:
    compiler = Compiler()
    return TmReader([compiler.compile(c).image for c in CONFIGS])


def test_the_database_validates_against_xtce_1_2(database: Path,
                                                 schema: xmlschema.XMLSchema) -> None:
    errors = [f"{e.path}: {e.reason}" for e in schema.iter_errors(str(database))]
    assert errors == []
    text = database.read_text()
    for name in ("Housekeeping", "LinkReport", "FateReport", "DumpPacket",
                 "Readback_exo_e1_v6_cr_k10", "PatchSegment", "DumpRequest"):
        assert f'name="{name}"' in text


def test_a_database_without_configurations_validates(tmp_path: Path,
                                                     schema: xmlschema.XMLSchema) -> None:
    out = tmp_path / "corot.xml"
    run = _ccl("xtce", "--mission", "corot", "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert schema.is_valid(str(out))
    assert "Readback" not in out.read_text()


def test_an_unknown_mission_is_a_usage_error(tmp_path: Path) -> None:
    run = _ccl("xtce", "--mission", "nowhere", "-o", str(tmp_path / "x.xml"), "--json")
    assert run.returncode == 2
    assert json.loads(run.stdout)["ok"] is False
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "x.xml").exists()


def _expected(p: TmPacket) -> dict[str, Any]:
    """Our reader's values under the XTCE's parameter names (``ground/xtce.py``)."""
    fields = p.definition.fields
    out: dict[str, Any] = {}
    for i, f in enumerate(fields):
        head = p.name.startswith("Readback_") and i < READBACK_HEAD_FIELDS
        name = f"{'Readback' if head else p.prefix}_{f.name}"
        value = p.values[f.name]
        if f.kind in ("blob", "text"):
            out[f"{name}_length"] = len(value.encode() if f.kind == "text" else value)
        out[name] = value
    return out


def _same(f: Field | None, ours: Any, theirs: Any) -> bool:
    if f is not None and f.kind == "values":  # a table: the raw signed elements
        step = f.bits // 8
        return ours == [int.from_bytes(theirs[i:i + step], "big", signed=True)
                        for i in range(0, len(theirs), step)]
    if isinstance(ours, bytes):
        return bytes(theirs) == ours
    return bool(ours == theirs)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.stem for s in SCENARIOS])
def test_an_independent_decoder_reads_what_we_read(scenario: Path, tmp_path: Path,
                                                   database: Path, reader: TmReader) -> None:
    tm = tmp_path / "scenario.tm"
    run = _ccl("sim", str(scenario), "--tm", str(tm), "--dump", DUMP, "--json")
    assert run.returncode in (0, 1), run.stderr
    report = json.loads(run.stdout)[0]
    stream = tm.read_bytes()
    ours = reader.read(stream)
    definition = XtcePacketDefinition.from_xtce(database)
    raws = split_packets(stream)
    assert len(ours) == len(raws) > 0
    at = 0
    for p, (apid, data) in zip(ours, raws, strict=True):
        size = 6 + len(data)
        theirs = definition.parse_bytes(stream[at:at + size])
        at += size
        assert theirs["CCSDS_APID"] == apid == p.apid
        expected = _expected(p)
        by_name = {n: f for f in p.definition.fields for n in expected if n.endswith(f.name)}
        for name, value in expected.items():
            assert name in theirs, f"{p.name}: {name} not decoded"
            assert _same(by_name.get(name), value, theirs[name]), \
                f"{p.name}.{name}: ours {value!r}, space_packet_parser {theirs[name]!r}"
        header = {"CCSDS_VERSION", "CCSDS_TYPE", "CCSDS_SEC_HDR", "CCSDS_APID",
                  "CCSDS_SEQ_FLAGS", "CCSDS_SEQ_COUNT", "CCSDS_LENGTH"}
        assert set(theirs) - header == set(expected), p.name
    names = [p.name for p in ours]
    assert {"Housekeeping", "LinkReport"} <= set(names)

    # What the packets say agrees with the ground's report of the same run.
    last = [p for p in ours if p.name == "Housekeeping"][-1]
    assert last.values["config_hash"].hex() == report["onboard"]["config"]["hash"]
    for patch in report["patches"]:
        uplink = patch.get("uplink") or {}
        if not patch["fates"] or "transfer" not in uplink:
            continue
        statuses = [read_fate_code(p.values["code"])[0].value for p in ours
                    if p.name == "FateReport" and p.values["ticket"] == uplink["transfer"]]
        assert statuses == [f["status"] for f in patch["fates"]], patch["name"]
    for dump in report["dumps"]:
        answer = dump["answer"]
        if not answer or answer["refused"]:
            continue
        for v in answer["values"]:
            read = [p for p in ours if p.name.endswith(f"_{v['name']}")
                    and p.values["request"] == dump["request"]]
            assert len(read) == 1, v["name"]
            assert read[0].values[v["name"]] == v.get("value", v.get("values"))
