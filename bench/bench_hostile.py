"""Issue 12 figures: hostile templates and hostile events (the fuzzer is bench/fuzz_frontend.py).

1. Hostile templates (tests/notify/hostile_templates.py) through the notifier's render
   workers: the slowest render (request to reply or kill), the worker's memory high-water
   mark above the interpreter as loaded, and in-process the largest Python allocation
   peak of any render (tracemalloc); outputs checked for memory addresses.
2. Hostile events (tests/sources/hostile_events.py) through the JSON-lines file source,
   repeated, against the per-line reference path: rows/s, dead letters, agreement.

    .venv/bin/python bench/bench_hostile.py          (~1 min)
    .venv/bin/python bench/fuzz_frontend.py -n 1000000
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "notify"), str(ROOT / "tests" / "sources")]

from cepdsl.templates import TemplateError, render  # noqa: E402
from runtime.notify.render_worker import RenderWorkers  # noqa: E402

from hostile_events import hostile_lines  # noqa: E402
from hostile_templates import HOSTILE_TEMPLATES  # noqa: E402

ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
BUDGET_S = 0.25


def status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1))  # type: ignore[union-attr]


def templates() -> None:
    rec = {"x": "abc", "host": "web-1", "cpu": 93.5}
    workers = RenderWorkers(1)
    workers.render("{% for i in [1] %}{{ i }}{% endfor %}", rec)
    (child,) = workers._children
    base_kb = status_kb(child.proc.pid, "VmRSS")
    slowest, slowest_text, failed, addresses, hwm_kb = 0.0, "", 0, 0, 0
    for text in HOSTILE_TEMPLATES:
        try:
            out = workers.render(text, rec, max_seconds=BUDGET_S)
        except TemplateError as e:
            out = str(e)
            failed += 1
        addresses += bool(ADDRESS.search(out))
        if workers.last_seconds > slowest:
            slowest, slowest_text = workers.last_seconds, text
        for c in workers._children:  # the high-water mark of whichever child ran it
            hwm_kb = max(hwm_kb, status_kb(c.proc.pid, "VmHWM") - base_kb)
    workers.close()
    tracemalloc.start()
    peak = 0
    for text in HOSTILE_TEMPLATES:
        tracemalloc.reset_peak()
        try:
            render(text, rec, max_seconds=BUDGET_S)
        except TemplateError:
            pass
        peak = max(peak, tracemalloc.get_traced_memory()[1])
    tracemalloc.stop()
    print(
        f"hostile templates: {len(HOSTILE_TEMPLATES)} through the render worker (budget {BUDGET_S} s, "
        f"kill at budget + {workers.grace_s:g} s)"
    )
    print(
        f"  refused with a TemplateError: {failed}, rendered: {len(HOSTILE_TEMPLATES) - failed}, outputs with an address: {addresses}"
    )
    print(f"  slowest render {slowest:.2f} s: {slowest_text[:70]!r}")
    print(f"  worker memory high-water above the loaded interpreter: {hwm_kb / 1024:.1f} MB (limit 64 MB)")
    print(f"  in-process, largest Python allocation peak of one render: {peak / 1e6:.2f} MB")


def events(repeat: int = 20) -> None:
    from runtime.sources import ManualClock
    from runtime.sources.jsonl import JsonlSource
    from runtime.sources.records import DEFAULT_MAX_EVENT_BYTES, parse_json_lines, records_to_frame

    from src_helpers import plan

    stream = plan("ev", ts="timestamp", v="int", note="str")
    lines = hostile_lines()
    good = dead = 0
    for line in lines:
        g, d = records_to_frame(stream, *parse_json_lines([line], DEFAULT_MAX_EVENT_BYTES))
        good, dead = good + g.height, dead + d.height
    block = b"\n".join(lines) + b"\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hostile.jsonl"
        path.write_bytes(block * repeat)
        t0 = time.perf_counter()
        batches = list(JsonlSource(stream, path, follow=False, clock=ManualClock()))
        elapsed = time.perf_counter() - t0
    rows = sum(b.frame.height for b in batches)
    dl = sum(b.dead.height for b in batches)
    print(f"hostile events: {len(lines)} lines ({len(block) / 1e6:.1f} MB) x {repeat} through the JSON-lines source")
    print(
        f"  {rows:,} rows kept (reference: {good * repeat:,}), {dl:,} dead letters (reference: {dead * repeat:,}), "
        f"0 crashes, {len(lines) * repeat / elapsed:,.0f} lines/s ({len(block) * repeat / 1e6 / elapsed:.0f} MB/s)"
    )


if __name__ == "__main__":
    templates()
    events()
