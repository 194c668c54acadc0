"""``ccl lsp``, the language server, driven as an editor drives it: the real command as a
process, pygls's language client on its stdin and stdout (``lsp_session``), the CoRoT
configurations. Diagnostics are compared with what ``ccl check`` and ``ccl verify`` say of
the same text; hover, definition and completion with the IR and the mission profile."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lsp_session import ROOT, Session
from lsprotocol import types as lsp

from ccl.verify import Kind
from onboard.mission import find_mission

CONFIGS = ROOT / "missions" / "corot" / "configs"
EXO = CONFIGS / "exo_e1.ccl"
PHOTOMETRY = ROOT / "missions" / "corot" / "vmlets" / "photometry.ccl"
CCL = str(Path(sys.executable).with_name("ccl"))


def with_server(body: Callable[[Session], Awaitable[None]]) -> None:
    """Run ``body`` against a fresh ``ccl lsp`` process, and stop it however body ends."""
    async def run() -> None:
        session = Session()
        await session.start()
        try:
            await body(session)
        finally:
            await session.stop()
    asyncio.run(run())


def ccl_json(*args: str, cwd: Path = ROOT) -> dict[str, Any]:
    proc = subprocess.run([CCL, *args, "--json"], capture_output=True, text=True, cwd=cwd,
                          env=os.environ, timeout=120)
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def check_diagnostics(*paths: Path) -> list[list[tuple[str, int, int, int, int, str]]]:
    """``ccl check --json``'s diagnostics of each of ``paths``: code, 0-based range, hint."""
    out = ccl_json("check", *map(str, paths))
    return [[(d["code"], d["line"] - 1, d["column"] - 1, d["end_line"] - 1,
              d["end_column"] - 1, d.get("hint", "")) for d in f["diagnostics"]]
            for f in out["files"]]


def shown(diags: list[lsp.Diagnostic]) -> list[tuple[str, int, int, int, int, str]]:
    """What the server published, in the same shape (the hint is the message's last line)."""
    out = []
    for d in diags:
        last = d.message.splitlines()[-1]
        out.append((str(d.code), d.range.start.line, d.range.start.character,
                    d.range.end.line, d.range.end.character,
                    last.removeprefix("hint: ") if last.startswith("hint: ") else ""))
    return out


