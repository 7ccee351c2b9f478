"""What can go wrong when notifying, as types the delivery loop can act on."""

from __future__ import annotations


class NotifyError(Exception):
    """Base of every notification error."""


class ChannelConfigError(NotifyError):
    """A channel cannot be built: missing env variable, bad option, refused URL.

    Raised at start (`resolve_channels`), never mid-stream. Names the channel,
    the option and, for `env("NAME")`, the variable, but never a secret value.
    """

    def __init__(self, channel: str, option: str | None, message: str, variable: str | None = None) -> None:
        where = f"channel {channel!r}" + (f", option {option!r}" if option else "")
        super().__init__(f"{where}: {message}")
        self.channel = channel
        self.option = option
        self.variable = variable


class DestinationRefused(NotifyError):
    """The destination is not allowed by the SSRF policy (never retried)."""


class DeliveryError(NotifyError):
    """One delivery attempt failed.

    `retryable` tells the retry loop whether another attempt can help (timeouts,
    connect errors, 5xx, 408, 429) or not (other 4xx, refused destinations);
    `retry_after` carries a server's `Retry-After` in seconds. The message is
    already redacted.
    """

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
