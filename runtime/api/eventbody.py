"""Event bodies: a JSON array of objects or NDJSON → typed rows and dead letters, by the
same code the sources use (so the same rows are dead-lettered for the same reasons)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated

import polars as pl
from fastapi import Depends, Request

from cepdsl.plan import StreamPlan
from runtime.api.deps import raw_body
from runtime.control import Refused

#: OpenAPI for event bodies.
EVENTS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            "application/x-ndjson": {"schema": {"type": "string", "description": "one JSON object per line"}},
        },
    }
}


def frame_of(stream: StreamPlan, data: bytes, content_type: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows typed to `stream`, dead letters). A body that starts with `[` is a JSON array;
    anything else is read as NDJSON (a bad line is a dead letter, not a failed request)."""
    from runtime.sources.ndjson import blocks_to_frame
    from runtime.sources.records import records_to_frame

    head = data.lstrip()[:1]
    if head == b"[":
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            where = f" at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
            raise Refused(400, "invalid-json", f"the body is not a valid JSON array{where}") from None
        if not isinstance(doc, list):
            raise Refused(400, "invalid-json", "expected a JSON array of events")
        raws = [json.dumps(x) for x in doc]
        return records_to_frame(stream, doc, raws)
    if not data.strip():
        return pl.DataFrame(schema=stream.schema), _empty_dead()
    if not data.endswith(b"\n"):
        data += b"\n"
    return blocks_to_frame(stream, [data])


def _empty_dead() -> pl.DataFrame:
    from runtime.dead_letter_writer import empty_dead_letters

    return empty_dead_letters()


@dataclass(frozen=True)
class EventBody:
    """A request's events as read: typed once the route knows their stream."""

    data: bytes
    content_type: str

    def frame(self, stream: StreamPlan) -> tuple[pl.DataFrame, pl.DataFrame]:
        return frame_of(stream, self.data, self.content_type)


@raw_body(EVENTS_BODY)
async def event_body(request: Request) -> EventBody:
    return EventBody(await request.body(), request.headers.get("content-type", ""))


Events = Annotated[EventBody, Depends(event_body)]
