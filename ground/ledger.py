"""The ledger: the ground's record of what it sent and what the satellite said it holds.

One SQLite file (default ``./ccl-ledger.sqlite``; ``--ledger PATH`` or ``$CCL_LEDGER``) with
configuration versions, images, patches, and for every uplink run (a simulated campaign, or
later a real one): the passes used, each segment sent, each segment acknowledged by
telemetry, the transfers with their state and fate, and every telemetry report verbatim.
``status()`` answers the question the ground must always be able to answer: what is on board.

The ledger stores no host time: runs are numbered, passes and segments carry the simulated
(or real) pass times, so a run's record is a function of its inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ground.errors import GroundError
from ground.link import UplinkWindow
from ground.planner import UplinkPatch
from onboard.link.receiver import Report, TransferState
from onboard.patching.patch_format import FormatError, parse_header
from onboard.patching.patcher import FATE_CODES, REJECTED_BASE, FateStatus, fate_code_text

DEFAULT_LEDGER = "ccl-ledger.sqlite"
LEDGER_ENV = "CCL_LEDGER"
#: The largest seed of a run: the ledger records it as a SQLite integer (64 bits), with room
#: for the seeds derived from it (a scenario's campaigns use seed * 1000 + pass).
MAX_SEED = (1 << 32) - 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS config_versions (
    hash TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    hash TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    bytes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS patches (
    sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL, base_hash TEXT,
    target_hash TEXT, bytes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, mission TEXT NOT NULL, seed INTEGER,
    params TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS passes (
    run INTEGER NOT NULL, idx INTEGER NOT NULL, station TEXT NOT NULL, rise TEXT NOT NULL,
    set_time TEXT NOT NULL, max_elevation_deg REAL NOT NULL, budget_bytes INTEGER NOT NULL,
    cancelled INTEGER NOT NULL, PRIMARY KEY (run, idx));
CREATE TABLE IF NOT EXISTS transfers (
    run INTEGER NOT NULL, transfer INTEGER NOT NULL, patch TEXT NOT NULL, name TEXT NOT NULL,
    k INTEGER NOT NULL, share_bytes INTEGER NOT NULL, priority INTEGER NOT NULL,
    deadline TEXT, state TEXT NOT NULL, fate INTEGER, application INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run, transfer));
CREATE TABLE IF NOT EXISTS segments_sent (
    run INTEGER NOT NULL, transfer INTEGER NOT NULL, share INTEGER NOT NULL,
    pass_idx INTEGER NOT NULL, bytes INTEGER NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments_acked (
    run INTEGER NOT NULL, transfer INTEGER NOT NULL, share INTEGER NOT NULL,
    pass_idx INTEGER NOT NULL, PRIMARY KEY (run, transfer, share));
CREATE TABLE IF NOT EXISTS reports (
    run INTEGER NOT NULL, pass_idx INTEGER NOT NULL, time_ms INTEGER NOT NULL,
    config_hash TEXT NOT NULL, frames_ok INTEGER NOT NULL, frames_rejected INTEGER NOT NULL,
    duplicates INTEGER NOT NULL, raw BLOB NOT NULL, PRIMARY KEY (run, pass_idx));
"""

_TABLES = frozenset(line.split()[5] for line in SCHEMA.splitlines()
                    if line.startswith("CREATE TABLE"))


class LedgerError(GroundError):
    """A ledger file that cannot be opened or is not a ledger."""


@dataclass(frozen=True)
class OnboardRecord:
    """What one run of the ledger knows is on board, from its last telemetry report."""

    run: int
    config_hash: bytes | None     # the full content hash telemetry reported (32 zero bytes:
                                  # nothing on board); None: no telemetry read yet
    reported_at: str | None       # when that telemetry was read (the pass's rise, ISO UTC)
    reported_at_pass: int | None
    last_seq: int | None          # highest sequence number telemetry shows taken on board

    @property
    def known(self) -> bool:
        """Whether the ground has read telemetry in this run, so knows what is on board."""
        return self.config_hash is not None


