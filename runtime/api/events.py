"""/cep/events: the alert history (every emitted match), with filters and cursor pagination."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Path, Query

from runtime.api.deps import Ops, topic_router
from runtime.api.models import (
    ID_PATTERN,
    AlertDetail,
    AlertOut,
    AlertPage,
    CountOut,
    DeliveryOut,
    MinuteOut,
    RenderedOut,
    SummaryOut,
)
from runtime.control import ControlPlane, Refused, rfc3339
from runtime.history import Alert

router = topic_router("events")
Time = Annotated[str | None, Query(max_length=64, description="RFC 3339, e.g. 2026-01-01T00:00:00Z")]


def parse_time(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Refused(422, "invalid-request", f"{name}: not an RFC 3339 time: {value!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    try:
        return (t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(microseconds=1)
    except OverflowError:
        raise Refused(422, "invalid-request", f"{name}: out of range: {value!r}") from None


def history(o: ControlPlane):  # noqa: ANN201
    if o.history is None:
        raise Refused(404, "no-history", "this server keeps no alert history")
    o.history_flush(timeout=5.0)  # matches emitted before this request are in the answer
    return o.history


def alert_out(a: Alert) -> AlertOut:
    return AlertOut(
        id=a.id,
        rule=a.rule,
        severity=a.severity,
        ts=rfc3339(a.ts_us),
        emitted_at=rfc3339(a.emitted_us),
        group=a.group,
        record=a.record,
        silenced=a.silenced,
        test=a.test,
        channels=a.channels,
    )


@router.get("/cep/events", summary="Stored matches, newest first")
def list_events(
    o: Ops,
    rule: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    severity: Annotated[str | None, Query(pattern="^(info|low|medium|high|critical)$")] = None,
    group: Annotated[str | None, Query(max_length=1000, description="group key value (several keys joined by `|`)")] = None,
    since: Time = None,
    until: Time = None,
    cursor: Annotated[str | None, Query(pattern="^[0-9]{1,18}$", description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> AlertPage:
    rows, nxt = history(o).query(
        rule=rule,
        severity=severity,
        group=group,
        since_us=parse_time(since, "since"),
        until_us=parse_time(until, "until"),
        cursor=int(cursor) if cursor else None,
        limit=limit,
    )
    return AlertPage(items=[alert_out(a) for a in rows], next_cursor=None if nxt is None else str(nxt))


@router.get(
    "/cep/events/summary",
    summary="Counts by rule and severity over a range (default: the last 24 h), and per minute",
)
def events_summary(
    o: Ops,
    since: Time = None,
    until: Time = None,
    rule: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    severity: Annotated[
        str | None,
        Query(pattern="^(info|low|medium|high|critical)$", description="per-minute series of one severity (the console's chart)"),
    ] = None,
) -> SummaryOut:
    since_us = parse_time(since, "since")
    until_us = parse_time(until, "until")
    if since_us is None and until_us is None:
        now_us = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1_000_000)
        since_us = now_us - 86_400_000_000
    h = history(o)
    from runtime.history.rollup import rollup_for

    roll = rollup_for(h)
    got = roll.query(since_us, until_us, rule, severity) if roll is not None else None
    if got is None:
        # The per-minute series comes split by severity below; the plain one would be a third scan.
        counts, _ = h.summary(since_us=since_us, until_us=until_us, rule=rule, severity=severity, series=False)
        by_minute = h.minutes_by_severity(since_us=since_us, until_us=until_us, rule=rule, severity=severity)
    else:
        counts, by_minute = got
    minutes: dict[int, MinuteOut] = {}
    for m, sev, n in by_minute:
        out = minutes.setdefault(m, MinuteOut(minute=rfc3339(m) or "", count=0))
        out.count += n
        out.by_severity[sev] = n
    by_rule: dict[str, int] = {}
    by_sev: dict[str, int] = {}
    for r, s, n in counts:
        by_rule[r] = by_rule.get(r, 0) + n
        by_sev[s] = by_sev.get(s, 0) + n
    return SummaryOut(
        since=rfc3339(since_us),
        until=rfc3339(until_us),
        total=sum(by_rule.values()),
        counts=[CountOut(rule=r, severity=s, count=n) for r, s, n in counts],
        by_rule=by_rule,
        by_severity=by_sev,
        per_minute=list(minutes.values()),
    )


@router.get(
    "/cep/events/{event_id}",
    summary="One stored match: record, rendered messages, delivery status per channel",
)
def get_event(event_id: Annotated[int, Path(ge=1, le=2**62)], o: Ops) -> AlertDetail:
    a = history(o).get(event_id)
    if a is None:
        raise Refused(404, "not-found", f"no event {event_id}")
    detail = AlertDetail(**alert_out(a).model_dump())
    program = o.program
    rule = next((r for r in program.rules if r.id == a.rule), None) if program else None
    if rule is not None:
        from runtime.notify.templates import render_message
        from runtime.notify.trial import _coerce

        record = _coerce(rule, a.record)
        kinds = {c.name: c.kind for c in program.channels}
        for ch in a.channels or list(rule.notify):
            r = render_message(rule, kinds.get(ch, "console"), record)
            detail.messages.append(
                RenderedOut(channel=ch, kind=kinds.get(ch, "?"), subject=r.subject, text=r.text, template_error=r.template_error)
            )
    outbox = getattr(o.notifier, "_outbox", None)
    rows = _outbox_rows(outbox, a.key) if a.key else {}
    for ch in a.channels:
        if ch in rows:
            detail.deliveries.append(rows[ch])
            continue
        status = None
        if outbox is not None and a.key:
            try:
                status = outbox.status_of(a.key, ch)
            except Exception:  # noqa: BLE001 - a store that is down: unknown, not an error page
                status = None
        detail.deliveries.append(DeliveryOut(channel=ch, status=status))
    return detail


def _outbox_rows(outbox: object, key: str) -> dict[str, DeliveryOut]:
    """Attempts and the last error per channel, where the outbox is the SQLite one (others: status only)."""
    db = getattr(outbox, "_db", None)
    if db is None:
        return {}
    from runtime.control import rfc3339_s

    try:
        got = (
            db()
            .execute("SELECT channel, status, attempts, last_error, updated FROM deliveries WHERE notification_id = ?", (key,))
            .fetchall()
        )
    except Exception:  # noqa: BLE001
        return {}
    return {
        ch: DeliveryOut(channel=ch, status=st, attempts=int(n), last_error=err, updated_at=rfc3339_s(up)) for ch, st, n, err, up in got
    }


@router.delete("/cep/events/{event_id}", status_code=204, response_model=None)
def delete_event(event_id: Annotated[int, Path(ge=1, le=2**62)], o: Ops) -> None:
    if not history(o).delete(event_id):
        raise Refused(404, "not-found", f"no event {event_id}")
