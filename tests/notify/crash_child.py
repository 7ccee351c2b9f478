"""Child process for the crash test: enqueue N matches, deliver, and (maybe) get killed with SIGKILL.

usage: crash_child.py OUTBOX HOOK_URL N MODE
  MODE enqueue  — submit N matches, print "enqueued", never start the worker (killed there)
  MODE deliver  — submit N matches, start, print "started", deliver until killed
  MODE resume   — submit the same N matches again (the engine re-emits after a crash),
                  start, drain, print the stats as JSON
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time

import polars as pl

from cepdsl.frontend import compile_source
from runtime.notify import DestinationPolicy, Notifier, RetryPolicy

SOURCE = """
stream metrics (ts: timestamp, host: str, cpu: float)
channel hook = webhook(url = env("HOOK_URL"), retries = 5)
rule hot "Hot" from metrics where cpu > 80 group by host severity high notify hook
  message "{{ host }} {{ cpu }}"
"""


def main() -> None:
    outbox, url, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    prog = compile_source(SOURCE)
    rule = prog.rule("hot")
    t0 = dt.datetime(2024, 1, 1)
    frame = pl.DataFrame(
        [{"rule": "hot", "ts": t0 + dt.timedelta(seconds=i), "severity": "high", "host": f"h{i}", "cpu": 99.0} for i in range(n)],
        schema=rule.output_schema,
    )
    notifier = Notifier(
        prog,
        outbox=outbox,
        env={"HOOK_URL": url},
        max_in_flight=8,
        policy=DestinationPolicy.allowing(hosts={"127.0.0.1"}),
        retry=RetryPolicy(base_s=0.05, jitter=0.0),
    )
    notifier.submit("hot", frame)
    if mode == "enqueue":
        print("enqueued", flush=True)
        time.sleep(600)
    notifier.start()
    if mode == "deliver":
        print("started", flush=True)
        time.sleep(600)
    ok = notifier.drain(30)
    stats = notifier.stats()
    notifier.stop()
    print(json.dumps({"drained": ok, **{k: v for k, v in stats.items() if k != "breakers"}}), flush=True)


if __name__ == "__main__":
    main()
