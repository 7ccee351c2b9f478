"""`cep notify test`: render a rule's message for one record and send it through one channel, once.

No outbox, no retries, no breaker: the point is to see what a receiver gets
(and whether it accepts it) before the first real alert.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Mapping
from typing import IO, Any

from cepdsl.plan import Program, RulePlan
from cepdsl.types import Type
from runtime.notify.channels import Notification, SendContext, build_channel
from runtime.notify.config import resolve_channel
from runtime.notify.records import idempotency_key
from runtime.notify.render_worker import RenderWorkers
from runtime.notify.retry import classify_exception
from runtime.notify.ssrf import DEFAULT_POLICY, DestinationPolicy, Resolver, guarded_client, system_resolver
from runtime.notify.templates import render_message

_SAMPLE_BY_TYPE: dict[Type, Any] = {Type.INT: 42, Type.FLOAT: 42.5, Type.BOOL: True}


def sample_record(rule: RulePlan, now: dt.datetime | None = None) -> dict[str, Any]:
    """A plausible match record for `rule`, one value per output column (RulePlan.output)."""
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    record: dict[str, Any] = {}
    for f in rule.output:
        if f.type is Type.TIMESTAMP:
            record[f.name] = now
        elif f.type is Type.STR:
            record[f.name] = f"sample-{f.name}"
        else:
            record[f.name] = _SAMPLE_BY_TYPE.get(f.type)
    record["rule"] = rule.id
    record["severity"] = rule.severity
    record.setdefault("ts", now)
    if rule.lifecycle:  # §9.3: a firing record; `--record '{"state": "resolved"}'` shows the resolved message
        record.update(state="firing", firing_since=now, resolved_at=None, suppressed=False)
    return record


def _coerce(rule: RulePlan, given: Mapping[str, Any]) -> dict[str, Any]:
    """A record from JSON: timestamps given as RFC 3339 strings or epoch milliseconds become datetimes."""
    types = {f.name: f.type for f in rule.output}
    out = dict(given)
    for name, value in given.items():
        if types.get(name) is Type.TIMESTAMP or name == "ts":
            if isinstance(value, str):
                t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                out[name] = t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo else t
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                out[name] = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=value)
    return out


_WORKERS: RenderWorkers | None = None


def _workers() -> RenderWorkers:
    """One render worker for trial sends (`cep notify test`, the API), started on first need."""
    global _WORKERS
    if _WORKERS is None:
        _WORKERS = RenderWorkers(1)
    return _WORKERS


async def notify_test_async(
    program: Program,
    rule_id: str,
    channel_name: str,
    record: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    policy: DestinationPolicy = DEFAULT_POLICY,
    ssl_context: ssl.SSLContext | None = None,
    console: IO[str] | None = None,
    send: bool = True,
    resolver: Resolver = system_resolver,
) -> dict[str, Any]:
    rule = program.rule(rule_id)
    config = resolve_channel(program.channel(channel_name), env, policy)
    full = sample_record(rule)
    if record is not None:
        full.update(_coerce(rule, record))
    if rule.message is None or RenderWorkers.inline(rule.message):
        rendered = render_message(rule, config.kind, full)
    else:  # a template that may run away: in a worker stopped at the time limit, off the event loop
        rendered = await asyncio.to_thread(render_message, rule, config.kind, full, renderer=_workers().render)
    key = idempotency_key(rule, full)
    n = Notification.for_record(rule, key, full, rendered)
    result: dict[str, Any] = {
        "rule": rule.id,
        "channel": channel_name,
        "kind": config.kind,
        "idempotency_key": key,
        "subject": rendered.subject,
        "text": config.redact(rendered.text),
        "template_error": rendered.template_error,
        "sent": None,
        "ok": None,
        "error": None,
    }
    if not send:
        return result
    async with guarded_client(policy, resolver=resolver, ssl_context=ssl_context, max_connections=1) as client:
        channel = build_channel(config, SendContext(client, policy, ssl_context, console))
        try:
            sent = await asyncio.wait_for(channel.send(n), timeout=config.timeout_s)
        except BaseException as exc:  # noqa: BLE001 - reported, redacted
            err = classify_exception(exc, config.redactor)
            result.update(ok=False, error=err.reason, status=err.status, retryable=err.retryable)
        else:
            result.update(ok=True, sent=sent.as_dict())
    return result


def notify_test(
    program: Program,
    rule_id: str,
    channel_name: str,
    record: Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Render `rule_id`'s message for `record` (or a sample) and send it once through `channel_name`.

    Returns what was rendered and sent (secrets masked): keys rule, channel, kind,
    idempotency_key, subject, text, template_error, ok, error, sent (channel,
    kind, target, request, status, response). Raises `ChannelConfigError` for a
    missing env variable or a refused URL, KeyError/StopIteration for unknown names.
    Options: env, policy, ssl_context, console, resolver, send (False = render only).
    """
    return asyncio.run(notify_test_async(program, rule_id, channel_name, record, **options))
