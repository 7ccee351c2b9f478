"""Numbers: /cep/stats/summary, the old /cep/stats, and /metrics in Prometheus text format."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from runtime.api.deps import Ops, topic_router
from runtime.api.models import LegacyStats, StatsSummary
from runtime.api.numbers import legacy_stats, summary

router = topic_router("numbers")


@router.get("/cep/stats/summary", summary="Active rules, events/matches/alerts today (UTC), evaluation time")
def stats_summary(request: Request, o: Ops) -> StatsSummary:
    return summary(o, request.app.state.today)


@router.get("/cep/stats", summary="Engine counters, streams and rules (raw)")
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
