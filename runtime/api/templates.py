"""/cep/templates (named message templates, LANGUAGE.md §9.5) and /cep/form (the design's rule
form ↔ `.cep` rule text)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from runtime.api.deps import Ops, topic_router
from runtime.api.models import ID_PATTERN, FormIn, FormOut, TemplateIn, TemplateOut
from runtime.catalogue.program import grammar_has_templates
from runtime.control import ControlPlane, Refused, diagnostic_json

router = topic_router("templates")


def all_templates(o: ControlPlane) -> list[TemplateOut]:
    from runtime.notify.templates import DEFAULT_TEMPLATES

    out = [
        TemplateOut(name=f"default_{k}" if not k.startswith("default") else k, body=v, origin="builtin")
        for k, v in sorted(DEFAULT_TEMPLATES.items())
    ]
    for t in getattr(o.program, "templates", ()) or ():
        name = getattr(t, "name", None)
        if name is not None and o.catalogue.get("template", name) is None:
            out.append(TemplateOut(name=name, body=str(getattr(t, "text", getattr(t, "body", ""))), origin="file", in_program=True))
    for v in o.catalogue.latest("template"):
        out.append(TemplateOut(name=v.id, body=v.text, origin="catalogue", version=v.version, in_program=grammar_has_templates()))
    return out


@router.get("/cep/templates", summary="Built-in, file and catalogue templates")
def list_templates(o: Ops) -> list[TemplateOut]:
    return all_templates(o)


@router.put("/cep/templates", summary="Create or change a named template (a new version)")
def put_template(body: TemplateIn, o: Ops) -> TemplateOut:
    if any(t.name == body.name and t.origin == "file" for t in all_templates(o)):
        raise Refused(409, "read-only", f"template `{body.name}` is declared in a rule file; read-only here")
    v = o.put_template(body.name, body.body)
    return TemplateOut(name=v.id, body=v.text, origin="catalogue", version=v.version, in_program=grammar_has_templates())


@router.get("/cep/templates/{name}")
def get_template(name: Annotated[str, Path(pattern=ID_PATTERN)], o: Ops) -> TemplateOut:
    for t in all_templates(o):
        if t.name == name:
            return t
    raise Refused(404, "not-found", f"no template `{name}`")


TRIGGER_TYPES = {
    "filter": "event",
    "window": "metric",
    "schedule": "schedule",
    "anomaly": "anomaly",
    "pattern": "pattern",
    "absence": "absence",
}


@router.post(
    "/cep/form",
    summary="The design's rule form fields → rule text (as `cep import`), or rule text → form fields",
)
def form(body: FormIn, o: Ops) -> FormOut:
    if body.text is not None:
        return _text_to_form(body.text, o)
    from cepdsl import compat
    from runtime.catalogue.program import declarations

    doc: dict[str, Any] = body.model_dump(exclude_none=True, exclude={"text", "stream"})
    streams = [s.name for s in o.program.streams] if o.program else []
    stream = body.stream or (streams[0] if len(streams) == 1 else "events")
    try:
        text = compat.import_rules(doc, "form", stream=stream)
    except compat.ImportFailed as e:
        return FormOut(ok=False, problems=[str(p) for p in e.problems])
    if body.stream is None and streams:
        decls, _ = declarations(text, "form.cep")
        text = "".join(d.text for _, d in decls if d.kind in ("rule", "channel"))
    return FormOut(ok=True, text=text)


def _text_to_form(text: str, o: ControlPlane) -> FormOut:
    from cepdsl.explain import typed_expr
    from runtime.catalogue.program import assemble

    texts = {**o._file_texts, "form.cep": text}
    file_rules = {d.name for d in (o.assembly.declared if o.assembly else []) if d.kind == "rule"}
    got = assemble(texts, file_rules)
    if got.program is None:
        return FormOut(ok=False, diagnostics=[diagnostic_json(d, got.sources) for d in got.diagnostics])  # type: ignore[misc]
    rules = [r for r in got.program.rules if r.file == "form.cep"]
    if len(rules) != 1:
        raise Refused(422, "one-declaration", f"expected one rule in the text, found {len(rules)}")
    r = rules[0]
    spec: dict[str, Any] = {"stream": r.stream.name}
    if r.where is not None:
        spec["condition"] = typed_expr(r.where)
    if r.group_keys:
        spec["group_by"] = list(r.group_keys)
    if r.window is not None:
        spec["window"] = str(r.window)
    if r.throttle_us:
        spec["throttle_seconds"] = r.throttle_us / 1e6
    form_ = {
        "rule_id": r.id,
        "rule_name": r.title or r.id,
        "trigger_type": TRIGGER_TYPES.get(r.kind.value, r.kind.value),
        "trigger_spec": spec,
        "severity": r.severity,
        "actions": list(r.notify),
    }
    return FormOut(ok=True, text=text, form=form_)
