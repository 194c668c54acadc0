"""XTCE of a board of several applications: a patch segment telecommand per application
slot (APIDs 0x150, then 0x161 .. 0x16F) and the per-application TM packet, schema-valid and
decoded by an independent decoder (space-packet-parser) as our reader decodes it, from the
telemetry of the two-channel scenario."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from space_packet_parser.xtce.definitions import XtcePacketDefinition

from ground.tm_stream import TmReader
from onboard.link.tc_frames import patch_apid
from onboard.mission import MAX_APPLICATION
from onboard.sim.tm_packets import APPLICATION, APPLICATION_APID, split_packets

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).parent / "xtce" / "SpaceSystem.xsd"
TWO = ROOT / "missions" / "corot" / "scenarios" / "applications" / "two_channels.toml"
NS = {"x": "http://www.omg.org/spec/XTCE/20180204"}


def _ccl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.ccl", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("xtce") / "corot.xml"
    run = _ccl("xtce", "--mission", "corot", "-o", str(out))
    assert run.returncode == 0, run.stderr
    return out


def test_a_patch_segment_command_per_application_slot(database: Path) -> None:
    assert xmlschema.XMLSchema(str(SCHEMA)).is_valid(str(database))
    root = ET.parse(database).getroot()
    first_words = {}
    for mc in root.iterfind(".//x:MetaCommand", NS):
        entry = mc.find(".//x:FixedValueEntry", NS)
        assert entry is not None
        first_words[mc.get("name")] = int(entry.get("binaryValue", ""), 16)
    expected = {"PatchSegment": 0x1000 | 0x150,
                **{f"PatchSegment_app{n}": 0x1000 | patch_apid(n)
                   for n in range(1, MAX_APPLICATION + 1)}}
    assert {k: v for k, v in first_words.items() if k.startswith("PatchSegment")} == expected
    assert patch_apid(1) == 0x161 and patch_apid(MAX_APPLICATION) == 0x16F
    # each slot's command has the segment's arguments, under its own name
    app3 = root.find(".//x:MetaCommand[@name='PatchSegment_app3']", NS)
    assert app3 is not None
    names = {a.get("name") for a in app3.iterfind(".//x:Argument", NS)}
    assert {"PatchSegment_app3_transfer", "PatchSegment_app3_share_bytes"} <= names


def test_each_applications_tm_is_decoded_by_an_independent_decoder(
        database: Path, tmp_path: Path) -> None:
    tm = tmp_path / "two.tm"
    run = _ccl("sim", str(TWO), "--tm", str(tm), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)[0]
    stream = tm.read_bytes()
    ours = TmReader().read(stream)
    definition = XtcePacketDefinition.from_xtce(database)
    at, apps = 0, []
    for p, (_apid, data) in zip(ours, split_packets(stream), strict=True):
        size = 6 + len(data)
        theirs = definition.parse_bytes(stream[at:at + size])
        at += size
        if p.apid != APPLICATION_APID:
            continue
        apps.append(p.values)
        for f in APPLICATION.fields:
            value = theirs[f"Application_{f.name}"]
            mine = p.values[f.name]
            assert (bytes(value) if isinstance(mine, bytes) else value) == mine, f.name
    # one packet per application at every pass read, the last ones as the board ended
    assert len(apps) >= 4 and len(apps) % 2 == 0
    last = {a["name"]: a for a in apps[-2:]}
    onboard = report["onboard"]["applications"]
    for name in ("channel_a", "channel_b"):
        assert last[name]["config_hash"].hex() == onboard[name]["config"]["hash"]
    assert last["channel_a"]["traps"] == 0 and last["channel_b"]["traps"] > 3600
    assert (last["channel_a"]["patches_committed"], last["channel_b"]["patches_committed"]) \
        == (1, 1)
