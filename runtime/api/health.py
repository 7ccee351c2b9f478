"""/cep/health: 200 when everything works, 503 with the reasons when degraded; liveness and
readiness apart; Redis latency, circuit breakers, sources and the last reload in detail."""

from __future__ import annotations

import time
from typing import Any

from fastapi.responses import JSONResponse

from runtime.api.deps import Ops, topic_router
from runtime.api.models import BreakerOut, BreakersOut, HealthOut, ProbeOut, RedisHealth, ReloadOut, SourceHealth
from runtime.api.rules import reload_out
from runtime.control import ControlPlane, rfc3339_s

router = topic_router("health", error_responses=False)  # degraded is a 503 with the health body


def _store_health(o: ControlPlane) -> dict[str, Any]:
    store = getattr(o.engine, "store", None)
    fn = getattr(store, "health", None)
    return fn() if fn is not None else {"degraded": False}


def reasons(o: ControlPlane) -> list[str]:
    out = []
    if o.assembly is None or o.program is None:
        out.append("no program is loaded")
    store = _store_health(o)
    if store.get("degraded"):
        out.append(f"state store unavailable, running on in-memory state: {store.get('last_error')}")
    for name, problem in o.source_problems().items():
        out.append(f"source {name}: {problem}")
    if o.engine is not None:
        # Any engine with `health()` (the streaming engine, a Bytewax flow handle); the rest is optional.
        engine_health = o.engine.health() if hasattr(o.engine, "health") else {}
        for name, src in engine_health.get("sources", {}).items():
            if src.get("last_error"):
                out.append(f"source {name}: {src['last_error']}")
        if engine_health.get("degraded") and not out:
            out.append("the engine reports itself degraded")
        out += [f"engine: {e}" for e in list(getattr(o.engine, "errors", []))[-5:]]
    if o.notifier is not None:
        h = o.notifier.health()
        if h.get("worker") != "running":
            out.append("the notification worker is not running")
        for name, ch in h.get("channels", {}).items():
            if ch.get("state") == "open":
                out.append(f"channel {name}: circuit breaker open")
    last = o.last_reload()
    if last is not None and not last.ok:
        out.append(f"the last reload ({last.origin}) was refused: {last.error or 'see last_reload'}")
    out += o.problems
    return out


@router.get(
    "/cep/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "degraded"}},
    summary="Overall health: 200 ok, 503 degraded (with the reasons and the last reload)",
)
def health(o: Ops) -> Any:
    why = reasons(o)
    components: dict[str, Any] = {"state_store": _store_health(o)}
    if o.notifier is not None:
        h = o.notifier.health()
        components["notifier"] = {"worker": h.get("worker"), "queue_depth": h.get("queue_depth"), "in_flight": h.get("in_flight")}
    components["sources"] = [s.model_dump() for s in sources(o)]
    tables = getattr(o.engine, "tables", None)
    if tables is not None:  # lookup tables (§9.2): a failed reload keeps the old rows, reported here
        components["tables"] = tables.health()
    body = HealthOut(
        status="degraded" if why else "ok",
        degraded=bool(why),
        reasons=why,
        state_store=components["state_store"],
        timestamp=rfc3339_s(time.time()) or "",
        uptime_s=round(time.time() - o.started_at, 3),
        rules=len(o.program.rules) if o.program else 0,
        files=o.files,
        last_reload=reload_out(o.last_reload()),
        components=components,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if why else 200)


@router.get("/cep/health/live", summary="Liveness: the process answers")
def live() -> ProbeOut:
    return ProbeOut(status="ok")


@router.get(
    "/cep/health/ready",
    response_model=ProbeOut,
    responses={503: {"model": ProbeOut}},
    summary="Readiness: a program is loaded and nothing is degraded",
)
def ready(o: Ops) -> Any:
    why = reasons(o)
    body = ProbeOut(status="fail" if why else "ok", reason="; ".join(why) or None)
    return JSONResponse(body.model_dump(), status_code=503 if why else 200)


