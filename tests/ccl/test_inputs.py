"""Inputs the case corpus cannot hold (its files start with a header comment): empty files,
bytes that are not UTF-8, configurations that use each other. Each is refused with a
positioned diagnostic, never an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccl.diagnostics import CclError, Diagnostic
from ccl.driver import Compiler
from ccl.sema import MAX_ERRORS


def _first(path: Path) -> Diagnostic:
    with pytest.raises(CclError) as info:
        Compiler().check(path)
    return info.value.diagnostics[0]


@pytest.mark.parametrize("content", [b"", b"  \n\t\n", b"\xef\xbb\xbf", b"\n\n\n"],
                         ids=["empty", "blank", "bom-only", "newlines"])
def test_a_file_without_declarations_lacks_its_mission(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "nothing.ccl"
    path.write_bytes(content)
    first = _first(path)
    assert first.code == "E-NO-MISSION"
    assert first.span is not None and (first.span.line, first.span.col) == (1, 1)


def test_bytes_that_are_not_utf8_are_refused_where_they_are(tmp_path: Path) -> None:
    path = tmp_path / "latin1.ccl"
    path.write_bytes(b"mission corot;\nconfig c version 1;\n// caf\xe9\n")
    first = _first(path)
    assert first.code == "E-READ"
    assert "not UTF-8" in first.message and "0xe9" in first.message
    assert first.span is not None and (first.span.line, first.span.col) == (3, 7)


def test_configurations_that_use_each_other_are_not_vmlets(tmp_path: Path) -> None:
    (tmp_path / "a.ccl").write_text("mission corot;\nconfig a version 1;\nuses b;\n")
    (tmp_path / "b.ccl").write_text("mission corot;\nconfig b version 1;\nuses a;\n")
    first = _first(tmp_path / "a.ccl")
    assert first.code == "E-UNKNOWN-VMLET"
    assert "configuration being compiled" in first.message
    assert first.span is not None and Path(first.span.file).name == "b.ccl"


def test_the_checker_stops_after_max_errors(tmp_path: Path) -> None:
    # Thousands of errors would take minutes (each unknown name looks for a close one).
    path = tmp_path / "errors.ccl"
    path.write_text("mission corot;\nconfig errors version 1;\n"
                    + "".join(f"var v{i} : int;\n" for i in range(500))
                    + "task t every 1 s {\n" + "".join(f"x{i} = 1;\n" for i in range(500)) + "}\n")
    with pytest.raises(CclError) as info:
        Compiler().check(path)
    diags = info.value.diagnostics
    assert len(diags) == MAX_ERRORS
    assert all(d.code == "E-UNKNOWN-NAME" for d in diags)
    assert diags[-1].notes == (f"stopped after {MAX_ERRORS} errors",)
