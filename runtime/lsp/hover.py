"""Hover text: a field's type, an aggregate's output column, a channel (secrets
masked, as `cep explain` prints it), a rule's compiled plan, a stream's fields."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from cepdsl import ast
from cepdsl.channels import options_for
from cepdsl.explain import channel_text, explain_rule
from cepdsl.fmt import format_expr
from cepdsl.plan import aggregate_name, aggregate_type
from cepdsl.types import DECLARABLE
from runtime.lsp.occurrences import Occurrence
from runtime.lsp.program_analysis import ProgramAnalysis, decl_name
from runtime.lsp.vocabulary import AGGREGATE_DOCS, FUNCTIONS


def hover_text(occ: Occurrence, prog: ProgramAnalysis, path: str) -> str | None:
    """Markdown for the name under the cursor, or None."""
    k = occ.kind
    if k == "field":
        return _field(occ, prog)
    if k == "aggregate":
        return _aggregate(occ, prog)
    if k == "function":
        sig = FUNCTIONS.get(occ.name)
        return f"```\n{sig[0]}\n```\n{sig[1]}" if sig else None
    if k == "channel":
        return _channel(occ.name, prog)
    if k == "channel_kind":
        opts = options_for(occ.name) if _known_kind(occ.name) else None
        if opts is None:
            return None
        items = ", ".join(f"{n}{'' if not o.required else ' (required)'}" for n, o in opts.items())
        return f"channel kind `{occ.name}`: {items or 'no options'}"
    if k == "option":
        if not _known_kind(occ.scope):
            return None
        o = options_for(occ.scope).get(occ.name)
        if o is None:
            return None
        bits = [o.type, "required" if o.required else "optional"] + (["secret: never printed"] if o.secret else [])
        return f"option `{occ.name}` of `{occ.scope}`: {', '.join(bits)}"
    if k == "rule":
        return _rule(occ.name, prog, path)
    if k in ("stream", "table"):
        return _stream(occ.name, prog, k)
    if k == "template":
        plan = prog.templates.get(occ.name)
        text = getattr(plan, "text", None)
        return f"named template `{occ.name}`:\n```\n{text}\n```" if text is not None else None
    if k == "silence":
        for _, d in prog.decls():
            if isinstance(d, ast.SilenceDecl) and decl_name(d) == occ.name and d.match is not None:
                return f"silence `{occ.name}`: matches `{format_expr(d.match)}`"
        return None
    if k == "step":
        return _step(occ, prog)
    if k == "template_var":
        return _template_var(occ, prog)
    return None


def _template_var(occ: Occurrence, prog: ProgramAnalysis) -> str | None:
    rule_id, stream = occ.scope.split("/", 1)
    plan = prog.rules.get(rule_id)
    if occ.name in ("title", "alert_title"):
        return f"`{occ.name}`: str — the rule's title"
    if plan is not None:
        col = next((c for c in plan.output if c.name == occ.name or c.name.split(".")[0] == occ.name), None)
        if col is not None:
            return f"```\n{col.name}: {col.type}\n```\nmatch record field of rule `{rule_id}`"
        return None
    t = prog.fields_of(stream).get(occ.name)
    return f"```\n{occ.name}: {t}\n```\nfield of stream `{stream}`" if t else None


def _known_kind(kind: str) -> bool:
    from cepdsl.channels import KINDS

    return kind in KINDS


def _field(occ: Occurrence, prog: ProgramAnalysis) -> str | None:
    fields = prog.fields_of(occ.scope)
    t = fields.get(occ.name)
    if t is None:
        return None
    plan = prog.streams.get(occ.scope)
    note = " (event time)" if plan is not None and plan.time_field == occ.name else ""
    what = "table" if occ.scope in prog.tables or occ.scope not in prog.streams and prog.is_table(occ.scope) else "stream"
    return f"```\n{occ.name}: {t}\n```\nfield of {what} `{occ.scope}`{note}"


def _aggregate(occ: Occurrence, prog: ProgramAnalysis) -> str | None:
    call: ast.Call = occ.node
    func = call.func.value
    doc = AGGREGATE_DOCS.get(func)
    positional = [a.value for a in call.args if a.name is None]
    field = positional[0].path.dotted if positional and isinstance(positional[0], ast.FieldRef) else None
    q = None
    if func == "percentile" and len(positional) > 1 and isinstance(positional[1], ast.Literal):
        q = positional[1].value
    written = f"{func}({', '.join(format_expr(a) for a in positional)})"
    head = f"```\n{doc[0]}\n```\n" if doc else ""
    if func == "percentile" and q is None:
        return head + f"`{written}`"
    column = aggregate_name(func, field, q)
    rule = prog.rules.get(occ.scope)
    stream = rule.stream.name if rule is not None else _rule_stream(occ.scope, prog)
    ftype = prog.fields_of(stream).get(field or "") if stream else None
    out_type = aggregate_type(func, DECLARABLE.get(ftype or ""))
    return head + f"`{written}` → output column `{column}`: {out_type}"


def _rule_stream(rule_id: str, prog: ProgramAnalysis) -> str | None:
    for _, d in prog.declared(ast.RuleDecl, rule_id):
        frm = d.clause(ast.From)  # type: ignore[attr-defined]
        if frm is not None:
            return frm.stream.value
    return None


def _channel(name: str, prog: ProgramAnalysis) -> str | None:
    plan = prog.channels.get(name)
    if plan is not None:
        return f"```\nchannel {name} = {channel_text(plan)}\n```"
    for _, d in prog.declared(ast.ChannelDecl, name):
        return f"channel `{name}`: `{d.kind.value}` (it has errors)"  # type: ignore[attr-defined]
    return None


def _rule(rule_id: str, prog: ProgramAnalysis, path: str) -> str | None:
    plan = prog.rules.get(rule_id)
    if plan is None:
        return f"rule `{rule_id}`: no plan while it has errors"
    where = next((p for p, d in prog.declared(ast.RuleDecl, rule_id)), path)
    if dataclasses.is_dataclass(plan):
        plan = dataclasses.replace(plan, file=where)
    # What explain_rule reads of a program (the whole program may not check while a rule does).
    program = SimpleNamespace(
        streams=tuple(prog.streams.values()),
        channels=tuple(prog.channels.values()),
        tables=tuple(prog.tables.values()),
        templates=tuple(prog.templates.values()),
        rules=tuple(prog.rules.values()),
        silences=(),
    )
    return f"```\n{explain_rule(plan, program).rstrip()}\n```"  # type: ignore[arg-type]


def _stream(name: str, prog: ProgramAnalysis, what: str = "stream") -> str | None:
    fields = prog.fields_of(name)
    if not fields:
        return None
    extra = ""
    plan = prog.streams.get(name)
    if what == "stream" and plan is not None:
        extra = f"\ntime {plan.time_field or '(none)'}, lateness {plan.lateness_us / 1e6:g}s"
    table = prog.tables.get(name)
    if what == "table" and table is not None:
        extra = f"\nkey {table.key}, from {table.source} `{table.path}`"
    body = ",\n  ".join(f"{n}: {t}" for n, t in fields.items())
    return f"```\n{what} {name} (\n  {body}\n)\n```{extra}"


def _step(occ: Occurrence, prog: ProgramAnalysis) -> str | None:
    for _, d in prog.declared(ast.RuleDecl, occ.scope):
        define = d.clause(ast.Define)  # type: ignore[attr-defined]
        if define is not None:
            for item in define.items:
                if item.name.value == occ.name:
                    return f"pattern step `{occ.name}`: `{format_expr(item.expr)}`"
        return f"pattern step `{occ.name}`: any row (no `define`)"
    return None
