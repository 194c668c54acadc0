"""Benchmark: how small patches are, against the information they carry.

Figures (one JSON line each, all measured in one run):

* ``one_param_bytes``: the delta that changes one parameter of ``exo_e1`` (``cr_k10`` 50 ->
  60, version 4 -> 5), everything included: header, section, CRCs, tag. Target <= 64.
* ``table_delta_vs_bound``: a star-field configuration (``star_x[6000] : int[0..2032]``,
  ``star_y[6000] : int[0..4080]``, from a CSV file) in which 200 star windows move (a block
  of 200 consecutive windows re-pointed, both coordinates): the bytes of the patch's ROWS
  section (its frame included) divided by the bits the changed values' ranges need
  (200 x (11 + 12) = 4,600 bits = 575 bytes). Target <= 1.10. For context, the same for 200
  windows at random places, where the positions themselves are information the bound does
  not count (``scattered_*`` keys).
* ``full_vs_xz``: the full ``exo_e1`` patch (the satellite holds the ``photometry`` VMlet)
  vs ``xz -9`` of the CCL source (Python's lzma, preset 9 | PRESET_EXTREME). Target <= 0.5.
  For context, the self-contained full patch (VMlet included) vs xz of both sources.
* ``image_vs_full_patch``: the canonical image's bytes vs the full patch's.

Usage: ``python benchmarks/patch_size.py [--seed N]``
"""

from __future__ import annotations

import argparse
import json
import lzma
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ccl.driver import Compiled, Compiler  # noqa: E402
from ccl.pack import pack  # noqa: E402
from ccl.verify.verdict import run_verifier  # noqa: E402
from onboard.patching.patch_format import (  # noqa: E402
    TAG_BYTES,
    SectionType,
    check_order,
    development_key,
    parse_frames,
    parse_header,
    width,
)

EXO = ROOT / "missions" / "corot" / "configs" / "exo_e1.ccl"
PHOTOMETRY = ROOT / "missions" / "corot" / "vmlets" / "photometry.ccl"
STARS, MOVED = 6000, 200
X_RANGE, Y_RANGE = (0, 2032), (0, 4080)

STAR_FIELD = """\
mission corot;
config star_field version {version};
uses photometry;
param n_stars : int[0..6000] = 6000;
table star_x[6000] : int[0..2032] from "{csv}" column x;
table star_y[6000] : int[0..4080] from "{csv}" column y;
var total : int[0..2000000000];
task sum_windows every 32 s {{
    total = 0;
    for s in 0 .. n_stars {{
        total = min(total + window_sum(s, 8, 8) / 64, 2000000000);
    }}
}}
"""


def emit(metric: str, value: float, unit: str, **context: Any) -> None:
    print(json.dumps({"benchmark": "patch_size", "metric": metric, "value": value,
                      "unit": unit, **context}))


def xz(data: bytes) -> int:
    return len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def compile_text(directory: Path, name: str, text: str) -> Compiled:
    path = directory / f"{name}.ccl"
    path.write_text(text)
    return Compiler().compile(path)


def section_bytes(data: bytes, section: SectionType) -> int:
    parsed = parse_header(data)
    frames = parse_frames(data, parsed.size, len(data) - TAG_BYTES)
    return sum(f.size for f, (t, _) in zip(frames, check_order(frames), strict=True)
               if t is section)


