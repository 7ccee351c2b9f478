"""/cep/silences: silences created at run time (LANGUAGE.md §9.4), beside the files' ones.

A silence is created with a matcher — the `match` of a file silence (`rule ==
"disk_full" and host starts_with "db-"`), or Alertmanager-style `matchers` — and an
expiry (`expires_at`, RFC 3339, or `duration`, e.g. "2h"). It applies to the matches
the engine emits from its creation to its expiry, by the engine's clock (replay never
sees it); `DELETE` (or `POST .../expire`) ends it now. Silences are listed with the
files' ones (read-only here). They live in the running engine: a restart forgets them,
as their expiries are short by nature (docs/language-v2.md).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, Field

from runtime.api.deps import Ops, topic_router
from runtime.control import ControlPlane, Refused, diagnostic_json, rfc3339, rfc3339_s

router = topic_router("silences")
SilenceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_]{1,64}$")]


class MatcherIn(BaseModel):
    name: str = Field(max_length=200, description="a match-record field (`rule`, `severity`, a group key, ...)")
    value: str = Field(max_length=2000)
    op: str = Field("=", description="= != =~ !~ (Alertmanager's)")


class SilenceIn(BaseModel):
    match: str | None = Field(
        None, max_length=4000, description='a `.cep` condition over match-record fields, e.g. rule == "disk_full"'
    )
    matchers: list[MatcherIn] | None = Field(None, max_length=50)
    expires_at: str | None = Field(None, max_length=64, description="RFC 3339")
    duration: str | None = Field(None, max_length=32, description='from now, e.g. "2h" (instead of expires_at)')
    comment: str = Field("", max_length=2000)
    created_by: str = Field("", max_length=200)


class SilenceOut(BaseModel):
    id: str
    origin: str  # "api" | "file"
    match: str
    state: str  # active | expired | (file) declared
    created_at: str | None = None
    expires_at: str | None = None
    expired_at: str | None = None
    period: str | None = None  # file silences: their cron or from/until period
    comment: str = ""
    created_by: str = ""


def book(o: ControlPlane) -> Any:
    """The engine's run-time silences; without an engine (a bare `cep serve`), the API's own."""
    engine = getattr(o, "engine", None)
    if engine is not None and getattr(engine, "silences", None) is not None:
        return engine.silences
    from runtime.silence_book import SilenceBook

    if getattr(o, "_silence_book", None) is None:
        o._silence_book = SilenceBook(o.clock)  # type: ignore[attr-defined]
    return o._silence_book  # type: ignore[attr-defined]


def _out(s: Any, now: float) -> SilenceOut:
    j = s.as_json(now)
    return SilenceOut(
        id=s.id,
        origin="api",
        match=s.match_text,
        state=j["state"],
        created_at=rfc3339_s(s.created_at),
        expires_at=rfc3339_s(s.expires_at),
        expired_at=rfc3339_s(s.expired_at),
        comment=s.comment,
        created_by=s.created_by,
    )


def _file_silences(o: ControlPlane) -> list[SilenceOut]:
    from cepdsl.explain import typed_expr

    out = []
    for s in getattr(o.program, "silences", ()) or ():
        period = (
            f'every "{s.cron}" for {s.duration_us // 1_000_000}s'
            if s.cron is not None
            else f"from {rfc3339(s.start_us)} until {rfc3339(s.until_us)}"
        )
        out.append(
            SilenceOut(
                id=s.name,
                origin="file",
                match=typed_expr(s.match) if s.match is not None else "true",
                state="declared",
                period=period,
                comment=s.title or "",
            )
        )
    return out


_DURATION = re.compile(r"^([0-9]{1,9})(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _expiry(body: SilenceIn, now: float) -> float:
    if (body.expires_at is None) == (body.duration is None):
        raise Refused(422, "expiry", "give exactly one of `expires_at` (RFC 3339) and `duration` (e.g. \"2h\")")
    if body.duration is not None:
        m = _DURATION.match(body.duration.strip())
        if not m or int(m.group(1)) == 0:
            raise Refused(422, "expiry", f"`duration` {body.duration!r} is not a positive duration such as 30m or 2h")
        return now + int(m.group(1)) * _UNITS[m.group(2)]
    from cepdsl.checker_decls import parse_instant

    us = parse_instant(body.expires_at or "")
    if us is None:
        raise Refused(422, "expiry", f"`expires_at` {body.expires_at!r} is not an RFC 3339 time")
    return us / 1e6


@router.get("/cep/silences", summary="Silences: the files' and those created here")
def list_silences(o: Ops) -> list[SilenceOut]:
    b = book(o)
    now = b.clock()
    return _file_silences(o) + [_out(s, now) for s in b.list()]


@router.post(
    "/cep/silences",
    status_code=201,
    summary="Create a silence: a matcher and an expiry; it holds from now to its expiry (engine clock)",
)
def create_silence(body: SilenceIn, o: Ops) -> SilenceOut:
    from runtime.silence_book import SilenceRefused, matcher_text

    if (body.match is None) == (body.matchers is None):
        raise Refused(422, "matcher", "give exactly one of `match` (a .cep condition) and `matchers` (a list)")
    program = o.program
    if program is None:
        raise Refused(409, "no-program", "no rules are loaded: a silence is checked against the rules' match records")
    b = book(o)
    now = b.clock()
    expires = _expiry(body, now)
    try:
        text = body.match if body.match is not None else matcher_text(m.model_dump() for m in body.matchers or [])
        s = b.create(program, text, expires, comment=body.comment, created_by=body.created_by)
    except SilenceRefused as e:
        diags = [diagnostic_json(d, {"matcher": e.text}) for d in e.diagnostics]
        raise Refused(422, "matcher", str(e), diags or None) from None
    return _out(s, b.clock())


@router.get("/cep/silences/{silence_id}")
def get_silence(silence_id: SilenceId, o: Ops) -> SilenceOut:
    for s in list_silences(o):
        if s.id == silence_id:
            return s
    raise Refused(404, "not-found", f"no silence `{silence_id}`")


def _expire(silence_id: str, o: ControlPlane) -> SilenceOut:
    if any(s.id == silence_id for s in _file_silences(o)):
        raise Refused(409, "read-only", f"silence `{silence_id}` is declared in a rule file; remove it there")
    b = book(o)
    s = b.expire(silence_id)
    if s is None:
        raise Refused(404, "not-found", f"no silence `{silence_id}`")
    return _out(s, b.clock())


@router.delete("/cep/silences/{silence_id}", summary="Expire a silence now")
def delete_silence(silence_id: SilenceId, o: Ops) -> SilenceOut:
    return _expire(silence_id, o)


@router.post("/cep/silences/{silence_id}/expire", summary="Expire a silence now")
def expire_silence(silence_id: SilenceId, o: Ops) -> SilenceOut:
    return _expire(silence_id, o)
