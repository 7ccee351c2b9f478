"""Try before it fires: simulate (events → matches), dry-run (record → messages), trigger (send once, as a test)."""

from __future__ import annotations

from typing import Any

import polars as pl

from cepdsl.plan import Program, RulePlan
from runtime.api.deps import Ops, RuleId, topic_router
from runtime.api.eventbody import Events
from runtime.api.models import DryRunIn, DryRunOut, RenderedOut, SimulateIn, SimulateOut, TriggerOut
from runtime.control import ControlPlane, Refused, diagnostic_json

router = topic_router("simulate")


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


def sample_record(rule: RulePlan, body: DryRunIn | None, *, test: bool = False) -> dict[str, Any]:
    """A record of sample values for the rule, with the fields the body gives over them (a
    test send's title says it is one)."""
    from runtime.notify import trial

    record = trial.sample_record(rule)
    if test:
        record["title"] = f"[TEST] {rule.title or rule.id}" if "title" in record else record.get("title")
    if body is not None and body.record:
        try:
            record.update(trial._coerce(rule, body.record))
        except (ValueError, TypeError, OverflowError) as e:
            raise Refused(422, "invalid-record", f"record: {e}") from None
    return record


def one_rule_program(o: ControlPlane, rule: RulePlan) -> Program:
    channels = o.program.channels if o.program else ()
    return Program(streams=(rule.stream,), channels=channels, rules=(rule,))


@router.post(
    "/cep/rules/{rule_id}/simulate",
    summary="The matches this rule would produce from the events in the body (no state change, nothing sent)",
)
def simulate_rule(rule_id: RuleId, events: Events, o: Ops) -> SimulateOut:
    rule = plan_of(o, rule_id)
    frame, dead = events.frame(rule.stream)
    matches, late = run_rules(one_rule_program(o, rule), {rule.stream.name: frame})
    return SimulateOut(ok=True, rules=[rule_id], matches=matches, dead_letters=records(dead) + records(late))


@router.post(
    "/cep/simulate",
    summary="Rule text not yet saved + events → its diagnostics, or the matches it would produce",
)
def simulate_text(body: SimulateIn, o: Ops) -> SimulateOut:
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
    summary="A record → the message each of the rule's channels would get (nothing is sent)",
)
def dry_run(rule_id: RuleId, o: Ops, body: DryRunIn | None = None) -> DryRunOut:
    from runtime.notify.records import json_safe
    from runtime.notify.templates import render_message

    rule = plan_of(o, rule_id)
    record = sample_record(rule, body)
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
    summary="Send the rule's notification once, through the outbox, marked as a test in the history",
)
def trigger(rule_id: RuleId, o: Ops, body: DryRunIn | None = None) -> TriggerOut:
    from runtime.notify.records import idempotency_key

    view = o.rule_view(rule_id)
    if view.plan is None:
        raise Refused(409, "not-loaded", f"rule `{rule_id}` is not running (disabled or not checking)")
    rule = view.plan
    if o.notifier is None:
        raise Refused(409, "no-notifier", "no notifier runs in this process")
    record = sample_record(rule, body, test=True)
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
