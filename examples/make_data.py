"""Generate the small, deterministic example data under examples/data/.

Four hours of metrics for three hosts and a morning of logins, with a few
stories in them for the rules of ops.cep to find: web-2 runs hot, db-1 stops
sending heartbeats and reports `down`, and mallory guesses a password.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).parent
START = datetime(2026, 11, 20, 6, 0, 0)


def metrics(rng: np.random.Generator) -> pl.DataFrame:
    rows = []
    for host in ("web-1", "web-2", "db-1"):
        for i in range(4 * 360):  # one metric every 10 s for 4 hours
            t = START + timedelta(seconds=10 * i)
            cpu = float(rng.normal(40, 5))
            memory = float(rng.normal(55, 5))
            status = "healthy"
            if host == "web-2" and 7 * 360 // 6 <= i < 7 * 360 // 6 + 60:  # 10 hot minutes from 07:10
                cpu, memory, status = float(rng.normal(92, 2)), float(rng.normal(80, 3)), "degraded"
            if host == "db-1" and 8 * 360 // 6 <= i < 8 * 360 // 6 + 180:  # down for 30 minutes from 08:00
                status = "down"
            if host == "web-1" and i == 700:
                cpu = 99.0  # one outlier
            rows.append((t, host, cpu, memory, status, float(rng.gamma(2.0, 20.0)), "metric"))
            gap = host == "db-1" and 1080 <= i < 1110  # db-1's heartbeat stops for 5 minutes at 09:00
            if i % 3 == 0 and not gap:
                rows.append((t, host, None, None, status, None, "heartbeat"))
    schema = {
        "ts": pl.Datetime("ms"),
        "host": pl.String,
        "cpu": pl.Float64,
        "memory": pl.Float64,
        "status": pl.String,
        "latency_ms": pl.Float64,
        "event_type": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row").sort("ts", maintain_order=True)


def auth() -> pl.DataFrame:
    events = [
        (0, "alice", "10.0.0.5", "login_ok"),
        (60, "mallory", "203.0.113.9", "login_failed"),
        (75, "mallory", "203.0.113.9", "login_failed"),
        (90, "bob", "10.0.0.7", "login_failed"),
        (95, "mallory", "203.0.113.9", "login_failed"),
        (110, "mallory", "203.0.113.9", "login_failed"),
        (130, "mallory", "203.0.113.9", "login_ok"),
        (200, "bob", "10.0.0.7", "login_ok"),
        (4000, "eve", "198.51.100.4", "login_failed"),
        (4100, "eve", "198.51.100.4", "login_failed"),
        (4200, "eve", "198.51.100.4", "login_failed"),
        (5000, "eve", "198.51.100.4", "login_ok"),  # too late: more than 10 minutes after the first failure
    ]
    return pl.DataFrame(
        {
            "ts": [START + timedelta(seconds=s) for s, *_ in events],
            "user": [u for _, u, _, _ in events],
            "ip": [ip for *_, ip, _ in events],
            "event_type": [e for *_, e in events],
        },
        schema={"ts": pl.Datetime("us"), "user": pl.String, "ip": pl.String, "event_type": pl.String},
    )


def main() -> None:
    rng = np.random.default_rng(20261120)
    (HERE / "data").mkdir(exist_ok=True)
    metrics(rng).write_parquet(HERE / "data" / "metrics.parquet")
    logins = auth()
    logins.write_parquet(HERE / "data" / "auth.parquet")
    # The same logins as JSON lines, for `cep run` (RFC 3339 times), plus one broken line
    # to show that a malformed event goes to the dead letter, not into the void.
    lines = logins.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%SZ")).write_ndjson()
    (HERE / "data" / "auth.jsonl").write_text(lines + '{"ts": "not a time", "user": "bob"}\n', encoding="utf-8")


if __name__ == "__main__":
    main()
