"""Keeping secrets out of logs, errors, reprs and the outbox.

A value is secret when it came from `env("...")` or when its option name says
so (password, token, auth, routing_key, webhook_url, ...). Secrets are never
stored resolved; whatever text leaves this package (exception messages,
failure reasons, `notify_test` output) goes through `Redactor.redact`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

MASK = "***"

# Option names whose values are secret even when written literally in the .cep file.
_SECRET_OPTION = re.compile(r"(pass|secret|token|auth|key|webhook_url|credential|sid)", re.IGNORECASE)


def is_secret_option(name: str) -> bool:
    return bool(_SECRET_OPTION.search(name))


def _fragments(value: str) -> Iterable[str]:
    """The value and, for URLs, the parts that carry the secret on their own (path, query, userinfo)."""
    yield value
    if "://" in value:
        try:
            parts = urlsplit(value)
        except ValueError:
            return
        if parts.path and len(parts.path) > 1:
            yield parts.path
            tail = parts.path.rstrip("/").rsplit("/", 1)[-1]
            if len(tail) >= 6:
                yield tail
        if parts.query:
            yield parts.query
        if parts.password:
            yield parts.password


class Redactor:
    """Replaces every known secret (longest first) with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found: set[str] = set()
        for s in secrets:
            if isinstance(s, str) and len(s) >= 4:  # shorter "secrets" would mask ordinary words
                found.update(f for f in _fragments(s) if len(f) >= 4)
        self._secrets = sorted(found, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, self._secrets))) if self._secrets else None

    def __add__(self, other: Redactor) -> Redactor:
        r = Redactor()
        r._secrets = sorted(set(self._secrets) | set(other._secrets), key=len, reverse=True)
        r._pattern = re.compile("|".join(map(re.escape, r._secrets))) if r._secrets else None
        return r

    def redact(self, text: object) -> str:
        s = str(text)
        return self._pattern.sub(MASK, s) if self._pattern else s

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"
