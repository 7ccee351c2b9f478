"""HTTP metric polling: the seed design's "metric" trigger as a stream.

Every `interval_s` the endpoint is fetched with GET; the JSON body's values at
the configured paths (`data.avg`, `items.0.value`; default: the field's own
name) become one event whose time field is the poll time. A failed poll
(connection error, timeout, non-2xx, a body that is not JSON) is counted in
`errors` and becomes a dead letter; the source never stops because of it.
Polls are scheduled on a fixed grid (start + k·interval); polls missed while
a slow request was running are skipped, not bunched up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Unpack

import httpx

from cepdsl.plan import StreamPlan
from runtime.sources.batch import Chunk, Source, SourceOptions
from runtime.sources.records import Rejected, oversize, oversize_raw

_MISSING = object()


def pick(body: Any, path: str) -> Any:
    """The value at a dotted path (object keys, list indices); None when any step is missing."""
    if isinstance(body, dict) and path in body:
        return body[path]
    value = body
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is _MISSING:
            return None
    return value


class HttpPollSource(Source):
    def __init__(
        self,
        stream: StreamPlan,
        url: str,
        *,
        interval_s: float = 5.0,
        mapping: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
        client: httpx.Client | None = None,
        **options: Unpack[SourceOptions],
    ) -> None:
        options.setdefault("max_rows", 1_000)
        super().__init__(stream, **options)
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.url = url
        self.interval_s = interval_s
        self.mapping = dict(mapping or {})
        self.timeout_s = timeout_s
        self._client = client or httpx.Client(headers=dict(headers or {}), follow_redirects=True)
        self._owns_client = client is None
        self._next_poll: float | None = None
        self.polls = 0
        self.errors = 0
        self.last_error: str | None = None

    def offsets(self) -> dict[str, Any]:
        return {"url": self.url, "polls": self.polls, "errors": self.errors}

    def close(self) -> None:
        super().close()
        if self._owns_client:
            self._client.close()

    def _read(self, timeout_s: float, limit: int) -> Chunk:
        now = self.clock.monotonic()
        if self._next_poll is None:
            self._next_poll = now
        if now < self._next_poll:
            self.clock.sleep(min(timeout_s, self._next_poll - now))
            if self.clock.monotonic() < self._next_poll:
                return Chunk()
        record, raw = self.poll()
        # Next slot on the grid that is still ahead of us.
        now = self.clock.monotonic()
        missed = int((now - self._next_poll) // self.interval_s)
        self._next_poll += (missed + 1) * self.interval_s
        return Chunk([record], [raw])

    def poll(self) -> tuple[Any, str]:
        """One GET → (record or `Rejected`, raw text)."""
        polled_at_ms = self.clock.time() * 1000
        self.polls += 1
        text = ""
        try:
            # Streamed, so a body over the limit is refused after max_event_bytes, not buffered.
            with self._client.stream("GET", self.url, timeout=self.timeout_s) as response:
                content = bytearray()
                for part in response.iter_bytes():
                    content += part
                    if len(content) > self.max_event_bytes:
                        self.errors += 1
                        self.last_error = f"response body over {self.max_event_bytes} bytes"
                        why = oversize(len(content), self.max_event_bytes).reason
                        return Rejected(f"poll {self.url}: {why}"), oversize_raw(bytes(content), len(content))
                text = content.decode(response.encoding or "utf-8", errors="replace")
                response.raise_for_status()
            body = json.loads(text)
        except Exception as e:  # noqa: BLE001 - one bad poll must never end the stream
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
            text = text if isinstance(e, httpx.HTTPStatusError) else ""
            return Rejected(f"poll {self.url} failed: {self.last_error}"), text or self.last_error
        record: dict[str, Any] = {}
        for f in self.stream.fields:
            if f.name == self.stream.time_field and f.name not in self.mapping:
                record[f.name] = polled_at_ms
            else:
                record[f.name] = pick(body, self.mapping.get(f.name, f.name))
        return record, text
