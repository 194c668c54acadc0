"""The language contract (shared/design/ccl-by-example.md) at the check level.

Every program of the contract has a copy in missions/corot; each must behave as the
contract says as far as ``ccl check`` (and code generation) go: the whole configuration and
the VMlet are accepted, the three programs that ``ccl verify`` must reject are still
well-formed (they are rejected later, by the verifier), and ``bad_syntax`` is refused by the
checker at line 3. When the contract document is available, its ```ccl blocks must be
byte-identical to the copies, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ccl import ir
from ccl.diagnostics import CclError
from ccl.driver import Compiler
from onboard.mission import find_mission
from onboard.vm.image import ImageKind, decode_image

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "missions" / "corot" / "configs"
VMLETS = REPO / "missions" / "corot" / "vmlets"
CONTRACT_CANDIDATES = (
    Path("/work/shared/design/ccl-by-example.md"),
    REPO.parent / "shared" / "design" / "ccl-by-example.md",
)

ACCEPTED_BY_CHECK = ["exo_e1", "bad_rule", "bad_index", "bad_budget"]
ALL_PROGRAMS = {"exo_e1": CONFIGS, "photometry": VMLETS, "bad_rule": CONFIGS,
                "bad_index": CONFIGS, "bad_budget": CONFIGS, "bad_syntax": CONFIGS}


def _contract() -> Path | None:
    return next((p for p in CONTRACT_CANDIDATES if p.is_file()), None)


def _copy(name: str) -> Path:
    return ALL_PROGRAMS[name] / f"{name}.ccl"


# --------------------------------------------------------------------------- the copies


def test_every_contract_program_has_a_copy() -> None:
    for name in ALL_PROGRAMS:
        path = _copy(name)
        assert path.is_file(), f"missing copy {path}"
        header = re.search(r"^(config|vmlet) (\w+) version \d+;", path.read_text(), re.M)
        assert header and header.group(2) == name, f"{path} does not declare `{name}`"


def test_contract_blocks_are_identical_to_the_copies() -> None:
    contract = _contract()
    if contract is None:
        # No contract document here (e.g. a source distribution): the copies are the
        # reference; they must at least all be present and distinct programs.
        texts = {name: _copy(name).read_text(encoding="utf-8") for name in ALL_PROGRAMS}
        assert len(set(texts.values())) == len(ALL_PROGRAMS)
        return
    blocks = re.findall(r"^```ccl\n(.*?)^```", contract.read_text(encoding="utf-8"),
                        re.S | re.M)
    assert len(blocks) == len(ALL_PROGRAMS), f"{contract} has {len(blocks)} ccl blocks"
    seen = set()
    for block in blocks:
        header = re.search(r"^(config|vmlet) (\w+) version \d+;", block, re.M)
        assert header, f"a ccl block of {contract} has no header:\n{block}"
        kind, name = header.groups()
        assert name in ALL_PROGRAMS, f"contract block `{name}` has no copy"
        assert (kind == "vmlet") == (ALL_PROGRAMS[name] is VMLETS)
        copy = _copy(name).read_text(encoding="utf-8")
        assert copy == block, f"{_copy(name)} has drifted from its block in {contract}"
        seen.add(name)
    assert seen == set(ALL_PROGRAMS)


# --------------------------------------------------------------------------- check level


@pytest.mark.parametrize("name", ACCEPTED_BY_CHECK)
def test_configuration_checks_and_compiles(name: str) -> None:
    compiler = Compiler()
    program = compiler.check(_copy(name))
    assert program.kind is ir.ProgramKind.CONFIG and program.name == name
    compiled = Compiler().compile(_copy(name))
    assert compiled.image.kind is ImageKind.CONFIG
    assert decode_image(compiled.image.encode()) == compiled.image


def test_photometry_vmlet_checks_and_compiles() -> None:
    compiled = Compiler().compile(_copy("photometry"))
    program = compiled.program
    assert program.kind is ir.ProgramKind.VMLET
    assert (program.name, program.version, program.mission) == ("photometry", 1, "corot")
    assert [p.name for p in program.instrs] == ["med3"]
    assert program.exposes == ("flux", "noise", "flag", "window_sum")
    assert program.hides == ("heater_set",)
    assert program.on_load is not None
    image = compiled.image
    assert image.kind is ImageKind.VMLET
    assert [d.name for d in image.instrs] == ["med3"]
    assert image.on_load is not None
    assert "flag" in image.natives  # `hide flag;` in on load refers to it


def test_exo_e1_is_what_the_contract_describes() -> None:
    compiled = Compiler().compile(_copy("exo_e1"))
    program = compiled.program
    assert (program.name, program.version, program.mission) == ("exo_e1", 5, "corot")
    assert [u.name for u in program.uses] == ["photometry"]
    params = {g.name: (g.type.lo, g.type.hi, g.value) for g in program.globals
              if g.kind is ir.GlobalKind.PARAM}
    assert params == {"exposure_s": (1, 64, 32), "coadd": (1, 8, 8),
                      "cr_k10": (20, 100, 50), "n_stars": (0, 6000, 5800)}
    arrays = {a.name: (a.kind, a.length, a.type.lo, a.type.hi) for a in program.arrays}
    assert arrays == {
        "star_x": (ir.ArrayKind.TABLE, 6000, 0, 2032),
        "star_y": (ir.ArrayKind.TABLE, 6000, 0, 4080),
        "star_mask": (ir.ArrayKind.TABLE, 6000, 0, 255),
        "last1": (ir.ArrayKind.VAR, 6000, 0, 16777215),
        "last2": (ir.ArrayKind.VAR, 6000, 0, 16777215),
    }
    assert [(t.name, t.period_ms) for t in program.tasks] == [("cosmic_filter", 32000)]
    assert [r.text for r in program.rules] == ["exposure_s * coadd <= 512"]
    assert [f.name for f in program.functions] == ["clamp"]
    assert program.on_apply is not None
    image = compiled.image
    assert [(u.name, u.version) for u in image.uses] == [("photometry", 1)]
    assert image.uses[0].hash == compiled.vmlets[0].image.content_hash
    assert set(image.natives) == {"flux", "noise", "flag"}
    assert [(e.vmlet, e.instr) for e in image.ext] == [("photometry", "med3")]


def test_bad_rule_holds_for_its_current_values() -> None:
    # `ccl check` evaluates rules for the values given (32 * 16 = 512 holds); that the rule
    # fails for the reachable 64 * 16 is for `ccl verify` to find.
    program = Compiler().check(_copy("bad_rule"))
    assert [r.text for r in program.rules] == ["exposure_s * coadd <= 512"]
    assert {g.name: g.value for g in program.globals} == {"exposure_s": 32, "coadd": 16}


def test_bad_index_and_bad_budget_are_well_formed() -> None:
    index = Compiler().check(_copy("bad_index"))
    assert [(a.name, a.length) for a in index.arrays] == [("t", 50)]
    loop = index.tasks[0].proc.body[0]
    assert isinstance(loop, ir.For) and loop.max_trips == 100  # i can reach 99 >= 50
    budget = Compiler().check(_copy("bad_budget"))
    loop = budget.tasks[0].proc.body[0]
    assert isinstance(loop, ir.For) and loop.max_trips == 6000
    assert budget.tasks[0].period_ms == 1000


def test_bad_syntax_is_refused_at_line_3() -> None:
    with pytest.raises(CclError) as info:
        Compiler().check(_copy("bad_syntax"))
    first = info.value.diagnostics[0]
    assert first.code == "E-OUT-OF-RANGE"
    assert first.span is not None
    assert Path(first.span.file).name == "bad_syntax.ccl"
    assert (first.span.line, first.span.col) == (3, 24)  # the `11`
    assert "11" in first.message and "int[0..10]" in first.message
    assert first.hint


# --------------------------------------------------------------------------- profile numbers


def test_corot_profile_has_the_contract_numbers() -> None:
    m = find_mission("corot")
    assert m.clock_hz == 20_000_000 and m.frame_ms == 100 and m.share_percent == 10
    assert m.share_cycles_per_frame == 200_000
    assert m.code_bytes == 64 * 1024 and m.data_bytes == 512 * 1024
    natives = m.natives

    def sig(name: str) -> tuple[object, ...]:
        n = natives[name]
        return tuple((a.name, a.lo, a.hi) for a in n.args), n.result

    assert sig("flux") == ((("star", 0, 5999),), (0, 16_777_215))
    assert sig("noise") == ((("star", 0, 5999),), (0, 65_535))
    assert sig("flag") == ((("star", 0, 5999), ("code", 0, 255)), None)
    assert sig("window_sum") == ((("star", 0, 5999), ("w", 1, 64), ("h", 1, 64)),
                                 (0, 268_431_360))
    assert sig("heater_set") == ((("zone", 0, 7), ("mk", 250_000, 320_000)), None)
    assert natives["flux"].cost.evaluate({"star": 0}) == 40
    assert natives["noise"].cost.evaluate({"star": 0}) == 40
    assert natives["flag"].cost.evaluate({"star": 0, "code": 0}) == 25
    assert natives["window_sum"].cost.evaluate({"star": 0, "w": 40, "h": 40}) == 4 * 40 * 40 + 30
    assert natives["heater_set"].worst_cost() == 100
    assert natives["heater_set"].capability == "platform"
    assert {natives[n].capability for n in ("flux", "noise", "flag", "window_sum")} == \
        {"photometry"}
