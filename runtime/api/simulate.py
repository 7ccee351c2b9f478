"""Try before it fires: simulate (events → matches), dry-run (record → messages), trigger (send once, as a test)."""

from __future__ import annotations

from typing import Annotated, Any

import polars as pl
from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from cepdsl.plan import Program, RulePlan
from runtime.api.deps import ops
from runtime.api.errors import ERROR_RESPONSES
from runtime.api.eventbody import EVENTS_BODY, events_of
from runtime.api.models import ID_PATTERN, DryRunIn, DryRunOut, RenderedOut, SimulateIn, SimulateOut, TriggerOut
from runtime.control import ControlPlane, Refused, diagnostic_json

router = APIRouter(tags=["simulate"], responses=ERROR_RESPONSES)
Ops = Annotated[ControlPlane, Depends(ops)]
RuleId = Annotated[str, Path(pattern=ID_PATTERN)]


def records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    from runtime.notify.records import json_safe

    return [json_safe(r) for r in frame.to_dicts()]


def run_rules(program: Program, frames: dict[str, pl.DataFrame]) -> tuple[dict[str, list[dict[str, Any]]], pl.DataFrame]:
    """Replay `frames` through a fresh session of `program`: no state of the running engine is touched."""
    from cepdsl.engine import Session

    session = Session(program, replay=True)
    outs: dict[str, list[pl.DataFrame]] = {r.id: [] for r in program.rules}
    for stream, frame in frames.items():
        if frame.height:
            for rid, f in session.push(stream, frame).items():
                outs[rid].append(f)
    for rid, f in session.flush().items():
        outs[rid].append(f)
    matches = {rid: [rec for f in fs if f.height for rec in records(f)] for rid, fs in outs.items()}
    return matches, session.take_dead_letters()


def plan_of(o: ControlPlane, rule_id: str) -> RulePlan:
    view = o.rule_view(rule_id)
    if view.plan is not None:
        return view.plan
    # Disabled (or not loaded): compile the program with it enabled, without applying anything.
    trial = o.assemble(toggles={**o.catalogue.toggles(), rule_id: True})
    if trial.program is None:
        raise Refused(
            409,
            "not-loaded",
            f"rule `{rule_id}` does not check against the running program",
            [diagnostic_json(d, trial.sources) for d in trial.diagnostics],
        )
    return trial.program.rule(rule_id)


def one_rule_program(o: ControlPlane, rule: RulePlan) -> Program:
    channels = o.program.channels if o.program else ()
    return Program(streams=(rule.stream,), channels=channels, rules=(rule,))


@router.post(
    "/cep/rules/{rule_id}/simulate",
    response_model=SimulateOut,
    openapi_extra=EVENTS_BODY,
    summary="The matches this rule would produce from the events in the body (no state change, nothing sent)",
)
async def simulate_rule(rule_id: RuleId, request: Request, o: Ops) -> SimulateOut:
    rule = await run_in_threadpool(plan_of, o, rule_id)
    frame, dead = await events_of(request, rule.stream)
    matches, late = await run_in_threadpool(run_rules, one_rule_program(o, rule), {rule.stream.name: frame})
    return SimulateOut(ok=True, rules=[rule_id], matches=matches, dead_letters=records(dead) + records(late))


@router.post(
    "/cep/simulate",
    response_model=SimulateOut,
    summary="Rule text not yet saved + events → its diagnostics, or the matches it would produce",
)
async def simulate_text(body: SimulateIn, o: Ops) -> SimulateOut:
    return await run_in_threadpool(_simulate_text, body, o)


