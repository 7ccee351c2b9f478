"""Checks of the §9 declarations: tables and `join`, named templates, silences.

Functions over the `Checker` (and a rule's `RuleLowering` for joins), so the
driver in `cepdsl.checker` stays the one place that orders the passes.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Any

from cepdsl import ast
from cepdsl.plan import FieldPlan, JoinPlan, SilencePlan, StreamPlan, TablePlan, TemplatePlan
from cepdsl.typecheck import Scope, _comparable
from cepdsl.types import Type

if TYPE_CHECKING:
    from cepdsl.checker import Checker, RuleLowering

#: File kinds a table may be read from (§9.2), by extension.
TABLE_FILE_KINDS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl"}
#: Functions a table may be read through.
TABLE_SOURCES = ("redis",)


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _lacks(c: Checker, d: ast.TableDecl | ast.SilenceDecl, part: str, hint: str) -> None:
    """A table or silence without a part it needs: reported at its name."""
    what = ast.DECL_KEYWORD[type(d)]
    c.error(d.name.span, f"{what} `{d.name.value}` has no {part}", (hint,), code=what)


# ----------------------------------------------------------------------------- tables


def check_table(c: Checker, d: ast.TableDecl) -> None:
    if not c.declare(d, c.table_decls):
        return
    name = d.name.value
    before = len(c.diags)
    fields: list[FieldPlan] = []
    for f in d.fields:
        fname = f.path.dotted
        if len(f.path.parts) > 1:
            c.error(
                f.path.span,
                f"table fields are plain names, not paths: `{fname}`",
                ("a joined field is read as `ALIAS.field`",),
                code="table",
            )
            continue
        if any(x.name == fname for x in fields):
            c.error(
                f.path.span, f"field `{fname}` is declared twice in table `{name}`", ("remove one of them",), code="duplicate-field"
            )
            continue
        t = c.field_type(f)
        if t is not None:
            fields.append(FieldPlan(fname, t))
    key = None
    if d.key is None:
        first = fields[0].name if fields else "field"
        _lacks(c, d, "`key`", f"name the field rows are looked up by, e.g. `key {first}`")
    else:
        key = d.key.dotted
        if not any(f.name == key for f in fields) and all(f.path.dotted != key for f in d.fields):
            names = [f.name for f in fields]
            c.unknown(
                d.key.span,
                f"key `{key}` is not a field of table `{name}`",
                key,
                names,
                f"the fields are {', '.join(names)}",
                "unknown-field",
            )
    source = path = None
    if d.source is None:
        _lacks(c, d, "`from`", 'read it from a file, `from "hosts.csv"` (.csv, .parquet, .jsonl), or `from redis("cep:table:hosts")`')
    elif isinstance(d.source, ast.Literal):
        ext = os.path.splitext(d.source.value)[1].lower()
        if ext not in TABLE_FILE_KINDS:
            c.error(
                d.source.span,
                f"cannot read a table from {_short(d.source.text)}: unknown file kind",
                ("table files are .csv, .parquet or .jsonl (JSON lines)",),
                code="table",
            )
        source, path = "file", d.source.value
    else:
        fn = d.source.func.value
        args = d.source.args
        if fn not in TABLE_SOURCES:
            c.unknown(
                d.source.func.span,
                f"unknown table source `{_short(fn)}(...)`",
                fn,
                TABLE_SOURCES,
                'tables come from a file or from redis("HASH")',
                "table",
            )
        elif (
            len(args) != 1
            or args[0].name is not None
            or not (isinstance(args[0].value, ast.Literal) and args[0].value.kind == "str")
            or not args[0].value.value
        ):
            c.error(d.source.span, '`redis` takes one string: the hash name, e.g. redis("cep:table:hosts")', code="table")
        else:
            source, path = "redis", args[0].value.value
    refresh = c.positive(d.refresh, "`refresh`", "refresh 5m")
    if len(c.diags) > before:
        return
    file = d.span.file
    base = os.path.dirname(file) if file and not file.startswith("<") else ""
    c.tables[name] = TablePlan(name, tuple(fields), key, source, path, refresh, base or ".", file, d.span.line)  # type: ignore[arg-type]


def lower_joins(lw: RuleLowering, joins: list[ast.Join]) -> tuple[StreamPlan, tuple[JoinPlan, ...]]:
    """Type each `join` in order over the stream and the joins before it; the rule's
    view of the stream with every joined `ALIAS.field` added."""
    c = lw.c
    stream = lw.stream
    fields = list(stream.fields)
    prefixes = {f.name.split(".")[0]: f.name for f in stream.fields}
    plans: list[JoinPlan] = []
    aliases: dict[str, ast.Join] = {}
    for j in joins:
        tname = j.table.value
        table = c.tables.get(tname)
        if table is None:
            if tname not in c.table_decls and tname not in c.broken:
                from cepdsl.checker import name_hints

                c.error(
                    j.table.span, f"unknown table `{tname}`", name_hints(tname, sorted(c.table_decls), "tables"), code="unknown-table"
                )
            continue
        alias = j.prefix
        alias_span = (j.alias or j.table).span
        if alias in aliases:
            hint = "give one of them another name with `as`"
            c.error(alias_span, f"`{alias}` already names the join at line {aliases[alias].span.line}", (hint,), code="join-alias")
            continue
        if alias in prefixes:
            clash = prefixes[alias]
            what = f"the dotted field `{clash}`" if "." in clash else f"the field `{clash}`"
            c.error(
                alias_span,
                f"join name `{alias}` collides with {what} of stream `{stream.name}`",
                (f"name the join with `as`, e.g. `join {tname} as {tname}_t on ...`",),
                code="join-alias",
            )
            continue
        aliases[alias] = j
        view = StreamPlan(stream.name, tuple(fields), stream.time_field, stream.lateness_us)
        on = c.typer.expr(j.on, Scope(view, "join"))
        if on is None:
            continue
        key_type = table.field(table.key).type  # type: ignore[union-attr]
        if on.type is not Type.NULL and not _comparable("==", on.type, key_type):
            c.error(
                j.on.span,
                f"cannot look up `{on.type}` in the key `{table.key}` of table `{tname}`, which is `{key_type}`",
                ("the lookup compares like `==`: int and float mix, other types must be the same",),
                code="type",
            )
            continue
        plan = JoinPlan(table, alias, on)
        plans.append(plan)
        fields.extend(plan.columns)
    return StreamPlan(stream.name, tuple(fields), stream.time_field, stream.lateness_us), tuple(plans)


# ----------------------------------------------------------------------------- templates


def check_template(c: Checker, d: ast.TemplateDecl) -> None:
    from cepdsl.checker import _template_error_span, _template_names
    from cepdsl.parser import has_bad_escape

    if not c.declare(d, c.template_decls):
        return
    name = d.name.value
    if has_bad_escape(d.text):
        return
    used = _template_names(d.text.value)
    if not isinstance(used, frozenset):  # a TemplateError: what, where and a hint
        c.error(_template_error_span(d.text, used), f"invalid template `{name}`: {used.message}", used.hints, code="template")
        return
    c.templates[name] = TemplatePlan(name, d.text.value)


# ----------------------------------------------------------------------------- silences


def record_fields(rules: list[Any]) -> tuple[FieldPlan, ...]:
    """Every match-record field of the program's rules, each with the type of its first
    appearance (int and float mix to float). A rule whose column has another type reads
    it as null in a silence's `match` (docs/language-v2.md)."""
    out: dict[str, Type] = {}
    for r in rules:
        for f in r.output:
            t = out.get(f.name)
            if t is None:
                out[f.name] = f.type
            elif t is Type.INT and f.type is Type.FLOAT:
                out[f.name] = Type.FLOAT
    return tuple(FieldPlan(n, t) for n, t in out.items())


