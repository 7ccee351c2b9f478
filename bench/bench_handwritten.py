"""Hand-written code must earn its place (issue 13): each hand-written part beside the
best library that could replace it, on the product's own workload, in the same run.

1. JSON lines → typed frame (the `jsonl` source's decode step: RFC 3339 times to µs,
   numbers, strings, with a per-line dead-letter reason for every bad line).
   Ours: `runtime.sources.ndjson.block_to_frame` (Numba scanner). Peers: msgspec
   (`Decoder(Struct).decode_lines`, typed, times included, then columns to Polars),
   orjson (`loads` per line, `pl.from_dicts`, times by Polars' `str.to_datetime`), and
   Polars' own `read_ndjson` with a schema (no per-line errors: a bad line fails the
   whole block, so it cannot be the source on its own).
2. Parsing a 1,000-rule file to the AST. Ours: the LALR driver in `cepdsl.parser` (Lark's
   table and lexer, no tree). Peer: Lark's own LALR parser building the same AST through
   an inline transformer (`tests/support/lark_reference.py`).
3. HTTP/1.1 POSTs, 100 in flight to a local receiver (bench_notify's raw asyncio server
   in another process). Ours: `runtime.notify.http11.GuardedHttpClient`. Peers:
   `httpx.AsyncClient` and `aiohttp.ClientSession`, neither with the SSRF check.

The rule: keep ours only where it wins by ≥ 1.5×; the verdict is printed per part.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/bench_handwritten.py [--lines 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

STREAM = """
stream metrics (ts: timestamp, host: str, cpu: float, memory: float,
                status: str, latency_ms: float, event_type: str)