def _simulate_text(body: SimulateIn, o: ControlPlane) -> SimulateOut:
    from runtime.catalogue.program import assemble
    from runtime.sources.records import records_to_frame

    texts = dict(o._file_texts) if body.include_files else {}
    texts["<simulate>.cep"] = body.text
    # The served files give their streams and channels; their rules are left out (only the text's rules run).
    file_rules = {d.name for d in (o.assembly.declared if o.assembly else []) if d.kind == "rule"} if body.include_files else set()
    got = assemble(texts, file_rules)
    if got.program is None:
        return SimulateOut(ok=False, diagnostics=[diagnostic_json(d, got.sources) for d in got.diagnostics])  # type: ignore[misc]
    program = got.program
    if isinstance(body.events, list):
        if len(program.streams) != 1:
            raise Refused(422, "stream-required", "several streams: give events as {\"STREAM\": [...]}")
        by_stream = {program.streams[0].name: body.events}
    else:
        by_stream = body.events
    frames, deads = {}, []
    for name, evs in by_stream.items():
        stream = next((s for s in program.streams if s.name == name), None)
        if stream is None:
            raise Refused(422, "unknown-stream", f"no stream `{name}`")
        frames[name], dead = records_to_frame(stream, evs)
        deads.append(dead)
    matches, late = run_rules(program, frames)
    return SimulateOut(
        ok=True, rules=[r.id for r in program.rules], matches=matches, dead_letters=[x for d in [*deads, late] for x in records(d)]
    )


@router.post(
    "/cep/rules/{rule_id}/dry-run",
    response_model=DryRunOut,
    summary="A record → the message each of the rule's channels would get (nothing is sent)",
)
async def dry_run(rule_id: RuleId, o: Ops, body: DryRunIn | None = None) -> DryRunOut:
    return await run_in_threadpool(_dry_run, rule_id, o, body.record if body else None)


def _dry_run(rule_id: str, o: ControlPlane, given: dict[str, Any] | None) -> DryRunOut:
    from runtime.notify.records import json_safe
    from runtime.notify.templates import render_message
    from runtime.notify.trial import _coerce, sample_record

    rule = plan_of(o, rule_id)
    record = sample_record(rule)
    if given:
        try:
            record.update(_coerce(rule, given))
        except (ValueError, TypeError, OverflowError) as e:
            raise Refused(422, "invalid-record", f"record: {e}") from None
    kinds = {c.name: c.kind for c in (o.program.channels if o.program else ())}
    messages = []
    for ch in rule.notify or ("console",):
        r = render_message(rule, kinds.get(ch, "console"), record)
        messages.append(
            RenderedOut(channel=ch, kind=kinds.get(ch, "console"), subject=r.subject, text=r.text, template_error=r.template_error)
        )
    return DryRunOut(rule=rule_id, record=json_safe(record), messages=messages)


@router.post(
    "/cep/rules/{rule_id}/trigger",
    response_model=TriggerOut,
    summary="Send the rule's notification once, through the outbox, marked as a test in the history",
)
async def trigger(rule_id: RuleId, o: Ops, body: DryRunIn | None = None) -> TriggerOut:
    return await run_in_threadpool(_trigger, rule_id, o, body.record if body else None)


def _trigger(rule_id: str, o: ControlPlane, given: dict[str, Any] | None) -> TriggerOut:
    from runtime.notify.records import idempotency_key
    from runtime.notify.trial import _coerce, sample_record

    view = o.rule_view(rule_id)
    if view.plan is None:
        raise Refused(409, "not-loaded", f"rule `{rule_id}` is not running (disabled or not checking)")
    rule = view.plan
    if o.notifier is None:
        raise Refused(409, "no-notifier", "no notifier runs in this process")
    record = sample_record(rule)
    record["title"] = f"[TEST] {rule.title or rule.id}" if "title" in record else record.get("title")
    if given:
        try:
            record.update(_coerce(rule, given))
        except (ValueError, TypeError, OverflowError) as e:
            raise Refused(422, "invalid-record", f"record: {e}") from None
    schema = {f.name: f.dtype for f in rule.output}
    try:
        frame = pl.DataFrame([{k: record.get(k) for k in schema}], schema=schema)
    except Exception as e:  # noqa: BLE001 - a value of the wrong type in the given record
        raise Refused(422, "invalid-record", f"record does not fit the rule's output: {e}") from None
    enqueued = o.notifier.submit(rule_id, frame)
    o.record_matches(rule_id, frame, test=True)
    o.history_flush()
    return TriggerOut(
        rule=rule_id, enqueued=enqueued, idempotency_key=idempotency_key(rule, frame.to_dicts()[0]), channels=list(rule.notify)
    )
