"""The durable outbox: every delivery is written down before anything is sent.

One row per (notification, channel). The row's unique key (notification id =
idempotency key, channel) doubles as the sent-log: a match re-emitted after a
crash finds its row already there (sent or pending) and is counted as a
suppressed duplicate instead of going out twice. A delivery is `pending` →
`inflight` (claimed by the worker) → `sent` | `failed` | `skipped` (its channel
was switched off: kept as a record, never sent later); a process killed with
-9 leaves `inflight` rows behind, which `recover()` turns back into `pending` at
the next start, so nothing enqueued is ever lost (at-least-once).

Embedded default: SQLite in WAL mode (crash-safe for a killed process with
synchronous=NORMAL; one notifier per file). `RedisOutbox` (redis_outbox.py)
has the same interface for shared deployments.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

PENDING, INFLIGHT, SENT, FAILED, SKIPPED = "pending", "inflight", "sent", "failed", "skipped"


@dataclass(frozen=True)
class NewDelivery:
    notification_id: str
    rule: str
    channel: str
    record: str  # encoded (records.encode_record): the match, never a rendered secret
    via: str | None = None  # the channel this is a fallback for


@dataclass(frozen=True)
class Delivery:
    id: int | str
    notification_id: str
    rule: str
    channel: str
    record: str
    via: str | None
    attempts: int
    created: float


class Outbox(Protocol):
    def enqueue(self, items: list[NewDelivery], now: float) -> int: ...
    def claim(self, now: float, limit: int) -> list[Delivery]: ...
    def mark_sent(self, ids: Iterable[int | str], now: float) -> None: ...
    def reschedule(self, delivery: Delivery, next_at: float, attempts: int, error: str, now: float) -> None: ...
    def mark_failed(self, delivery: Delivery, attempts: int, reason: str, now: float, fallback: str | None = None) -> bool: ...
    def mark_skipped(self, delivery: Delivery, reason: str, now: float) -> None: ...
    def recover(self, now: float) -> int: ...
    def depth(self) -> int: ...
    def next_due(self) -> float | None: ...
    def status_of(self, notification_id: str, channel: str) -> str | None: ...
    def failures(self, limit: int = 100) -> list[dict[str, Any]]: ...
    def prune(self, before: float) -> int: ...
    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    channel TEXT NOT NULL,
    record TEXT NOT NULL,
    via TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    last_error TEXT,
    UNIQUE (notification_id, channel)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_at);
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id INTEGER NOT NULL,
    notification_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    channel TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    fallback TEXT,
    at REAL NOT NULL
);
"""


class SqliteOutbox:
    """SQLite outbox; safe to use from several threads (one connection each)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (the OS has the pages); only power loss
            # can drop the last transactions, which is the usual trade for a local queue.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    def enqueue(self, items: list[NewDelivery], now: float) -> int:
        """Insert new deliveries; returns how many were new (the others were duplicates)."""
        if not items:
            return 0
        db = self._db()
        before = db.total_changes
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO deliveries (notification_id, rule, channel, record, via, status,"
                " attempts, next_at, created, updated) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                [(d.notification_id, d.rule, d.channel, d.record, d.via, now, now, now) for d in items],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return db.total_changes - before

    def claim(self, now: float, limit: int) -> list[Delivery]:
        rows = (
            self._db()
            .execute(
                "UPDATE deliveries SET status = 'inflight', updated = ? WHERE id IN ("
                " SELECT id FROM deliveries WHERE status = 'pending' AND next_at <= ?"
                " ORDER BY next_at, id LIMIT ?)"
                " RETURNING id, notification_id, rule, channel, record, via, attempts, created",
                (now, now, limit),
            )
            .fetchall()
        )
        return sorted((Delivery(*r) for r in rows), key=lambda d: d.id)  # type: ignore[arg-type, return-value]

    def mark_sent(self, ids: Iterable[int | str], now: float) -> None:
        """Mark a batch sent in one transaction (autocommit would make each row its own)."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "UPDATE deliveries SET status = 'sent', updated = ?, last_error = NULL WHERE id = ?", [(now, i) for i in ids]
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def reschedule(self, delivery: Delivery, next_at: float, attempts: int, error: str, now: float) -> None:
        self._db().execute(
            "UPDATE deliveries SET status = 'pending', next_at = ?, attempts = ?, last_error = ?, updated = ? WHERE id = ?",
            (next_at, attempts, error, now, delivery.id),
        )

    def mark_failed(self, delivery: Delivery, attempts: int, reason: str, now: float, fallback: str | None = None) -> bool:
        """Record the final failure (queryable); enqueue the fallback delivery. True if one was enqueued."""
        db = self._db()
        added = False
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "UPDATE deliveries SET status = 'failed', attempts = ?, last_error = ?, updated = ? WHERE id = ?",
                (attempts, reason, now, delivery.id),
            )
            db.execute(
                "INSERT INTO failures (delivery_id, notification_id, rule, channel, reason, attempts,"
                " fallback, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (delivery.id, delivery.notification_id, delivery.rule, delivery.channel, reason, attempts, fallback, now),
            )
            if fallback is not None:
                added = (
                    db.execute(
                        "INSERT OR IGNORE INTO deliveries (notification_id, rule, channel, record, via, status,"
                        " attempts, next_at, created, updated) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
                        (delivery.notification_id, delivery.rule, fallback, delivery.record, delivery.channel, now, now, now),
                    ).rowcount
                    > 0
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return added

    def mark_skipped(self, delivery: Delivery, reason: str, now: float) -> None:
        """Final without sending (its channel is switched off): not a failure, no fallback."""
        self._db().execute(
            "UPDATE deliveries SET status = 'skipped', last_error = ?, updated = ? WHERE id = ?", (reason, now, delivery.id)
        )

    def recover(self, now: float) -> int:
        """Deliveries a dead process had claimed go back to pending."""
        cur = self._db().execute(
            "UPDATE deliveries SET status = 'pending', next_at = ?, updated = ? WHERE status = 'inflight'", (now, now)
        )
        return cur.rowcount

    def depth(self) -> int:
        (n,) = self._db().execute("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'inflight')").fetchone()
        return int(n)

    def next_due(self) -> float | None:
        (t,) = self._db().execute("SELECT MIN(next_at) FROM deliveries WHERE status = 'pending'").fetchone()
        return t

    def status_of(self, notification_id: str, channel: str) -> str | None:
        row = (
            self._db()
            .execute("SELECT status FROM deliveries WHERE notification_id = ? AND channel = ?", (notification_id, channel))
            .fetchone()
        )
        return row[0] if row else None

    def failures(self, limit: int = 100) -> list[dict[str, Any]]:
        cur = self._db().execute(
            "SELECT notification_id, rule, channel, reason, attempts, fallback, at FROM failures ORDER BY id DESC LIMIT ?", (limit,)
        )
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def prune(self, before: float) -> int:
        """Forget finished deliveries older than `before` (the sent-log's memory horizon)."""
        db = self._db()
        n = db.execute("DELETE FROM deliveries WHERE status IN ('sent', 'failed', 'skipped') AND updated < ?", (before,)).rowcount
        db.execute("DELETE FROM failures WHERE at < ?", (before,))
        return n

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                try:
                    db.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
        self._local = threading.local()