"""
KEEP = 1.5


def best(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def verdict(name: str, ours: float, peers: dict[str, float], unit: str) -> None:
    top = min(peers, key=peers.get)
    ratio = peers[top] / ours
    keep = "keep ours" if ratio >= KEEP else "switch to the library"
    line = ", ".join(f"{k} {v:.3f} s" for k, v in peers.items())
    print(f"  {name}: ours {ours:.3f} s; peers {line}; best peer {top}: ours is {ratio:.2f}× → {keep} ({unit})")


# --------------------------------------------------------------------------- 1. JSON


def json_block(n: int) -> bytes:
    import orjson

    rng = np.random.default_rng(3)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    status, types = ["healthy", "degraded", "down"], ["metric", "heartbeat", "log"]
    offs = np.sort(rng.integers(0, 86_400_000_000, n))
    cpu, mem, lat = rng.uniform(0, 100, n), rng.uniform(0, 100, n), rng.exponential(100, n)
    hosts, st, ty = rng.integers(0, 1000, n), rng.integers(0, 3, n), rng.integers(0, 3, n)
    lines = []
    for i in range(n):
        ts = (t0 + dt.timedelta(microseconds=int(offs[i]))).isoformat().replace("+00:00", "Z")
        lines.append(
            orjson.dumps(
                {
                    "ts": ts,
                    "host": f"host-{hosts[i]:04d}",
                    "cpu": float(cpu[i]),
                    "memory": float(mem[i]),
                    "status": status[st[i]],
                    "latency_ms": float(lat[i]),
                    "event_type": types[ty[i]],
                }
            )
        )
    return b"\n".join(lines) + b"\n"


def bench_json(n: int, repeat: int) -> None:
    import msgspec
    import orjson

    from cepdsl.frontend import compile_source
    from runtime.sources.ndjson import block_to_frame

    stream = compile_source(STREAM).streams[0]
    block = json_block(n)
    print(f"1. JSON lines → typed frame: {n:,} lines, {len(block) / 1e6:.0f} MB")

    def ours() -> pl.DataFrame:
        good, dead = block_to_frame(stream, block)
        assert dead.height == 0
        return good

    class Event(msgspec.Struct):
        ts: dt.datetime
        host: str
        cpu: float
        memory: float
        status: str
        latency_ms: float
        event_type: str

    decoder = msgspec.json.Decoder(Event)
    names = list(Event.__struct_fields__)

    def with_msgspec() -> pl.DataFrame:
        evs = decoder.decode_lines(block)
        cols = {f: [getattr(e, f) for e in evs] for f in names}
        return pl.DataFrame(cols, schema={**stream.schema, "ts": pl.Datetime("us", "UTC")}).with_columns(
            pl.col("ts").dt.replace_time_zone(None)
        )

    schema_str = {**stream.schema, "ts": pl.String}

    def with_orjson() -> pl.DataFrame:
        rows = [orjson.loads(line) for line in block.splitlines()]
        df = pl.from_dicts(rows, schema=schema_str)
        return df.with_columns(pl.col("ts").str.to_datetime(time_unit="us", time_zone="UTC").dt.replace_time_zone(None))

    def with_polars() -> pl.DataFrame:
        df = pl.read_ndjson(block, schema=schema_str)
        return df.with_columns(pl.col("ts").str.to_datetime(time_unit="us", time_zone="UTC").dt.replace_time_zone(None))

    ours()  # compile the scanner once (Numba cache)
    t_ours, a = best(repeat, ours)
    peers = {}
    for name, fn in (("msgspec", with_msgspec), ("orjson", with_orjson), ("polars.read_ndjson", with_polars)):
        t, b = best(repeat, fn)
        assert b.select(a.columns).equals(a), f"{name} decoded differently"
        peers[name] = t
    print(f"  rates: ours {n / t_ours / 1e6:.2f}M lines/s; " + ", ".join(f"{k} {n / v / 1e6:.2f}M" for k, v in peers.items()))
    verdict(
        "JSON scanner",
        t_ours,
        {k: v for k, v in peers.items() if k != "polars.read_ndjson"},
        "ours also dead-letters bad lines with reasons; peers were given valid lines only",
    )


# --------------------------------------------------------------------------- 2. parser


def bench_parser(rules: int, repeat: int) -> None:
    from bench_check import generate

    from cepdsl import parser
    from tests.support.lark_reference import lark_parse

    text, _ = generate(rules)
    print(f"2. parse a {rules:,}-rule file ({len(text) / 1e3:.0f} kB) to the AST")
    t_ours, a = best(repeat, lambda: parser.parse(text, "bench.cep")[0])
    t_lark, b = best(repeat, lambda: lark_parse(text, "bench.cep"))
    assert a.declarations == tuple(b) if hasattr(a, "declarations") else True
    verdict("LALR driver", t_ours, {"lark LALR + inline transformer": t_lark}, "same AST")


# --------------------------------------------------------------------------- 3. HTTP


def bench_http(n: int, repeat: int) -> None:
    import aiohttp
    import httpx
    from bench_notify import IN_FLIGHT, ReceiverProcess, client_run

    from runtime.notify import DestinationPolicy
    from runtime.notify.ssrf import guarded_client

    class AiohttpClient:
        """aiohttp behind the small `request(...)` surface client_run uses."""

        async def __aenter__(self) -> AiohttpClient:
            self.s = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=IN_FLIGHT))
            return self

        async def __aexit__(self, *exc: object) -> None:
            await self.s.close()

        async def request(self, method: str, url: str, *, content: bytes, timeout: float, headers: dict[str, str]) -> Any:
            async with self.s.request(method, url, data=content, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                await r.read()
                r.status_code = r.status
                return r

    local = DestinationPolicy.allowing(hosts={"127.0.0.1"})
    rx = ReceiverProcess()
    print(f"3. HTTP POSTs, {IN_FLIGHT} in flight, {n:,} per run, local raw asyncio receiver in another process")
    try:

        def timed(make: Callable[[], Any]) -> float:
            return min(client_run(rx.url, n, make)[1] for _ in range(repeat))

        t_ours = timed(lambda: guarded_client(local))
        t_httpx = timed(lambda: httpx.AsyncClient(limits=httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)))
        t_aio = timed(AiohttpClient)
    finally:
        rx.stop()
    print(
        f"  rates: ours {n / t_ours:,.0f}/s (SSRF check on each connection); httpx {n / t_httpx:,.0f}/s; "
        f"aiohttp {n / t_aio:,.0f}/s (no check)"
    )
    verdict("HTTP/1.1 client", t_ours, {"httpx": t_httpx, "aiohttp": t_aio}, "same requests")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--rules", type=int, default=1_000)
    ap.add_argument("--requests", type=int, default=5_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", choices=["json", "parser", "http"])
    args = ap.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; best of {args.repeat}")
    if args.only in (None, "json"):
        bench_json(args.lines, args.repeat)
    if args.only in (None, "parser"):
        bench_parser(args.rules, args.repeat)
    if args.only in (None, "http"):
        bench_http(args.requests, args.repeat)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
