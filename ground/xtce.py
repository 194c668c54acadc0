"""The XTCE database of the VVM's packets: what a mission control system needs to decode
its telemetry and send it telecommands (OMG XTCE 1.2, the dialect Yamcs reads).

Everything comes from the packet definitions in onboard/ (``onboard.link.packet_definition``):
the TM packets of ``onboard.sim.tm_packets`` (housekeeping, link report, fate reports, dump
packets, one ``Application`` packet per application of a board), the read-back packets of
each configuration given (their names, ranges and table lengths come from the
configuration's image), and the telecommands: the patch segment, once per application slot
(``PatchSegment`` on 0x150 for application 0, ``PatchSegment_appN`` on 0x160 + N for N = 1 ..
15: ``onboard.link.tc_frames.patch_segment``), and the dump request. Nothing about a layout
is written here.

The document is one flat SpaceSystem named after the mission (some decoders, such as
``space_packet_parser``, read only a flat one):

* ``CCSDSPacket`` (abstract): the Space Packet primary header; every packet container
  inherits from it, restricted to its APID;
* a parameter is named ``PACKET_field`` (``Housekeeping_worst_frame_cycles``); a read-back
  value ``CONFIG_vVERSION_name``; a table or state array read back is one binary
  parameter of its elements (signed big-endian integers of the width its range needs:
  ``space_packet_parser`` has no arrays, and a 6,000-element table as 6,000 parameters
  would make the database a hundred times larger);
* a read-back container is selected by APID 0x151, the configuration (the first four bytes
  of its content hash, ``config``) and the value's declaration index;
* a length-prefixed field is two parameters: ``..._length`` and the bytes sized by it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from onboard.link.dump_format import DUMP_REQUEST
from onboard.link.packet_definition import Field, PacketDefinition
from onboard.link.tc_frames import patch_segment
from onboard.mission import MAX_APPLICATION
from onboard.sim.tm_packets import (
    READBACK_APID,
    READBACK_HEAD_FIELDS,
    TELEMETRY,
    declarations,
    readback_definitions,
)
from onboard.vm.image import Image

NAMESPACE = "http://www.omg.org/spec/XTCE/20180204"
ROOT_CONTAINER = "CCSDSPacket"
#: The Space Packet primary header: (parameter, bits).
HEADER = (("CCSDS_VERSION", 3), ("CCSDS_TYPE", 1), ("CCSDS_SEC_HDR", 1), ("CCSDS_APID", 11),
          ("CCSDS_SEQ_FLAGS", 2), ("CCSDS_SEQ_COUNT", 14), ("CCSDS_LENGTH", 16))
#: The longest variable field, in bytes (a Space Packet's data field).
MAX_FIELD_BYTES = 1 << 16

ET.register_namespace("xtce", NAMESPACE)


def _q(tag: str) -> str:
    return f"{{{NAMESPACE}}}{tag}"


def _sub(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, _q(tag), attrs)


@dataclass(frozen=True)
class ReadbackSet:
    """The read-back packets of one configuration: ``prefix`` names its parameters,
    ``config`` is the first four bytes of its content hash as a number."""

    prefix: str
    config: int
    definitions: tuple[PacketDefinition, ...]


@dataclass(frozen=True)
class _Param:
    name: str
    field: Field
    role: str          # value, length (of a blob or text), element
    length_ref: str = ""


def _parameters(prefix: str, f: Field) -> list[_Param]:
    """The XTCE parameters of one field, named with ``prefix``."""
    name = f"{prefix}_{f.name}"
    if f.kind in ("blob", "text"):
        return [_Param(f"{name}_length", f, "length"), _Param(name, f, "value", f"{name}_length")]
    return [_Param(name, f, "value")]


def _integer_type(parent: ET.Element, tag: str, name: str, bits: int, signed: bool,
                  f: Field | None, argument: bool = False) -> None:
    t = _sub(parent, tag, name=name, signed=str(signed).lower(), sizeInBits=str(bits))
    if f is not None and f.doc:
        t.set("shortDescription", f.doc)
    if f is not None and f.unit:
        _sub(_sub(t, "UnitSet"), "Unit").text = f.unit
    _sub(t, "IntegerDataEncoding", sizeInBits=str(bits),
         encoding="twosComplement" if signed else "unsigned")
    if not argument and f is not None and f.lo is not None and f.hi is not None:
        _sub(t, "ValidRange", minInclusive=str(f.lo), maxInclusive=str(f.hi))


def _parameter_type(types: ET.Element, p: _Param) -> None:
    f, name = p.field, f"{p.name}_Type"
    if p.role == "length":
        _integer_type(types, "IntegerParameterType", name, f.bits, False, None)
    elif f.kind in ("uint", "int"):
        _integer_type(types, "IntegerParameterType", name, f.bits, f.kind != "uint", f)
    elif f.kind in ("octets", "values"):
        doc = f.doc if f.kind == "octets" else \
            f"{f.doc}: {f.size} signed {f.bits}-bit big-endian integers"
        t = _sub(types, "BinaryParameterType", name=name, shortDescription=doc)
        _fixed_size(_sub(t, "BinaryDataEncoding"),
                    8 * f.size if f.kind == "octets" else f.size * f.bits)
    elif f.kind == "blob":
        t = _sub(types, "BinaryParameterType", name=name, shortDescription=f.doc)
        _dynamic_size(_sub(t, "BinaryDataEncoding"), "SizeInBits", p.length_ref)
    else:  # text
        t = _sub(types, "StringParameterType", name=name, shortDescription=f.doc)
        enc = _sub(t, "StringDataEncoding", encoding="UTF-8")
        var = _sub(enc, "Variable", maxSizeInBits=str(8 * MAX_FIELD_BYTES))
        _dynamic_size(var, None, p.length_ref)


def _fixed_size(encoding: ET.Element, bits: int) -> None:
    _sub(_sub(encoding, "SizeInBits"), "FixedValue").text = str(bits)


def _dynamic_size(parent: ET.Element, wrapper: str | None, ref: str,
                  argument: bool = False) -> None:
    """A size in bits: 8 times the value of ``ref`` (a length in bytes)."""
    holder = _sub(parent, wrapper) if wrapper else parent
    dyn = _sub(holder, "DynamicValue")
    if argument:
        _sub(dyn, "ArgumentInstanceRef", argumentRef=ref, useCalibratedValue="false")
    else:
        _sub(dyn, "ParameterInstanceRef", parameterRef=ref, useCalibratedValue="false")
    _sub(dyn, "LinearAdjustment", slope="8", intercept="0")


class _Telemetry:
    """Builds the TelemetryMetaData: types, parameters and containers, in step."""

    def __init__(self, system: ET.Element) -> None:
        tm = _sub(system, "TelemetryMetaData")
        self.types = _sub(tm, "ParameterTypeSet")
        self.params = _sub(tm, "ParameterSet")
        self.containers = _sub(tm, "ContainerSet")
        self._header()

    def _parameter(self, name: str, doc: str = "") -> None:
        p = _sub(self.params, "Parameter", name=name, parameterTypeRef=f"{name}_Type")
        if doc:
            p.set("shortDescription", doc)

    def _header(self) -> None:
        root = _sub(self.containers, "SequenceContainer", name=ROOT_CONTAINER, abstract="true",
                    shortDescription="CCSDS Space Packet primary header")
        entries = _sub(root, "EntryList")
        for name, bits in HEADER:
            _integer_type(self.types, "IntegerParameterType", f"{name}_Type", bits, False,
                          None)
            self._parameter(name)
            _sub(entries, "ParameterRefEntry", parameterRef=name)

    def container(self, name: str, doc: str, fields: Sequence[Field], prefix: str,
                  base: str, restrictions: Sequence[tuple[str, int]],
                  abstract: bool = False) -> None:
        """A container of ``fields`` (parameters named with ``prefix``) inheriting ``base``
        where every (parameter, value) of ``restrictions`` holds."""
        c = _sub(self.containers, "SequenceContainer", name=name, shortDescription=doc)
        if abstract:
            c.set("abstract", "true")
        entries = _sub(c, "EntryList")
        for f in fields:
            for p in _parameters(prefix, f):
                _parameter_type(self.types, p)
                self._parameter(p.name, f.doc)
                _sub(entries, "ParameterRefEntry", parameterRef=p.name)
        criteria = _sub(_sub(c, "BaseContainer", containerRef=base), "RestrictionCriteria")
        if len(restrictions) > 1:
            criteria = _sub(criteria, "ComparisonList")
        for ref, value in restrictions:
            _sub(criteria, "Comparison", parameterRef=ref, value=str(value),
                 useCalibratedValue="false")


def _commands(system: ET.Element, commands: Sequence[PacketDefinition]) -> None:
    """CommandMetaData: each telecommand as a Space Packet (type 1, its APID) whose
    sequence count and length the sender fills; a definition's ``tail`` is its payload."""
    cm = _sub(system, "CommandMetaData")
    types = _sub(cm, "ArgumentTypeSet")
    metas = _sub(cm, "MetaCommandSet")
    for d in commands:
        mc = _sub(metas, "MetaCommand", name=d.name, shortDescription=d.doc)
        args = _sub(mc, "ArgumentList")
        container = _sub(mc, "CommandContainer", name=f"{d.name}_Container")
        entries = _sub(container, "EntryList")
        # version 0, type 1 (TC), no secondary header, the APID; unsegmented, count 0;
        # length 0: the sender sets the count and the length.
        first = (1 << 12) | d.apid
        for hex_value in (f"{first:04X}", "C000", "0000"):
            _sub(entries, "FixedValueEntry", binaryValue=hex_value, sizeInBits="16")
        for f in d.fields:
            _command_argument(types, args, entries, d.name, f.name, f)
        if d.tail:
            length = f"{d.name}_{d.tail}_length"
            _integer_type(types, "IntegerArgumentType", f"{length}_Type", 16, False, None,
                          argument=True)
            _sub(args, "Argument", name=length, argumentTypeRef=f"{length}_Type")
            name = f"{d.name}_{d.tail}"
            t = _sub(types, "BinaryArgumentType", name=f"{name}_Type")
            _dynamic_size(_sub(t, "BinaryDataEncoding"), "SizeInBits", length, argument=True)
            _sub(args, "Argument", name=name, argumentTypeRef=f"{name}_Type")
            _sub(entries, "ArgumentRefEntry", argumentRef=name)


