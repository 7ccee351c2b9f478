"""Figures for the stats routes and /metrics, read from the running engine at request time.

"Today" is the UTC day.  Counters the engine keeps since start (events in,
deliveries) are counted for today from a snapshot taken at the first request of
the day (or at start): a process started today counts from its start.
Matches today come from the alert history, so they survive a restart.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from runtime.api.models import RuleMetrics, StatsSummary, StreamOut
from runtime.control import ControlPlane, rfc3339, rfc3339_s


def engine_stats(o: ControlPlane) -> dict[str, Any]:
    if o.engine is None or not hasattr(o.engine, "stats"):
        return {"engine": {}, "streams": {}, "rules": {}}
    got = o.engine.stats()
    return got if "rules" in got else {"engine": {}, "streams": {}, "rules": got}


def _max_eval_ms(o: ControlPlane, rule_id: str) -> float:
    """The slowest of the rule's recent batch timings, read from the session's per-rule stats
    (one read of a numpy array; safe from another thread)."""
    session = getattr(o.engine, "session", None)
    run = getattr(session, "_rules", {}).get(rule_id) if session is not None else None
    if run is None:
        return 0.0
    n = min(run.stats.batches, len(run.stats.recent_s))
    return float(run.stats.recent_s[:n].max()) * 1e3 if n else 0.0


def delivery_counts(o: ControlPlane) -> dict[str, dict[str, int]]:
    """rule → {status: count} from the outbox (SQLite outbox; others: empty)."""
    outbox = getattr(o.notifier, "_outbox", None)
    db = getattr(outbox, "_db", None)
    if db is None:
        return {}
    out: dict[str, dict[str, int]] = {}
    try:
        for rule, status, n in db().execute("SELECT rule, status, COUNT(*) FROM deliveries GROUP BY rule, status"):
            out.setdefault(rule, {})[status] = int(n)
    except Exception:  # noqa: BLE001 - figures are best effort; the engine never waits for them
        return {}
    return out


def rule_metrics(o: ControlPlane, rule_id: str, deliveries: dict[str, dict[str, int]] | None = None) -> RuleMetrics:
    return all_rule_metrics(o, [rule_id], deliveries)[0]


def _rule_rows(o: ControlPlane, rule_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The engine's per-rule stats rows; for a few rules read from those rules alone (the rule
    page asks for one; the whole engine's read computes every rule's p99)."""
    session = getattr(o.engine, "session", None)
    runs = getattr(session, "_rules", None)
    if runs is None or len(rule_ids) > 8:
        return engine_stats(o).get("rules", {})
    out = {}
    for rid in rule_ids:
        run = runs.get(rid)
        if run is not None:
            out[rid] = {**run.stats.summary(), "state_bytes": getattr(o.engine, "state_bytes", {}).get(rid, 0)}
    return out


def all_rule_metrics(o: ControlPlane, rule_ids: list[str], deliveries: dict[str, dict[str, int]] | None = None) -> list[RuleMetrics]:
    """Per-rule figures for many rules from one read of each source: the engine's stats, the
    outbox's counts, the latest failures (at 1,000 rules, reading them once per rule was over
    a minute; this is one pass)."""
    stats = _rule_rows(o, rule_ids)
    plans = {r.id: r for r in o.program.rules} if o.program else {}
    last_rows = getattr(o.engine, "_last_rows_at", {}) if o.engine is not None else {}
    counts_by_rule = deliveries if deliveries is not None else delivery_counts(o)
    failures: dict[str, list[str]] = {}
    if o.notifier is not None:
        try:
            for f in o.notifier.failures(200):
                failures.setdefault(f.get("rule"), []).append(f"{f['channel']}: {f['reason']}")
        except Exception:  # noqa: BLE001
            pass
    engine_errors: dict[str, list[str]] = {}
    for e in list(getattr(o.engine, "errors", [])):
        if e.startswith("rule "):
            engine_errors.setdefault(e[5:].partition(":")[0], []).append(e)
    out = []
    for rule_id in rule_ids:
        row = stats.get(rule_id, {})
        m = RuleMetrics(id=rule_id)
        for k in ("events_in", "passed", "matches", "suppressed", "late", "batches", "state_bytes"):
            setattr(m, k, int(row.get(k, 0) or 0))
        m.mean_ms = float(row.get("mean_eval_ms", 0.0))
        m.p99_ms = float(row.get("p99_eval_ms", 0.0))
        m.max_ms = _max_eval_ms(o, rule_id)
        plan = plans.get(rule_id)
        if plan is not None and o.engine is not None:
            last = last_rows.get(plan.stream.name)
            m.last_execution = rfc3339_s(last) if m.batches else None
        counts = counts_by_rule.get(rule_id, {})
        m.deliveries_sent, m.deliveries_failed = counts.get("sent", 0), counts.get("failed", 0)
        done = m.deliveries_sent + m.deliveries_failed
        m.delivery_success_rate = (m.deliveries_sent / done) if done else None
        m.recent_errors = failures.get(rule_id, [])[:10]
        m.recent_errors += engine_errors.get(rule_id, [])[-10:]
        out.append(m)
    return out


