"""Fixtures for the notification tests: real receivers on 127.0.0.1, fast retry, compiled programs."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from cepdsl.frontend import compile_source
from cepdsl.plan import Program
from runtime.notify import BreakerConfig, DestinationPolicy, Notifier, RetryPolicy

sys.path.insert(0, str(Path(__file__).parent))

from receiver import Receiver  # noqa: E402

LOCAL = DestinationPolicy.allowing(hosts={"127.0.0.1"})
FAST_RETRY = RetryPolicy(base_s=0.05, jitter=0.0)
T0 = dt.datetime(2024, 5, 1, 12, 0, 0)

METRICS = "stream metrics (ts: timestamp, host: str, cpu: float, memory: float)\n"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


@pytest.fixture
def second_receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


def program(text: str) -> Program:
    return compile_source(METRICS + text)


def matches(prog: Program, rule_id: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A match frame with the rule's output schema (what the engine hands `submit`)."""
    rule = prog.rule(rule_id)
    full = [{"rule": rule_id, "severity": rule.severity, **r} for r in rows]
    return pl.DataFrame(full, schema=rule.output_schema)


def cpu_rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [
        {"ts": T0 + dt.timedelta(seconds=i), "host": f"web-{i}", "cpu": 90.0 + i % 10, "memory": 75.5} for i in range(start, start + n)
    ]


@pytest.fixture
def make_notifier(tmp_path: Path) -> Iterator[Callable[..., Notifier]]:
    made: list[Notifier] = []

    def make(prog: Program, env: dict[str, str] | None = None, **kw: Any) -> Notifier:
        kw.setdefault("outbox", tmp_path / f"outbox-{len(made)}.sqlite")
        kw.setdefault("policy", LOCAL)
        kw.setdefault("retry", FAST_RETRY)
        kw.setdefault("breaker", BreakerConfig())
        n = Notifier(prog, env=env or {}, **kw)
        made.append(n)
        return n

    yield make
    for n in made:
        n.stop(drain=False, timeout=2)