def star_field(directory: Path, rng: random.Random, name: str, moved: list[int],
               version: int, rows: list[tuple[int, int]]) -> Compiled:
    rows = list(rows)
    for i in moved:
        rows[i] = (rng.randint(*X_RANGE), rng.randint(*Y_RANGE))
    csv = directory / f"{name}.csv"
    csv.write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in rows))
    return compile_text(directory, name, STAR_FIELD.format(version=version, csv=csv.name))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=2006)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    compiler = Compiler()
    exo = compiler.compile(EXO)
    profile = exo.mission
    key = development_key(profile.name)
    vmlets = [v.image for v in exo.vmlets]
    cycles = run_verifier(exo).cycles_per_frame

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        # --- one parameter
        text = EXO.read_text().replace("version 4", "version 5").replace(
            "param cr_k10     : int[20..100]        = 50;",
            "param cr_k10     : int[20..100]        = 60;")
        changed = compile_text(d, "exo_e1", text)
        assert changed.image.globals[2].value == 60
        one = pack(changed.image, vmlets, profile, key, seq=2, base=exo.image,
                   cycles_per_frame=cycles)
        emit("one_param_bytes", len(one.data), "bytes", target=64, kind="delta",
             change="cr_k10 50 -> 60, version 4 -> 5",
             params_section_bytes=section_bytes(one.data, SectionType.PARAMS),
             header_bytes=parse_header(one.data).size, tag_bytes=TAG_BYTES)

        # --- 200 star windows
        base_rows = [(rng.randint(*X_RANGE), rng.randint(*Y_RANGE)) for _ in range(STARS)]
        base = star_field(d, rng, "field_v1", [], 1, base_rows)
        bound_bits = MOVED * (width(*X_RANGE) + width(*Y_RANGE))
        figures = {}
        for layout, moved in (("block", list(range(1000, 1000 + MOVED))),
                              ("scattered", sorted(rng.sample(range(STARS), MOVED)))):
            new = star_field(d, rng, f"field_{layout}", moved, 2, base_rows)
            patch = pack(new.image, [v.image for v in new.vmlets], profile, key, seq=2,
                         base=base.image)
            rows = section_bytes(patch.data, SectionType.ROWS)
            figures[layout] = (rows, len(patch.data), len(new.image.encode()))
        rows, total, image = figures["block"]
        s_rows, s_total, _ = figures["scattered"]
        # Positions of 200 scattered rows among 6000: log2(C(6000, 200)) bits of information.
        position_bits = sum_log2_binomial(STARS, MOVED)
        emit("table_delta_vs_bound", round(rows * 8 / bound_bits, 3), "ratio", target=1.10,
             rows_section_bytes=rows, bound_bytes=bound_bits / 8, patch_bytes=total,
             image_bytes=image, moved_windows=MOVED, layout="block of 200 consecutive",
             scattered_rows_section_bytes=s_rows, scattered_patch_bytes=s_total,
             scattered_vs_bound=round(s_rows * 8 / bound_bits, 3),
             scattered_vs_bound_with_positions=round(
                 s_rows * 8 / (bound_bits + position_bits), 3))

        # --- full patches
        source = EXO.read_bytes()
        held_base = changed.image  # any configuration that holds photometry
        full = pack(exo.image, vmlets, profile, key, seq=3, base=held_base, full=True,
                    cycles_per_frame=cycles)
        alone = pack(exo.image, vmlets, profile, key, seq=3, cycles_per_frame=cycles)
        both_sources = xz(source + PHOTOMETRY.read_bytes())
        emit("full_vs_xz", round(len(full.data) / xz(source), 3), "ratio", target=0.5,
             full_patch_bytes=len(full.data), xz_source_bytes=xz(source),
             source_bytes=len(source), vmlet="on board",
             self_contained_patch_bytes=len(alone.data),
             xz_both_sources_bytes=both_sources,
             self_contained_vs_xz_both=round(len(alone.data) / both_sources, 3))
        image_bytes = len(exo.image.encode())
        emit("image_vs_full_patch", round(image_bytes / len(full.data), 3), "ratio",
             image_bytes=image_bytes, full_patch_bytes=len(full.data),
             self_contained_patch_bytes=len(alone.data),
             image_and_vmlet_bytes=image_bytes + sum(len(v.encode()) for v in vmlets))


def sum_log2_binomial(n: int, k: int) -> float:
    """log2(C(n, k))."""
    from math import lgamma, log

    return (lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)) / log(2)


if __name__ == "__main__":
    main()
