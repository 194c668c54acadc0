"""Kept proofs (``ccl.verify.proof_cache``): found again only for the very same sources,
images, mission and verifier; only proven ones; never a broken file."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from ccl.driver import Compiler
from ccl.verify import proof_cache
from ccl.verify.verdict import run_verifier

CONFIGS = Path(__file__).resolve().parents[3] / "missions" / "corot" / "configs"
PROOF = {"status": "proven", "cycles_per_frame": 12, "detail": "worst case 12 cycles per frame",
         "share_used_percent": 1.0}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(proof_cache.CACHE_ENV, str(tmp_path / "proofs"))
    return tmp_path / "proofs"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    shutil.copy(CONFIGS / "exo_e1.ccl", tmp_path / "exo_e1.ccl")
    shutil.copytree(CONFIGS.parent / "vmlets", tmp_path / "vmlets")
    return tmp_path / "exo_e1.ccl"


def test_a_kept_proof_is_found_for_the_same_configuration_only(folder: Path,
                                                               source: Path) -> None:
    compiled = Compiler().compile(source)
    proof_cache.keep(compiled, PROOF)
    assert proof_cache.recall(Compiler().compile(source)) == PROOF
    source.write_text(source.read_text() + "// changed\n")
    assert proof_cache.recall(Compiler().compile(source)) is None
    other = dataclasses.replace(compiled, mission=dataclasses.replace(
        compiled.mission, raw={**compiled.mission.raw, "changed": 1}))
    assert proof_cache.recall(other) is None


def test_only_proven_verdicts_are_kept_and_a_broken_file_is_ignored(folder: Path,
                                                                    source: Path) -> None:
    compiled = Compiler().compile(source)
    proof_cache.keep(compiled, PROOF | {"status": "refuted"})
    assert proof_cache.recall(compiled) is None and not list(folder.glob("*"))
    proof_cache.keep(compiled, PROOF)
    (kept,) = folder.glob("*.json")
    kept.write_text("{not json")
    assert proof_cache.recall(compiled) is None
    kept.write_text('{"status": "proven", "unexpected": 1}')
    verdict = run_verifier(compiled, reuse=True)  # a proof of another shape: proven again
    assert verdict.status == "proven" and not verdict.reused
    assert run_verifier(compiled, reuse=True).reused


def test_off_keeps_nothing(monkeypatch: pytest.MonkeyPatch, source: Path) -> None:
    monkeypatch.setenv(proof_cache.CACHE_ENV, "off")
    compiled = Compiler().compile(source)
    proof_cache.keep(compiled, PROOF)
    assert proof_cache.cache_dir() is None and proof_cache.recall(compiled) is None
