"""One small SQL layer for the stores that keep records (rule catalogue, alert history).

    sqlite:PATH              a local file in WAL mode (the embedded default)
    memory                   SQLite in memory, this process only
    postgresql://USER@HOST:PORT/DB   PostgreSQL through psycopg 3

Queries are written once with `?` placeholders and the few dialect differences
(auto-increment keys, upserts) are spelled by `Dialect`; every call takes the
lock, so one connection serves the engine thread and the API's threads.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class SqlDb:
    """A connection with a lock; `?` placeholders on both dialects."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._lock = threading.RLock()
        if spec.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.dialect = "postgresql"
            self._conn: Any = psycopg.connect(spec, autocommit=True)
        else:
            path = ":memory:" if spec == "memory" else spec.removeprefix("sqlite:")
            if not path:
                raise ValueError("sqlite: needs a path, e.g. sqlite:cep-catalogue.sqlite")
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.dialect = "sqlite"
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            if path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")

    @property
    def serial(self) -> str:
        """An auto-increment integer primary key."""
        return "BIGSERIAL PRIMARY KEY" if self.dialect == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"

    @property
    def blob(self) -> str:
        return "BYTEA" if self.dialect == "postgresql" else "BLOB"

    def sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def script(self, statements: Iterable[str]) -> None:
        with self._lock:
            for s in statements:
                self._conn.execute(s)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        with self._lock:
            cur = self._conn.execute(self.sql(sql), tuple(params))
            return cur.rowcount

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        """An INSERT into a table with an auto-increment `id`; returns the new id."""
        with self._lock:
            if self.dialect == "postgresql":
                return self._conn.execute(self.sql(sql) + " RETURNING id", tuple(params)).fetchone()[0]
            return self._conn.execute(sql, tuple(params)).lastrowid

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._lock, self.transaction() as cur:
            cur.executemany(self.sql(sql), list(rows))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(self.sql(sql), tuple(params)).fetchall())

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        got = self.rows(sql, params)
        return got[0] if got else None

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor whose statements commit together (or not at all)."""
        with self._lock:
            if self.dialect == "postgresql":
                with self._conn.transaction():
                    yield self._conn.cursor()
                return
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def ping(self) -> None:
        self.rows("SELECT 1")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def beside(state_spec: str | None, name: str) -> str:
    """The default spec of a record store next to the engine state: `sqlite:DIR/NAME`
    beside a SQLite state, memory for memory; for a Redis state a local SQLite file in the
    working directory (Redis or PostgreSQL for these stores only when asked for)."""
    spec = state_spec or "sqlite:.cep-state.sqlite"
    if spec == "memory":
        return "memory"
    if spec.startswith(("redis://", "rediss://", "unix://")):
        return f"sqlite:{name}"
    path = spec.removeprefix("sqlite:")
    return "sqlite:" + os.path.join(os.path.dirname(path), name)
