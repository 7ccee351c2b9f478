"""Alert history: every emitted match, kept for `retention` (default 7 days).

One row per match record: its rule, severity, event time, group key, the
record as JSON (times RFC 3339), the notification's idempotency key (to find its
deliveries in the outbox), whether it was silenced and whether it came from a
`trigger` test.  Listing is newest first with an opaque cursor (the last row's
id), so a page costs one index range scan however deep it is.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from runtime.sqldb import SqlDb

DEFAULT_RETENTION_S = 7 * 86400.0
_EPOCH = dt.datetime(1970, 1, 1)


@dataclass(frozen=True)
class Alert:
    id: int
    rule: str
    severity: str
    ts_us: int | None
    emitted_us: int
    group: str
    key: str
    record: dict[str, Any]
    silenced: str | None
    test: bool
    channels: list[str]


@dataclass(frozen=True)
class AlertRow:
    """What the engine hands the history for one match (before it has an id)."""

    rule: str
    severity: str
    ts_us: int | None
    group: str
    key: str
    record_json: str
    silenced: str | None
    test: bool
    channels: list[str]


def to_us(value: Any) -> int | None:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return (value - _EPOCH) // dt.timedelta(microseconds=1)
    return None


@dataclass(frozen=True)
class AlertFilter:
    """Which alerts a page or a count covers: a field left None is no condition; the event
    time is in [since_us, until_us)."""

    rule: str | None = None
    severity: str | None = None
    group: str | None = None
    since_us: int | None = None
    until_us: int | None = None

    def admits(self, a: Alert) -> bool:
        """The filter over an alert already fetched (Redis walks an index and checks the rest)."""
        return (
            (self.severity is None or a.severity == self.severity)
            and (self.group is None or a.group == self.group)
            and (self.rule is None or a.rule == self.rule)
            and (self.since_us is None or (a.ts_us is not None and a.ts_us >= self.since_us))
            and (self.until_us is None or (a.ts_us is not None and a.ts_us < self.until_us))
        )


class AlertHistory(ABC):
    """The history's keyword API (the HTTP API's and the console's), the same over every
    store: a store answers it for an `AlertFilter` (`_page`, `_summary`, `_minutes_by_severity`)."""

    def query(
        self,
        *,
        rule: str | None = None,
        severity: str | None = None,
        group: str | None = None,
        since_us: int | None = None,
        until_us: int | None = None,
        cursor: int | None = None,
        limit: int = 50,
    ) -> tuple[list[Alert], int | None]:
        """A page of alerts, newest first, and the cursor of the next page (None: the last page)."""
        return self._page(AlertFilter(rule, severity, group, since_us, until_us), cursor, limit)

    def summary(
        self,
        *,
        since_us: int | None,
        until_us: int | None,
        rule: str | None = None,
        severity: str | None = None,
        series: bool = True,
    ) -> tuple[list[tuple[str, str, int]], list[tuple[int, int]]]:
        """(rule, severity, count) over the range, and (minute start µs, count) per minute
        (not counted with `series=False`: a scan of the range saved)."""
        return self._summary(AlertFilter(rule, severity, None, since_us, until_us), series)

    def minutes_by_severity(
        self, *, since_us: int | None, until_us: int | None, rule: str | None = None, severity: str | None = None
    ) -> list[tuple[int, str, int]]:
        """(minute start µs, severity, count): the console's chart of matches by severity."""
        return self._minutes_by_severity(AlertFilter(rule, severity, None, since_us, until_us))

    @abstractmethod
    def _page(self, f: AlertFilter, cursor: int | None, limit: int) -> tuple[list[Alert], int | None]: ...

    @abstractmethod
    def _summary(self, f: AlertFilter, series: bool) -> tuple[list[tuple[str, str, int]], list[tuple[int, int]]]: ...

    @abstractmethod
    def _minutes_by_severity(self, f: AlertFilter) -> list[tuple[int, str, int]]: ...