def parse_instant(text: str) -> int | None:
    """An RFC 3339 time as UTC microseconds since the epoch (naive = UTC), or None."""
    try:
        t = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def check_silence(c: Checker, d: ast.SilenceDecl, rule_decls: list[ast.RuleDecl]) -> None:
    from cepdsl.checker import cron_problem
    from cepdsl.parser import has_bad_escape

    name = d.name.value
    before = len(c.diags)
    match = None
    used: tuple[str, ...] = ()
    if d.match is None:
        _lacks(c, d, "`match`", 'say which matches it silences, e.g. `match rule == "disk_full"`')
    elif len(c.rules) == len(rule_decls):
        # Only when every rule checked clean: the record fields are then all known.
        fields = record_fields(c.rules)
        scope = Scope(StreamPlan("match records", fields, None), "silence")
        match = c.typer.condition(d.match, scope, "match")
        used = tuple(sorted(_field_names(d.match)))
    cron = duration = start = until = None
    if d.cron is not None:
        problem = None if has_bad_escape(d.cron) else cron_problem(d.cron.value)
        if problem:
            c.error(d.cron.span, f"invalid cron string {_short(d.cron.text)}: {problem[0]}", (problem[1],), code="cron")
        cron = d.cron.value
        assert d.duration is not None
        duration = c.positive(d.duration, "a silence's `for`", "for 2h")
    elif d.start is not None:
        assert d.until is not None
        start, until = parse_instant(d.start.value), parse_instant(d.until.value)
        for lit, value in ((d.start, start), (d.until, until)):
            if value is None:
                c.error(
                    lit.span, f"{_short(lit.text)} is not an RFC 3339 time", ('write e.g. "2026-12-24T00:00:00Z"',), code="silence"
                )
        if start is not None and until is not None and until <= start:
            c.error(d.until.span, "the silence ends before it starts", ("`until` must be later than `from`",), code="silence")
    else:
        _lacks(c, d, "period", 'add `every "CRON" for D` (recurring) or `from "T1" until "T2"` (once)')
    if len(c.diags) > before or (d.match is not None and match is None):
        return
    title = d.title.value if d.title is not None else None
    c.silences.append(SilencePlan(name, title, match, used, cron, duration, start, until))


def _field_names(e: ast.Expr) -> set[str]:
    if isinstance(e, ast.FieldRef):
        return {e.path.dotted}
    out: set[str] = set()
    for v in vars(e).values():
        items = v if isinstance(v, tuple) else (v,)
        for x in items:
            if isinstance(
                x,
                (ast.Literal, ast.ListLit, ast.MapLit, ast.FieldRef, ast.Call, ast.Unary, ast.Binary, ast.InList, ast.IsNull, ast.Arg),
            ):
                out |= _field_names(x.value if isinstance(x, ast.Arg) else x)
    return out
