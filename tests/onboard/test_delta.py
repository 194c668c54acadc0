"""The delta codec (onboard.patching.delta): what the sections mean, both ways."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path

import pytest

from ccl.driver import Compiled, Compiler
from ccl.pack import GROUND_CHOICES
from onboard.mission import MissionProfile
from onboard.patching.delta import (
    LISTS,
    PLAIN_LISTS,
    Alignment,
    Choices,
    apply_sections,
    empty_config,
    encode_sections,
)
from onboard.patching.patch_format import (
    BODIES,
    NO_HASH,
    Claims,
    Flag,
    FormatError,
    Header,
    Reason,
    SectionType,
    build_body,
    build_frame,
    make_chunk,
    parse_frames,
)
from onboard.vm.image import Image

CONFIGS = Path(__file__).resolve().parents[2] / "missions" / "corot" / "configs"
VERSIONS = ("exo_e1", "exo_e1_v6", "exo_e1_v7", "exo_e1_v8", "exo_e1_v9", "exo_e1_v10")


@pytest.fixture(scope="module")
def corot() -> dict[str, Compiled]:
    compiler = Compiler()
    return {name: compiler.compile(CONFIGS / f"{name}.ccl") for name in VERSIONS}


def _replace_all(base: Sequence[Hashable], target: Sequence[Hashable]) -> Alignment:
    """The worst alignment: drop every base entry, send every target entry."""
    return list(range(len(base))), list(range(len(target))), []


#: Choices unlike the ground's: nothing kept, every table sent as one literal chunk.
NAIVE = Choices(
    align=_replace_all,
    table=lambda values, lo, hi: [make_chunk(values, False)] if values else [],
    rows=lambda base, target, lo, hi: [make_chunk(target, False)],
)


def _rebuilt(target: Compiled, base: Image | None, choices: Choices) -> Image:
    """Encode ``base`` -> ``target`` (a full patch without a base), frame it, read it."""
    profile: MissionProfile = target.mission
    vmlets = [v.image for v in target.vmlets]
    origin = base if base is not None else empty_config(profile.name)
    body = b"".join(build_frame(s, p) for s, p in
                    encode_sections(target.image, vmlets, origin, [], choices))
    header = Header(flags=Flag(0) if base is not None else Flag.FULL,
                    mission_id=profile.mission_id, spacecraft_id=profile.spacecraft_id,
                    seq=1, version=target.image.version, base_hash=NO_HASH,
                    target_hash=NO_HASH,
                    claims=Claims(0, 0, profile.code_bytes, profile.data_bytes))
    image, carried = apply_sections(header, parse_frames(body, 0, len(body)), base, profile)
    assert [v.content_hash for v in carried] == [v.content_hash for v in vmlets]
    return image


@pytest.mark.parametrize("choices", [GROUND_CHOICES, NAIVE], ids=["ground", "naive"])
def test_any_choices_rebuild_the_target(corot: dict[str, Compiled], choices: Choices) -> None:
    for name, target in corot.items():
        assert _rebuilt(target, None, choices).content_hash == target.image.content_hash
        for other, base in corot.items():
            if other != name:
                rebuilt = _rebuilt(target, base.image, choices)
                assert rebuilt.content_hash == target.image.content_hash, (name, other)


def test_a_one_parameter_change_is_one_params_section(corot: dict[str, Compiled]) -> None:
    base, target = corot["exo_e1"].image, corot["exo_e1_v6"].image
    changed = [i for i, (a, b) in enumerate(zip(base.globals, target.globals, strict=True))
               if a.value != b.value]
    assert len(changed) == 1
    held = [v.image for v in corot["exo_e1"].vmlets]
    sections = encode_sections(target, held, base, held, GROUND_CHOICES)
    assert [s for s, _ in sections] == [SectionType.PARAMS]


def test_the_records_carry_the_image_formats_fields() -> None:
    """The section records of whole entries are the image's entries' fields, after the
    index: one field list for both formats."""
    for lst in PLAIN_LISTS:
        body = BODIES[lst.section]
        records = body.subcons[[sc.name for sc in body.subcons].index(lst.group)].subcon \
            if lst.group else body
        names = [sc.name for sc in records.subcon.subcons]
        assert names == ["index", *lst.fields], lst.kind
    assert [lst.kind for lst in LISTS] == sorted(lst.kind for lst in LISTS)


def test_a_new_entry_beyond_the_target_is_a_bad_delta(corot: dict[str, Compiled]) -> None:
    exo = corot["exo_e1"]
    profile = exo.mission
    frame = build_frame(SectionType.TASKS, build_body(SectionType.TASKS, [
        {"index": len(exo.image.tasks) + 1, "name": "t", "period_ms": 1000, "function": 0}]))
    header = Header(flags=Flag(0), mission_id=profile.mission_id,
                    spacecraft_id=profile.spacecraft_id, seq=1, version=9,
                    base_hash=NO_HASH, target_hash=NO_HASH,
                    claims=Claims(0, 0, profile.code_bytes, profile.data_bytes))
    with pytest.raises(FormatError) as caught:
        apply_sections(header, parse_frames(frame, 0, len(frame)), exo.image, profile)
    assert caught.value.reason is Reason.BAD_DELTA
    assert caught.value.field == "tasks.index" and caught.value.offset == 0
