"""Circuit breaker state machine with an injected clock; retry delays."""

from __future__ import annotations

import random

import pytest

from runtime.notify.breaker import BreakerConfig, CircuitBreaker
from runtime.notify.retry import RetryPolicy, parse_retry_after

pytestmark = pytest.mark.timeout(10)


def test_breaker_cycle():
    now = [0.0]
    b = CircuitBreaker("c", BreakerConfig(failure_threshold=5, open_s=60, success_threshold=2), clock=lambda: now[0])
    for _ in range(4):
        assert b.acquire()
        b.record_failure()
    assert b.state == "closed"
    b.record_success()  # a success resets the count: 5 *consecutive* failures open it
    for _ in range(5):
        b.record_failure()
    assert b.state == "open" and not b.allows()
    assert b.snapshot() == {"state": "open", "consecutive_failures": 5, "half_open_successes": 0, "retry_at": 60.0, "times_opened": 1}
    now[0] = 59.9
    assert not b.allows()
    now[0] = 60.0
    assert b.state == "half_open"
    assert b.acquire() and not b.acquire()  # one probe at a time
    b.record_success()
    assert b.state == "half_open" and b.acquire()
    b.record_success()
    assert b.state == "closed" and b.snapshot()["consecutive_failures"] == 0


def test_failed_probe_reopens():
    now = [0.0]
    b = CircuitBreaker("c", BreakerConfig(failure_threshold=1, open_s=10), clock=lambda: now[0])
    b.record_failure()
    now[0] = 10
    assert b.acquire()
    b.record_failure()
    assert b.state == "open" and b.retry_at == 20 and b.times_opened == 2
    now[0] = 20
    assert b.acquire()
    b.release()  # probe never reached the channel: slot comes back
    assert b.acquire()


def test_backoff_is_1_2_4_8_with_jitter_and_honours_retry_after():
    p = RetryPolicy()
    rng = random.Random(1)
    for retry, base in enumerate((1, 2, 4, 8), start=1):
        d = p.delay(retry, rng=rng)
        assert base * 0.8 <= d <= base * 1.2
    assert RetryPolicy(jitter=0).delay(1, retry_after=30) == 30
    assert RetryPolicy(jitter=0, max_retry_after_s=5).delay(1, retry_after=3600) == 5
    assert parse_retry_after("7") == 7
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None
