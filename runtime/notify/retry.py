"""When to try again, and how long to wait.

Backoff 1, 2, 4, 8 s (base × 2^(n−1)) with ±20 % jitter so a fleet of
notifiers that failed together does not retry together. Retried: connect
errors, timeouts, resets, 5xx, 408 and 429 (a server's Retry-After is honoured
when longer than our own delay, up to a cap). Never retried: other 4xx, refused
destinations, 3xx (redirects are not followed), TLS certificate errors.
"""

from __future__ import annotations

import email.utils
import random
import smtplib
import ssl
import time
from dataclasses import dataclass
from typing import Any

from runtime.notify.errors import DeliveryError, DestinationRefused
from runtime.notify.secrets import Redactor

RETRYABLE_STATUS = frozenset({408, 429})
# 4xx that say "this request is bad" rather than "this channel is broken": they open only the
# per-rule breaker, so one rule with a bad payload cannot shut a channel for every rule.
PAYLOAD_STATUS = frozenset({400, 413, 415, 422})


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 300.0
    jitter: float = 0.2
    max_retry_after_s: float = 300.0

    def delay(self, retry: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        base = min(self.base_s * self.factor ** (retry - 1), self.max_delay_s)
        r = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        d = base * r
        if retry_after is not None:
            d = max(d, min(retry_after, self.max_retry_after_s))
        return d


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_response(response: Any, redactor: Redactor) -> None:
    """Raise `DeliveryError` unless the response (http11.HttpResponse) is a 2xx."""
    code = response.status_code
    if 200 <= code < 300:
        return
    snippet = redactor.shorten(response.text, 200).strip() if response.content else ""
    detail = f"HTTP {code}" + (f": {snippet}" if snippet else "")
    if 300 <= code < 400:
        where = redactor.redact(response.headers.get("location", "?"))
        raise DeliveryError(f"HTTP {code} redirect to {where} not followed", retryable=False, status=code)
    if code in RETRYABLE_STATUS or code >= 500:
        raise DeliveryError(detail, retryable=True, status=code, retry_after=parse_retry_after(response.headers.get("retry-after")))
    raise DeliveryError(detail, retryable=False, status=code)


def classify_exception(exc: BaseException, redactor: Redactor) -> DeliveryError:
    """Any exception from a send attempt as a `DeliveryError` with a redacted reason."""
    if isinstance(exc, DeliveryError):
        return exc
    name = type(exc).__name__
    text = redactor.redact(str(exc) or name)
    if isinstance(exc, DestinationRefused):
        return DeliveryError(f"refused: {text}", retryable=False)
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"timeout: {text}", retryable=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryError(f"TLS certificate rejected: {text}", retryable=False)
    if isinstance(exc, smtplib.SMTPResponseException):
        # 4yz is "try again later" in SMTP; 5yz is permanent (bad auth, unknown mailbox).
        return DeliveryError(f"SMTP {exc.smtp_code}: {text}", retryable=400 <= exc.smtp_code < 500, status=exc.smtp_code)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return DeliveryError(f"SMTP recipients refused: {text}", retryable=False)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(f"SMTP: {text}", retryable=False)
    if isinstance(exc, (OSError, smtplib.SMTPException)):
        return DeliveryError(f"{name}: {text}", retryable=True)
    return DeliveryError(f"{name}: {text}", retryable=False)
