"""Sources whose time is the wall clock: HTTP metric polling end to end, and a silent
stream on which absence and schedule rules fire with no new events (LANGUAGE.md §6)."""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.live import (
    append,
    as_multiset,
    iso,
    now_utc,
    replay,
    start_run,
    stderr_of,
    stop_process,
    wait_for,
    written,
)

pytestmark = pytest.mark.timeout(60)


class MetricServer:
    """Serves `{"data": {"avg": VALUE}}` — or HTTP 500 while `failing` — counting both."""

    def __init__(self) -> None:
        self.value: float | None = 80.0
        self.failing = False
        self.served = {"ok": 0, "error": 0}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if owner.failing:
                    owner.served["error"] += 1
                    body, code = b"backend exploded", 500
                else:
                    owner.served["ok"] += 1
                    body, code = json.dumps({"data": {"avg": owner.value}}).encode(), 200
                self.send_response(code)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


HTTP_RULES = """
stream metrics (ts: timestamp, cpu: float)

rule seen "Every poll (the input, for the replay oracle)"
  from metrics

rule hot "Average CPU above 50 over a second"
  from metrics
  window tumbling 1s
  having avg(cpu) > 50

rule silent "No metric for a second"
  from metrics
  absent for 1s
"""


def test_http_polling_windows_absence_and_dead_letters(tmp_path: Path) -> None:
    server = MetricServer()
    rules = tmp_path / "rules.cep"
    rules.write_text(HTTP_RULES)
    out = tmp_path / "out"
    p = start_run(
        tmp_path,
        rules,
        "--source",
        f"{server.url}?interval=200ms&map.cpu=data.avg&max_delay=50ms",
        "--out",
        str(out),
        "--state",
        f"sqlite:{tmp_path / 'state.sqlite'}",
        "--outbox",
        str(tmp_path / "outbox.sqlite"),
        "--checkpoint-every",
        "0.5",
        "--no-stats",
    )
    try:
        assert wait_for(lambda: len(written(out, "seen")) >= 3), stderr_of(p)
        time.sleep(1.2)
        server.value = 20.0
        time.sleep(1.2)
        server.failing = True  # 1.6 s of HTTP 500: dead letters, and the stream goes silent
        time.sleep(1.6)
        errors = server.served["error"]
        server.failing, server.value = False, 90.0
        assert wait_for(lambda: len(written(out, "silent")) >= 1), stderr_of(p)
        time.sleep(1.5)
    finally:
        code, err = stop_process(p)
        server.close()
    assert code == 0, err
    seen = written(out, "seen")
    inputs = [{"ts": r["ts"], "cpu": r["cpu"]} for r in seen]
    last = max(r["ts"] for r in inputs)
    want = replay(HTTP_RULES, {"metrics": inputs})
    # At a stop nothing is flushed: compare what the watermark (≈ the last poll) has closed.
    assert as_multiset(written(out, "hot")) == as_multiset([m for m in want["hot"] if m["window_end"] <= last])
    assert {m["cpu"] for m in inputs} == {80.0, 20.0, 90.0}
    assert any(m["avg_cpu"] > 80 for m in written(out, "hot"))
    silent = written(out, "silent")
    assert as_multiset([m for m in silent if m["ts"] <= last]) == as_multiset(want["silent"])
    assert len(want["silent"]) == 1  # the outage, found from the wall clock while it lasted
    dead = [json.loads(x) for x in (out / "_dead_letter.jsonl").read_text().splitlines()]
    assert errors <= len(dead) <= server.served["error"]
    assert all("500" in d["reason"] and d["raw"] == "backend exploded" for d in dead)


def test_silent_stream_fires_absence_and_schedule_from_the_wall_clock(tmp_path: Path) -> None:
    # Events up to a minute old arrive at once, then nothing. The cron tick T (the minute that
    # just began) and the last heartbeat's deadline lie beyond every event time: only the wall
    # clock (now − lateness) can reach them. Lateness is chosen so that happens in ~4-6 s.
    now0 = now_utc()
    tick = now0.replace(second=0, microsecond=0)
    lateness = math.ceil((now0 - tick).total_seconds() + 4)
    text = f"""
stream ops (ts: timestamp, host: str, kind: str)
  lateness {lateness}s

rule errors_per_minute "Errors over the last minute"
  from ops
  where kind == "error"
  group by host
  schedule "* * * * *" over 1m
  having count() > 0

rule heartbeat_lost "No heartbeat for 12 s"
  from ops
  where kind == "beat"
  group by host
  absent for 12s
"""
    rows = sorted(
        [{"ts": iso(tick - timedelta(seconds=s)), "host": "a", "kind": "beat"} for s in (40, 30, 20, 10)]
        + [{"ts": iso(tick - timedelta(seconds=40)), "host": "b", "kind": "beat"}]
        + [{"ts": iso(tick - timedelta(seconds=s)), "host": "a", "kind": "error"} for s in (45, 35, 5)]
        + [{"ts": iso(tick - timedelta(seconds=15)), "host": "b", "kind": "error"}],
        key=lambda r: r["ts"],
    )
    rules = tmp_path / "rules.cep"
    rules.write_text(text)
    src = tmp_path / "ops.jsonl"
    append(src, rows)
    out = tmp_path / "out"
    started = time.monotonic()
    p = start_run(
        tmp_path,
        rules,
        "--source",
        f"ops=jsonl:{src}",
        "--out",
        str(out),
        "--state",
        f"sqlite:{tmp_path / 'state.sqlite'}",
        "--outbox",
        str(tmp_path / "outbox.sqlite"),
        "--checkpoint-every",
        "1",
        "--no-stats",
    )
    try:
        assert wait_for(lambda: len(written(out, "errors_per_minute")) == 2, timeout=30), stderr_of(p)
        assert wait_for(lambda: len(written(out, "heartbeat_lost")) == 2, timeout=30), stderr_of(p)
        fired_after = time.monotonic() - started
        time.sleep(0.5)  # nothing more may come
    finally:
        code, err = stop_process(p)
    assert code == 0, err
    assert fired_after < 20
    # Replay fires ticks and deadlines up to the largest event time: a row no rule keeps,
    # at T + 30 s, stands for the wall clock (no further tick or deadline before T + 60 s).
    clock_row = {"ts": iso(tick + timedelta(seconds=30)), "host": "z", "kind": "clock"}
    want = replay(text, {"ops": rows + [clock_row]})
    assert as_multiset(written(out, "errors_per_minute")) == as_multiset(want["errors_per_minute"])
    assert as_multiset(written(out, "heartbeat_lost")) == as_multiset(want["heartbeat_lost"])
    assert {(m["host"], m["count"]) for m in want["errors_per_minute"]} == {("a", 3), ("b", 1)}
    assert {(m["host"], m["ts"]) for m in want["heartbeat_lost"]} == {
        ("a", iso(tick + timedelta(seconds=2))),
        ("b", iso(tick - timedelta(seconds=28))),
    }