def children(pid: int) -> list[int]:
    """The processes ``pid`` started that still run (Linux)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def position_of(path: Path, needle: str, nth: int = 0) -> tuple[int, int]:
    """0-based line and character of the ``nth`` occurrence of ``needle`` in ``path``."""
    seen = 0
    for i, line in enumerate(lines_of(path)):
        at = line.find(needle)
        while at >= 0:
            if seen == nth:
                return i, at
            seen += 1
            at = line.find(needle, at + 1)
    raise AssertionError(f"{needle!r} not in {path}")


# --------------------------------------------------------------------------- diagnostics


def test_every_corot_configuration_opens_with_the_diagnostics_of_ccl_check() -> None:
    configs = sorted(CONFIGS.glob("*.ccl"))
    expected = dict(zip(configs, check_diagnostics(*configs), strict=True))
    assert any(expected.values()) and not all(expected.values())  # some good, some bad

    async def body(s: Session) -> None:
        for path in configs:
            uri = s.open(path)
            got = await s.diagnostics(uri)
            assert shown(got.diagnostics) == expected[path], path
    with_server(body)


def test_typing_shows_errors_where_ccl_check_does_and_clears_them(tmp_path: Path) -> None:
    text = EXO.read_text()
    line, col = position_of(EXO, "coadd      : int")
    # what `ccl check` says of the same edits, written next to the configuration's VMlets
    renamed = tmp_path / "renamed.ccl"
    renamed.write_text(text.replace("param coadd ", "param coad  ", 1))
    (tmp_path / "vmlets").mkdir()
    (tmp_path / "vmlets" / "photometry.ccl").write_text(PHOTOMETRY.read_text())
    semi_line = position_of(EXO, "const CCD_W = 2048;")[0]
    broken = tmp_path / "broken.ccl"
    broken.write_text(text.replace("const CCD_W = 2048;", "const CCD_W = 2048 ", 1))
    expect_renamed, expect_broken = check_diagnostics(renamed, broken)
    assert expect_renamed[0][0] == "E-UNKNOWN-NAME" and "coad" in expect_renamed[0][5]
    assert expect_broken and expect_broken[0][1] > semi_line  # reported where it stops

    async def body(s: Session) -> None:
        uri = s.open(EXO)
        assert (await s.diagnostics(uri)).diagnostics == []
        mark = len(s.published)
        v = s.replace(uri, line, col + len("coad"), col + len("coadd"), " ")  # coadd -> coad
        got = await s.diagnostics(uri, mark, lambda p: p.version == v)
        assert shown(got.diagnostics) == expect_renamed
        assert got.diagnostics[0].source == "ccl"
        # while the buffer is wrong, hover answers from the last version that checked
        h = await s.hover(uri, *position_of(EXO, "clamp(rejected"))
        assert h is not None and "fn clamp(v: int" in str(h.contents)
        mark = len(s.published)
        v = s.replace(uri, line, col + len("coad"), col + len("coad "), "d")  # back again
        assert (await s.diagnostics(uri, mark, lambda p: p.version == v)).diagnostics == []
        mark = len(s.published)
        at = len("const CCD_W = 2048")
        v = s.replace(uri, semi_line, at, at + 1, " ")  # a syntax error: the `;` is gone
        got = await s.diagnostics(uri, mark, lambda p: p.version == v)
        assert shown(got.diagnostics) == expect_broken
    with_server(body)


def test_an_edited_vmlet_is_seen_by_the_configuration_using_it() -> None:
    async def body(s: Session) -> None:
        config = s.open(EXO)
        vmlet = s.open(PHOTOMETRY)
        for uri in (config, vmlet):
            assert (await s.diagnostics(uri)).diagnostics == []
        line, col = position_of(PHOTOMETRY, "med3")
        mark = len(s.published)
        s.replace(vmlet, line, col, col + len("med3"), "median3")  # unsaved: the buffer
        got = await s.diagnostics(config, mark, lambda p: bool(p.diagnostics))
        assert got.diagnostics[0].code == "E-UNKNOWN-NAME"
        assert "med3" in got.diagnostics[0].message
        assert got.diagnostics[0].range.start.line == position_of(EXO, "med3(")[0]
    with_server(body)


WIDE = """\
mission corot;
config wide version 1;
param x : int[0..10] = 5;
/* \U0001F6F0 */ param y : int[0..10] = 11;
var z : int[0..100];
task t every 1 s { /* \U0001F6F0\U0001F6F0 */ z = x; }
"""


def test_positions_are_in_utf16_units_after_a_character_outside_the_bmp(tmp_path: Path
                                                                        ) -> None:
    path = tmp_path / "wide.ccl"
    path.write_text(WIDE, encoding="utf-8")
    lines = WIDE.splitlines()
    eleven = lines[3].index("11")  # in characters; the satellite is 2 UTF-16 units
    use = lines[5].rindex("x")

    async def body(s: Session) -> None:
        uri = s.open(path)
        got = (await s.diagnostics(uri)).diagnostics
        assert [d.code for d in got] == ["E-OUT-OF-RANGE"]
        assert (got[0].range.start.line, got[0].range.start.character) == (3, eleven + 1)
        mark = len(s.published)
        v = s.replace(uri, 3, eleven + 1, eleven + 3, "1")  # 11 -> 1, in UTF-16 units
        assert (await s.diagnostics(uri, mark, lambda p: p.version == v)).diagnostics == []
        h = await s.hover(uri, 5, use + 2)
        assert h is not None and "param x : int[0..10] = 5" in str(h.contents)
        assert h.range is not None and h.range.start.character == use + 2
    with_server(body)


# --------------------------------------------------------------------------- hover


def test_hover_shows_types_ranges_signatures_and_natives_with_cost_and_vmlet() -> None:
    corot = find_mission("corot")
    flux = corot.natives["flux"]

    async def body(s: Session) -> None:
        uri = s.open(EXO)
        await s.diagnostics(uri)

        async def hover(needle: str, nth: int = 0) -> str:
            line, col = position_of(EXO, needle, nth)
            h = await s.hover(uri, line, col + 1)
            assert h is not None and isinstance(h.contents, lsp.MarkupContent), needle
            return h.contents.value

        assert "param coadd : int[1..8] = 8" in await hover("coadd", 1)
        assert "param n_stars : int[0..6000] = 5800" in await hover("n_stars", 1)
        assert "var last1[6000] : int[0..16777215]" in await hover("last1[s]")
        assert "table star_mask[6000] : int[0..255]" in await hover("star_mask")
        assert "const MAX_STARS = 6000" in await hover("MAX_STARS", 1)
        assert "fn clamp(v: int, lo: int, hi: int) -> int" in await hover("clamp(rejected")
        assert "loop counter s : int[0..5999]" in await hover("s in 0")
        med3 = await hover("med3(")
        assert "instr photometry.med3(a: int, b: int, c: int) -> int" in med3
        assert "VMlet `photometry`" in med3
        text = await hover("flux(s)")
        lo, hi = flux.result or (0, 0)
        assert f"native flux(star: int[{flux.args[0].lo}..{flux.args[0].hi}]) -> " \
               f"int[{lo}..{hi}]" in text
        assert flux.doc in text
        assert f"cost: {flux.cost.evaluate({'star': 0})} cycles" in text
        assert "exposed by VMlet `photometry`" in text
        line, _ = position_of(EXO, "// Cosmic-ray")
        assert await s.hover(uri, line, 5) is None  # a comment names nothing
    with_server(body)


# --------------------------------------------------------------------------- definition


def test_definition_goes_to_declarations_in_the_file_the_vmlet_and_the_mission() -> None:
    async def body(s: Session) -> None:
        uri = s.open(EXO)
        await s.diagnostics(uri)

        async def target(needle: str, nth: int = 0) -> tuple[str, int, int]:
            line, col = position_of(EXO, needle, nth)
            loc = await s.definition(uri, line, col + 1)
            assert isinstance(loc, lsp.Location), needle
            return loc.uri, loc.range.start.line, loc.range.start.character

        here = uri
        assert await target("clamp(rejected") == (here, *position_of(EXO, "clamp(v"))
        assert await target("coadd", 1) == (here, *position_of(EXO, "coadd"))
        assert await target("f - m") == (here, *position_of(EXO, "f = flux"))
        vm_uri, vm_line, vm_col = await target("med3(")
        assert vm_uri.endswith("/missions/corot/vmlets/photometry.ccl")
        assert (vm_line, vm_col) == position_of(PHOTOMETRY, "med3")
        toml_uri, toml_line, _ = await target("noise(s)")
        toml = ROOT / "missions" / "corot" / "mission.toml"
        assert toml_uri.endswith("/missions/corot/mission.toml")
        assert lines_of(toml)[toml_line].strip() == 'name = "noise"'
    with_server(body)


# --------------------------------------------------------------------------- completion


def test_completion_offers_the_names_in_scope_and_no_hidden_native() -> None:
    corot = find_mission("corot")
    exposed = {"flux", "noise", "flag", "window_sum"}  # photometry.ccl's `expose`
    assert exposed <= set(corot.natives) and "heater_set" in corot.natives

    async def body(s: Session) -> None:
        uri = s.open(EXO)
        await s.diagnostics(uri)
        line, _ = position_of(EXO, "flag(s, 1)")
        items = (await s.completion(uri, line, 12)).items
        labels = {i.label for i in items}
        assert {"s", "f", "m", "clamp", "med3", "coadd", "last1", "MAX_STARS", "min",
                "param", "for"} <= labels
        assert exposed <= labels and "heater_set" not in labels
        kinds = {i.label: i.kind for i in items}
        assert kinds["clamp"] == lsp.CompletionItemKind.Function
        assert kinds["for"] == lsp.CompletionItemKind.Keyword
        line, _ = position_of(EXO, "if v < lo")
        in_clamp = {i.label for i in (await s.completion(uri, line, 4)).items}
        assert {"v", "lo", "hi"} <= in_clamp and not {"s", "f", "m"} & in_clamp
    with_server(body)


# --------------------------------------------------------------------------- verify on save


def test_save_shows_the_verifiers_refutations_with_their_counterexamples() -> None:
    paths = [CONFIGS / f"{name}.ccl" for name in ("bad_rule", "bad_index", "bad_budget")]
    report = ccl_json("verify", *map(str, paths))
    expected = {}
    for path, result in zip(paths, report["files"], strict=True):
        assert result["status"] == "refuted", path
        expected[path] = result["refuted"][0]

    async def body(s: Session) -> None:
        for path in paths:
            uri = s.open(path)
            assert (await s.diagnostics(uri)).diagnostics == []  # the front end accepts it
            mark = len(s.published)
            s.save(uri)
            got = await s.diagnostics(uri, mark, lambda p: any(
                d.source == "ccl verify" for d in p.diagnostics))
            d = next(d for d in got.diagnostics if d.source == "ccl verify")
            want = expected[path]
            assert d.code == Kind(want["kind"]).code, path
            assert (d.range.start.line, d.range.start.character) == \
                (want["line"] - 1, want["column"] - 1), path
            assert d.message.startswith(f"refuted: {want['message']}")
            assert "note: counterexample: " + ", ".join(
                f"{k} = {v}" for k, v in want["counterexample"].items()) in d.message
            assert d.severity == lsp.DiagnosticSeverity.Error
    with_server(body)


def test_save_of_a_proven_configuration_reuses_the_kept_proof_and_cancels_stale_runs() -> None:
    async def body(s: Session) -> None:
        uri = s.open(EXO)
        await s.diagnostics(uri)
        s.save(uri)
        s.save(uri)  # a second save while the first is proving: the first is stale
        assert "cancelled" in await s.log("stale run cancelled")
        assert await s.log("exo_e1.ccl: proven")
        assert children(s.client._server.pid) == []  # the stale run's prover has ended
        s.logs.clear()
        s.save(uri)
        assert await s.log("exo_e1.ccl: proven (kept proof)")
        assert all(d.source != "ccl verify" for p in s.published for d in p.diagnostics)
    with_server(body)


def test_without_pygls_the_command_exits_2_with_a_hint() -> None:
    blocked = "import sys; sys.modules['pygls'] = None; from cli.ccl import main; main(['lsp'])"
    proc = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert "pygls" in proc.stderr and "pip install -e '.[lsp]'" in proc.stderr
    assert "Traceback" not in proc.stderr