@router.get("/cep/health/bytewax", summary="Workers on Bytewax (`--workers`): input partitions with their lag, key partitions")
def bytewax_health(o: Ops) -> dict[str, Any]:
    section = (o.engine.health() if hasattr(o.engine, "health") else {}).get("bytewax")
    return {"configured": False} if section is None else {"configured": True, **section}


@router.get("/cep/health/redis", summary="Redis behind the state store: latency, degraded since")
def redis_health(o: Ops) -> RedisHealth:
    store = getattr(o.engine, "store", None)
    inner = getattr(store, "inner", store)
    client = getattr(inner, "redis", None)
    if client is None:
        return RedisHealth(configured=False, status="not-configured")
    h = _store_health(o)
    now = time.time()
    if h.get("degraded"):
        o.redis_degraded_since = getattr(o, "redis_degraded_since", None) or now
    else:
        o.redis_degraded_since = None
    t0 = time.perf_counter()
    try:
        client.ping()
    except Exception as e:  # noqa: BLE001 - down is an answer here, not an error
        return RedisHealth(
            configured=True, status="down", degraded_since=rfc3339_s(o.redis_degraded_since or now), last_error=str(e)[:500]
        )
    return RedisHealth(
        configured=True,
        status="up",
        latency_ms=round((time.perf_counter() - t0) * 1e3, 3),
        degraded_since=rfc3339_s(o.redis_degraded_since),
        last_error=h.get("last_error"),
    )


def _breaker(b: dict[str, Any], threshold: int) -> BreakerOut:
    return BreakerOut(
        state=str(b.get("state")),
        failures=int(b.get("consecutive_failures", 0)),
        opens_at=f"{threshold} consecutive failures",
        retry_at=rfc3339_s(b.get("retry_at")),
    )


@router.get(
    "/cep/health/circuit-breakers",
    summary="Per channel and per rule/channel: state, failures, when it opens, when it retries",
)
def breakers(o: Ops) -> BreakersOut:
    if o.notifier is None:
        return BreakersOut(channels={}, rules={})
    snap = o.notifier.breakers.snapshot()
    threshold = o.notifier.breakers.config.failure_threshold
    rules: dict[str, dict[str, BreakerOut]] = {}
    for key, b in snap["rules"].items():
        rid, _, ch = key.partition("/")
        rules.setdefault(rid, {})[ch] = _breaker(b, threshold)
    return BreakersOut(channels={k: _breaker(b, threshold) for k, b in snap["channels"].items()}, rules=rules)


@router.get(
    "/cep/health/sources",
    summary="Each source: ok or its error (a followed file that does not exist is an error)",
)
def list_sources(o: Ops) -> list[SourceHealth]:
    return sources(o)


def sources(o: ControlPlane) -> list[SourceHealth]:
    problems = o.source_problems()
    live = o.engine.health().get("sources", {}) if hasattr(o.engine, "health") else {}
    session = getattr(o.engine, "session", None)
    progress = session.progresses() if session is not None else {}
    out = []
    for name, (stream, spec) in o.sources.items():
        h = live.get(name, {})
        err = problems.get(name) or h.get("last_error")
        p = progress.get(stream)
        lag = None
        if p is not None and -(2**62) < p.watermark_us < 2**62:
            lag = round(time.time() - p.watermark_us / 1e6, 3)
        out.append(
            SourceHealth(
                name=name,
                stream=stream,
                spec=_masked(spec),
                ok=err is None,
                error=err,
                errors=int(h.get("errors", 0)),
                finished=bool(h.get("finished")),
                lag_s=lag,
            )
        )
    return out


def _masked(spec: str) -> str:
    """A source spec without a password (redis://:secret@host)."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in spec:
        return spec
    parts = urlsplit(spec)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return spec


@router.get("/cep/health/reload", summary="The last reload: ok, or why it was refused")
def last_reload(o: Ops) -> ReloadOut | None:
    return reload_out(o.last_reload())
