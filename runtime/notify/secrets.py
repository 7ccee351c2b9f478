"""Keeping secrets out of logs, errors, reprs and the outbox.

A value is secret when it came from `env("...")` or when its option name says
so (password, token, auth, routing_key, webhook_url, ...). Secrets are never
stored resolved; whatever text leaves this package (exception messages,
failure reasons, `notify_test` output) goes through `Redactor.redact`, and text
that is cut short goes through `Redactor.shorten`, which masks before it cuts
(cutting first let a secret that crossed the cut leak its prefix).

A secret is masked in every form it takes on the way out: raw; JSON-escaped (a
key with a quote or backslash, in a request body or an error echoing it);
Python-repr-escaped; URL-encoded (in a query, a path, with `+` for spaces); and
base64 (standard and URL-safe, at each of the three byte alignments, so it is
found inside a longer encoding such as `Authorization: Basic base64(user:pass)`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, urlsplit

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


def _base64_cores(raw: bytes) -> Iterable[str]:
    """The base64 text that encodes `raw` wherever it sits in a longer byte string: for each
    of the three alignments, the characters that depend on `raw` alone."""
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * pad + raw).decode().rstrip("=")
            start = -(-pad * 4 // 3)  # chars touched by the padding bytes (ceil)
            end = (pad + len(raw)) * 4 // 3  # chars wholly made of our bytes (floor)
            core = text[start:end]
            if len(core) >= 4:
                yield core


def encodings(value: str) -> Iterable[str]:
    """Every form of `value` the redactor looks for (see the module doc)."""
    yield value
    yield json.dumps(value)[1:-1]
    yield json.dumps(value, ensure_ascii=False)[1:-1]
    yield repr(value)[1:-1]
    yield quote(value, safe="")
    yield quote(value)
    yield quote_plus(value)
    yield from _base64_cores(value.encode("utf-8", "surrogatepass"))


class Redactor:
    """Replaces every known secret, in each of its encodings (longest first), with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found: set[str] = set()
        for s in secrets:
            if isinstance(s, str) and len(s) >= 4:  # shorter "secrets" would mask ordinary words
                for f in _fragments(s):
                    if len(f) >= 4:
                        found.update(e for e in encodings(f) if len(e) >= 4)
        self._set(found)

    def _set(self, found: set[str]) -> None:
        self._secrets = sorted(found, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, self._secrets))) if self._secrets else None
        self._longest = len(self._secrets[0]) if self._secrets else 0

    def __add__(self, other: Redactor) -> Redactor:
        r = Redactor()
        r._set(set(self._secrets) | set(other._secrets))
        return r

    def redact(self, text: object) -> str:
        s = str(text)
        return self._pattern.sub(MASK, s) if self._pattern else s

    def shorten(self, text: object, n: int) -> str:
        """The first `n` characters of the redacted text: masked first, then cut. Only a prefix
        is redacted (a response body may be megabytes), long enough that everything that can
        reach the first `n` characters after masking was seen whole: each `***` stands for at
        most `longest` original characters."""
        s = str(text)
        window = n + (n // len(MASK) + 2) * self._longest
        return self.redact(s[:window])[:n]

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"
