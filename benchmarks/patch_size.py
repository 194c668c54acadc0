"""Benchmark: how small patches are, against the best general compressors and against the
information they carry.

Figures (one JSON line each, all measured in one run):

* ``one_param_bytes``: the delta that changes one parameter of ``exo_e1`` (``cr_k10`` 50 ->
  60, version 4 -> 5), everything included: header, section, CRCs, tag. Target <= 64.
* ``table_delta_{contiguous,clustered,scattered}``: a star-field configuration
  (``star_x[6000] : int[0..2032]``, ``star_y[6000] : int[0..4080]``, from a CSV file) in
  which 200 star windows move (both coordinates): one block of 200 consecutive windows,
  10 clusters of 20 consecutive windows, or 200 windows at random places. The figure is the
  bytes of the sections that carry the changed rows (ROWS and SCATTERED, frames included)
  over the information bound of the change, positions included: the bits of the new
  values (200 x (11 + 12) = 4,600) plus the bits that say which rows moved, given the
  layout: log2(C(6000, 200)) for scattered rows, log2(C(6000 - 200 + 10, 10)) for 10
  clusters of 20, log2(6000 - 200 + 1) for one block. Both tables move the same rows, so
  the positions are counted once. Spread (min, median, max) over ``--repeats`` seeds.
  Targets: scattered <= 1.20, contiguous <= 1.05.
* ``full_vs_best_compressor``: the full ``exo_e1`` patch (the satellite holds the
  ``photometry`` VMlet; header, CRCs and tag included) vs the smallest of ``xz -9e``
  (Python's ``lzma``, preset 9 | PRESET_EXTREME, .xz container) and ``zstd -19`` (the
  ``zstandard`` package, the ``bench`` extra; else the ``zstd`` binary; the figure names
  which) of the canonical image the patch carries. Target <= 0.9. For context: the same
  compressors on the comment-stripped CCL source (comments blanked, blank lines and
  trailing spaces dropped) and on the raw source (the README's old reference), and the
  self-contained full patch (VMlet included) vs the same of both images and both sources.
  ``before_bytes``: the same patch packed without the MODEL codec (DEFLATE and LZMA only, as
  before it existed), side by side in the same run.
* ``full_vs_best_compressor_<config>``: the same figure for every CoRoT configuration
  (``missions/corot/configs/exo_e1*.ccl``, the ones that compile and verify), with and
  without the MODEL codec, against ``zstd -19`` and ``xz -9e`` of each image.
* ``model_decode_cycles``: what decoding the full ``exo_e1`` bundle (after its primer, the
  ``photometry`` VMlet on board, which the decoder learns first) costs on board at the
  profile's ``model_per_byte`` (an operation count of the decoder, not a measurement on the
  DPU), and the CPU time of this Python decoder for it (min over 5 runs).

Every patch is packed with all codecs, MODEL included (``ccl pack --model``); ``ccl pack``
without ``--model`` makes the ``before_bytes`` patches. Sizes of ``exo_e1`` are
deterministic; only the star-field layouts vary with the seed.

Usage: ``python benchmarks/patch_size.py [--seed N] [--repeats N]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import lzma
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from math import lgamma, log, log2
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ccl.driver import Compiled, Compiler  # noqa: E402
from ccl.pack import ALL_CODECS, pack  # noqa: E402
from ccl.syntax import blank_comments  # noqa: E402
from ccl.verify.verdict import run_verifier  # noqa: E402
from onboard.patching.patch_format import (  # noqa: E402
    TAG_BYTES,
    Codec,
    SectionType,
    check_order,
    development_key,
    expand,
    model_decoded_bytes,
    parse_frames,
    parse_header,
    unbundle,
    vmlet_primer,
    width,
)

EXO = ROOT / "missions" / "corot" / "configs" / "exo_e1.ccl"
CONFIGS = sorted((ROOT / "missions" / "corot" / "configs").glob("exo_e1*.ccl"),
                 key=lambda p: (len(p.name), p.name))
#: The codecs before MODEL: the reference the MODEL codec is compared with, side by side.
WITHOUT_MODEL = ALL_CODECS - {Codec.MODEL}
PHOTOMETRY = ROOT / "missions" / "corot" / "vmlets" / "photometry.ccl"
STARS, MOVED, CLUSTERS = 6000, 200, 10
X_RANGE, Y_RANGE = (0, 2032), (0, 4080)
#: The sections that carry changed rows of kept tables.
ROW_SECTIONS = {SectionType.ROWS, getattr(SectionType, "SCATTERED", SectionType.ROWS)}

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


# --------------------------------------------------------------------------- compressors


def xz(data: bytes) -> int:
    """Bytes of ``xz -9e`` of ``data`` (the .xz container, as the command writes it)."""
    return len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def zstd_compressor() -> tuple[Callable[[bytes], int], str] | None:
    """``zstd -19``: the zstandard package if installed, else the zstd binary, else None."""
    try:
        import zstandard
    except ImportError:
        binary = shutil.which("zstd")
        if binary is None:
            return None

        def run(data: bytes) -> int:
            return len(subprocess.run([binary, "-19", "-q", "-c"], input=data,
                                      capture_output=True, check=True).stdout)

        return run, f"zstd -19 ({binary})"
    level19 = zstandard.ZstdCompressor(level=19)
    return (lambda data: len(level19.compress(data))), \
        f"zstd -19 (zstandard {zstandard.__version__})"


def compressors() -> dict[str, Callable[[bytes], int]]:
    """The general compressors compared with, by name."""
    out: dict[str, Callable[[bytes], int]] = {"xz -9e (lzma)": xz}
    zstd = zstd_compressor()
    if zstd is not None:
        out[zstd[1]] = zstd[0]
    return out


def best(data: bytes, by: dict[str, Callable[[bytes], int]]) -> tuple[int, str, dict[str, int]]:
    """The smallest compressed size of ``data``, which compressor gave it, and all sizes."""
    sizes = {name: f(data) for name, f in by.items()}
    name = min(sizes, key=lambda n: sizes[n])
    return sizes[name], name, sizes


def strip_comments(text: str) -> bytes:
    """The CCL source without comments, trailing spaces or blank lines."""
    lines = (line.rstrip() for line in blank_comments(text).splitlines())
    return "".join(f"{line}\n" for line in lines if line).encode()


# --------------------------------------------------------------------------- patches


def compile_text(directory: Path, name: str, text: str) -> Compiled:
    path = directory / f"{name}.ccl"
    path.write_text(text)
    return Compiler().compile(path)


def section_bytes(data: bytes, sections: set[SectionType] | SectionType) -> int:
    """Bytes of the frames (CRC included) of the patch's sections of these types; in a
    patch whose sections travel in one BUNDLE, the whole BUNDLE frame if it holds one of
    them (the sections cannot be told apart once coded together: an upper bound)."""
    wanted = sections if isinstance(sections, set) else {sections}
    parsed = parse_header(data)
    frames = parse_frames(data, parsed.size, len(data) - TAG_BYTES)
    inner = unbundle(frames)
    if any(f.bundled for f in inner) and any(f.type_code in wanted for f in inner):
        return sum(f.size for f in frames)
    return sum(f.size for f, (t, _) in zip(frames, check_order(frames), strict=True)
               if t in wanted)


def star_field(directory: Path, rng: random.Random, name: str, moved: list[int],
               version: int, rows: list[tuple[int, int]]) -> Compiled:
    rows = list(rows)
    for i in moved:
        old = rows[i]
        while rows[i] == old:  # a moved window moves both coordinates
            rows[i] = (rng.randint(*X_RANGE), rng.randint(*Y_RANGE))
            if rows[i][0] == old[0] or rows[i][1] == old[1]:
                rows[i] = old
    csv = directory / f"{name}.csv"
    csv.write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in rows))
    return compile_text(directory, name, STAR_FIELD.format(version=version, csv=csv.name))


def log2_binomial(n: int, k: int) -> float:
    """log2(C(n, k))."""
    return (lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)) / log(2)


def layouts(rng: random.Random) -> dict[str, tuple[list[int], float]]:
    """The moved rows of each layout, and the bits that say which rows they are."""
    start = rng.randrange(STARS - MOVED + 1)
    size = MOVED // CLUSTERS
    # CLUSTERS blocks of ``size`` rows, not touching: choose their starts among the rows
    # left once the blocks are shrunk to one row each (with a gap of one kept between them).
    slots = sorted(rng.sample(range(STARS - CLUSTERS * size + 1), CLUSTERS))
    clustered = [s + k * size + r for k, s in enumerate(slots) for r in range(size)]
    return {
        "contiguous": (list(range(start, start + MOVED)), log2(STARS - MOVED + 1)),
        "clustered": (clustered, log2_binomial(STARS - CLUSTERS * size + CLUSTERS,
                                               CLUSTERS)),
        "scattered": (sorted(rng.sample(range(STARS), MOVED)), log2_binomial(STARS, MOVED)),
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "max": round(max(values), 3)}


def full_configs(compiler: Compiler, by: dict[str, Callable[[bytes], int]], key: bytes,
                 exo_full: bytes) -> None:
    """The full patch of every CoRoT configuration (its VMlets on board) with and without
    the MODEL codec, against each compressor of its image; then the decoding cost."""
    for path in CONFIGS:
        c = compiler.compile(path)
        vm = [v.image for v in c.vmlets]
        cycles = run_verifier(c).cycles_per_frame
        # A base holding the same VMlets: the configuration itself, one version earlier.
        base = replace_version(c.image)
        sizes = {}
        for label, codecs in (("after", ALL_CODECS), ("before", WITHOUT_MODEL)):
            sizes[label] = len(pack(c.image, vm, c.mission, key, seq=c.image.version + 1,
                                    base=base, full=True, cycles_per_frame=cycles,
                                    codecs=codecs).data)
        image = c.image.encode()
        _, _, ref_sizes = best(image, by)
        emit(f"full_vs_best_compressor_{path.stem}", round(sizes["after"] / min(
            ref_sizes.values()), 3), "ratio", target=0.9, image_bytes=len(image),
             full_patch_bytes=sizes["after"], before_bytes=sizes["before"],
             image_compressed=ref_sizes,
             after_vs={n: round(sizes["after"] / v, 3) for n, v in ref_sizes.items()},
             before_vs={n: round(sizes["before"] / v, 3) for n, v in ref_sizes.items()})
    parsed = parse_header(exo_full)
    frames = parse_frames(exo_full, parsed.size, len(exo_full) - TAG_BYTES)
    exo = compiler.compile(EXO)
    primer = vmlet_primer(exo.image, [v.image for v in exo.vmlets]) or b""
    decoded = model_decoded_bytes(frames, len(primer))
    profile = exo.mission
    timings = []
    for _ in range(5):
        start = time.process_time()
        expand(frames[0], Codec(frames[0].codec_code), primer=primer)
        timings.append(time.process_time() - start)
    per_byte = profile.reconfig.model_per_byte
    emit("model_decode_cycles", decoded * per_byte, "cycles", decoded_bytes=decoded,
         primer_bytes=len(primer),
         model_per_byte=per_byte,
         reserve_frames=-(-decoded * per_byte // profile.patch_reserve_cycles_per_frame),
         frame_ms=profile.frame_ms, python_cpu_s=round(min(timings), 4),
         note="an operation count of the decoder at the profile's cost, not a DPU measurement")


def replace_version(image: Any) -> Any:
    """``image`` one version earlier: a different configuration holding the same VMlets."""
    return dataclasses.replace(image, version=max(image.version - 1, 0))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=2006)
    parser.add_argument("--repeats", type=int, default=5,
                        help="seeds the table layouts are drawn with (default 5)")
    args = parser.parse_args(argv)
    by = compressors()
    compiler = Compiler()
    exo = compiler.compile(EXO)
    profile = exo.mission
    key = development_key(profile.name)
    vmlets = [v.image for v in exo.vmlets]
    cycles = run_verifier(exo).cycles_per_frame

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        # --- one parameter
        text = EXO.read_text().replace("version 5", "version 6").replace(
            "param cr_k10     : int[20..100]        = 50;",
            "param cr_k10     : int[20..100]        = 60;")
        changed = compile_text(d, "exo_e1", text)
        assert changed.image.globals[2].value == 60
        one = pack(changed.image, vmlets, profile, key, seq=2, base=exo.image,
                   cycles_per_frame=cycles, codecs=ALL_CODECS)
        emit("one_param_bytes", len(one.data), "bytes", target=64, kind="delta",
             change="cr_k10 50 -> 60, version 5 -> 6",
             params_section_bytes=section_bytes(one.data, SectionType.PARAMS),
             header_bytes=parse_header(one.data).size, tag_bytes=TAG_BYTES)

        # --- 200 star windows, three layouts, several seeds
        value_bits = MOVED * (width(*X_RANGE) + width(*Y_RANGE))
        ratios: dict[str, list[float]] = {}
        sizes: dict[str, list[int]] = {}
        patches: dict[str, list[int]] = {}
        bounds: dict[str, float] = {}
        for repeat in range(args.repeats):
            rng = random.Random(args.seed + repeat)
            base_rows = [(rng.randint(*X_RANGE), rng.randint(*Y_RANGE)) for _ in range(STARS)]
            base = star_field(d, rng, f"field_v1_{repeat}", [], 1, base_rows)
            for layout, (moved, position_bits) in layouts(rng).items():
                new = star_field(d, rng, f"field_{layout}_{repeat}", moved, 2, base_rows)
                patch = pack(new.image, [v.image for v in new.vmlets], profile, key, seq=2,
                             base=base.image, full=False, codecs=ALL_CODECS)
                rows = section_bytes(patch.data, ROW_SECTIONS)
                bound = (value_bits + position_bits) / 8
                bounds[layout] = bound
                ratios.setdefault(layout, []).append(rows / bound)
                sizes.setdefault(layout, []).append(rows)
                patches.setdefault(layout, []).append(len(patch.data))
        targets = {"contiguous": 1.05, "scattered": 1.20}
        for layout, values in ratios.items():
            emit(f"table_delta_{layout}", round(statistics.median(values), 3), "ratio",
                 target=targets.get(layout), spread=spread(values), repeats=args.repeats,
                 row_section_bytes=spread([float(v) for v in sizes[layout]]),
                 bound_bytes=round(bounds[layout], 1),
                 value_bound_bytes=value_bits / 8,
                 patch_bytes=spread([float(v) for v in patches[layout]]),
                 moved_windows=MOVED, tables=2, rows=STARS)

        # --- full patches
        held_base = changed.image  # any configuration that holds photometry
        full = pack(exo.image, vmlets, profile, key, seq=3, base=held_base, full=True,
                    cycles_per_frame=cycles, codecs=ALL_CODECS)
        before = pack(exo.image, vmlets, profile, key, seq=3, base=held_base, full=True,
                      cycles_per_frame=cycles, codecs=WITHOUT_MODEL)
        alone = pack(exo.image, vmlets, profile, key, seq=3, cycles_per_frame=cycles,
                     codecs=ALL_CODECS)
        image = exo.image.encode()
        both_images = image + b"".join(v.encode() for v in vmlets)
        source = EXO.read_text()
        stripped = strip_comments(source)
        both_stripped = stripped + strip_comments(PHOTOMETRY.read_text())
        ref, ref_name, ref_sizes = best(image, by)
        src, src_name, src_sizes = best(stripped, by)
        both_ref, both_name, _ = best(both_images, by)
        both_src, _, _ = best(both_stripped, by)
        raw_xz = xz(source.encode())
        emit("full_vs_best_compressor", round(len(full.data) / ref, 3), "ratio", target=0.9,
             full_patch_bytes=len(full.data), image_bytes=len(image),
             reference=f"{ref_name} of the image", reference_bytes=ref,
             image_compressed=ref_sizes,
             vs_stripped_source=round(len(full.data) / src, 3),
             stripped_source_bytes=len(stripped), stripped_source_compressed=src_sizes,
             stripped_reference=src_name,
             vs_xz_raw_source=round(len(full.data) / raw_xz, 3), raw_source_bytes=len(source),
             xz_raw_source_bytes=raw_xz, vmlet="on board",
             header_and_tag_bytes=parse_header(full.data).size + TAG_BYTES,
             before_bytes=len(before.data), before_ratio=round(len(before.data) / ref, 3))
        full_configs(compiler, by, key, full.data)
        emit("self_contained_vs_best_compressor", round(len(alone.data) / both_ref, 3),
             "ratio", self_contained_patch_bytes=len(alone.data),
             images_bytes=len(both_images), reference=f"{both_name} of both images",
             reference_bytes=both_ref,
             vs_stripped_sources=round(len(alone.data) / both_src, 3),
             stripped_sources_best_bytes=both_src)


if __name__ == "__main__":
    main()
