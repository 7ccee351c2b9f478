"""/cep/rules: the rule catalogue (file rules read-only, HTTP rules versioned), toggle, explain, check."""

from __future__ import annotations

import weakref
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import TypeAdapter

from runtime.api.deps import CEP_TEXT_BODY, Ops, RuleId, body_bytes, decode_text, is_json, parse_json, raw_body, topic_router
from runtime.api.models import (
    CheckResult,
    ReloadOut,
    RuleChange,
    RuleMetrics,
    RuleOut,
    ToggleIn,
    ToggleOut,
    VersionOut,
)
from runtime.api.numbers import all_rule_metrics, rule_metrics
from runtime.catalogue import Version
from runtime.control import ControlPlane, Refused, ReloadRecord, RuleView, diagnostic_json, rfc3339_s

router = topic_router("rules")


def rule_out(v: RuleView) -> RuleOut:
    out = RuleOut(
        id=v.id,
        origin=v.origin,
        file=v.file,
        line=v.line,
        enabled=v.enabled,
        loaded=v.loaded,
        version=v.version,
        text=v.text,
        source=f"{v.file}:{v.line}",
    )
    r = v.plan or v.written
    if r is not None:
        out.title, out.kind, out.stream, out.severity = r.title, r.kind.value, r.stream.name, r.severity
        out.group_by, out.notify, out.fallback = list(r.group_keys), list(r.notify), r.fallback
        out.throttle_s = None if r.throttle_us is None else r.throttle_us / 1e6
        out.output = {f.name: f.type.value for f in r.output}
    return out


def version_out(v: Version) -> VersionOut:
    return VersionOut(
        id=v.id,
        version=v.version,
        created_at=rfc3339_s(v.created_at),
        deleted=v.deleted,
        applied_at=rfc3339_s(v.applied_at),
        applied_offsets=v.applied_offsets,
        text=v.text,
    )


def reload_out(r: ReloadRecord | None) -> ReloadOut | None:
    if r is None:
        return None
    return ReloadOut(
        at=rfc3339_s(r.at), ok=r.ok, origin=r.origin, error=r.error, diagnostics=r.diagnostics, report=r.report, offsets=r.offsets
    )


@raw_body(CEP_TEXT_BODY)
async def rule_text(request: Request, o: Ops) -> str:
    """The body as `.cep` text: text/plain, JSON `{"text": ...}`, or a seed-design JSON rule."""
    text, _ = await rule_text_and_baseline(request, o)
    return text


