"""Delivery semantics against a scripted receiver: retry, Retry-After, no retry on 4xx, timeouts,
resets, fallback, queryable failures, duplicate suppression, circuit breakers."""

from __future__ import annotations

import time

import pytest
from conftest import cpu_rows, matches, program

from runtime.notify import BreakerConfig, RetryPolicy

from receiver import Answer

pytestmark = pytest.mark.timeout(30)

RULE = """
channel hook = webhook(url = env("HOOK_URL"), retries = {retries}, timeout = {timeout})
channel backup = webhook(url = env("BACKUP_URL"))
rule r "R" from metrics where cpu > 1 group by host severity high notify hook fallback backup
  message "{{{{ host }}}}"
"""


def setup(receiver, make_notifier, retries=3, timeout="2s", **kw):
    prog = program(RULE.format(retries=retries, timeout=timeout))
    env = {"HOOK_URL": receiver.url + "/hook", "BACKUP_URL": receiver.url + "/backup"}
    return prog, make_notifier(prog, env, **kw)


def test_5xx_is_retried_with_exponential_backoff_then_delivered(receiver, make_notifier):
    receiver.script("/hook", Answer(500), Answer(503), Answer(502))
    prog, n = setup(receiver, make_notifier, retry=RetryPolicy(base_s=0.1, jitter=0.0))
    n.start()
    n.submit("r", matches(prog, "r", cpu_rows(1)))
    assert n.drain(10)
    got = receiver.received("/hook")
    assert len(got) == 4
    assert len({r.headers["idempotency-key"] for r in got}) == 1  # one key across retries
    gaps = [b.at - a.at for a, b in zip(got, got[1:])]
    for gap, want in zip(gaps, (0.1, 0.2, 0.4)):
        assert want * 0.9 <= gap <= want + 0.35, gaps
    s = n.stats()
    assert (s["sent"], s["retried"], s["failed"], s["fallback"]) == (1, 3, 0, 0)
    assert receiver.received("/backup") == []


def test_429_retry_after_is_honoured(receiver, make_notifier):
    receiver.script("/hook", Answer(429, {"Retry-After": "1"}))
    prog, n = setup(receiver, make_notifier)  # own backoff 0.05 s: the server's 1 s wins
    n.start()
    n.submit("r", matches(prog, "r", cpu_rows(1)))
    assert n.drain(10)
    first, second = receiver.received("/hook")
    assert 0.95 <= second.at - first.at <= 1.6


def test_408_is_retried(receiver, make_notifier):
    receiver.script("/hook", Answer(408))
    prog, n = setup(receiver, make_notifier)
    n.start()
    n.submit("r", matches(prog, "r", cpu_rows(1)))
    assert n.drain(10)
    assert len(receiver.received("/hook")) == 2 and n.stats()["sent"] == 1


def test_4xx_is_not_retried_and_goes_to_fallback_with_reason(receiver, make_notifier):
    receiver.script("/hook", Answer(400, body=b'{"error":"bad payload"}'))
    prog, n = setup(receiver, make_notifier)
    n.start()
    n.submit("r", matches(prog, "r", cpu_rows(1)))
    assert n.drain(10)
    assert len(receiver.received("/hook")) == 1
    backup = receiver.received("/backup")
    assert len(backup) == 1 and backup[0].json()["message"] == "web-0"
    assert backup[0].headers["idempotency-key"] == receiver.received("/hook")[0].headers["idempotency-key"]
    (failure,) = n.failures()
    assert failure["channel"] == "hook" and failure["fallback"] == "backup" and failure["attempts"] == 1
    assert failure["reason"] == 'HTTP 400: {"error":"bad payload"}'
    s = n.stats()
    assert (s["sent"], s["failed"], s["fallback"], s["retried"]) == (1, 1, 1, 0)


def test_retries_exhausted_go_to_fallback(receiver, make_notifier):
    receiver.script("/hook", *[Answer(500)] * 3)
    prog, n = setup(receiver, make_notifier, retries=2)
    n.start()
    n.submit("r", matches(prog, "r", cpu_rows(1)))
    assert n.drain(10)
    assert len(receiver.received("/hook")) == 3  # first try + 2 retries
    assert len(receiver.received("/backup")) == 1
    (failure,) = n.failures()
    assert failure["attempts"] == 3 and failure["reason"].startswith("HTTP 500")


