"""The alert history in Redis (when several processes share it, or Redis is the only store).

    {prefix}alerts:seq                 INCR: alert ids
    {prefix}alert:{id}                 JSON of the alert, expiring after the retention
    {prefix}alerts:by:all              zset id → id (newest first by score)
    {prefix}alerts:by:rule:{rule}      zset id → id
    {prefix}alerts:by:grp:{group}      zset id → id
    {prefix}alerts:by:sev:{severity}   zset id → id
    {prefix}alerts:ts                  zset id → event time (µs)
    {prefix}alerts:emitted             zset id → emission time (µs), for retention and "today"

A page walks the most selective index newest first and checks the other filters on
the fetched alerts; the time-range summary reads the range from the ts index.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from runtime.history.alert_rows import ALERT_COLUMNS
from runtime.history.store import DEFAULT_RETENTION_S, Alert, AlertFilter, AlertHistory, AlertRow


class RedisHistory(AlertHistory):
    def __init__(self, client: Any, prefix: str = "cep:", retention_s: float = DEFAULT_RETENTION_S) -> None:
        self.r = client
        self.p = prefix
        self.retention_s = retention_s

    def _k(self, *parts: str) -> str:
        return self.p + ":".join(parts)

    def add(self, rows: list[AlertRow], now: float | None = None) -> None:
        self.add_rows(
            [
                (r.rule, r.severity, r.ts_us, r.group, r.key, r.record_json, r.silenced, int(r.test), json.dumps(r.channels))
                for r in rows
            ],
            now,
        )

    def add_rows(self, rows: list[tuple[Any, ...]], now: float | None = None) -> None:
        """Rows of `runtime.history.alert_rows.alert_rows`, all emitted at `now`."""
        emitted = int((time.time() if now is None else now) * 1_000_000)
        self._add(rows, [emitted] * len(rows))

    def add_frame(self, frame: Any, now: float | None = None) -> None:
        """An alert frame (`runtime.history.alert_rows.batch_frame`, the writer's path): one pipeline."""
        if frame.height == 0:
            return
        if "emitted_us" in frame.columns:
            emitted = frame.get_column("emitted_us").to_list()
        else:
            emitted = [int((time.time() if now is None else now) * 1_000_000)] * frame.height
        self._add(frame.select(ALERT_COLUMNS).rows(), emitted)

    def _add(self, rows: list[tuple[Any, ...]], emitted: list[int]) -> None:
        if not rows:
            return
        last = self.r.incrby(self._k("alerts", "seq"), len(rows))
        ttl = max(1, int(self.retention_s))
        pipe = self.r.pipeline(transaction=False)
        dumps = json.dumps
        k_all, k_ts, k_emitted = self._k("alerts", "by", "all"), self._k("alerts", "ts"), self._k("alerts", "emitted")
        for i, (rule, sev, ts, grp, key, record, silenced, test, channels) in enumerate(rows):
            aid = last - len(rows) + 1 + i
            # The record and channels are JSON already: embedded as they are, not encoded again as strings.
            doc = (
                f'{{"id":{aid},"rule":{dumps(rule)},"severity":{dumps(sev)},"ts_us":{dumps(ts)},'
                f'"emitted_us":{emitted[i]},"group":{dumps(grp)},"key":{dumps(key)},"record":{record},'
                f'"silenced":{dumps(silenced)},"test":{"true" if test else "false"},"channels":{channels}}}'
            )
            pipe.set(self._k("alert", str(aid)), doc, ex=ttl)
            pipe.zadd(k_all, {aid: aid})
            pipe.zadd(self._k("alerts", "by", "rule", rule), {aid: aid})
            pipe.zadd(self._k("alerts", "by", "grp", grp), {aid: aid})
            pipe.zadd(self._k("alerts", "by", "sev", sev), {aid: aid})
            if ts is not None:
                pipe.zadd(k_ts, {aid: ts})
            pipe.zadd(k_emitted, {aid: emitted[i]})
        pipe.execute()

    @staticmethod
    def _alert(raw: bytes | str) -> Alert:
        d = json.loads(raw)
        record, channels = d["record"], d["channels"]
        # Alerts stored before the record was embedded hold it (and the channels) as JSON strings.
        return Alert(
            d["id"],
            d["rule"],
            d["severity"],
            d["ts_us"],
            d["emitted_us"],
            d["group"],
            d["key"],
            json.loads(record) if isinstance(record, str) else record,
            d["silenced"],
            d["test"],
            json.loads(channels) if isinstance(channels, str) else channels,
        )

    def _fetch(self, ids: list[int]) -> list[Alert]:
        if not ids:
            return []
        raws = self.r.mget([self._k("alert", str(i)) for i in ids])
        return [self._alert(x) for x in raws if x is not None]

    def _page(self, f: AlertFilter, cursor: int | None, limit: int) -> tuple[list[Alert], int | None]:
        if f.rule is not None:
            index = self._k("alerts", "by", "rule", f.rule)
        elif f.group is not None:
            index = self._k("alerts", "by", "grp", f.group)
        elif f.severity is not None:
            index = self._k("alerts", "by", "sev", f.severity)
        else:
            index = self._k("alerts", "by", "all")
        out: list[Alert] = []
        top = "+inf" if cursor is None else f"({cursor}"
        while len(out) <= limit:
            ids = [int(x) for x in self.r.zrevrangebyscore(index, top, "-inf", start=0, num=max(limit * 2, 100))]
            if not ids:
                break
            out += [a for a in self._fetch(ids) if f.admits(a)]
            top = f"({ids[-1]}"
        more = len(out) > limit
        out = out[:limit]
        return out, (out[-1].id if more and out else None)

    def _in_range(self, f: AlertFilter) -> Iterator[Alert]:
        """The alerts the filter admits, read from the event-time index over its range, a thousand at a time."""
        lo = "-inf" if f.since_us is None else f.since_us
        hi = "+inf" if f.until_us is None else f"({f.until_us}"
        ids = [int(x) for x in self.r.zrangebyscore(self._k("alerts", "ts"), lo, hi)]
        for start in range(0, len(ids), 1000):
            yield from (a for a in self._fetch(ids[start : start + 1000]) if f.admits(a))

    def _summary(self, f: AlertFilter, series: bool) -> tuple[list[tuple[str, str, int]], list[tuple[int, int]]]:
        counts: dict[tuple[str, str], int] = {}
        minutes: dict[int, int] = {}
        for a in self._in_range(f):
            counts[(a.rule, a.severity)] = counts.get((a.rule, a.severity), 0) + 1
            if a.ts_us is not None:
                m = a.ts_us // 60_000_000 * 60_000_000
                minutes[m] = minutes.get(m, 0) + 1
        return ([(r, s, n) for (r, s), n in sorted(counts.items())], sorted(minutes.items()))

    def _minutes_by_severity(self, f: AlertFilter) -> list[tuple[int, str, int]]:
        got: dict[tuple[int, str], int] = {}
        for a in self._in_range(f):
            if a.ts_us is not None:
                key = (a.ts_us // 60_000_000 * 60_000_000, a.severity)
                got[key] = got.get(key, 0) + 1
        return [(m, s, n) for (m, s), n in sorted(got.items())]

    def count_since(self, emitted_us: int) -> int:
        ids = [int(x) for x in self.r.zrangebyscore(self._k("alerts", "emitted"), emitted_us, "+inf")]
        return sum(1 for a in self._fetch(ids) if not a.test) if ids else 0

    def get(self, alert_id: int) -> Alert | None:
        got = self._fetch([alert_id])
        return got[0] if got else None

    def delete(self, alert_id: int) -> bool:
        a = self.get(alert_id)
        if a is None:
            return False
        pipe = self.r.pipeline(transaction=False)
        pipe.delete(self._k("alert", str(alert_id)))
        for index in (
            ("alerts", "by", "all"),
            ("alerts", "by", "rule", a.rule),
            ("alerts", "by", "grp", a.group),
            ("alerts", "by", "sev", a.severity),
            ("alerts", "ts"),
            ("alerts", "emitted"),
        ):
            pipe.zrem(self._k(*index), alert_id)
        pipe.execute()
        return True

    def prune(self, now: float | None = None) -> int:
        before = int(((time.time() if now is None else now) - self.retention_s) * 1_000_000)
        ids = [int(x) for x in self.r.zrangebyscore(self._k("alerts", "emitted"), "-inf", f"({before}")]
        n = 0
        for aid in ids:
            if self.delete(aid):
                n += 1
            else:  # expired already: drop it from the indexes it is still in
                self.r.zrem(self._k("alerts", "emitted"), aid)
                self.r.zrem(self._k("alerts", "ts"), aid)
                self.r.zrem(self._k("alerts", "by", "all"), aid)
        return n

    def ping(self) -> None:
        self.r.ping()

    def close(self) -> None:
        self.r.close()