@raw_body(CEP_TEXT_BODY)
async def rule_text_and_baseline(request: Request, o: Ops) -> tuple[str, list[float] | None]:
    """The rule text, and a seed rule's pre-seeded anomaly baseline (`baseline_values`)."""
    data = await body_bytes(request)
    if not is_json(request):
        return decode_text(data), None
    doc = parse_json(data)
    if isinstance(doc, dict) and isinstance(doc.get("text"), str):
        return doc["text"], None
    if isinstance(doc, dict) and ("trigger_type" in doc or "rule_id" in doc):
        values = None
        spec = doc.get("trigger_spec")
        for holder in (spec, spec.get("anomaly_config") if isinstance(spec, dict) else None):
            if isinstance(holder, dict) and "baseline_values" in holder:
                values = holder["baseline_values"]
        if values is not None:
            doc = _without_baseline(doc)  # the converter refuses stored baselines; they go into the state below
        if values is not None and (
            not isinstance(values, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        ):
            raise Refused(422, "import-failed", "trigger_spec.baseline_values: expected a list of numbers")
        return seed_rule_text(doc, o, request.query_params.get("stream")), values or None
    raise Refused(422, "invalid-request", 'expected .cep text, {"text": "..."} or a rule in the original design\'s JSON shape')


RuleText = Annotated[str, Depends(rule_text)]
RuleBody = Annotated[tuple[str, list[float] | None], Depends(rule_text_and_baseline)]


@raw_body(CEP_TEXT_BODY)
async def check_text(request: Request) -> str:
    """The body as `.cep` text: text/plain or JSON `{"text": ...}`."""
    data = await body_bytes(request)
    text = decode_text(data)
    if is_json(request):
        doc = parse_json(data)
        if not (isinstance(doc, dict) and isinstance(doc.get("text"), str)):
            raise Refused(422, "invalid-request", 'expected {"text": "..."}')
        text = doc["text"]
    return text


def _without_baseline(doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    spec = dict(doc["trigger_spec"])
    spec.pop("baseline_values", None)
    if isinstance(spec.get("anomaly_config"), dict):
        spec["anomaly_config"] = {k: v for k, v in spec["anomaly_config"].items() if k != "baseline_values"}
    doc["trigger_spec"] = spec
    return doc


def seed_rule_text(doc: dict[str, Any], o: ControlPlane, stream: str | None) -> str:
    """A rule in the seed's JSON shape → the text of its rule declaration (as `cep import` converts it)."""
    from cepdsl import compat
    from runtime.catalogue.program import declarations

    program = o.program
    streams = [s.name for s in program.streams] if program else []
    if stream is None:
        if len(streams) != 1:
            raise Refused(422, "stream-required", f"say which stream the rule reads: ?stream=NAME (streams: {', '.join(streams)})")
        stream = streams[0]
    try:
        text = compat.import_rules(doc, "request.json", stream=stream)
    except compat.ImportFailed as e:
        raise Refused(422, "import-failed", "; ".join(str(p) for p in e.problems)) from None
    decls, _ = declarations(text, "request.cep")
    rules = [d.text for _, d in decls if d.kind == "rule"]
    if len(rules) != 1:
        raise Refused(422, "import-failed", "the JSON did not convert to exactly one rule")
    channels = {d.name: d.text for _, d in decls if d.kind == "channel"}
    known = {c.name for c in program.channels} if program else set()
    missing = sorted(set(channels) - known)
    if missing:
        raise Refused(
            422,
            "import-failed",
            f"the rule needs channel(s) {', '.join(missing)}: create them first "
            f"with POST /cep/channels:\n" + "".join(channels[m] for m in missing),
        )
    return rules[0]


def change_out(o: ControlPlane, version: Version, rec: ReloadRecord, deleted: bool = False) -> RuleChange:
    rule = None if deleted else rule_out(o.rule_view(version.id))
    stored = next((v for v in o.catalogue.versions("rule", version.id) if v.version == version.version), version)
    return RuleChange(rule=rule, version=version_out(stored), reload=reload_out(rec))  # type: ignore[arg-type]


_RULES_ADAPTER = TypeAdapter(list[RuleOut])
#: The encoded `/cep/rules` answer per control plane, with what it was built from: the rules
#: change only when the assembly, the running program or the catalogue (versions, toggles)
#: does, and building 1,000 rules' answer took ~0.4 s (the console's Rules page asks every 10 s).
_RULES_JSON: weakref.WeakKeyDictionary[ControlPlane, tuple[tuple[Any, ...], bytes]] = weakref.WeakKeyDictionary()


@router.get("/cep/rules", response_model=list[RuleOut], summary="Every rule: file rules and catalogue rules")
def list_rules(o: Ops) -> Response:
    stamp = o._stamp_or_none()
    key = (o.assembly, o.program, stamp)
    cached = _RULES_JSON.get(o)
    if (
        stamp is not None
        and cached is not None
        and all(a is b or (a == b and isinstance(a, str)) for a, b in zip(cached[0], key, strict=True))
    ):
        return Response(cached[1], media_type="application/json")
    body = _RULES_ADAPTER.dump_json([rule_out(v) for v in o.rule_views()])
    if stamp is not None:
        _RULES_JSON[o] = (key, body)
    return Response(body, media_type="application/json")


@router.post(
    "/cep/rules",
    status_code=201,
    summary="Create a rule (checked first: 422 with diagnostics when it does not check)",
)
def create_rule(body: RuleBody, o: Ops) -> RuleChange:
    text, baseline = body
    version, rec = o.create_rule(text)
    if baseline:
        # The seed's stored baseline (one per rule) becomes the rule's state, as if seen in the stream.
        from runtime.api.anomaly import seed

        o.call(lambda: seed(o, version.id, {"": [float(v) for v in baseline]}))
    return change_out(o, version, rec)


@router.get(
    "/cep/rules/performance",
    tags=["numbers"],
    summary="Per rule: events in, matches, timings, deliveries, state size",
)
def performance(
    o: Ops, sort: Annotated[str, Query(pattern="^-?[a-z_]+$")] = "-events_in", limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> list[RuleMetrics]:
    rows = all_rule_metrics(o, [v.id for v in o.rule_views()])
    key = sort.lstrip("-")
    if key not in RuleMetrics.model_fields:
        raise Refused(422, "invalid-request", f"cannot sort by `{key}` (fields: {', '.join(RuleMetrics.model_fields)})")
    rows.sort(
        key=lambda m: (getattr(m, key) is None, getattr(m, key) or 0) if key != "id" else (False, m.id), reverse=sort.startswith("-")
    )
    return rows[:limit]


@router.get("/cep/rules/{rule_id}")
def get_rule(rule_id: RuleId, o: Ops) -> RuleOut:
    return rule_out(o.rule_view(rule_id))


@router.put(
    "/cep/rules/{rule_id}",
    summary="Replace a catalogue rule's text (a new version); file rules: 409",
)
def put_rule(rule_id: RuleId, text: RuleText, o: Ops) -> RuleChange:
    version, rec = o.replace_rule(rule_id, text)
    return change_out(o, version, rec)


@router.delete(
    "/cep/rules/{rule_id}",
    summary="Delete a catalogue rule (a tombstone version; history kept); file rules: 409",
)
def delete_rule(rule_id: RuleId, o: Ops) -> RuleChange:
    version, rec = o.delete_rule(rule_id)
    return change_out(o, version, rec, deleted=True)


@router.patch(
    "/cep/rules/{rule_id}/toggle",
    summary="Enable or disable any rule (file rules too); persisted across restarts",
)
def toggle(rule_id: RuleId, o: Ops, body: ToggleIn | None = None) -> ToggleOut:
    enabled, rec = o.toggle(rule_id, body.enabled if body else None)
    return ToggleOut(id=rule_id, enabled=enabled, reload=reload_out(rec))  # type: ignore[arg-type]


@router.get("/cep/rules/{rule_id}/versions")
def versions(rule_id: RuleId, o: Ops) -> list[VersionOut]:
    got = o.catalogue.versions("rule", rule_id)
    if not got:
        view = o.rule_view(rule_id)  # 404 when unknown
        return [VersionOut(id=rule_id, version=0, created_at=None, deleted=False, text=view.text)]
    return [version_out(v) for v in got]


TEXT_200: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "the plan, as `cep explain` prints it"}
}


@router.get("/cep/rules/{rule_id}/explain", response_model=None, responses=TEXT_200)
def explain_rule(rule_id: RuleId, o: Ops) -> PlainTextResponse:
    from cepdsl.explain import explain_rule as explain_one

    view = o.rule_view(rule_id)
    if view.plan is None:
        raise Refused(409, "not-loaded", f"rule `{rule_id}` is not running (disabled or not checking): no plan to explain")
    return PlainTextResponse(explain_one(view.plan, o.program))


@router.get("/cep/rules/{rule_id}/metrics", tags=["numbers"])
def metrics(rule_id: RuleId, o: Ops) -> RuleMetrics:
    o.rule_view(rule_id)
    return rule_metrics(o, rule_id)


@router.post(
    "/cep/check",
    summary="Check rule text (as `cep check`); nothing is changed",
)
def check(text: Annotated[str, Depends(check_text)], filename: Annotated[str, Query(max_length=200)] = "<request>") -> CheckResult:
    from cepdsl.frontend import check_source

    prog, diags = check_source(text, filename)
    return CheckResult(
        ok=not diags,
        rules=[r.id for r in prog.rules] if prog else [],
        diagnostics=[diagnostic_json(d, {filename: text}) for d in diags],
    )  # type: ignore[misc]


@router.get("/cep/explain", response_model=None, responses=TEXT_200)
def explain_all(o: Ops) -> PlainTextResponse:
    from cepdsl.explain import explain

    if o.program is None:
        raise Refused(404, "not-found", "no program loaded")
    return PlainTextResponse(explain(o.program))
