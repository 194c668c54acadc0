"""The application clause (`application NAME share N %;`): checked by the front end, kept
out of the image (a configuration is byte-identical with or without it), and proven by
`ccl verify` within its own part, and the set of files within the share."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import compile_text

from ccl.compiled import Compiled
from ccl.diagnostics import CclError
from ccl.verify.applications import Member, check_set
from ccl.verify.program import verify_program
from onboard.vm.board import part_cycles

APP = """\
mission corot;
config channel_b version 1;
{clause}
var acc : int[0..1000000] = 0;
task work every 100 ms {{
    for i in 0 .. {n} {{ acc = (acc + i) % 1000000; }}
}}
"""


def app(tmp_path: Path, clause: str = "application channel_b share 3 %;", n: int = 100,
        name: str = "app") -> Compiled:
    return compile_text(tmp_path, APP.format(clause=clause, n=n), name)


def test_the_clause_is_read_and_leaves_the_image_byte_identical(tmp_path: Path) -> None:
    with_clause = app(tmp_path)
    without = app(tmp_path, clause="", name="plain")
    a = with_clause.program.application
    assert a is not None
    assert (a.name, a.share_percent, a.span.line) == ("channel_b", 3, 3)
    assert without.program.application is None
    assert with_clause.image.encode() == without.image.encode()


@pytest.mark.parametrize(("clause", "code", "line", "col"), [
    ("application channel_b share 11 %;", "E-SHARE", 3, 29),
    ("application channel_b share 0 %;", "E-SHARE", 3, 29),
    ("application channel_b share 3 %;\napplication other share 2 %;", "E-DUPLICATE", 4, 1),
])
def test_a_bad_clause_is_refused_where_it_is(tmp_path: Path, clause: str, code: str,
                                            line: int, col: int) -> None:
    with pytest.raises(CclError) as refused:
        app(tmp_path, clause=clause)
    d = refused.value.diagnostics[0]
    assert d.code == code and d.span is not None
    assert (d.span.line, d.span.col) == (line, col)


def test_a_vmlet_declares_no_application(tmp_path: Path) -> None:
    with pytest.raises(CclError) as refused:
        compile_text(tmp_path, "mission corot;\nvmlet v version 1;\n"
                               "application v share 2 %;\n", "v")
    assert refused.value.diagnostics[0].code == "E-PLACEMENT"


def test_an_application_is_proven_within_its_own_part(tmp_path: Path) -> None:
    # ~22,000 cycles a run: inside a 3 % part (60,000 per frame), not inside 1 % (20,000)
    fits = app(tmp_path, n=300, name="fits")
    tight = app(tmp_path, clause="application channel_b share 1 %;", n=300, name="tight")
    alone = app(tmp_path, clause="", n=300, name="alone")
    proven = verify_program(fits)
    assert proven.status == "proven"
    assert proven.budgets.frame_budget == part_cycles(fits.mission, 3)
    refuted = verify_program(tight)
    assert refuted.status == "refuted"
    share = [o for o in refuted.refuted if o.kind.value == "cpu-share"]
    assert share and "channel_b's 1 % part" in share[0].message
    assert verify_program(alone).status == "proven"


def test_the_set_is_proven_within_the_share(tmp_path: Path) -> None:
    c = app(tmp_path)
    profile = c.mission
    assert c.program.application is not None
    span = c.program.application.span
    fits = check_set([Member("a", 6, span, "corot"), Member("b", 3, span, "corot")], profile)
    assert fits.ok and fits.parts_cycles == 180_000
    over = check_set([Member("a", 6, span, "corot"), Member("b", 4, span, "corot")], profile)
    assert not over.ok and over.where is not None and over.where.name == "b"
    assert "210,000 of the 10 % share" in over.message
    twice = check_set([Member("a", 3, span, "corot"), Member("a", 3, span, "corot")], profile)
    assert not twice.ok and "two files" in twice.message
