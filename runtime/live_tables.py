"""Lookup tables at run time (LANGUAGE.md §9.2): Redis-hash tables, and reloads in streaming.

`TableWatcher` reads every table a program joins — files through `cepdsl.tables`,
Redis hashes (`from redis("cep:table:hosts")`: a hash of JSON objects keyed by the
table's key) from the Redis of `--state` or `--redis` — and, in streaming, reloads a
file table when the file changes and any table every `refresh`.  A reload is all or
nothing: the new rows are checked whole before the session sees them, and a reload
that fails keeps the previous version, logs why, and is reported by `health()`
(the API's `/cep/health`) and `counters` (its `/metrics`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from cepdsl.plan import Program, TablePlan
from cepdsl.tables import TableError, load_file_table, table_file_path, table_from_records

log = logging.getLogger("cep.tables")


def redis_url_of(state: str | None, redis: str | None) -> str | None:
    """The Redis a `redis(...)` table is read from: `--redis URL`, else a Redis `--state`."""
    if redis:
        return redis
    if state and state.startswith(("redis://", "rediss://", "unix://")):
        return state.split("?", 1)[0]
    return None


def load_redis_table(plan: TablePlan, client: Any) -> pl.DataFrame:
    """HGETALL of the table's hash: each field is a key, each value a JSON object of the
    other columns (a key column inside the object, if any, must agree with the field)."""
    where = f'Redis hash "{plan.path}"'
    try:
        raw = client.hgetall(plan.path)
    except Exception as e:  # noqa: BLE001 - any client error is a load error naming the hash
        raise TableError(f"{where}: cannot read table `{plan.name}`: {e}") from None
    records = []
    for k, v in raw.items():
        key = k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
        try:
            obj = json.loads(v)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TableError(f"{where}: field {key!r} is not JSON ({e})") from None
        if not isinstance(obj, dict):
            raise TableError(f"{where}: field {key!r} is not a JSON object")
        inner = obj.get(plan.key)
        if inner is not None and str(inner) != key:
            raise TableError(f"{where}: field {key!r} holds {plan.key} = {inner!r}")
        records.append({**obj, plan.key: key})
    return table_from_records(plan, records, where)


@dataclass
class TableStatus:
    plan: TablePlan
    rows: int = 0
    loaded_at: float | None = None
    version: Any = None  # the file's (mtime, size) when loaded
    reloads: int = 0
    failures: int = 0
    last_error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.plan.source,
            "path": self.plan.path,
            "rows": self.rows,
            "loaded_at": self.loaded_at,
            "reloads": self.reloads,
            "reload_failures": self.failures,
            "last_error": self.last_error,
        }


@dataclass
class TableWatcher:
    program: Program
    redis_url: str | None = None
    clock: Callable[[], float] = time.time
    status: dict[str, TableStatus] = field(default_factory=dict)
    _client: Any = None

    def __post_init__(self) -> None:
        self.status = {t.name: TableStatus(t) for t in self._used(self.program)}

    @staticmethod
    def _used(program: Program) -> list[TablePlan]:
        seen: dict[str, TablePlan] = {}
        for r in program.rules:
            for j in r.joins:
                seen.setdefault(j.table.name, j.table)
        return list(seen.values())

    def _redis(self) -> Any:
        if self._client is None:
            if self.redis_url is None:
                raise TableError("a table reads from Redis: give --redis URL (or a redis:// --state)")
            import redis

            self._client = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        return self._client

    def _version(self, plan: TablePlan) -> Any:
        if plan.source != "file":
            return None
        try:
            st = table_file_path(plan).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def read(self, plan: TablePlan) -> pl.DataFrame:
        if plan.source == "file":
            return load_file_table(plan)
        return load_redis_table(plan, self._redis())

    def load_all(self) -> dict[str, pl.DataFrame]:
        """Every table, for the session's start; a table that cannot be read raises TableError."""
        out = {}
        for name, st in self.status.items():
            frame = self.read(st.plan)
            st.rows, st.loaded_at, st.version = frame.height, self.clock(), self._version(st.plan)
            out[name] = frame
        return out

    def due(self, st: TableStatus) -> bool:
        if st.plan.source == "file":
            v = self._version(st.plan)
            if v is not None and v != st.version:
                return True
        return st.plan.refresh_us is not None and st.loaded_at is not None and self.clock() - st.loaded_at >= st.plan.refresh_us / 1e6

    def poll(self, session: Any) -> list[str]:
        """Reload the tables that are due into `session`; the names reloaded."""
        done = []
        for name, st in self.status.items():
            if not self.due(st):
                continue
            version = self._version(st.plan)
            try:
                frame = self.read(st.plan)
                session.set_table(name, frame)
            except TableError as e:
                st.failures += 1
                st.last_error = str(e)
                st.version = version  # not again until the file changes (or `refresh` passes)
                st.loaded_at = self.clock() if st.plan.refresh_us is not None else st.loaded_at
                log.error("table %s: reload failed, keeping the previous version: %s", name, e)
                continue
            st.rows, st.loaded_at, st.version, st.last_error = frame.height, self.clock(), version, None
            st.reloads += 1
            done.append(name)
            log.info("table %s: reloaded (%d rows)", name, frame.height)
        return done

    def fresh_for(self, program: Program) -> dict[str, pl.DataFrame]:
        """Rows of the tables `program` joins that are new or declared differently (a
        rule reload): read before the switch, so one that cannot load stops the reload."""
        out = {}
        for t in self._used(program):
            old = self.status.get(t.name)
            if old is None or old.plan != t:
                out[t.name] = self.read(t)
        return out

    def reprogram(self, program: Program) -> None:
        """After a rule reload: watch the tables the new program joins."""
        self.program = program
        old = self.status
        self.status = {t.name: old[t.name] if t.name in old and old[t.name].plan == t else TableStatus(t) for t in self._used(program)}
        for st in self.status.values():
            if st.loaded_at is None:
                st.loaded_at, st.version = self.clock(), self._version(st.plan)

    def health(self) -> dict[str, Any]:
        return {name: st.as_json() for name, st in self.status.items()}

    def counters(self) -> dict[str, int]:
        return {
            "table_reloads": sum(s.reloads for s in self.status.values()),
            "table_reload_failures": sum(s.failures for s in self.status.values()),
        }
