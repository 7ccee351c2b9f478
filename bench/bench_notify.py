"""Notification path benchmark, with peers from the same run.

1. Delivery: matches → outbox → rendered → webhook POST to a local receiver (in
   another process), 100 in flight. Peer: the seed design's naive loop, one
   `httpx.post` after another.
2. Templates: our sandboxed, bounded `cepdsl.templates.render`. Peer: plain
   (non-sandboxed) jinja2 `Template.render` of the same text.

    .venv/bin/python bench/bench_notify.py        (~30 s; BENCH_NOTIFY_N to change the size)
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jinja2
import polars as pl

from cepdsl.frontend import compile_source
from cepdsl.templates import render
from runtime.notify import DestinationPolicy, Notifier

N = int(os.environ.get("BENCH_NOTIFY_N", 10_000))
DRAIN_BUDGET_S = 30.0  # keep the run under a minute on a busy machine: rate = sent / time
N_PEER = 200
N_RENDER = 100_000
RECEIVER = Path(__file__).resolve().parent.parent / "tests" / "notify" / "receiver.py"

SOURCE = """
stream metrics (ts: timestamp, host: str, cpu: float, memory: float)
channel hook = webhook(url = env("HOOK_URL"))
rule high_cpu "High CPU" from metrics where cpu > 80 group by host severity high notify hook
  message "{{ host }}: cpu {{ cpu }}%, memory {{ memory }}%"
"""
TEMPLATE = "[{{ severity|upper }}] {{ title }}: {{ host }} cpu {{ cpu }}%, memory {{ memory }}% at {{ ts }}"


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(RECEIVER), "0", "-"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/hook"


def bench_delivery(url: str) -> float:
    prog = compile_source(SOURCE)
    rule = prog.rule("high_cpu")
    t0 = dt.datetime(2024, 1, 1)
    frame = pl.DataFrame([{"rule": "high_cpu", "ts": t0 + dt.timedelta(seconds=i), "severity": "high",
                           "host": f"host-{i}", "cpu": 90.0 + i % 10, "memory": 70.5} for i in range(N)],
                         schema=rule.output_schema)
    with tempfile.TemporaryDirectory() as tmp:
        n = Notifier(prog, outbox=Path(tmp) / "outbox.sqlite", env={"HOOK_URL": url}, max_in_flight=100,
                     policy=DestinationPolicy.allowing(hosts={"127.0.0.1"}))
        n.start()
        start = time.perf_counter()
        for i in range(0, N, 1_000):  # the engine hands over matches batch by batch
            n.submit("high_cpu", frame.slice(i, 1_000))
        submitted = time.perf_counter() - start
        drained = n.drain(DRAIN_BUDGET_S)
        took = time.perf_counter() - start
        stats = n.stats()
        n.stop(drain=False)
    assert stats["failed"] == 0, stats
    print(f"  submit (enqueue only): {N / submitted:,.0f} matches/s")
    if not drained:
        print(f"  (not drained within {DRAIN_BUDGET_S:.0f} s: {stats['sent']:,} of {N:,} sent)")
    return stats["sent"] / took


def bench_naive_peer(url: str) -> float:
    start = time.perf_counter()
    for i in range(N_PEER):
        r = httpx.post(url, json={"rule": "high_cpu", "host": f"host-{i}", "message": f"host-{i}: cpu 91%"})
        r.raise_for_status()
    return N_PEER / (time.perf_counter() - start)


def bench_render() -> tuple[float, float]:
    record = {"severity": "high", "title": "High CPU", "host": "web-17", "cpu": 93.5, "memory": 71.25,
              "ts": dt.datetime(2024, 1, 1, 12, 0), "rule": "high_cpu"}
    render(TEMPLATE, record)  # compile once (cached), as in the notifier
    start = time.perf_counter()
    for _ in range(N_RENDER):
        render(TEMPLATE, record)
    ours = N_RENDER / (time.perf_counter() - start)
    plain = jinja2.Environment().from_string(TEMPLATE)
    start = time.perf_counter()
    for _ in range(N_RENDER):
        plain.render(record)
    peer = N_RENDER / (time.perf_counter() - start)
    return ours, peer


def main() -> None:
    proc, url = start_receiver()
    try:
        print(f"notify delivery: {N:,} webhook notifications, 100 in flight, receiver in another process")
        ours = bench_delivery(url)
        print(f"  cep notifier (outbox + render + POST): {ours:,.0f} notifications/s  (target ≥ 2,000)")
        peer = bench_naive_peer(url)
        print(f"  peer: sequential httpx.post loop:      {peer:,.0f} notifications/s")
        print(f"  ratio: {ours / peer:.1f}x")
    finally:
        proc.terminate()
        proc.wait(5)
    ours_r, peer_r = bench_render()
    print(f"template rendering: {N_RENDER:,} renders")
    print(f"  cep sandboxed, bounded render: {ours_r:,.0f} renders/s  (target ≥ 50,000)")
    print(f"  peer: plain jinja2 render:     {peer_r:,.0f} renders/s")
    print(f"  ratio: {ours_r / peer_r:.2f}x")


if __name__ == "__main__":
    main()
