"""Live events for the rules of ops.cep: what `demo.py --serve` appends to out/live/.

Ordinary load with the stories of make_data.py told again in real time, each
written so a rule of ops.cep finds it soon after the demo starts:

- a brute-force login (3–6 failures, then a success) every 10–20 s, the first
  after ~5 s: `brute_force` (critical). Every attack gets in: one that gave up
  would leave its failures undecided for the 10 minutes of `within`, and a
  pattern rule holds later matches back until earlier starts are decided, so
  its output is in time order (docs/patterns-absence-anomaly.md, "Output order");
  the console would see no brute force for 10 minutes;
- a web host runs hot and degraded for 12–20 s every 30–50 s, the first after
  ~12 s (once each host has the 10 values `cpu_anomaly` needs before it scores):
  `high_cpu` (high) on every hot sample, `cpu_anomaly` (medium) as it starts;
- a lone CPU spike on a healthy host every 20–40 s: `cpu_anomaly` only;
- batch-1, a worker running flat out: `hot_host` (critical) when the first full
  minute of it closes (its 5-minute window emits every minute), then throttled;
- db-1's heartbeat stops for 150 s from ~20 s in (then every 5 minutes):
  `heartbeat_lost` (medium) two minutes after its last beat.

`morning_errors` counts `down` reports at 09:00 and stays quiet here.
Times are the wall clock in UTC: the engine's watermark follows it (docs/streaming.md).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HOSTS = ("web-1", "web-2", "web-3", "db-1", "batch-1")
WEB = ("web-1", "web-2", "web-3")
USERS = (("alice", "10.0.0.5"), ("bob", "10.0.0.7"), ("carol", "10.0.0.12"), ("dave", "10.0.0.31"))
TARGETS = ("admin", "root", "mallory", "deploy", "svc-backup")
ATTACKERS = ("203.0.113.9", "203.0.113.77", "198.51.100.4", "198.51.100.23")

HEARTBEAT_EVERY_S = 5.0
# db-1's heartbeat is silent for QUIET_S out of every QUIET_EVERY_S, from QUIET_FROM_S in:
# longer than the 2 minutes `heartbeat_lost` waits, shorter than a demo left running.
QUIET_FROM_S, QUIET_S, QUIET_EVERY_S = 20.0, 150.0, 300.0

Row = dict[str, object]


@dataclass
class Stories:
    """The events due at each moment, as rows without `ts` (the feeder stamps them).
    Pure: time is the seconds since the start, handed in; randomness is `rng`."""

    rng: random.Random
    rate: float  # metric samples a second over all hosts
    metrics_sent: int = 0
    next_heartbeat: float = 0.0
    next_login: float = 1.0
    next_attack: float = 5.0
    next_spell: float = 12.0
    next_spike: float = 25.0
    spell: tuple[str, float] | None = None  # (host, until)
    spike_host: str | None = None
    attack: list[tuple[float, Row]] = field(default_factory=list)  # the running attack's logins, in time order

    def due(self, t: float) -> tuple[list[Row], list[Row]]:
        """(metrics rows, auth rows) due at `t` seconds since the start."""
        return self._metrics(t), self._logins(t)

    def _metrics(self, t: float) -> list[Row]:
        rows: list[Row] = []
        if t >= self.next_spell:
            self.spell = (self.rng.choice(WEB), t + self.rng.uniform(12, 20))
            self.next_spell = t + self.rng.uniform(30, 50)
        if t >= self.next_spike:
            self.spike_host = self.rng.choice([h for h in WEB if self.spell is None or h != self.spell[0]])
            self.next_spike = t + self.rng.uniform(20, 40)
        while self.metrics_sent < int(t * self.rate) + 1:
            rows.append(self._metric(HOSTS[self.metrics_sent % len(HOSTS)], t))
            self.metrics_sent += 1
        if t >= self.next_heartbeat:
            self.next_heartbeat = t + HEARTBEAT_EVERY_S
            quiet = t >= QUIET_FROM_S and (t - QUIET_FROM_S) % QUIET_EVERY_S < QUIET_S
            for host in HOSTS:
                if not (host == "db-1" and quiet):
                    rows.append(
                        {"host": host, "cpu": None, "memory": None, "status": "healthy", "latency_ms": None, "event_type": "heartbeat"}
                    )
        return rows

    def _metric(self, host: str, t: float) -> Row:
        g = self.rng.gauss
        cpu, memory, status, latency = g(40, 5), g(55, 5), "healthy", self.rng.gammavariate(2.0, 20.0)
        if host == "batch-1":
            cpu, memory = g(92, 2), g(60, 4)  # busy but healthy: only the 5-minute average notices
        if self.spell is not None and self.spell[0] == host and t < self.spell[1]:
            cpu, memory, status, latency = g(93, 2), g(82, 3), "degraded", latency * 4
        elif host == self.spike_host:
            cpu, self.spike_host = 97.0, None
        return {
            "host": host,
            "cpu": round(min(cpu, 100.0), 1),
            "memory": round(min(memory, 100.0), 1),
            "status": status,
            "latency_ms": round(latency, 1),
            "event_type": "metric",
        }

    def _logins(self, t: float) -> list[Row]:
        rows: list[Row] = []
        if t >= self.next_login:
            user, ip = self.rng.choice(USERS)
            if self.rng.random() < 0.15:  # a typo first: one failure is not an attack
                rows.append({"user": user, "ip": ip, "event_type": "login_failed"})
            rows.append({"user": user, "ip": ip, "event_type": "login_ok"})
            self.next_login = t + self.rng.uniform(1.0, 3.0)
        if t >= self.next_attack and not self.attack:
            self.attack = self._attack(t)
            self.next_attack = t + self.rng.uniform(10, 20)
        while self.attack and self.attack[0][0] <= t:
            rows.append(self.attack.pop(0)[1])
        return rows

    def _attack(self, t: float) -> list[tuple[float, Row]]:
        user, ip = self.rng.choice(TARGETS), self.rng.choice(ATTACKERS)
        steps = ["login_failed"] * self.rng.randint(3, 6) + ["login_ok"]
        at, out = t, []
        for kind in steps:
            out.append((at, {"user": user, "ip": ip, "event_type": kind}))
            at += self.rng.uniform(0.4, 1.5)
        return out


def rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class LiveFeed:
    """Appends the stories to DIR/metrics.jsonl and DIR/auth.jsonl as they fall due."""

    def __init__(self, out_dir: Path, rate: float, seed: int | None = None) -> None:
        self.dir = out_dir
        self.stories = Stories(random.Random(seed), rate)
        self.tick = min(0.25, 1.0 / rate)
        self.written = 0  # events so far; read after a Ctrl-C too

    def run(self, seconds: float | None, running: Callable[[], bool]) -> None:
        """Until `seconds` pass or `running()` turns false; Ctrl-C raises KeyboardInterrupt as usual."""
        start = time.monotonic()
        with (
            (self.dir / "metrics.jsonl").open("a", encoding="utf-8") as metrics,
            (self.dir / "auth.jsonl").open("a", encoding="utf-8") as auth,
        ):
            while running():
                t = time.monotonic() - start
                if seconds is not None and t >= seconds:
                    return
                ts = rfc3339(datetime.now(timezone.utc))
                for rows, f in zip(self.stories.due(t), (metrics, auth)):
                    if rows:
                        # One write of whole lines: the tailing source never waits on half a line.
                        f.write("".join(json.dumps({"ts": ts, **r}) + "\n" for r in rows))
                        f.flush()
                        self.written += len(rows)
                time.sleep(max(0.0, self.tick - (time.monotonic() - start - t)))
