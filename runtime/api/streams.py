"""/cep/streams: per-stream figures, the last input events, and events in over HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request

from runtime.api.deps import Ops, topic_router
from runtime.api.eventbody import Events
from runtime.api.models import STREAM_PATTERN, IngestOut, RecentOut, StreamOut
from runtime.api.numbers import streams as stream_figures
from runtime.control import ControlPlane, Refused

router = topic_router("streams")
Stream = Annotated[str, Path(pattern=STREAM_PATTERN)]


def _stream(o: ControlPlane, name: str):  # noqa: ANN202
    program = o.program
    for s in program.streams if program else ():
        if s.name == name:
            return s
    raise Refused(404, "not-found", f"no stream `{name}`")


@router.get(
    "/cep/streams",
    summary="Per stream: events/s, watermark, lag behind the wall clock, late rows, dead letters",
)
def list_streams(request: Request, o: Ops) -> list[StreamOut]:
    return stream_figures(o, request.app.state.rates)


@router.get("/cep/streams/{stream}/recent", summary="The last N input events (for simulate)")
def recent(stream: Stream, o: Ops, n: Annotated[int, Query(ge=1, le=1000)] = 50) -> RecentOut:
    _stream(o, stream)
    return RecentOut(stream=stream, events=o.recent_events(stream, n))


@router.post(
    "/cep/streams/{stream}/events",
    summary="Events in over HTTP (JSON array or NDJSON), fed to the engine like any source",
)
def ingest(stream: Stream, events: Events, o: Ops) -> IngestOut:
    frame, dead = events.frame(_stream(o, stream))
    return IngestOut(stream=stream, **o.ingest(stream, frame, dead))
