"""Notification path benchmark, with peers from the same run (best of 3 each).

1. Delivery: matches → `Notifier.submit` (outbox) → render → webhook POST to a
   local receiver, 100 in flight, until drained. Ours (HTTP client:
   runtime/notify/http11.py, the notifier's only one). Peers: the
   seed design's loop (one `httpx.post` after another) and a plain
   `httpx.AsyncClient` firing 100 at a time with no outbox, rendering or SSRF
   check (what a quick async script would do).
2. Transport alone: 100 concurrent POSTs through our guarded client, and
   through a plain httpx.AsyncClient (no SSRF check).
3. Engine side: the longest `submit` call while deliveries run, and with a
   receiver that answers after 2 s and a small `max_pending` (back-pressure is
   counted, the engine waits at most `max_submit_wait_s`).
4. Templates: `cepdsl.templates.render` (sandboxed, bounded) vs plain jinja2
   `Template.render`, for a straight-line template and one with a loop.

The receiver is a raw asyncio Protocol server in another process (this file
with `--serve`): it parses just enough HTTP/1.1 to answer each request with
200, so the figure measures our side; its CPU use during each run is printed.

    .venv/bin/python bench/bench_notify.py            (~2–3 min on a busy 2-CPU machine; --quick: one run each)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
BENCH = "bench_notify"

N = int(os.environ.get("BENCH_NOTIFY_N", 10_000))
N_HTTPX = 1_000  # the httpx peers are 10–40x slower: fewer, to keep the run short
N_PEER_SEQ = 100
N_RENDER = 100_000
IN_FLIGHT = 100
DRAIN_BUDGET_S = 60.0
SUBMIT_BATCH = 1_000

SOURCE = """
stream metrics (ts: timestamp, host: str, cpu: float, memory: float)
channel hook = webhook(url = env("HOOK_URL"))
rule high_cpu "High CPU" from metrics where cpu > 80 group by host severity high notify hook
  message "{{ host }}: cpu {{ cpu }}%, memory {{ memory }}%"
