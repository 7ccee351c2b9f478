"""Issue 14's speed targets for the operations API, each with a peer from the same run.

    .venv/bin/python bench/bench_api.py                 # all four
    .venv/bin/python bench/bench_api.py --only events --alerts 1000000

* first-match — a `cep serve` (in process, real HTTP) fed 1,000 events/s over HTTP ingest;
                POST a filter rule and time until its first match is in the alert history.
                Target ≤ 200 ms. Peer: the engine's own reload + next batch, no HTTP (the floor).
* events      — GET /cep/events over N stored alerts (default 1M, SQLite): first page,
                by rule, by group, time range, a deep cursor page; p50/p99 over many
                requests. Target p99 ≤ 50 ms. Peer: the same SQL straight on sqlite3.
* ingest      — POST NDJSON batches of 10,000 lines to /cep/streams/STREAM/events, one
                filter rule. Target ≥ 100k events/s. Peer: the same lines through
                `blocks_to_frame` + `StreamingEngine.feed` in process (no HTTP).
* store       — StreamingEngine throughput over the same frames with and without the
                alert history recording every match (1 % and 10 % of events match), the
                history written by its own process (the default) and by a thread of the
                engine's process; CPU and wall time, best of N alternated.
                Target: the store costs ≤ 5 %.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

RULES = """\
stream auth (ts: timestamp, user: str, event_type: str, host: str)

rule failed "Failed login"
  from auth
  where event_type == "login_failed"
  severity high