def test_slow_receiver_times_out_and_is_retried(receiver, make_notifier):
    receiver.script("/hook", Answer(delay=3.0))
    prog, n = setup(receiver, make_notifier, timeout="300ms")
    n.start()
    t0 = time.monotonic()
    n.submit("r", matches(prog, "r", cpu_rows(1)))
    assert n.drain(10)
    took = time.monotonic() - t0
    assert len(receiver.received("/hook")) == 2
    assert took < 2.0  # the 3 s answer was not waited for
    assert n.stats()["sent"] == 1 and n.stats()["retried"] == 1


def test_connection_reset_is_retried(receiver, make_notifier):
    receiver.script("/hook", Answer(reset=True), Answer(reset=True))
    prog, n = setup(receiver, make_notifier)
    n.start()
    n.submit("r", matches(prog, "r", cpu_rows(1)))
    assert n.drain(10)
    assert len(receiver.received("/hook")) == 3 and n.stats()["sent"] == 1


def test_redirect_is_not_followed(receiver, second_receiver, make_notifier):
    receiver.script("/hook", Answer(302, {"Location": second_receiver.url + "/stolen"}))
    prog, n = setup(receiver, make_notifier)
    n.start()
    n.submit("r", matches(prog, "r", cpu_rows(1)))
    assert n.drain(10)
    assert second_receiver.received() == []
    assert n.failures()[0]["reason"].startswith("HTTP 302 redirect")


def test_duplicate_matches_are_suppressed_across_submits(receiver, make_notifier):
    prog, n = setup(receiver, make_notifier)
    n.start()
    frame = matches(prog, "r", cpu_rows(3))
    assert n.submit("r", frame) == 3
    assert n.drain(10)
    assert n.submit("r", frame) == 0  # re-emitted after a restart: already sent
    assert n.submit("r", matches(prog, "r", cpu_rows(4))) == 1
    assert n.drain(10)
    keys = [r.headers["idempotency-key"] for r in receiver.received("/hook")]
    assert len(keys) == 4 and len(set(keys)) == 4
    assert n.stats()["suppressed_duplicates"] == 6


def test_breaker_opens_after_5_failures_and_short_circuits_to_fallback(receiver, make_notifier):
    receiver.script("/hook", *[Answer(500)] * 5)
    prog, n = setup(
        receiver, make_notifier, retries=0, max_in_flight=1, breaker=BreakerConfig(failure_threshold=5, open_s=60, success_threshold=2)
    )
    n.start()
    n.submit("r", matches(prog, "r", cpu_rows(8)))
    assert n.drain(10)
    assert len(receiver.received("/hook")) == 5  # the last 3 never reached the broken channel
    assert len(receiver.received("/backup")) == 8
    s = n.stats()
    assert s["short_circuited"] == 3 and s["fallback"] == 8
    assert s["breakers"]["channels"]["hook"]["state"] == "open"
    assert n.health()["channels"]["hook"]["state"] == "open"


def test_breaker_half_opens_and_closes_after_two_successes(receiver, make_notifier):
    clock = [1000.0]
    receiver.script("/hook", *[Answer(500)] * 5)
    prog = program("""
channel hook = webhook(url = env("HOOK_URL"), retries = 0)
rule r from metrics where cpu > 1 group by host notify hook
""")
    n = make_notifier(
        prog, {"HOOK_URL": receiver.url + "/hook"}, clock=lambda: clock[0], max_in_flight=1, breaker=BreakerConfig(open_s=60)
    )
    n.start()
    n.submit("r", matches(prog, "r", cpu_rows(5)))  # 5 failures, no fallback → final failures
    assert n.drain(10)
    assert n.stats()["breakers"]["channels"]["hook"]["state"] == "open"
    n.submit("r", matches(prog, "r", cpu_rows(3, start=10)))
    time.sleep(0.5)
    assert len(receiver.received("/hook")) == 5  # queued behind the open breaker
    assert n.stats()["queued_by_breaker"] >= 3
    clock[0] += 61  # breaker half-opens: one probe, then another, then closed
    assert n.drain(10)
    assert len(receiver.received("/hook")) == 8
    assert n.stats()["breakers"]["channels"]["hook"]["state"] == "closed"