class Today:
    """Counts since the start of the UTC day, from counters that only grow."""

    def __init__(self) -> None:
        self.day: dt.date | None = None
        self.base: dict[str, int] = {}
        self._lock = threading.Lock()

    def since_midnight(self, current: dict[str, int]) -> dict[str, int]:
        today = dt.datetime.now(dt.timezone.utc).date()
        with self._lock:
            if self.day != today:
                # First look of the day: counts before it are yesterday's (or, at start, none).
                self.base = dict(current) if self.day is not None else dict.fromkeys(current, 0)
                self.day = today
            return {k: max(0, v - self.base.get(k, 0)) for k, v in current.items()}


def summary(o: ControlPlane, today: Today) -> StatsSummary:
    stats = engine_stats(o)
    eng = stats.get("engine", {})
    notif = o.notifier.stats() if o.notifier is not None else {}
    counts = today.since_midnight(
        {"events": int(eng.get("rows", 0)), "sent": int(notif.get("sent", 0)), "failed": int(notif.get("failed", 0))}
    )
    midnight = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    midnight_us = int(midnight.timestamp() * 1_000_000)
    matches_today = o.history.count_since(midnight_us) if o.history is not None else int(eng.get("matches", 0))
    rules = stats.get("rules", {})
    means = [r.get("mean_eval_ms", 0.0) for r in rules.values() if r.get("batches")]
    p99s = [r.get("p99_eval_ms", 0.0) for r in rules.values() if r.get("batches")]
    views = o.rule_views()
    return StatsSummary(
        day=midnight.date().isoformat(),
        running=o.engine is not None,
        uptime_s=round(time.time() - o.started_at, 3),
        active_rules=sum(1 for v in views if v.loaded),
        disabled_rules=sum(1 for v in views if not v.enabled),
        events_today=counts["events"],
        matches_today=matches_today,
        alerts_sent_today=counts["sent"],
        alerts_failed_today=counts["failed"],
        dead_letters=int(eng.get("dead_letters", 0)),
        mean_eval_ms=round(sum(means) / len(means), 4) if means else 0.0,
        p99_eval_ms=round(max(p99s), 4) if p99s else 0.0,
    )


class Rates:
    """Events per second per stream, over the interval since the previous look (at least 1 s)."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[float, int]] = {}
        self.rate: dict[str, float] = {}

    def update(self, name: str, count: int) -> float:
        now = time.monotonic()
        prev = self.last.get(name)
        if prev is None:
            self.last[name] = (now, count)
            return 0.0
        if now - prev[0] >= 1.0:
            self.rate[name] = (count - prev[1]) / (now - prev[0])
            self.last[name] = (now, count)
        return round(self.rate.get(name, 0.0), 3)


def streams(o: ControlPlane, rates: Rates) -> list[StreamOut]:
    program = o.program
    if program is None:
        return []
    stats = engine_stats(o)
    per_rule = stats.get("rules", {})
    session = getattr(o.engine, "session", None)
    progresses = session.progresses() if session is not None else {}
    now = time.time()
    out = []
    for s in program.streams:
        p = progresses.get(s.name)
        events = max((r.get("events_in", 0) for r in per_rule.values() if r.get("stream") == s.name), default=0)
        events = max(events, o.ingest_counts.get(s.name, 0))
        wm = rfc3339(p.watermark_us) if p is not None else None
        late = sum(int(r.get("late", 0)) for r in per_rule.values() if r.get("stream") == s.name)
        lag = None
        if p is not None and wm is not None:
            lag = round(now - p.watermark_us / 1e6, 3)
        idle = stats.get("streams", {}).get(s.name, {}).get("idle_s")
        out.append(
            StreamOut(
                name=s.name,
                events_in=int(events),
                events_per_s=rates.update(s.name, int(events)),
                watermark=wm,
                max_event_time=rfc3339(p.max_ts_us) if p is not None else None,
                lag_s=lag,
                late_rows=late,
                dead_letters=o.dead_by_stream.get(s.name, 0),
                idle_s=None if idle is None else round(idle, 3),
            )
        )
    return out


def legacy_stats(o: ControlPlane) -> dict[str, Any]:
    """The old `/cep/stats` shape, with times as RFC 3339 (no sentinels, no raw microseconds)."""
    if o.engine is None:
        return {"running": False, "engine": {}, "streams": {}, "rules": {}}
    got = engine_stats(o)
    streams_ = {}
    for name, row in got.get("streams", {}).items():
        streams_[name] = {
            "watermark": rfc3339(row.get("watermark_us")),
            "max_event_time": rfc3339(row.get("max_ts_us")),
            "idle_s": row.get("idle_s"),
        }
    return {"running": True, "engine": got.get("engine", {}), "streams": streams_, "rules": got.get("rules", {})}