"""
H = {"X-CEP-Request": "1", "content-type": "application/x-ndjson"}


def ndjson(n: int, start: int = 0, root_every: int = 0, hosts: int = 100) -> bytes:
    rng = np.random.default_rng(start)
    kinds = np.where(rng.random(n) < 0.1, "login_failed", "login_ok")
    out = []
    for i in range(n):
        j = start + i
        user = "root" if root_every and j % root_every == 0 else f"u{j % 5000}"
        out.append(
            '{"ts": "2026-01-01T%02d:%02d:%02d.%06dZ", "user": "%s", "event_type": "%s", "host": "h%d"}'
            % (j // 3_600_000_000 % 24, j // 60_000_000 % 60, j // 1_000_000 % 60, j % 1_000_000, user, kinds[i], j % hosts)
        )
    return ("\n".join(out) + "\n").encode()


def start(directory: Path, **kw: Any) -> Any:
    from tests.api.conftest import start_server

    return start_server(directory, RULES, **kw)


def _timed_gets(url: str, queries: list[tuple[str, dict[str, str]]], requests: int, out: Any) -> None:
    """In a child process: the client must not share the server's GIL (a 5 ms switch interval
    would be measured, not the server)."""
    times: dict[str, list[float]] = {q: [] for q, _ in queries}
    with httpx.Client(base_url=url, timeout=30) as c:
        for _ in range(3):
            for _, p in queries:
                c.get("/cep/events", params=p)
        for i in range(requests):
            name, p = queries[i % len(queries)]
            t0 = time.perf_counter()
            r = c.get("/cep/events", params={**p, "limit": 50})
            times[name].append(time.perf_counter() - t0)
            assert r.status_code == 200 and r.json()["items"], (name, r.text[:200])
    out.put(times)


def _timed_posts(url: str, bodies: list[bytes], out: Any) -> None:
    with httpx.Client(base_url=url, timeout=60, headers=H) as c:
        c.post("/cep/streams/auth/events", content=bodies[0])  # warm
        t0 = time.perf_counter()
        total = 0
        for b in bodies:
            total += c.post("/cep/streams/auth/events", content=b).json()["accepted"]
        out.put((total, time.perf_counter() - t0))


def in_child(target: Any, *args: Any) -> Any:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, q))
    p.start()
    got = q.get(timeout=600)
    p.join(60)
    return got


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


# --------------------------------------------------------------------------- first match
def bench_first_match(tmp: Path, rounds: int) -> None:
    s = start(tmp / "fm")
    stop = threading.Event()
    n = [0]

    def feeder() -> None:  # 1,000 events/s offered: 50 every 50 ms, a "root" login in each batch
        with s.client() as c:
            while not stop.is_set():
                t0 = time.perf_counter()
                c.post("/cep/streams/auth/events", content=ndjson(50, n[0], root_every=50), headers=H)
                n[0] += 50
                time.sleep(max(0.0, 0.05 - (time.perf_counter() - t0)))

    t = threading.Thread(target=feeder, daemon=True)
    t.start()
    lat, floor = [], []
    with s.client() as c:
        for i in range(rounds + 1):
            rid = f"root_{i}"
            text = f'rule {rid}\n  from auth\n  where user == "root"\n'
            t0 = time.perf_counter()
            r = c.post("/cep/rules", content=text)
            assert r.status_code == 201, r.text
            while s.ops.history.query(rule=rid, limit=1)[0] == []:
                time.sleep(0.002)
            took = time.perf_counter() - t0
            if i:  # the first round warms the kernels
                lat.append(took)
            c.delete(f"/cep/rules/{rid}")
    stop.set()
    t.join()
    # The floor: the same change through the engine thread's queue, no HTTP, no catalogue.
    eng = s.ops.engine
    for i in range(rounds):
        rid = f"floor_{i}"
        cand = s.ops.assemble({("rule", rid): f'rule {rid}\n  from auth\n  where user == "root"\n'})
        t0 = time.perf_counter()
        s.ops.call(lambda cand=cand: eng.reload(cand.program))
        s.ops.call(
            lambda: eng.feed(
                "x",
                __import__("runtime.sources.batch", fromlist=["Batch"]).Batch(
                    "auth",
                    *__import__("runtime.api.eventbody", fromlist=["frame_of"]).frame_of(
                        eng.program.stream("auth"), ndjson(1, root_every=1), ""
                    ),
                ),
            )
        )
        floor.append(time.perf_counter() - t0)
    s.shutdown()
    print("\n== POST a filter rule → its first match in the history (1,000 events/s offered over HTTP)")
    print(f"  ours: p50 {pct(lat, 50) * 1e3:.1f} ms, p90 {pct(lat, 90) * 1e3:.1f} ms, max {max(lat) * 1e3:.1f} ms ({len(lat)} rules)")
    print(f"  floor (engine reload + one batch on its thread, no HTTP/catalogue): p50 {pct(floor, 50) * 1e3:.1f} ms")
    print("  target: ≤ 200 ms")


# --------------------------------------------------------------------------- events query
def bench_events(tmp: Path, alerts: int, requests: int) -> None:
    from runtime.catalogue import open_catalogue
    from runtime.control import ControlPlane
    from runtime.history import AlertRow, open_history

    path = tmp / "history.sqlite"
    hist = open_history(f"sqlite:{path}", retention_s=10 * 365 * 86400.0)
    t0 = time.perf_counter()
    rules = [f"rule_{i}" for i in range(50)]
    sev = ["info", "low", "medium", "high", "critical"]
    batch = 50_000
    for b in range(0, alerts, batch):
        rows = [
            AlertRow(
                rules[i % 50],
                sev[i % 5],
                1_767_225_600_000_000 + i * 1_000_000,
                f"h{i % 1000}",
                f"k{i}",
                '{"user": "u%d", "host": "h%d"}' % (i, i % 1000),
                None,
                False,
                [],
            )
            for i in range(b, min(alerts, b + batch))
        ]
        hist.add(rows, now=time.time())
    fill = time.perf_counter() - t0
    ops = ControlPlane([], open_catalogue("memory"), hist)
    from runtime.api import create_app
    from runtime.control import rfc3339
    from runtime.serve import start_api

    server, thread, url = start_api(create_app(ops=ops), "127.0.0.1", 0, access_log=False)
    queries = [
        ("first page", {}),
        ("by rule", {"rule": "rule_7"}),
        ("by group", {"group": "h42"}),
        ("by rule + severity", {"rule": "rule_3", "severity": "high"}),
        (
            "time range",
            {
                "since": rfc3339(1_767_225_600_000_000 + alerts // 2 * 1_000_000),
                "until": rfc3339(1_767_225_600_000_000 + (alerts // 2 + 3600) * 1_000_000),
            },
        ),
        ("deep cursor", {"cursor": str(alerts // 2)}),
    ]
    ours: dict[str, list[float]] = in_child(_timed_gets, url, queries, requests)
    server.should_exit = True
    thread.join(10)
    # Peer: the same SQL on sqlite3 directly (no HTTP, no JSON).
    db = sqlite3.connect(path)
    peer = []
    sql = (
        "SELECT id, rule, severity, ts_us, emitted_us, grp, nkey, record, silenced, test, channels FROM cep_alerts "
        "WHERE rule = ? ORDER BY id DESC LIMIT 51"
    )
    for _ in range(requests // len(queries)):
        t0 = time.perf_counter()
        db.execute(sql, ("rule_7",)).fetchall()
        peer.append(time.perf_counter() - t0)
    everything = [x for xs in ours.values() for x in xs]
    print(f"\n== GET /cep/events over {alerts:,} stored alerts (SQLite; filled in {fill:.1f} s; client in another process)")
    for name, xs in ours.items():
        print(f"  {name:<20} p50 {pct(xs, 50) * 1e3:6.2f} ms  p99 {pct(xs, 99) * 1e3:6.2f} ms")
    print(
        f"  ours, all queries:   p50 {pct(everything, 50) * 1e3:6.2f} ms  p99 {pct(everything, 99) * 1e3:6.2f} ms "
        f"({len(everything)} requests)"
    )
    print(f"  peer raw sqlite3 `by rule` (no HTTP/JSON): p50 {pct(peer, 50) * 1e3:6.3f} ms  p99 {pct(peer, 99) * 1e3:6.3f} ms")
    print("  target: p99 ≤ 50 ms")


# --------------------------------------------------------------------------- ingest
def bench_ingest(tmp: Path, events: int) -> None:
    s = start(tmp / "ing")
    per = 10_000
    bodies = [ndjson(per, i) for i in range(0, events, per)]
    total, took = in_child(_timed_posts, s.url, bodies)
    s.shutdown()
    # Peer: the same bodies parsed and fed in process (no HTTP).
    from cepdsl.frontend import compile_source
    from runtime.api.eventbody import frame_of
    from runtime.sources.batch import Batch
    from runtime.stream_loop import StreamingEngine

    program = compile_source(RULES, "ops.cep")
    eng = StreamingEngine(program, {})
    eng.feed("x", Batch("auth", *frame_of(program.stream("auth"), bodies[0], "")))
    t0 = time.perf_counter()
    for b in bodies:
        eng.feed("x", Batch("auth", *frame_of(program.stream("auth"), b, "")))
    peer = time.perf_counter() - t0
    print(f"\n== HTTP NDJSON ingest, {len(bodies)} POSTs of {per:,} lines, one filter rule, history on (client in another process)")
    print(f"  ours: {total / took / 1e3:8.1f} k events/s ({took:.2f} s)")
    print(f"  peer in-process parse + feed (no HTTP): {total / peer / 1e3:8.1f} k events/s; ours is {peer / took:.2f}x")
    print("  target: ≥ 100k events/s")


# --------------------------------------------------------------------------- store overhead
def bench_store(tmp: Path, events: int, repeats: int) -> None:
    from cepdsl.frontend import compile_source
    from runtime.api.eventbody import frame_of
    from runtime.catalogue import open_catalogue
    from runtime.control import ControlPlane
    from runtime.history import HistoryWriter, open_history
    from runtime.sources.batch import Batch
    from runtime.stream_loop import StreamingEngine

    print(
        f"\n== Alert history's cost to streaming ({events:,} JSON lines typed and fed in batches of 10,000;"
        f" best of {repeats} alternated, off / writer thread / writer process)"
    )
    for share, where in (("1 %", 'user == "root"'), ("10 %", 'event_type == "login_failed"')):
        text = f"stream auth (ts: timestamp, user: str, event_type: str, host: str)\nrule r from auth where {where}\n"
        program = compile_source(text, "b.cep")
        stream = program.stream("auth")
        bodies = [ndjson(10_000, i, root_every=100) for i in range(0, events, 10_000)]
        best: dict[str, dict[str, float]] = {}
        for mode in ("off", "thread", "process") * repeats:  # alternated: the machine is shared
            hist = open_history(f"sqlite:{tmp / f'store-{share[:-2]}-{mode}-{time.time_ns()}.sqlite'}")
            ops = ControlPlane([], open_catalogue("memory"), hist)
            ops.assembly = type("A", (), {"program": program})()  # the program the history reads rules from
            if mode != "off":
                ops.history_writer = HistoryWriter(hist, ops.clock, process=mode == "process")
                assert ops.history_writer.wait_ready(60)
                writer_cpu0 = ops.history_writer.process_cpu_s  # its start (importing Polars) not counted
            eng = StreamingEngine(program, {}, on_matches=ops.record_matches if mode != "off" else None)
            cpu0, thr0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
            for body in bodies:  # the streaming path: JSON lines typed, then fed
                eng.feed("x", Batch("auth", *frame_of(stream, body, "")))
            got = {"thread": time.thread_time() - thr0, "wall": time.perf_counter() - wall0}
            ops.history_flush(120)
            got["drained"] = time.perf_counter() - wall0
            got["process"] = time.process_time() - cpu0  # every thread of the engine's process
            got["writer"] = 0.0
            matches = eng.counters["matches"]
            if mode != "off":
                got["writer"] = ops.history_writer.process_cpu_s - writer_cpu0
                assert ops.history_writer.in_process == (mode == "process")
                ops.history_writer.close()
                assert len(hist.query(limit=matches + 1)[0]) == matches
            got["total"] = got["process"] + got["writer"]
            hist.close()
            b = best.setdefault(mode, {})
            for k, v in got.items():
                b[k] = min(b.get(k, float("inf")), v)
        off = best["off"]
        print(f"  {share} of events match ({matches:,} matches); load average {os.getloadavg()[0]:.1f}")
        print(
            f"    {'':9} {'engine thread CPU':>18} {'feed wall':>16} {'wall to stored':>16} "
            f"{'engine process CPU':>19} {'writer process CPU':>19} {'all CPU':>15}"
        )
        for mode in ("off", "thread", "process"):
            b = best[mode]

            def cell(k: str, width: int, b: dict[str, float] = b, mode: str = mode, off: dict[str, float] = off) -> str:
                rel = "" if mode == "off" else f" {100 * (b[k] - off[k]) / off[k]:+.1f}%"
                return f"{b[k]:.3f} s{rel}".rjust(width)

            print(
                f"    {mode:9} {cell('thread', 18)} {cell('wall', 16)} {cell('drained', 16)} "
                f"{cell('process', 19)} {b['writer']:>17.3f} s {cell('total', 15)}"
            )
        rate = events / best["process"]["wall"]
        print(f"    throughput with the writer process: {rate / 1e6:.2f}M events/s (off {events / off['wall'] / 1e6:.2f}M)")
    print("  target: the store adds ≤ 5 % (engine thread CPU, feed wall)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["first-match", "events", "ingest", "store"])
    ap.add_argument("--alerts", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5, help="store: runs of each mode (best taken)")
    a = ap.parse_args()
    import logging

    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if a.only in (None, "first-match"):
            bench_first_match(tmp, a.rounds)
        if a.only in (None, "events"):
            bench_events(tmp, a.alerts, a.requests)
        if a.only in (None, "ingest"):
            bench_ingest(tmp, a.events)
        if a.only in (None, "store"):
            bench_store(tmp, a.events, a.repeats)


if __name__ == "__main__":
    main()
