"""Notifications: match records → messages on console, file, webhook, Slack, email, SMS, PagerDuty.

Delivered at least once through a durable outbox, deduplicated by idempotency
key, retried with backoff, guarded by circuit breakers and an SSRF policy.
See docs/notifications.md.
"""

from runtime.notify.breaker import BreakerConfig, CircuitBreaker
from runtime.notify.channels import Notification, Sent
from runtime.notify.config import ResolvedChannel, resolve_channel, resolve_channels
from runtime.notify.errors import ChannelConfigError, DeliveryError, DestinationRefused, NotifyError
from runtime.notify.notifier import Notifier
from runtime.notify.outbox import Outbox, SqliteOutbox
from runtime.notify.retry import RetryPolicy
from runtime.notify.ssrf import DestinationPolicy
from runtime.notify.templates import DEFAULT_TEMPLATES, render_message
from runtime.notify.trial import notify_test, notify_test_async, sample_record

__all__ = [
    "DEFAULT_TEMPLATES",
    "BreakerConfig",
    "ChannelConfigError",
    "CircuitBreaker",
    "DeliveryError",
    "DestinationPolicy",
    "DestinationRefused",
    "Notification",
    "Notifier",
    "NotifyError",
    "Outbox",
    "ResolvedChannel",
    "RetryPolicy",
    "Sent",
    "SqliteOutbox",
    "notify_test",
    "notify_test_async",
    "render_message",
    "resolve_channel",
    "resolve_channels",
    "sample_record",
]