def ledger_path(option: str | None) -> Path:
    """``--ledger``, else ``$CCL_LEDGER``, else ``./ccl-ledger.sqlite``."""
    return Path(option or os.environ.get(LEDGER_ENV) or DEFAULT_LEDGER)


class Ledger:
    """An open ledger file."""

    def __init__(self, path: Path | str, read_only: bool = False) -> None:
        """Open (and create, unless ``read_only``) the ledger at ``path``; ``":memory:"`` is
        a ledger of this process only. A ledger opened ``read_only`` is never written: what
        only reads it (``ccl status``, the checks before uplink) leaves the file as it was."""
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():  # a folder, a device, a pipe
            raise LedgerError(f"the ledger {path} is not a regular file",
                              f"give a ledger file with --ledger or ${LEDGER_ENV}")
        try:
            if read_only:
                self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
                missing = _TABLES - {row[0] for row in self.db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'")}
                if missing:
                    raise LedgerError(f"{path} is not a ccl ledger: it has no table "
                                      f"{', '.join(sorted(missing))}",
                                      f"give a ledger file with --ledger or ${LEDGER_ENV}")
            else:
                self.db = sqlite3.connect(str(path))
                self.db.executescript(SCHEMA)
                _add_application_column(self.db)
            # a ledger of before applications, opened read-only, keeps its columns
            self._application = "application" if "application" in {
                row[1] for row in self.db.execute("PRAGMA table_info(transfers)")} else "0"
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"cannot open the ledger {path}: {exc}",
                              f"give another file with --ledger or ${LEDGER_ENV}") from None

    def close(self) -> None:
        self.db.commit()
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- catalogue

    def add_image(self, content_hash: bytes, kind: str, name: str, version: int,
                  data: bytes) -> None:
        """Record a compiled image (idempotent) and its configuration version."""
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO images VALUES (?, ?, ?, ?, ?)",
                            (content_hash.hex(), kind, name, version, data))
            self.db.execute("INSERT OR IGNORE INTO config_versions VALUES (?, ?, ?)",
                            (content_hash.hex(), name, version))

    def image(self, content_hash: bytes) -> bytes | None:
        """The bytes of the image with this content hash (or hash prefix), if recorded."""
        h = content_hash.hex()
        row = self.db.execute("SELECT bytes FROM images WHERE hash = ? OR substr(hash, 1, ?) "
                              "= ?", (h, len(h), h)).fetchone()
        return bytes(row[0]) if row else None

    def add_patch(self, patch: UplinkPatch) -> str:
        """Record a patch (idempotent); returns its SHA-256 (hex), its identity here."""
        sha = hashlib.sha256(patch.data).hexdigest()
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO patches VALUES (?, ?, ?, ?, ?, ?)",
                            (sha, patch.name, len(patch.data), _hex(patch.base_hash),
                             _hex(patch.target_hash), patch.data))
        return sha

    def start_run(self, kind: str, mission: str, seed: int | None,
                  params: Mapping[str, Any]) -> RunRecorder:
        """Open a new run; the returned recorder records its passes, segments and reports."""
        with self.db:
            cur = self.db.execute("INSERT INTO runs (kind, mission, seed, params) "
                                  "VALUES (?, ?, ?, ?)",
                                  (kind, mission, seed, json.dumps(dict(params),
                                                                   sort_keys=True)))
        assert cur.lastrowid is not None
        return RunRecorder(self, cur.lastrowid)

    # ----------------------------------------------------------------- queries

    def last_seq_used(self) -> int | None:
        """The highest sequence number of any patch the ledger holds (packed or sent), or
        None if it holds none: the next patch takes this plus one."""
        seqs = [_seq(bytes(row[0])) for row in self.db.execute("SELECT bytes FROM patches")]
        return max((s for s in seqs if s is not None), default=None)

    def onboard(self, run: int | None = None) -> OnboardRecord | None:
        """What run ``run`` (default: the latest) knows is on board; None without runs."""
        q = self.db.execute
        if run is None:
            run = q("SELECT MAX(id) FROM runs").fetchone()[0]
            if run is None:
                return None
        last = q("SELECT r.pass_idx, r.config_hash, p.rise FROM reports r LEFT JOIN passes p "
                 "ON p.run = r.run AND p.idx = r.pass_idx WHERE r.run = ? "
                 "ORDER BY r.pass_idx DESC LIMIT 1", (run,)).fetchone()
        # A transfer's fate is the patcher's first answer: anything but a rejection (or
        # "received", not yet judged) means the patch was staged, so its number is taken.
        taken = [_seq(bytes(row[0])) for row in q(
            "SELECT p.bytes FROM transfers t JOIN patches p ON p.sha256 = t.patch "
            "WHERE t.run = ? AND t.fate IS NOT NULL AND t.fate < ? AND t.fate != ?",
            (run, REJECTED_BASE, FATE_CODES[FateStatus.RECEIVED]))]
        return OnboardRecord(run, bytes.fromhex(last[1]) if last else None,
                             last[2] if last else None, last[0] if last else None,
                             max((s for s in taken if s is not None), default=None))

    def runs(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT id, kind, mission, seed, params FROM runs ORDER BY id")
        return [{"run": r[0], "kind": r[1], "mission": r[2], "seed": r[3],
                 "params": json.loads(r[4])} for r in rows]

    def status(self, run: int | None = None) -> dict[str, Any]:
        """What the ground knows: catalogue counts, and for one run (default the latest) the
        configuration on board, every transfer's progress and the passes."""
        q = self.db.execute
        counts = {t: q(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608 (fixed names)
                  for t in ("config_versions", "images", "patches", "runs")}
        out: dict[str, Any] = {"ledger": str(self.path), **counts}
        if run is None:
            row = q("SELECT MAX(id) FROM runs").fetchone()
            run = row[0] if row else None
        if run is None:
            return out | {"run": None}
        meta = q("SELECT kind, mission, seed, params FROM runs WHERE id = ?", (run,)).fetchone()
        if meta is None:
            raise LedgerError(f"the ledger has no run {run}", "see `ccl status` for the runs")
        last = q("SELECT r.pass_idx, r.time_ms, r.config_hash, p.rise FROM reports r "
                 "LEFT JOIN passes p ON p.run = r.run AND p.idx = r.pass_idx WHERE r.run = ? "
                 "ORDER BY r.pass_idx DESC LIMIT 1", (run,)).fetchone()
        config = None
        if last is not None:
            name = q("SELECT name, version FROM config_versions WHERE hash = ?",
                     (last[2],)).fetchone()
            # Telemetry carries the full SHA-256 content hash (32 zero bytes: nothing on
            # board); a hash with only its first 8 bytes set is a patch header's prefix,
            # said so rather than shown as a full hash.
            empty = int(last[2], 16) == 0
            prefix = not empty and last[2][16:].strip("0") == ""
            config = {"hash": last[2][:16] if prefix else last[2], "hash_is_prefix": prefix,
                      "empty": empty, "name": name[0] if name else None,
                      "version": name[1] if name else None, "reported_at_pass": last[0],
                      "reported_at": last[3]}
        transfers = []
        for t in q("SELECT transfer, name, k, share_bytes, state, fate, priority, deadline, "  # noqa: S608
                   f"{self._application} FROM transfers WHERE run = ? ORDER BY transfer", (run,)):
            sent = q("SELECT COUNT(*), COALESCE(SUM(bytes), 0), COUNT(DISTINCT share) FROM "
                     "segments_sent WHERE run = ? AND transfer = ?", (run, t[0])).fetchone()
            acked = q("SELECT COUNT(*) FROM segments_acked WHERE run = ? AND transfer = ?",
                      (run, t[0])).fetchone()[0]
            transfers.append({"transfer": t[0], "patch": t[1], "k": t[2], "share_bytes": t[3],
                              "state": t[4], "fate": t[5],
                              "fate_name": None if t[5] is None else fate_code_text(t[5]),
                              "priority": t[6], "deadline": t[7], "application": t[8],
                              "frames_sent": sent[0], "bytes_sent": sent[1],
                              "distinct_shares_sent": sent[2], "shares_acked": acked,
                              "shares_held": t[2] if t[4] == "complete" else min(acked, t[2])})
        passes = q("SELECT COUNT(*), COALESCE(SUM(cancelled), 0), MIN(rise), MAX(set_time) "
                   "FROM passes WHERE run = ?", (run,)).fetchone()
        reports = q("SELECT COUNT(*) FROM reports WHERE run = ?", (run,)).fetchone()[0]
        return out | {"run": run, "kind": meta[0], "mission": meta[1], "seed": meta[2],
                      "params": json.loads(meta[3]), "onboard_config": config,
                      "transfers": transfers,
                      "passes": {"used": passes[0], "cancelled": passes[1], "first": passes[2],
                                 "last": passes[3]},
                      "reports": reports}


class RunRecorder:
    """Records one run; implements ``ground.uplink.Recorder``."""

    def __init__(self, ledger: Ledger, run: int) -> None:
        self.ledger = ledger
        self.run = run
        self._patch_sha: dict[str, str] = {}

    def window(self, window: UplinkWindow, cancelled: bool) -> None:
        p = window.pass_
        with self.ledger.db:
            self.ledger.db.execute(
                "INSERT OR REPLACE INTO passes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.run, window.index, p.station, _iso(p.rise), _iso(p.set),
                 p.max_elevation_deg, window.budget_bytes, int(cancelled)))

    def transfer(self, patch: UplinkPatch, transfer: int, k: int, share_bytes: int) -> None:
        sha = self.ledger.add_patch(patch)
        with self.ledger.db:
            self.ledger.db.execute(
                "INSERT OR REPLACE INTO transfers (run, transfer, patch, name, k, share_bytes, "
                "priority, deadline, state, fate, application) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.run, transfer, sha, patch.name, k, share_bytes, patch.priority,
                 _iso(patch.deadline) if patch.deadline else None, "sending", None,
                 patch.application))

    def sent(self, window: UplinkWindow, patch: str, transfer: int, share: int, nbytes: int,
             at: datetime) -> None:
        # Committed with the next window or report (one transaction per pass, not per frame).
        self.ledger.db.execute("INSERT INTO segments_sent VALUES (?, ?, ?, ?, ?, ?)",
                               (self.run, transfer, share, window.index, nbytes, _iso(at)))

    def report(self, window: UplinkWindow, raw: bytes, report: Report) -> None:
        db = self.ledger.db
        with db:
            db.execute("INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (self.run, window.index, report.time_ms, report.config_hash.hex(),
                        report.frames_ok, report.frames_rejected, report.duplicates, raw))
            for t in report.transfers:
                known = db.execute("SELECT k FROM transfers WHERE run = ? AND transfer = ?",
                                   (self.run, t.transfer)).fetchone()
                if known is None:
                    continue
                # A complete transfer's report lists no shares: its state says it all.
                db.executemany("INSERT OR IGNORE INTO segments_acked VALUES (?, ?, ?, ?)",
                               [(self.run, t.transfer, s, window.index) for s in t.received])
                db.execute("UPDATE transfers SET state = ?, fate = ? WHERE run = ? AND "
                           "transfer = ?",
                           (t.state.name.lower().replace("_", "-"),
                            t.fate if t.state is TransferState.COMPLETE else None,
                            self.run, t.transfer))


def _add_application_column(db: sqlite3.Connection) -> None:
    """Give a ledger written before applications existed its transfers' application
    column (every transfer of old was to the default application, number 0)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(transfers)")}
    if "application" not in columns:
        with db:
            db.execute("ALTER TABLE transfers ADD COLUMN application INTEGER NOT NULL "
                       "DEFAULT 0")


def _seq(data: bytes) -> int | None:
    """The sequence number in a patch's header; None for bytes that are not a patch."""
    try:
        return parse_header(data).header.seq
    except FormatError:
        return None


def _hex(h: bytes | None) -> str | None:
    return h.hex() if h is not None else None


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")
