"""A three-layer VMlet stack and the same instructions in one VMlet, written as files: for
the tests of layering in the front end, the verifier and on board, and the benchmark."""

from __future__ import annotations

from pathlib import Path


def write(directory: Path, name: str, text: str) -> Path:
    """``text`` as ``directory/name.ccl`` (the directory is made if need be)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.ccl"
    path.write_text(text, encoding="utf-8")
    return path


# A three-layer stack: `low` adds instructions and exposes host services, `mid` builds on
# it and hides one, `top` builds on `mid`. The same instructions in one VMlet: `flat`.
LOW = """\
vmlet low version {version};
mission corot;
instr clamp(v: int[0..16777215], hi: int[0..100000]) -> int[0..100000] {{ return min(v, hi); }}
instr half(v: int[0..100000]) -> int[0..50000] {{ return v / 2; }}
expose flux, noise;
"""
MID = """\
vmlet mid version 1;
mission corot;
uses low;
instr level(s: int[0..5999]) -> int[0..100000] { return clamp(flux(s) / 100, 90000); }
hide noise;
"""
TOP = """\
vmlet top version 1;
mission corot;
uses mid;
instr score(s: int[0..5999]) -> int[0..150000] { return level(s) + half(level(s)); }
"""
FLAT = """\
vmlet flat version 1;
mission corot;
instr clamp(v: int[0..16777215], hi: int[0..100000]) -> int[0..100000] { return min(v, hi); }
instr half(v: int[0..100000]) -> int[0..50000] { return v / 2; }
instr level(s: int[0..5999]) -> int[0..100000] { return clamp(flux(s) / 100, 90000); }
instr score(s: int[0..5999]) -> int[0..150000] { return level(s) + half(level(s)); }
expose flux;
"""
APP = """\
mission corot;
config app version 1;
uses {vmlet};
var out : int[0..150000];
var raw : int[0..100000];
task t every 1 s {{
    for s in 0 .. 8 {{
        out = score(s);
        raw = clamp(flux(s), 100000);   // an instruction of the lowest layer, seen from the top
    }}
}}
"""


def stack(directory: Path, low_version: int = 1) -> Path:
    """The three layers and a configuration on the top one; the configuration's path."""
    write(directory, "low", LOW.format(version=low_version))
    write(directory, "mid", MID)
    write(directory, "top", TOP)
    return write(directory, "app", APP.format(vmlet="top"))




def flat(directory: Path) -> Path:
    """The same instructions in one VMlet and the same configuration on it; its path."""
    write(directory, "flat", FLAT)
    return write(directory, "app", APP.format(vmlet="flat"))