def _command_argument(types: ET.Element, args: ET.Element, entries: ET.Element,
                      command: str, field_name: str, f: Field) -> None:
    name = f"{command}_{field_name}"
    if f.kind in ("uint", "int"):
        _integer_type(types, "IntegerArgumentType", f"{name}_Type", f.bits, f.kind == "int",
                      f, argument=True)
    elif f.kind == "text":
        length = f"{name}_length"
        _integer_type(types, "IntegerArgumentType", f"{length}_Type", f.bits, False, None,
                      argument=True)
        _sub(args, "Argument", name=length, argumentTypeRef=f"{length}_Type")
        _sub(entries, "ArgumentRefEntry", argumentRef=length)
        t = _sub(types, "StringArgumentType", name=f"{name}_Type", shortDescription=f.doc)
        enc = _sub(t, "StringDataEncoding", encoding="UTF-8")
        var = _sub(enc, "Variable", maxSizeInBits=str(8 * ((1 << f.bits) - 1)))
        _dynamic_size(var, None, length, argument=True)
    else:
        raise ValueError(f"{command}: a {f.kind} argument is not supported")
    _sub(args, "Argument", name=name, argumentTypeRef=f"{name}_Type")
    _sub(entries, "ArgumentRefEntry", argumentRef=name)


def xtce_document(mission: str, telemetry: Sequence[PacketDefinition],
                  commands: Sequence[PacketDefinition],
                  readbacks: Sequence[ReadbackSet] = (), readback_apid: int = 0x151,
                  readback_head: int = 4) -> bytes:
    """The XTCE document (UTF-8 bytes) of a mission's packets; ``readbacks`` are the
    read-back packets of each configuration, whose first ``readback_head`` fields
    (time, request, config, value) are common to all and select the layout."""
    system = ET.Element(_q("SpaceSystem"), {"name": mission})
    _sub(system, "Header", validationStatus="Working",
         classification="NotClassified").set("version", "1")
    tm = _Telemetry(system)
    for d in telemetry:
        tm.container(d.name, d.doc, d.fields, d.name, ROOT_CONTAINER,
                     [("CCSDS_APID", d.apid)])
    if readbacks:
        head = readbacks[0].definitions[0].fields[:readback_head] \
            if readbacks[0].definitions else ()
        tm.container("Readback", "a value read back", head, "Readback", ROOT_CONTAINER,
                     [("CCSDS_APID", readback_apid)], abstract=True)
        for rs in readbacks:
            for index, d in enumerate(rs.definitions):
                tm.container(f"Readback_{rs.prefix}_{d.fields[-1].name}", d.doc,
                             d.fields[readback_head:], rs.prefix, "Readback",
                             [("Readback_config", rs.config), ("Readback_value", index)])
    _commands(system, commands)
    ET.indent(system)
    return ET.tostring(system, encoding="utf-8", xml_declaration=True) + b"\n"


def readback_prefix(image: Image) -> str:
    """What the read-back parameters of configuration ``image`` are named with."""
    return f"{image.name}_v{image.version}"


def vvm_xtce(mission: str, images: Sequence[Image]) -> bytes:
    """The XTCE document of everything the VVM of ``mission`` sends and receives, with the
    read-back packets of the configurations ``images`` (each once, by content hash)."""
    readbacks, seen = [], set()
    for image in images:
        if image.content_hash in seen:
            continue
        seen.add(image.content_hash)
        readbacks.append(ReadbackSet(readback_prefix(image),
                                     int.from_bytes(image.content_hash[:4], "big"),
                                     readback_definitions(declarations(image))))
    # a patch segment command per application slot: 0 (0x150), then 0x161 .. 0x16F
    commands = (*(patch_segment(n) for n in range(MAX_APPLICATION + 1)), DUMP_REQUEST)
    return xtce_document(mission, TELEMETRY, commands, readbacks,
                         READBACK_APID, READBACK_HEAD_FIELDS)