"""
TEMPLATE = "[{{ severity|upper }}] {{ title }}: {{ host }} cpu {{ cpu }}%, memory {{ memory }}% at {{ ts }}"
TEMPLATE_LOOP = "[{{ severity|upper }}] {{ title }}:{% for k in ['host', 'cpu', 'memory'] %} {{ k }}={{ rec[k] }}{% endfor %}"


# --------------------------------------------------------------------------- the receiver (another process)

_RESPONSE = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


class _Receiver(asyncio.Protocol):
    """Answers every request with 200; `/slow...` after 2 s. Handles pipelined and split requests."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        answers = 0
        slow = 0
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(buf) < end + 4 + length:
                break
            if b" /slow" in head[: head.find(b"\r\n")]:
                slow += 1
            else:
                answers += 1
            buf = buf[end + 4 + length :]
        self.buf = buf
        if answers:
            self.transport.write(_RESPONSE * answers)
        for _ in range(slow):
            asyncio.get_running_loop().call_later(2.0, self._late)

    def _late(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(_RESPONSE)


def serve() -> None:
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Receiver, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class ReceiverProcess:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


# --------------------------------------------------------------------------- measuring


def own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Run:
    """One measured run: rate, our CPU per item, receiver busy share."""

    def __init__(self, n: int, seconds: float, own_cpu: float, rx_cpu: float, extra: dict[str, Any] | None = None):
        self.n, self.seconds, self.own_cpu, self.rx_cpu = n, seconds, own_cpu, rx_cpu
        self.extra = extra or {}

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def describe(self) -> str:
        return (
            f"{self.rate:>9,.0f}/s   our CPU {1e6 * self.own_cpu / self.n:,.0f} µs each"
            f"   receiver busy {100 * self.rx_cpu / self.seconds:.0f}% of a core"
        )


def best_of(repeat: int, rx: ReceiverProcess, fn: Callable[[], tuple[int, float, dict[str, Any]]]) -> Run:
    runs = []
    for _ in range(repeat):
        c0, r0 = own_cpu_s(), rx.cpu_s()
        n, seconds, extra = fn()
        runs.append(Run(n, seconds, own_cpu_s() - c0, rx.cpu_s() - r0, extra))
    return max(runs, key=lambda r: r.rate)


# --------------------------------------------------------------------------- 1. delivery through the notifier


def match_frame(n: int) -> Any:
    import polars as pl

    from cepdsl.frontend import compile_source

    rule = compile_source(SOURCE).rule("high_cpu")
    t0 = dt.datetime(2024, 1, 1)
    return pl.DataFrame(
        {
            "rule": ["high_cpu"] * n,
            "ts": [t0 + dt.timedelta(seconds=i) for i in range(n)],
            "severity": ["high"] * n,
            "host": [f"host-{i}" for i in range(n)],
            "cpu": [90.0 + i % 10 for i in range(n)],
            "memory": [70.5] * n,
        },
        schema=rule.output_schema,
    )


def notifier_run(url: str, n: int, frame: Any) -> tuple[int, float, dict[str, Any]]:
    from cepdsl.frontend import compile_source
    from runtime.notify import DestinationPolicy, Notifier

    prog = compile_source(SOURCE)
    with tempfile.TemporaryDirectory() as tmp:
        notifier = Notifier(
            prog,
            outbox=Path(tmp) / "outbox.sqlite",
            env={"HOOK_URL": url + "/hook"},
            max_in_flight=IN_FLIGHT,
            policy=DestinationPolicy.allowing(hosts={"127.0.0.1"}),
        )
        notifier.start()
        longest_submit = 0.0
        start = time.perf_counter()
        for i in range(0, n, SUBMIT_BATCH):  # the engine hands over matches batch by batch
            t = time.perf_counter()
            notifier.submit("high_cpu", frame.slice(i, min(SUBMIT_BATCH, n - i)))
            longest_submit = max(longest_submit, time.perf_counter() - t)
        submitted = time.perf_counter() - start
        drained = notifier.drain(DRAIN_BUDGET_S)
        took = time.perf_counter() - start
        stats = notifier.stats()
        notifier.stop(drain=False)
    assert stats["failed"] == 0 and stats["template_errors"] == 0, stats
    if not drained:
        print(f"    (not drained within {DRAIN_BUDGET_S:.0f} s: {stats['sent']:,} of {n:,} sent)")
    return stats["sent"], took, {"submit_rate": n / submitted, "longest_submit_ms": 1e3 * longest_submit}


def body_size(frame: Any) -> int:
    """Bytes of one webhook body as sent (for the data-size line)."""
    from cepdsl.frontend import compile_source
    from runtime.notify.channels import Notification, WebhookChannel
    from runtime.notify.config import resolve_channel
    from runtime.notify.templates import render_message

    prog = compile_source(SOURCE)
    rule, record = prog.rule("high_cpu"), frame.row(0, named=True)
    captured: dict[str, bytes] = {}

    class Capture(WebhookChannel):
        async def _http(self, method: str, url: str, *, body: bytes, **kw: Any) -> Any:
            captured["body"] = body

    from runtime.notify.channels import SendContext

    channel = Capture(resolve_channel(prog.channel("hook"), {"HOOK_URL": "http://127.0.0.1/hook"}), SendContext(None))
    r = render_message(rule, "webhook", record)
    asyncio.run(
        channel.send(
            Notification("cep-0123456789abcdef0123456789abcdef", rule.id, "High CPU", "high", record["ts"], r.subject, r.text, record)
        )
    )
    return len(captured["body"])


# --------------------------------------------------------------------------- 2. transports and peers


def client_run(url: str, n: int, make: Callable[[], Any]) -> tuple[int, float, dict[str, Any]]:
    body = b'{"id":"cep-0123","rule":"high_cpu","message":"host-1: cpu 91.0%, memory 70.5%"}'

    async def go() -> float:
        async with make() as client:
            gate = asyncio.Semaphore(IN_FLIGHT)

            async def one() -> None:
                async with gate:
                    r = await client.request(
                        "POST", url + "/hook", content=body, timeout=10, headers={"Content-Type": "application/json"}
                    )
                    assert r.status_code == 200

            await asyncio.gather(*[one() for _ in range(IN_FLIGHT)])  # connections open, as in a long run
            start = time.perf_counter()
            await asyncio.gather(*[one() for _ in range(n)])
            return time.perf_counter() - start

    return n, asyncio.run(go()), {}


def sequential_peer(url: str) -> tuple[int, float, dict[str, Any]]:
    import httpx

    start = time.perf_counter()
    for i in range(N_PEER_SEQ):
        r = httpx.post(url + "/hook", json={"rule": "high_cpu", "host": f"host-{i}", "message": f"host-{i}: cpu 91%"})
        r.raise_for_status()
    return N_PEER_SEQ, time.perf_counter() - start, {}


# --------------------------------------------------------------------------- 3. the engine never waits


def backpressure_run(url: str, frame: Any) -> dict[str, Any]:
    """A receiver that takes 2 s per answer and room for 1,000 pending: submit 5,000 matches."""
    import logging

    from cepdsl.frontend import compile_source
    from runtime.notify import DestinationPolicy, Notifier

    logging.getLogger("cep.notify").setLevel(logging.ERROR)  # the over-capacity warnings are the point here
    prog = compile_source(SOURCE)
    with tempfile.TemporaryDirectory() as tmp:
        notifier = Notifier(
            prog,
            outbox=Path(tmp) / "outbox.sqlite",
            env={"HOOK_URL": url + "/slow"},
            max_in_flight=IN_FLIGHT,
            max_pending=1_000,
            max_submit_wait_s=0.05,
            policy=DestinationPolicy.allowing(hosts={"127.0.0.1"}),
        )
        notifier.start()
        times = []
        for i in range(0, 5_000, SUBMIT_BATCH):
            t = time.perf_counter()
            notifier.submit("high_cpu", frame.slice(i, SUBMIT_BATCH))
            times.append(time.perf_counter() - t)
        stats = notifier.stats()
        notifier.stop(drain=False, timeout=1)
    return {
        "longest_submit_ms": 1e3 * max(times),
        "backpressure_waits": stats["backpressure_waits"],
        "over_capacity": stats["over_capacity"],
        "queue_depth": stats["queue_depth"],
    }


# --------------------------------------------------------------------------- 4. templates


def render_rates(repeat: int) -> dict[str, tuple[float, float]]:
    import jinja2

    from cepdsl.templates import render

    record = {
        "severity": "high",
        "title": "High CPU",
        "host": "web-17",
        "cpu": 93.5,
        "memory": 71.25,
        "ts": dt.datetime(2024, 1, 1, 12, 0),
        "rule": "high_cpu",
    }
    out = {}
    for name, text, rec in (("straight-line", TEMPLATE, record), ("with a loop", TEMPLATE_LOOP, {**record, "rec": record})):
        assert render(text, rec) == jinja2.Environment().from_string(text).render(rec)  # same text out
        plain = jinja2.Environment().from_string(text)
        best_ours = best_plain = 0.0
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(N_RENDER):
                render(text, rec)
            best_ours = max(best_ours, N_RENDER / (time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(N_RENDER):
                plain.render(rec)
            best_plain = max(best_plain, N_RENDER / (time.perf_counter() - start))
        out[name] = (best_ours, best_plain)
    return out


# --------------------------------------------------------------------------- report


def main() -> None:
    import httpx

    from runtime.notify import DestinationPolicy
    from runtime.notify.ssrf import guarded_client

    from common import record  # here: the receiver process (`--serve`) runs this file too, and needs no Polars

    repeat = 1 if "--quick" in sys.argv else 3
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs); best of {repeat}")
    frame = match_frame(N)
    local = DestinationPolicy.allowing(hosts={"127.0.0.1"})
    rx = ReceiverProcess()
    try:
        print(
            f"delivery: {N:,} matches of one rule → {N:,} webhook POSTs of {body_size(frame)} bytes, "
            f"{IN_FLIGHT} in flight; receiver: raw asyncio server in another process"
        )
        ours = best_of(repeat, rx, lambda: notifier_run(rx.url, N, frame))
        print(f"  cep notifier (outbox + render + POST), http11: {ours.describe()}   (target ≥ 2,000/s)")
        print(
            f"    submit: {ours.extra['submit_rate']:,.0f} matches/s while delivering; longest submit of "
            f"{SUBMIT_BATCH:,} matches {ours.extra['longest_submit_ms']:.0f} ms"
        )
        plain = best_of(
            repeat,
            rx,
            lambda: client_run(
                rx.url,
                N_HTTPX,
                lambda: httpx.AsyncClient(limits=httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)),
            ),
        )
        print(f"  peer: plain httpx.AsyncClient ({N_HTTPX:,}), {IN_FLIGHT} at a time, no outbox/render/SSRF: {plain.describe()}")
        seq = best_of(repeat, rx, lambda: sequential_peer(rx.url))
        print(f"  peer: sequential httpx.post loop ({N_PEER_SEQ}): {seq.describe()}")
        print(f"  ratio: {ours.rate / plain.rate:.1f}x the async httpx peer, {ours.rate / seq.rate:.0f}x the sequential peer")
        case = f"delivery through the notifier, {N:,} webhooks"
        record(BENCH, case, ours.rate, "/s")
        record(BENCH, f"{case} / plain httpx.AsyncClient", ours.rate / plain.rate, "x")
        record(BENCH, f"{case}, longest submit of {SUBMIT_BATCH:,}", ours.extra["longest_submit_ms"], "ms", better="lower")

        print(f"transport alone: POST, {IN_FLIGHT} concurrent; ours guarded (SSRF check per connection)")
        t_ours = best_of(repeat, rx, lambda: client_run(rx.url, N, lambda: guarded_client(local)))
        print(f"  http11.GuardedHttpClient ({N:,}):  {t_ours.describe()}")
        t_httpx = best_of(
            repeat,
            rx,
            lambda: client_run(
                rx.url,
                N_HTTPX,
                lambda: httpx.AsyncClient(limits=httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)),
            ),
        )
        print(f"  peer: plain httpx.AsyncClient, no check ({N_HTTPX:,}): {t_httpx.describe()}")
        print(
            f"  ratio: {t_ours.rate / t_httpx.rate:.1f}x the rate, "
            f"{(t_httpx.own_cpu / t_httpx.n) / (t_ours.own_cpu / t_ours.n):.1f}x less CPU per request"
        )
        case = f"transport alone, guarded client, {N:,} POSTs"
        record(BENCH, case, t_ours.rate, "/s")
        record(BENCH, f"{case} / plain httpx.AsyncClient", t_ours.rate / t_httpx.rate, "x")
        record(BENCH, f"{case}, our CPU per POST", 1e6 * t_ours.own_cpu / t_ours.n, "µs", better="lower")

        bp = backpressure_run(rx.url, frame)
        print("engine side: receiver answering after 2 s, max_pending 1,000, max_submit_wait 50 ms, 5 × 1,000 matches")
        print(
            f"  longest submit {bp['longest_submit_ms']:.0f} ms; backpressure_waits {bp['backpressure_waits']}, "
            f"over_capacity {bp['over_capacity']:,} (counted, enqueued anyway), queue depth {bp['queue_depth']:,}"
        )
        record(BENCH, "slow receiver, longest submit of 1,000", bp["longest_submit_ms"], "ms", better="lower")
    finally:
        rx.stop()

    print(f"template rendering: {N_RENDER:,} renders of one record")
    for name, (r_ours, r_plain) in render_rates(repeat).items():
        print(
            f"  {name}: cep sandboxed, bounded {r_ours:,.0f}/s; peer plain jinja2 {r_plain:,.0f}/s;"
            f" ratio {r_ours / r_plain:.2f}x" + ("   (target ≥ 50,000/s)" if name == "straight-line" else "")
        )
        record(BENCH, f"template rendering, {name}", r_ours, "/s")
        record(BENCH, f"template rendering, {name} / plain jinja2", r_ours / r_plain, "x")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve()
    else:
        main()
