"""The embedded default store: one local SQLite file in WAL mode.

WAL lets a reader (`cep serve` showing state) run beside the writer, and with
`synchronous=NORMAL` a commit costs no fsync of the main file: a power cut can
lose the last checkpoints but never corrupts the file or splits one. A
checkpoint of many rules is one transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from runtime.state.store import BASELINE_MAX, BASELINE_TTL_S, RuleState, StoredState, bounded

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_state (
    rule_id  TEXT PRIMARY KEY,
    version  INTEGER NOT NULL,
    payload  BLOB NOT NULL,
    offsets  TEXT NOT NULL,
    saved_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS baseline (
    rule_id    TEXT NOT NULL,
    grp        TEXT NOT NULL,
    vals       BLOB NOT NULL,   -- float64 array, native byte order
    expires_at REAL NOT NULL,   -- wall-clock seconds
    PRIMARY KEY (rule_id, grp)
);
"""


def _pack(values: Sequence[float]) -> bytes:
    return array("d", values).tobytes()


def _unpack(blob: bytes) -> list[float]:
    a = array("d")
    a.frombytes(blob)
    return a.tolist()


class SqliteStore:
    def __init__(
        self,
        path: str | os.PathLike[str] = "cep-state.sqlite",
        *,
        baseline_ttl_s: float = BASELINE_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.fspath(path)
        self.baseline_ttl_s = baseline_ttl_s
        self._clock = clock  # wall clock: expiry times outlive the process
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    # -- rule state

    def save(self, rule_id: str, version: int, payload: bytes, offsets: dict[str, Any]) -> None:
        self.save_many([(rule_id, version, payload, offsets)])

    def save_many(self, states: Iterable[RuleState]) -> None:
        now = self._clock()
        rows = [(r, int(v), bytes(p), json.dumps(o), now) for r, v, p, o in states]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO rule_state (rule_id, version, payload, offsets, saved_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(rule_id) DO UPDATE SET version=excluded.version, payload=excluded.payload, "
                    "offsets=excluded.offsets, saved_at=excluded.saved_at",
                    rows,
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def load(self, rule_id: str) -> StoredState | None:
        with self._lock:
            row = self._db.execute("SELECT version, payload, offsets FROM rule_state WHERE rule_id = ?", (rule_id,)).fetchone()
        if row is None:
            return None
        return StoredState(row[0], bytes(row[1]), json.loads(row[2]))

    def delete(self, rule_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM rule_state WHERE rule_id = ?", (rule_id,))

    def rule_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT rule_id FROM rule_state ORDER BY rule_id")]

    # -- baselines

    def _get_live(self, rule_id: str, group: str) -> list[float] | None:
        row = self._db.execute("SELECT vals, expires_at FROM baseline WHERE rule_id = ? AND grp = ?", (rule_id, group)).fetchone()
        if row is None or row[1] <= self._clock():
            return None
        return _unpack(row[0])

    def _put(self, rule_id: str, group: str, values: Sequence[float]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO baseline (rule_id, grp, vals, expires_at) VALUES (?, ?, ?, ?)",
            (rule_id, group, _pack(values), self._clock() + self.baseline_ttl_s),
        )

    def baseline_get(self, rule_id: str, group: str) -> list[float]:
        with self._lock:
            return self._get_live(rule_id, group) or []

    def baseline_set(self, rule_id: str, group: str, values: Sequence[float], max_size: int = BASELINE_MAX) -> None:
        size = bounded(max_size)
        with self._lock:
            self._put(rule_id, group, list(values)[-size:])

    def baseline_append(self, rule_id: str, group: str, values: Sequence[float], max_size: int = BASELINE_MAX) -> None:
        self.baseline_append_many(rule_id, {group: values}, max_size)

    def baseline_append_many(self, rule_id: str, values: Mapping[str, Sequence[float]], max_size: int = BASELINE_MAX) -> None:
        size = bounded(max_size)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for group, vals in values.items():
                    old = self._get_live(rule_id, group) or []
                    self._put(rule_id, group, (old + [float(v) for v in vals])[-size:])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def baseline_delete(self, rule_id: str, group: str | None = None) -> None:
        with self._lock:
            if group is None:
                self._db.execute("DELETE FROM baseline WHERE rule_id = ?", (rule_id,))
            else:
                self._db.execute("DELETE FROM baseline WHERE rule_id = ? AND grp = ?", (rule_id, group))

    def purge_expired(self) -> int:
        """Drop expired baselines (reads ignore them anyway); returns how many went."""
        with self._lock:
            return self._db.execute("DELETE FROM baseline WHERE expires_at <= ?", (self._clock(),)).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
