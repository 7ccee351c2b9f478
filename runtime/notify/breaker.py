"""Circuit breakers: stop hammering a channel that is down, probe it gently when it may be back.

closed ──5 consecutive failures──► open ──60 s──► half-open ──2 successes──► closed
                                    ▲                 │
                                    └───any failure───┘
Half-open lets one request through at a time. The clock is injected so tests
control time; state is a plain dict for `/cep/health`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerConfig:
    failure_threshold: int = 5
    open_s: float = 60.0
    success_threshold: int = 2


class CircuitBreaker:
    def __init__(self, name: str, config: BreakerConfig = BreakerConfig(), clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.config = config
        self._clock = clock
        self._state = CLOSED
        self._failures = 0
        self._successes = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self.times_opened = 0

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock() >= self.retry_at:
            self._state = HALF_OPEN
            self._successes = 0
            self._probe_in_flight = False
        return self._state

    @property
    def retry_at(self) -> float:
        """When an open breaker will let a probe through."""
        return (self._opened_at or 0.0) + self.config.open_s

    def allows(self) -> bool:
        """Whether a request may go now (does not take the half-open probe slot)."""
        s = self.state
        return s == CLOSED or (s == HALF_OPEN and not self._probe_in_flight)

    def acquire(self) -> bool:
        """Take permission for one request; in half-open this is the single probe."""
        if not self.allows():
            return False
        if self._state == HALF_OPEN:
            self._probe_in_flight = True
        return True

    def release(self) -> None:
        """Give back a probe slot whose request never reached the channel."""
        self._probe_in_flight = False

    def record_success(self) -> None:
        self._probe_in_flight = False
        if self.state == HALF_OPEN:
            self._successes += 1
            if self._successes >= self.config.success_threshold:
                self._state = CLOSED
                self._failures = 0
        else:
            self._failures = 0

    def record_failure(self) -> None:
        self._probe_in_flight = False
        s = self.state
        if s == HALF_OPEN:
            self._open()
        elif s == CLOSED:
            self._failures += 1
            if self._failures >= self.config.failure_threshold:
                self._open()

    def _open(self) -> None:
        self._state = OPEN
        self._opened_at = self._clock()
        self._successes = 0
        self.times_opened += 1

    def snapshot(self) -> dict[str, Any]:
        s = self.state
        return {
            "state": s,
            "consecutive_failures": self._failures,
            "half_open_successes": self._successes if s == HALF_OPEN else 0,
            "retry_at": self.retry_at if s == OPEN else None,
            "times_opened": self.times_opened,
        }


class BreakerBoard:
    """All breakers of a notifier, by channel and by (rule, channel)."""

    def __init__(self, config: BreakerConfig = BreakerConfig(), clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self.channels: dict[str, CircuitBreaker] = {}
        self.rules: dict[str, CircuitBreaker] = {}

    def channel(self, name: str) -> CircuitBreaker:
        b = self.channels.get(name)
        if b is None:
            b = self.channels[name] = CircuitBreaker(f"channel:{name}", self.config, self._clock)
        return b

    def rule(self, rule_id: str, channel: str) -> CircuitBreaker:
        key = f"{rule_id}/{channel}"
        b = self.rules.get(key)
        if b is None:
            b = self.rules[key] = CircuitBreaker(f"rule:{key}", self.config, self._clock)
        return b

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            "channels": {k: b.snapshot() for k, b in sorted(self.channels.items())},
            "rules": {k: b.snapshot() for k, b in sorted(self.rules.items())},
        }
