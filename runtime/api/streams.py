"""/cep/streams: per-stream figures, the last input events, and events in over HTTP."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from runtime.api.deps import ops
from runtime.api.errors import ERROR_RESPONSES
from runtime.api.eventbody import EVENTS_BODY, events_of
from runtime.api.models import STREAM_PATTERN, IngestOut, RecentOut, StreamOut
from runtime.api.numbers import streams as stream_figures
from runtime.control import ControlPlane, Refused

router = APIRouter(tags=["streams"], responses=ERROR_RESPONSES)
Ops = Annotated[ControlPlane, Depends(ops)]
Stream = Annotated[str, Path(pattern=STREAM_PATTERN)]


def _stream(o: ControlPlane, name: str):  # noqa: ANN202
    program = o.program
    for s in program.streams if program else ():
        if s.name == name:
            return s
    raise Refused(404, "not-found", f"no stream `{name}`")


@router.get(
    "/cep/streams",
    response_model=list[StreamOut],
    summary="Per stream: events/s, watermark, lag behind the wall clock, late rows, dead letters",
)
def list_streams(request: Request, o: Ops) -> list[StreamOut]:
    return stream_figures(o, request.app.state.rates)


@router.get("/cep/streams/{stream}/recent", response_model=RecentOut, summary="The last N input events (for simulate)")
def recent(stream: Stream, o: Ops, n: Annotated[int, Query(ge=1, le=1000)] = 50) -> RecentOut:
    _stream(o, stream)
    return RecentOut(stream=stream, events=o.recent_events(stream, n))


@router.post(
    "/cep/streams/{stream}/events",
    response_model=IngestOut,
    openapi_extra=EVENTS_BODY,
    summary="Events in over HTTP (JSON array or NDJSON), fed to the engine like any source",
)
async def ingest(stream: Stream, request: Request, o: Ops) -> IngestOut:
    from starlette.concurrency import run_in_threadpool

    plan = _stream(o, stream)
    frame, dead = await events_of(request, plan)
    got = await run_in_threadpool(o.ingest, stream, frame, dead)
    return IngestOut(stream=stream, **got)