class SqlHistory(AlertHistory):
    def __init__(self, db: SqlDb, retention_s: float = DEFAULT_RETENTION_S) -> None:
        self.db = db
        self.retention_s = retention_s
        # count_since: (since, last id counted, count, when counted in full); see there.
        self._count_cache: tuple[int, int, int, float] | None = None
        self._count_lock = threading.Lock()
        self.deletions = 0  # bumped by delete/prune: what is counted from the rows so far is stale
        self.rollup: Any = None  # runtime.history.rollup.MinuteRollup, made when first asked
        db.script(
            [
                f"""CREATE TABLE IF NOT EXISTS cep_alerts (
                id {db.serial}, rule TEXT NOT NULL, severity TEXT NOT NULL, ts_us BIGINT,
                emitted_us BIGINT NOT NULL, grp TEXT NOT NULL, nkey TEXT NOT NULL, record TEXT NOT NULL,
                silenced TEXT, test INTEGER NOT NULL, channels TEXT NOT NULL)""",
                "CREATE INDEX IF NOT EXISTS cep_alerts_rule ON cep_alerts (rule, id)",
                # Severity alone, and the hourly retention prune, scan: every index costs each insert.
                "CREATE INDEX IF NOT EXISTS cep_alerts_ts ON cep_alerts (ts_us)",
                "CREATE INDEX IF NOT EXISTS cep_alerts_grp ON cep_alerts (grp, id)",
            ]
        )

    _COLS = "id, rule, severity, ts_us, emitted_us, grp, nkey, record, silenced, test, channels"
    _INSERT = (
        "INSERT INTO cep_alerts (rule, severity, ts_us, emitted_us, grp, nkey, record, silenced, test, channels) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )

    @staticmethod
    def _alert(row: tuple[Any, ...]) -> Alert:
        id_, rule, sev, ts, emitted, grp, key, record, silenced, test, channels = row
        return Alert(
            int(id_),
            rule,
            sev,
            None if ts is None else int(ts),
            int(emitted),
            grp,
            key,
            json.loads(record),
            silenced,
            bool(test),
            json.loads(channels),
        )

    def add(self, rows: list[AlertRow], now: float | None = None) -> None:
        emitted = int((time.time() if now is None else now) * 1_000_000)
        self.db.many(
            self._INSERT,
            [
                (r.rule, r.severity, r.ts_us, emitted, r.group, r.key, r.record_json, r.silenced, int(r.test), json.dumps(r.channels))
                for r in rows
            ],
        )

    def add_rows(self, rows: list[tuple[Any, ...]], now: float | None = None) -> None:
        """Rows from `runtime.history.alert_rows.alert_rows` (the writer thread's path)."""
        if not rows:
            return
        emitted = int((time.time() if now is None else now) * 1_000_000)
        self.db.many(self._INSERT, [(r[0], r[1], r[2], emitted, *r[3:]) for r in rows])

    def add_frame(self, frame: Any, now: float | None = None) -> None:
        """An alert frame (`runtime.history.alert_rows.alert_frame` / `batch_frame`, the writer's path) in
        one transaction: its rows come out of Polars as tuples, no per-match Python work here.
        PostgreSQL takes them through COPY (one round trip, no statement per row)."""
        if frame.height == 0:
            return
        import polars as pl

        if "emitted_us" not in frame.columns:
            emitted = int((time.time() if now is None else now) * 1_000_000)
            frame = frame.with_columns(pl.lit(emitted, pl.Int64).alias("emitted_us"))
        rows = frame.select("rule", "severity", "ts_us", "emitted_us", "grp", "nkey", "record", "silenced", "test", "channels").rows()
        if self.db.dialect == "postgresql":
            with (
                self.db.transaction() as cur,
                cur.copy(
                    "COPY cep_alerts (rule, severity, ts_us, emitted_us, grp, nkey, record, silenced, test, channels) FROM STDIN"
                ) as copy,
            ):
                for r in rows:
                    copy.write_row(r)
            return
        self.db.many(self._INSERT, rows)

    def _page(self, f: AlertFilter, cursor: int | None, limit: int) -> tuple[list[Alert], int | None]:
        where, params = self._where(f)
        if cursor is not None:
            where.append("id < ?")
            params.append(cursor)
        sql = f"SELECT {self._COLS} FROM cep_alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = [self._alert(r) for r in self.db.rows(sql, [*params, limit + 1])]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (rows[-1].id if more and rows else None)

    @staticmethod
    def _where(f: AlertFilter) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        for col, value in (("rule", f.rule), ("severity", f.severity), ("grp", f.group)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        if f.since_us is not None:
            where.append("ts_us >= ?")
            params.append(f.since_us)
        if f.until_us is not None:
            where.append("ts_us < ?")
            params.append(f.until_us)
        return where, params

    def _summary(self, f: AlertFilter, series: bool) -> tuple[list[tuple[str, str, int]], list[tuple[int, int]]]:
        where, params = self._where(f)
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        counts = self.db.rows(
            f"SELECT rule, severity, COUNT(*) FROM cep_alerts{cond} GROUP BY rule, severity ORDER BY rule, severity", params
        )
        if not series:
            return [(r, s, int(n)) for r, s, n in counts], []
        minute = "(ts_us / 60000000) * 60000000"
        per_minute = self.db.rows(
            f"SELECT {minute} AS m, COUNT(*) FROM cep_alerts{cond}"
            f"{' AND' if cond else ' WHERE'} ts_us IS NOT NULL GROUP BY m ORDER BY m",
            params,
        )
        return ([(r, s, int(n)) for r, s, n in counts], [(int(m), int(n)) for m, n in per_minute])

    def _minutes_by_severity(self, f: AlertFilter) -> list[tuple[int, str, int]]:
        # One scan, grouped by minute and severity.
        where, params = self._where(f)
        where.append("ts_us IS NOT NULL")
        minute = "(ts_us / 60000000) * 60000000"
        rows = self.db.rows(
            f"SELECT {minute} AS m, severity, COUNT(*) FROM cep_alerts WHERE {' AND '.join(where)} GROUP BY m, severity ORDER BY m",
            params,
        )
        return [(int(m), s, int(n)) for m, s, n in rows]

    def count_since(self, emitted_us: int) -> int:
        """Non-test rows emitted since `emitted_us` (the console's "matches today", asked every
        few seconds). emitted_us has no index (every index costs each insert), so the range is
        counted in full once, then only the rows added since (a primary-key range); in full
        again after a delete here and every minute (another process's deletes, rows another
        writer committed late)."""
        with self._count_lock:
            cached = self._count_cache
            now = time.monotonic()
            top = self.db.one("SELECT COALESCE(MAX(id), 0) FROM cep_alerts")
            top_id = int(top[0]) if top else 0
            if cached is not None and cached[0] == emitted_us and now - cached[3] < 60 and cached[1] <= top_id:
                row = self.db.one(
                    "SELECT COUNT(*) FROM cep_alerts WHERE id > ? AND id <= ? AND emitted_us >= ? AND test = 0",
                    (cached[1], top_id, emitted_us),
                )
                n = cached[2] + (int(row[0]) if row else 0)
                self._count_cache = (emitted_us, top_id, n, cached[3])
                return n
            row = self.db.one("SELECT COUNT(*) FROM cep_alerts WHERE id <= ? AND emitted_us >= ? AND test = 0", (top_id, emitted_us))
            n = int(row[0]) if row else 0
            self._count_cache = (emitted_us, top_id, n, now)
            return n

    def get(self, alert_id: int) -> Alert | None:
        row = self.db.one(f"SELECT {self._COLS} FROM cep_alerts WHERE id = ?", (alert_id,))
        return None if row is None else self._alert(row)

    def delete(self, alert_id: int) -> bool:
        self._count_cache = None
        self.deletions += 1
        return self.db.execute("DELETE FROM cep_alerts WHERE id = ?", (alert_id,)) > 0

    def prune(self, now: float | None = None) -> int:
        before = int(((time.time() if now is None else now) - self.retention_s) * 1_000_000)
        self._count_cache = None
        self.deletions += 1
        return self.db.execute("DELETE FROM cep_alerts WHERE emitted_us < ?", (before,))

    def ping(self) -> None:
        self.db.ping()

    def close(self) -> None:
        self.db.close()
