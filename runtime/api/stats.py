"""Numbers: /cep/stats/summary, the old /cep/stats, and /metrics in Prometheus text format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from runtime.api.deps import ops
from runtime.api.errors import ERROR_RESPONSES
from runtime.api.models import LegacyStats, StatsSummary
from runtime.api.numbers import legacy_stats, summary
from runtime.control import ControlPlane

router = APIRouter(tags=["numbers"], responses=ERROR_RESPONSES)
Ops = Annotated[ControlPlane, Depends(ops)]


@router.get(
    "/cep/stats/summary", response_model=StatsSummary, summary="Active rules, events/matches/alerts today (UTC), evaluation time"
)
def stats_summary(request: Request, o: Ops) -> StatsSummary:
    return summary(o, request.app.state.today)


@router.get("/cep/stats", response_model=LegacyStats, summary="Engine counters, streams and rules (raw)")
def stats(o: Ops) -> LegacyStats:
    return LegacyStats(**legacy_stats(o))


@router.get(
    "/metrics",
    response_model=None,
    tags=["health"],
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus text format",
)
def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
