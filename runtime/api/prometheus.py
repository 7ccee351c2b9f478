"""/metrics: a collector that reads the running engine when Prometheus scrapes (no second
set of counters to keep in step).  Evaluation-time histograms are cumulative: each scrape
adds the per-batch timings recorded since the previous one (the session keeps the last
1,024 per rule, so scrape more often than every 1,024 batches of a rule to miss none)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from runtime.control import ControlPlane

BREAKER_VALUE = {"closed": 0, "half_open": 1, "half-open": 1, "open": 2}
EVAL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class EngineCollector(Collector):
    def __init__(self, ops: ControlPlane, registry: CollectorRegistry) -> None:
        self.ops = ops
        self.eval_hist = Histogram("cep_rule_eval_seconds", "Evaluation time per batch", ["rule"], buckets=EVAL_BUCKETS, registry=None)
        self.seen_batches: dict[str, int] = {}

    def _observe_timings(self) -> None:
        session = getattr(self.ops.engine, "session", None)
        for rid, run in list(getattr(session, "_rules", {}).items()):
            st = run.stats
            window = len(st.recent_s)
            start = max(self.seen_batches.get(rid, 0), st.batches - window)
            for i in range(start, st.batches):
                self.eval_hist.labels(rid).observe(float(st.recent_s[i % window]))
            self.seen_batches[rid] = st.batches

    def collect(self) -> Iterator[Metric]:
        o = self.ops
        self._observe_timings()
        from runtime.api.numbers import engine_stats

        stats: dict[str, Any] = engine_stats(o)
        eng = stats.get("engine", {})
        up = GaugeMetricFamily("cep_engine_running", "1 while the engine loop runs")
        up.add_metric([], 1.0 if o.engine is not None else 0.0)
        yield up
        rows = CounterMetricFamily("cep_events_in", "Rows taken in by the engine")
        rows.add_metric([], float(eng.get("rows", 0)))
        yield rows
        dead = CounterMetricFamily("cep_dead_letters", "Rows sent to the dead-letter output", labels=["stream"])
        for s, n in sorted(o.dead_by_stream.items()):
            dead.add_metric([s], float(n))
        dead.add_metric(["_all"], float(eng.get("dead_letters", 0)))
        yield dead
        fams = {
            k: CounterMetricFamily(f"cep_rule_{k}", f"Per rule: {k.replace('_', ' ')}", labels=["rule"])
            for k in ("events_in", "matches", "late_rows", "suppressed", "silenced")
        }
        for rid, r in sorted(stats.get("rules", {}).items()):
            fams["silenced"].add_metric([rid], float(r.get("silenced", 0)))  # LANGUAGE.md §9.4
            fams["events_in"].add_metric([rid], float(r.get("events_in", 0)))
            fams["matches"].add_metric([rid], float(r.get("matches", 0)))
            fams["late_rows"].add_metric([rid], float(r.get("late", 0)))
            fams["suppressed"].add_metric([rid], float(r.get("suppressed", 0)))
        yield from fams.values()
        if o.notifier is not None:
            n = o.notifier.stats()
            deliveries = CounterMetricFamily("cep_deliveries", "Notification deliveries by outcome", labels=["outcome"])
            for k in ("sent", "failed", "skipped", "retried", "fallback", "short_circuited", "suppressed_duplicates"):
                deliveries.add_metric([k], float(n.get(k, 0)))
            yield deliveries
            depth = GaugeMetricFamily("cep_outbox_depth", "Deliveries pending in the outbox")
            depth.add_metric([], float(n.get("queue_depth", 0)))
            yield depth
            breakers = GaugeMetricFamily(
                "cep_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", labels=["scope", "name"]
            )
            snap = n.get("breakers", {})
            for name, b in snap.get("channels", {}).items():
                breakers.add_metric(["channel", name], float(BREAKER_VALUE.get(b.get("state"), -1)))
            for name, b in snap.get("rules", {}).items():
                breakers.add_metric(["rule", name], float(BREAKER_VALUE.get(b.get("state"), -1)))
            yield breakers
        lag = GaugeMetricFamily("cep_watermark_lag_seconds", "Wall clock minus the stream's watermark", labels=["stream"])
        import time

        session = getattr(o.engine, "session", None)
        if session is not None:
            for name, p in session.progresses().items():
                if -(2**62) < p.watermark_us < 2**62:
                    lag.add_metric([name], time.time() - p.watermark_us / 1e6)
        yield lag
        reloads = CounterMetricFamily("cep_reloads", "Program reloads by outcome", labels=["outcome"])
        ok = sum(1 for r in o.reloads if r.ok)
        reloads.add_metric(["success"], float(ok))
        reloads.add_metric(["failure"], float(len(o.reloads) - ok))
        yield reloads
        last = GaugeMetricFamily("cep_last_reload_success", "1 if the last reload was applied")
        last.add_metric([], 1.0 if not o.reloads or o.reloads[-1].ok else 0.0)
        yield last
        tables = getattr(o.engine, "tables", None)
        if tables is not None:  # lookup tables (§9.2): a failed reload keeps the old rows, and shows here
            loads = CounterMetricFamily("cep_table_reloads", "Lookup-table reloads by outcome", labels=["table", "outcome"])
            rows_ = GaugeMetricFamily("cep_table_rows", "Rows of the loaded version of each lookup table", labels=["table"])
            for name, t in sorted(tables.health().items()):
                loads.add_metric([name, "success"], float(t["reloads"]))
                loads.add_metric([name, "failure"], float(t["reload_failures"]))
                rows_.add_metric([name], float(t["rows"]))
            yield loads
            yield rows_
        yield from self.eval_hist.collect()


def registry_for(ops: ControlPlane) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(EngineCollector(ops, reg))
    return reg
