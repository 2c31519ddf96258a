"""SQLite results store: one row per measured point, written (and committed) the moment the point finishes.

Default location ``results/claims.sqlite`` under the working directory; override with ``--store PATH`` or the
``CLAIMS_STORE`` environment variable. A point is identified by everything that determines its value (claim,
variant, case, tier, premise, scale, seed, backend, device, dtype), so a stored point is never recomputed and a
sweep killed mid-way resumes where it stopped, losing nothing it had finished.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import sqlite3
from pathlib import Path

import numpy as np

DEFAULT_STORE = Path("results") / "claims.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    key TEXT PRIMARY KEY,
    claim TEXT NOT NULL, variant TEXT NOT NULL, case_name TEXT NOT NULL, tier TEXT NOT NULL,
    scale REAL NOT NULL, seed INTEGER NOT NULL, replicate INTEGER NOT NULL, base_seed INTEGER NOT NULL,
    backend TEXT NOT NULL, device TEXT NOT NULL, dtype TEXT NOT NULL,
    premise TEXT NOT NULL, result TEXT NOT NULL, seconds REAL NOT NULL, created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS points_run ON points (claim, case_name, tier, backend, device, base_seed);
"""


def default_store_path() -> Path:
    return Path(os.environ.get("CLAIMS_STORE", DEFAULT_STORE))


def _encode(value):
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    arr = np.asarray(value, dtype=float)
    return {"shape": list(arr.shape), "data": arr.ravel().tolist()}


def _decode(value):
    if isinstance(value, dict) and "shape" in value and "data" in value:
        return np.asarray(value["data"], dtype=float).reshape(value["shape"])
    return {k: _decode(v) for k, v in value.items()}


def point_key(task) -> str:
    ident = json.dumps(task.identity(), sort_keys=True, default=str)
    return hashlib.sha256(ident.encode()).hexdigest()


class Store:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(SCHEMA)
        self._conn.commit()

    def close(self):
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def has(self, task) -> bool:
        return self._conn.execute("SELECT 1 FROM points WHERE key = ?", (point_key(task),)).fetchone() is not None

    def put(self, task, result: dict, seconds: float) -> None:
        s = task.setting
        row = (point_key(task), s.claim, s.variant, s.case, task.tier, float(s.scale), int(s.seed),
               int(task.replicate), int(task.base_seed), task.backend, task.device, task.dtype,
               json.dumps(s.premise, sort_keys=True, default=str), json.dumps(_encode(result)), float(seconds),
               datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        with self._conn:      # one transaction per point: committed as soon as it is measured
            self._conn.execute("INSERT OR IGNORE INTO points VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)

    def get(self, task):
        row = self._conn.execute("SELECT result, seconds FROM points WHERE key = ?", (point_key(task),)).fetchone()
        if row is None:
            return None
        return _decode(json.loads(row[0])), row[1]

    def count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM points").fetchone()[0]

    def find_by_identity(self, task) -> list:
        """Every stored result of ``task``'s point by any code: the rows whose setting, tier, backend, device and
        dtype are the task's (the table keeps no code column; the key hashes it in). For :mod:`.reverify`'s
        ``by_identity`` fallback, when the records' code hash was computed by another hashing of the same source."""
        s = task.setting
        if not getattr(self, "_identity_index", False):       # the table's key is the hash: index the setting
            with self._conn:
                self._conn.execute("CREATE INDEX IF NOT EXISTS points_setting ON points (claim, variant, case_name, "
                                   "seed)")
            self._identity_index = True
        rows = self._conn.execute(
            "SELECT result FROM points WHERE claim = ? AND variant = ? AND case_name = ? AND tier = ? AND scale = ? "
            "AND seed = ? AND backend = ? AND device = ? AND dtype = ? AND premise = ?",
            (s.claim, s.variant, s.case, task.tier, float(s.scale), int(s.seed), task.backend, task.device,
             task.dtype, json.dumps(s.premise, sort_keys=True, default=str))).fetchall()
        return [_decode(json.loads(r[0])) for r in rows]

    def runs(self):
        """Distinct (claim, case, tier, backend, device, dtype, base_seed) stored."""
        return self._conn.execute(
            "SELECT DISTINCT claim, case_name, tier, backend, device, dtype, base_seed FROM points "
            "ORDER BY claim, case_name, tier, backend").fetchall()
