"""The checker: names, types and clause rules → every diagnostic, and the plan.

It walks the file once.  Each declaration is checked on its own (a broken
stream does not silence the checks of the rules after it), and everything that
checks clean is lowered to the typed plan (`cepdsl.plan`) on the way.  The
plan is only handed out when there are no errors at all.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cepdsl import ast
from cepdsl.channels import KINDS, options_for
from cepdsl.diagnostics import Diagnostic, did_you_mean, sort_key
from cepdsl.parser import gc_paused, has_bad_escape
from cepdsl.plan import (
    MAX_PATTERN_PROGRAM,
    SEVERITIES,
    SILENCED_COLUMN,
    AbsentSpec,
    AnomalySpec,
    ChannelPlan,
    EnvVar,
    FieldPlan,
    PAlt,
    PatternSpec,
    PNode,
    PRepeat,
    Program,
    PSeq,
    PStep,
    ResolveSpec,
    RuleKind,
    RulePlan,
    ScheduleSpec,
    StreamPlan,
    WindowSpec,
    output_columns,
    pattern_program_size,
)
from cepdsl.typecheck import Scope, Typer
from cepdsl.types import DECLARABLE, Type

if TYPE_CHECKING:
    from cepdsl.templates import TemplateError

MAX_RULES = 10_000
MAX_BASELINE = 1000
MAX_PATTERN_REPEAT = 1000
MAX_COUNT_WINDOW = 1_000_000  # rows a `last N events` window keeps per group
MAX_RETRIES = 100

_ANOMALY_PARAMS = {
    "zscore": {"threshold": 3.0},
    "iqr": {"multiplier": 1.5},
    "ema": {"alpha": 0.3, "threshold": 3.0},
}

# The clause kinds of which a rule may have one at most (§3.3).
_SHAPES = (ast.Window, ast.Schedule, ast.Pattern, ast.Absent, ast.Anomaly)

#: Rule kinds on which `for`/`resolve` are check errors (§9.3), as named in the message.
_LIFECYCLE_REFUSED = {RuleKind.FILTER: "a filter rule", RuleKind.PATTERN: "a pattern rule"}

#: Names every template sees besides the record's columns: `title`, and the original
#: design's alias of it (§9.5).
TEMPLATE_NAMES = ("title", "alert_title")


class Checker:
    """Checks one program: one file, or several files that share one namespace (§9.1)."""

    def __init__(self, file: ast.File | list[ast.File]):
        self.files = [file] if isinstance(file, ast.File) else list(file)
        self.file = self.files[0] if self.files else ast.File(())
        self.broken = frozenset().union(*(f.broken for f in self.files))
        self.diags: list[Diagnostic] = []
        self.typer = Typer(self.diags)
        self.streams: dict[str, StreamPlan] = {}
        self.stream_decls: dict[str, ast.StreamDecl] = {}
        self.channels: dict[str, ChannelPlan] = {}
        self.channel_decls: dict[str, ast.ChannelDecl] = {}
        self.rules: list[RulePlan] = []
        self.tables: dict[str, Any] = {}  # name -> TablePlan
        self.table_decls: dict[str, ast.TableDecl] = {}
        self.templates: dict[str, Any] = {}  # name -> TemplatePlan
        self.template_decls: dict[str, ast.TemplateDecl] = {}
        self.silences: list[Any] = []

    def error(self, span: ast.Span, message: str, hints: tuple[str, ...] = (), code: str = "") -> None:
        self.diags.append(Diagnostic(span, message, hints, code=code))

    def declare(self, d: ast.Decl, seen: dict[str, Any]) -> bool:
        """Whether `d` is the first declaration of its name in `seen` (then it is added).
        A second one is an error at its name, with a hint at the first's."""
        name = d.id if isinstance(d, ast.RuleDecl) else d.name
        first = seen.get(name.value)
        if first is None:
            seen[name.value] = d
            return True
        at = (first.id if isinstance(first, ast.RuleDecl) else first.name).span
        where = f"line {at.line}" if at.file == name.span.file else f"{at.file}:{at.line}:{at.col}"
        what = ast.DECL_KEYWORD[type(d)]
        verb, noun = ("defined", "definition") if isinstance(d, ast.RuleDecl) else ("declared", "declaration")
        self.error(name.span, f"{what} `{name.value}` is {verb} twice", (f"the first {noun} is at {where}",), code=f"duplicate-{what}")
        return False

    def unknown(self, span: ast.Span, message: str, word: str, known: Iterable[str], listing: str, code: str) -> None:
        """An error for a name that is not among `known`: "did you mean" when one is close, else `listing`."""
        self.error(span, message, did_you_mean(word, known) or (listing,), code=code)

    def positive(self, d: ast.Duration | None, what: str, example: str | None = None) -> int | None:
        """The microseconds of a duration that must be positive; None when it is absent or not (reported)."""
        if d is None:
            return None
        if d.us <= 0:
            hints = (f"for example `{example}`",) if example else ()
            self.error(d.span, f"{what} must be a positive duration, got `{d.text}`", hints, code="duration")
            return None
        return d.us

    def field_type(self, f: ast.FieldDecl) -> Type | None:
        """The type a stream's or table's field is declared with, or None (reported)."""
        t = DECLARABLE.get(f.type.value)
        if t is None:
            self.unknown(
                f.type.span,
                f"unknown type `{f.type.value}`",
                f.type.value,
                DECLARABLE,
                f"the types are {', '.join(DECLARABLE)}",
                "unknown-type",
            )
        return t

    # ------------------------------------------------------------------ driver
    def run(self) -> tuple[Program | None, list[Diagnostic]]:
        from cepdsl.checker_decls import check_silence, check_table, check_template

        decls = [d for f in self.files for d in f.decls]
        for d in decls:
            if isinstance(d, ast.StreamDecl):
                self.stream(d)
        for d in decls:
            if isinstance(d, ast.ChannelDecl):
                self.channel(d)
        for d in decls:
            if isinstance(d, ast.TableDecl):
                check_table(self, d)
            elif isinstance(d, ast.TemplateDecl):
                check_template(self, d)
        rule_ids: dict[str, ast.RuleDecl] = {}
        rules = [d for d in decls if isinstance(d, ast.RuleDecl)]
        if len(rules) > MAX_RULES:
            self.error(rules[MAX_RULES].span, f"a file may hold at most {MAX_RULES} rules, this one has {len(rules)}", code="limit")
            rules = rules[:MAX_RULES]
        for r in rules:
            if self.declare(r, rule_ids):
                self.rule(r)
        silence_names: dict[str, ast.SilenceDecl] = {}
        for d in decls:
            if isinstance(d, ast.SilenceDecl) and self.declare(d, silence_names):
                check_silence(self, d, [r for r in rules if rule_ids.get(r.id.value) is r])
        self.diags.sort(key=sort_key)
        if self.diags:
            return None, self.diags
        if self.silences:  # every record says whether a silence held it (§9.4)
            self.rules = [dataclasses.replace(r, output=(*r.output, SILENCED_COLUMN)) for r in self.rules]
        program = Program(
            tuple(self.streams.values()),
            tuple(self.channels.values()),
            tuple(self.rules),
            tables=tuple(self.tables.values()),
            templates=tuple(self.templates.values()),
            silences=tuple(sorted(self.silences, key=lambda x: x.name)),
        )
        return program, []

    # ------------------------------------------------------------------ streams
    def stream(self, d: ast.StreamDecl) -> None:
        if not self.declare(d, self.stream_decls):
            return
        name = d.name.value
        before = len(self.diags)
        fields: list[FieldPlan] = []
        seen: dict[str, ast.FieldDecl] = {}
        for f in d.fields:
            fname = f.path.dotted
            if fname in seen:
                self.error(f.path.span, f"field `{fname}` is declared twice in stream `{name}`", code="duplicate-field")
                continue
            seen[fname] = f
            t = self.field_type(f)
            if t is not None:
                fields.append(FieldPlan(fname, t))
        for fname, f in seen.items():
            parent = fname.rsplit(".", 1)[0] if "." in fname else None
            while parent:
                if parent in seen:
                    self.error(
                        f.path.span,
                        f"`{fname}` is declared inside `{parent}`, but `{parent}` is declared as a plain field",
                        code="struct-conflict",
                    )
                    break
                parent = parent.rsplit(".", 1)[0] if "." in parent else None
        time_field: str | None = None
        if d.time is not None:
            tname = d.time.dotted
            fp = next((x for x in fields if x.name == tname), None)
            if fp is None and tname not in seen:
                self.error(
                    d.time.span,
                    f"time field `{tname}` is not a field of stream `{name}`",
                    did_you_mean(tname, seen),
                    code="unknown-field",
                )
            elif fp is not None and fp.type is not Type.TIMESTAMP:
                self.error(d.time.span, f"time field `{tname}` must be a timestamp, but it is `{fp.type}`", code="time-type")
            else:
                time_field = tname
        else:
            fp = next((x for x in fields if x.name == "ts"), None)
            if fp is not None and fp.type is Type.TIMESTAMP:
                time_field = "ts"
        lateness = d.lateness.us if d.lateness is not None else 0
        if len(self.diags) == before:
            self.streams[name] = StreamPlan(name, tuple(fields), time_field, lateness)

    # ------------------------------------------------------------------ channels
    def channel(self, d: ast.ChannelDecl) -> None:
        if not self.declare(d, self.channel_decls):
            return
        name = d.name.value
        kind = d.kind.value
        if kind not in KINDS:
            self.unknown(
                d.kind.span, f"unknown channel kind `{kind}`", kind, KINDS, f"the kinds are {', '.join(KINDS)}", "unknown-channel-kind"
            )
            return
        spec = options_for(kind)
        before = len(self.diags)
        values: dict[str, Any] = {}
        given: dict[str, ast.Arg] = {}
        positional = False
        for a in d.args:
            if a.name is None:
                required = [o for o, x in spec.items() if x.required and all(b.name is None or b.name.value != o for b in d.args)]
                example = f"`{required[0]} = ...`" if required else "`option = value`"
                self.error(
                    a.span,
                    f"channel options are named: write {example}",
                    (f"`{kind}` takes {', '.join(spec)}",),
                    code="channel-option",
                )
                positional = True
                continue
            opt = a.name.value
            if opt not in spec:
                self.unknown(
                    a.name.span,
                    f"unknown option `{opt}` for a `{kind}` channel",
                    opt,
                    spec,
                    f"`{kind}` takes {', '.join(spec)}",
                    "channel-option",
                )
                continue
            if opt in given:
                self.error(a.name.span, f"option `{opt}` is given twice", code="channel-option")
                continue
            given[opt] = a
            value = self.option_value(a.value, spec[opt].type, opt)
            if value is not _BAD:
                values[opt] = value
        missing = [opt for opt, o in spec.items() if o.required and opt not in given]
        if missing and not positional:  # a positional value was probably one of them
            article = "an" if kind[0] in "aeiou" else "a"
            names = " and ".join(f"`{m}`" for m in missing)
            example = ", ".join(f"{m} = ..." for m in missing)
            self.error(
                d.kind.span,
                f"{article} `{kind}` channel needs option{'s' if len(missing) > 1 else ''} {names}",
                (f"add {example}",),
                code="channel-option",
            )
        for opt, o in spec.items():
            value = values.get(opt)
            if o.choices and isinstance(value, str) and (value.upper() if o.upper else value) not in o.choices:
                self.error(
                    given[opt].value.span,
                    f"unknown {o.what or opt} `{value}`",
                    (f"use one of {', '.join(o.choices)}",),
                    code="channel-option",
                )
        for opt in ("retries", "timeout"):
            if isinstance(values.get(opt), EnvVar):  # read when the file is checked: must be written out
                self.error(given[opt].value.span, f"`{opt}` must be written as a literal, not env(...)", code="channel-option")
        if len(self.diags) > before:
            return
        retries = values.pop("retries", 3)
        timeout_us = values.pop("timeout", 10_000_000)
        self.channels[name] = ChannelPlan(name, kind, tuple(values.items()), int(retries), timeout_us / 1e6)

    def option_value(self, e: ast.Expr, want: str, opt: str) -> Any:
        if isinstance(e, ast.Call) and e.func.value != "env":
            self.error(
                e.func.span,
                f"`{_short(e.func.value)}(...)` cannot be used in a channel option",
                ('option values are literals or env("NAME")',),
                code="channel-option",
            )
            return _BAD
        if isinstance(e, ast.Call) and e.func.value == "env":
            if (
                len(e.args) != 1
                or e.args[0].name is not None
                or not (isinstance(e.args[0].value, ast.Literal) and e.args[0].value.kind == "str")
            ):
                self.error(e.span, '`env` takes one string: the variable name, e.g. env("SLACK_WEBHOOK_URL")', code="channel-option")
                return _BAD
            var = e.args[0].value.value
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", var):
                self.error(
                    e.args[0].value.span,
                    f"`{_short(var)}` is not an environment variable name" if var else "the environment variable name is empty",
                    ("names are letters, digits and `_`, not starting with a digit",),
                    code="channel-option",
                )
                return _BAD
            return EnvVar(var)
        if isinstance(e, ast.Literal):
            kind = e.kind
            fits = {
                "str": kind == "str",
                "int": kind == "int" and e.value >= 0,
                "bool": kind == "bool",
                "duration": kind == "duration" and e.value > 0,
                "str|list": kind == "str",
                "map": False,
            }[want]
            if fits and kind == "int":
                return self.int_option(e, opt)
            if fits:
                return e.value
        if isinstance(e, ast.ListLit) and want == "str|list":
            if all(isinstance(i, ast.Literal) and i.kind == "str" for i in e.items):
                return [i.value for i in e.items]  # type: ignore[union-attr]
        if isinstance(e, ast.MapLit) and want == "map":
            if all(isinstance(v, ast.Literal) and v.kind == "str" or isinstance(v, ast.Call) for _, v in e.items):
                out = {}
                for k, v in e.items:
                    val = self.option_value(v, "str", opt)
                    if val is _BAD:
                        return _BAD
                    out[k.value] = val
                return out
        described = {
            "str": "a string",
            "int": "a non-negative integer",
            "bool": "`true` or `false`",
            "duration": "a positive duration such as `10s`",
            "str|list": "a string or a list of strings",
            "map": 'a map of strings such as {"X-Token": env("TOKEN")}',
        }[want]
        self.error(e.span, f"option `{opt}` takes {described}", code="channel-option")
        return _BAD

    def int_option(self, e: ast.Literal, opt: str) -> Any:
        lo, hi = {"smtp_port": (1, 65535), "retries": (0, MAX_RETRIES)}.get(opt, (0, 2**63 - 1))
        if not lo <= e.value <= hi:
            self.error(e.span, f"option `{opt}` must be between {lo} and {hi}, got {_short(e.text)}", code="channel-option")
            return _BAD
        return e.value

    # ------------------------------------------------------------------ rules
    def rule(self, r: ast.RuleDecl) -> None:
        rid = r.id.value
        seen: dict[type, Any] = {}
        for c in r.clauses:
            if type(c) in ast.REPEATABLE_CLAUSES:
                continue
            if type(c) in seen:
                kw = ast.CLAUSE_KEYWORD[type(c)]
                self.error(
                    keyword_span(c),
                    f"rule `{rid}` has more than one `{kw}` clause",
                    (f"the first is at line {seen[type(c)].span.line}",),
                    code="duplicate-clause",
                )
            else:
                seen[type(c)] = c
        shapes = [c for c in r.clauses if isinstance(c, _SHAPES)]
        shape_types = []
        for c in shapes:
            if type(c) not in shape_types:
                shape_types.append(type(c))
        if len(shape_types) > 1:
            first = next(c for c in shapes if type(c) is shape_types[0])
            for c in shapes:
                if type(c) is not shape_types[0]:
                    self.error(
                        keyword_span(c),
                        f"`{ast.CLAUSE_KEYWORD[type(c)]}` conflicts with `{ast.CLAUSE_KEYWORD[shape_types[0]]}` (line {first.span.line})",
                        ("a rule has at most one of window, schedule, pattern, absent, anomaly",),
                        code="conflicting-clauses",
                    )
        frm: ast.From | None = seen.get(ast.From)
        if frm is None:
            self.error(r.id.span, f"rule `{rid}` has no `from` clause", ("add `from <stream>`",), code="missing-from")
            return
        sname = frm.stream.value
        stream = self.streams.get(sname)
        if stream is None:
            if sname not in self.stream_decls and sname not in self.broken:
                self.error(
                    frm.stream.span,
                    f"unknown stream `{sname}`",
                    name_hints(sname, list(self.stream_decls), "streams"),
                    code="unknown-stream",
                )
            return
        RuleLowering(self, r, stream, seen, shape_types[0] if shape_types else None).lower()


_BAD = object()


class RuleLowering:
    """Checks one rule's clauses against its stream and builds its RulePlan."""

    def __init__(self, checker: Checker, r: ast.RuleDecl, stream: StreamPlan, clauses: dict[type, Any], shape: type | None):
        self.c = checker
        self.r = r
        self.stream = stream
        self.clauses = clauses
        self.shape = shape
        self.errors_before = len(checker.diags)

    def error(self, span: ast.Span, message: str, hints: tuple[str, ...] = (), code: str = "") -> None:
        self.c.error(span, message, hints, code)

    def lower(self) -> None:
        from cepdsl.checker_decls import lower_joins

        joins_ast = [c for c in self.r.clauses if isinstance(c, ast.Join)]
        joins: tuple[Any, ...] = ()
        if joins_ast:
            # The rule sees the stream with the joined columns (`A.field`) added (§9.2).
            self.stream, joins = lower_joins(self, joins_ast)
        cl, stream, rid = self.clauses, self.stream, self.r.id.value
        typer = self.c.typer

        # -- group by
        group: list[FieldPlan] = []
        gb: ast.GroupBy | None = cl.get(ast.GroupBy)
        if gb is not None:
            for k in gb.keys:
                fp = stream.field(k.dotted)
                if fp is None:
                    self.error(
                        k.span,
                        f"unknown field `{k.dotted}` in stream `{stream.name}`",
                        did_you_mean(k.dotted, [f.name for f in stream.fields]),
                        code="unknown-field",
                    )
                elif any(g.name == fp.name for g in group):
                    self.error(k.span, f"`{k.dotted}` appears twice in `group by`", code="duplicate-key")
                else:
                    group.append(fp)

        # -- where
        where = None
        w: ast.Where | None = cl.get(ast.Where)
        if w is not None:
            where = typer.condition(w.expr, Scope(stream, "where"), "where")

        # -- the rule's shape
        kind = RuleKind.FILTER
        window = schedule = pattern = absent = anomaly = None
        shape = self.shape
        needs_time: ast.Span | None = None
        if shape is ast.Window:
            kind, window = RuleKind.WINDOW, self.window(cl[ast.Window])
            needs_time = keyword_span(cl[ast.Window])
        elif shape is ast.Schedule:
            kind, schedule = RuleKind.SCHEDULE, self.schedule(cl[ast.Schedule])
            needs_time = keyword_span(cl[ast.Schedule])
        elif shape is ast.Pattern:
            kind, pattern = RuleKind.PATTERN, self.pattern(cl[ast.Pattern], cl.get(ast.Define))
            needs_time = keyword_span(cl[ast.Pattern])
        elif shape is ast.Absent:
            kind = RuleKind.ABSENT
            d = self.c.positive(cl[ast.Absent].duration, "`absent for`")
            absent = AbsentSpec(d) if d else None
            needs_time = keyword_span(cl[ast.Absent])
        elif shape is ast.Anomaly:
            kind, anomaly = RuleKind.ANOMALY, self.anomaly(cl[ast.Anomaly])
            needs_time = keyword_span(cl[ast.Anomaly])
        if shape is not ast.Pattern and ast.Define in cl:
            self.error(keyword_span(cl[ast.Define]), "`define` needs a `pattern` clause", code="define-without-pattern")

        # -- having
        having = None
        aggregates: dict[str, Any] = {}
        h: ast.Having | None = cl.get(ast.Having)
        if h is not None:
            allowed = shape in (ast.Window, ast.Schedule)
            scope = Scope(stream, "having", allowed, tuple(g.name for g in group), aggregates)
            if not allowed:
                self.error(
                    keyword_span(h),
                    "`having` needs a `window` or `schedule` clause",
                    ("filter single events with `where`",),
                    code="having-without-window",
                )
            else:
                having = typer.condition(h.expr, scope, "having")

        # -- severity, throttle, notify
        severity = "medium"
        s: ast.Severity | None = cl.get(ast.Severity)
        if s is not None:
            level = s.level.value
            if level not in SEVERITIES:
                self.c.unknown(
                    s.level.span, f"unknown severity `{level}`", level, SEVERITIES, f"use one of {', '.join(SEVERITIES)}", "severity"
                )
            else:
                severity = s.level.value
        throttle = None
        t: ast.Throttle | None = cl.get(ast.Throttle)
        if t is not None:
            throttle = self.c.positive(t.duration, "`throttle`")
            needs_time = needs_time or keyword_span(t)
        notify: list[str] = []
        fallback = None
        n: ast.Notify | None = cl.get(ast.Notify)
        if n is not None:
            for ch in (*n.channels, *([n.fallback] if n.fallback else [])):
                if ch.value not in self.c.channel_decls:
                    self.error(
                        ch.span,
                        f"unknown channel `{ch.value}`",
                        name_hints(ch.value, sorted(self.c.channel_decls), "channels"),
                        code="unknown-channel",
                    )
            notify = [ch.value for ch in n.channels]
            named: set[str] = set()
            for ch in n.channels:
                if ch.value in named:
                    self.error(ch.span, f"channel `{ch.value}` is named twice in `notify`", code="duplicate-channel")
                named.add(ch.value)
            fallback = n.fallback.value if n.fallback else None

        # -- lifecycle (§9.3)
        for_us, resolve = self.lifecycle(kind, window)
        if (for_us is not None or resolve is not None) and needs_time is None:
            needs_time = keyword_span(cl.get(ast.For) or cl[ast.Resolve])

        # -- time
        if needs_time is not None and stream.time_field is None:
            ts = stream.field("ts")
            hint = (
                f"field `ts` is `{ts.type}`, not a timestamp; name the time field with `time <field>`"
                if ts is not None
                else f"declare a timestamp field and name it with `time <field>` in stream `{stream.name}`"
            )
            self.error(
                needs_time, f"this rule needs event time, but stream `{stream.name}` has no time field", (hint,), code="no-time"
            )

        # -- message (checked against the record it will be rendered with). When the
        # clauses that shape the record failed, its columns are unknown: only the
        # template's own syntax is checked then, so one mistake gives one message.
        agg_tuple = tuple(aggregates.values())
        lifecycle = ast.For in cl or ast.Resolve in cl
        output = output_columns(kind, stream, tuple(group), agg_tuple, pattern, anomaly, lifecycle)
        record_known = len(self.c.diags) == self.errors_before
        names = [f.name for f in output] + list(TEMPLATE_NAMES)
        message = message_template = None
        m: ast.Message | None = cl.get(ast.Message)
        if m is not None and m.named:
            message_template = m.template.value
            decl = self.c.template_decls.get(message_template)
            tp = self.c.templates.get(message_template)
            if decl is None:
                self.error(
                    m.template.span,
                    f"unknown template `{_short(message_template)}`",
                    name_hints(message_template, sorted(self.c.template_decls), "templates"),
                    code="unknown-template",
                )
            elif tp is not None:
                message = tp.text
                self.check_template(decl.text, names, record_known, where=f"template `{message_template}`", at=m.template.span)
        elif m is not None:
            message = m.template.value
            if not has_bad_escape(m.template):
                self.check_template(m.template, names, record_known)
        rs: ast.Resolve | None = cl.get(ast.Resolve)
        if rs is not None and rs.template is not None and not has_bad_escape(rs.template):
            # The resolved message may quote the firing one (`alert_message`).
            self.check_template(rs.template, names + ["alert_message"], record_known, where="`resolve`")
        if len(self.c.diags) > self.errors_before:
            return
        title = self.r.title.value if self.r.title is not None else None
        self.c.rules.append(
            RulePlan(
                id=rid,
                title=title,
                stream=stream,
                kind=kind,
                where=where,
                group_by=tuple(group),
                window=window,
                having=having,
                aggregates=agg_tuple,
                schedule=schedule,
                pattern=pattern,
                absent=absent,
                anomaly=anomaly,
                severity=severity,
                throttle_us=throttle,
                notify=tuple(notify),
                fallback=fallback,
                message=message,
                file=self.r.span.file if self.r.span.file != ast.NO_SPAN.file else self.c.file.name,
                line=self.r.span.line,
                output=output,
                joins=joins,
                for_us=for_us,
                resolve=resolve,
                message_template=message_template,
            )
        )

    def lifecycle(self, kind: RuleKind, window: WindowSpec | None) -> tuple[int | None, ResolveSpec | None]:
        """`for` and `resolve` (§9.3): only on tumbling/sliding window, schedule, absence
        and anomaly rules; `for` not on absence; their durations positive."""
        f: ast.For | None = self.clauses.get(ast.For)
        rs: ast.Resolve | None = self.clauses.get(ast.Resolve)
        if f is None and rs is None:
            return None, None
        what = _LIFECYCLE_REFUSED.get(kind)
        if kind is RuleKind.WINDOW and self.shape is ast.Window:
            wkind = self.clauses[ast.Window].kind
            what = {"session": "a session window rule", "count": "a `last N events` rule"}.get(wkind)
        before = len(self.c.diags)
        for clause in (f, rs):
            if clause is not None and what is not None:
                self.error(
                    keyword_span(clause),
                    f"`{ast.CLAUSE_KEYWORD[type(clause)]}` cannot be used on {what}",
                    ("`for` and `resolve` apply to tumbling and sliding window, schedule, absence and anomaly rules",),
                    code="lifecycle",
                )
        if f is not None and kind is RuleKind.ABSENT:
            self.error(
                keyword_span(f),
                "`for` cannot be used on an absence rule",
                ("the silence is already held for the `absent for` duration; lengthen that instead",),
                code="lifecycle",
            )
        for_us = self.c.positive(f.duration, "`for`", "for 3m") if f is not None else None
        after = self.c.positive(rs.after, "`resolve after`", "resolve after 2m") if rs is not None else None
        if len(self.c.diags) > before:
            return None, None
        resolve = None
        if rs is not None:
            resolve = ResolveSpec(after, rs.template.value if rs.template is not None else None)
        return for_us, resolve

    # ------------------------------------------------------------------ shapes
    def window(self, w: ast.Window) -> WindowSpec | None:
        if w.kind == "tumbling":
            size = self.c.positive(w.size, "the window size")
            return WindowSpec("tumbling", size_us=size) if size else None
        if w.kind == "sliding":
            size = self.c.positive(w.size, "the window size")
            every = self.c.positive(w.every, "the slide (`every`)")
            if size and every and every > size:
                assert w.every is not None and w.size is not None
                self.error(
                    w.every.span,
                    f"the slide `{w.every.text}` is longer than the window `{w.size.text}`: rows between windows would be skipped",
                    ("use `tumbling` for windows that do not overlap, or a slide ≤ the size",),
                    code="sliding",
                )
                return None
            return WindowSpec("sliding", size_us=size, every_us=every) if size and every else None
        if w.kind == "session":
            gap = self.c.positive(w.gap, "the session gap")
            return WindowSpec("session", gap_us=gap) if gap else None
        assert w.count is not None
        if not 1 <= w.count.value <= MAX_COUNT_WINDOW:
            self.error(
                w.count.span,
                f"`last N events` needs N between 1 and {MAX_COUNT_WINDOW:,}, got {_short(w.count.text)}",
                code="window",
            )
            return None
        return WindowSpec("count", count=int(w.count.value))

    def schedule(self, s: ast.Schedule) -> ScheduleSpec | None:
        over = self.c.positive(s.over, "`over`")
        cron = s.cron.value
        problem = None if has_bad_escape(s.cron) else cron_problem(cron)
        if problem:
            message, hint = problem
            self.error(s.cron.span, f"invalid cron string {_short(s.cron.text)}: {message}", (hint,), code="cron")
            return None
        return ScheduleSpec(cron, over) if over else None

    def pattern(self, p: ast.Pattern, define: ast.Define | None) -> PatternSpec | None:
        before = len(self.c.diags)
        within = self.c.positive(p.within, "`within`")
        steps: list[str] = []
        regex = self.pat_node(p.regex, steps)
        defines: dict[str, Any] = {}
        if define is not None:
            for item in define.items:
                nm = item.name.value
                if nm in defines:
                    self.error(item.name.span, f"pattern variable `{nm}` is defined twice", code="duplicate-define")
                elif nm not in steps:
                    self.error(
                        item.name.span,
                        f"unknown pattern variable `{nm}`: it does not appear in the pattern",
                        did_you_mean(nm, steps),
                        code="unknown-pattern-variable",
                    )
                else:
                    defines[nm] = self.c.typer.condition(item.expr, Scope(self.stream, "define"), "define")
        if regex is not None and (size := pattern_program_size(regex) + 1) > MAX_PATTERN_PROGRAM:
            self.error(
                p.regex.span,
                f"pattern too large: bounded repeats unroll to {size} matcher steps, over the limit of {MAX_PATTERN_PROGRAM}",
                ("use `+` or `*` for long runs, or smaller bounds (nested bounds multiply)",),
                code="pattern-size",
            )
        if len(self.c.diags) > before:
            return None
        return PatternSpec(regex, within, tuple(steps), tuple((s, defines.get(s)) for s in steps))  # type: ignore[arg-type]

    def pat_node(self, n: ast.PatNode, steps: list[str]) -> PNode | None:
        if isinstance(n, ast.PatStep):
            if n.name.value not in steps:
                steps.append(n.name.value)
            return PStep(n.name.value)
        if isinstance(n, ast.PatSeq):
            items = [self.pat_node(i, steps) for i in n.items]
            return None if any(i is None for i in items) else PSeq(tuple(items))  # type: ignore[arg-type]
        if isinstance(n, ast.PatAlt):
            opts = [self.pat_node(i, steps) for i in n.options]
            return None if any(i is None for i in opts) else PAlt(tuple(opts))  # type: ignore[arg-type]
        item = self.pat_node(n.item, steps)
        if n.max is not None and n.max < n.min:
            self.error(n.span, f"quantifier `{n.text}`: the maximum is smaller than the minimum", code="quantifier")
            return None
        if max(n.min, n.max or 0) > MAX_PATTERN_REPEAT:
            self.error(n.span, f"quantifier `{n.text}` is over the limit of {MAX_PATTERN_REPEAT}", code="quantifier")
            return None
        if n.max == 0:
            self.error(n.span, f"quantifier `{n.text}` matches nothing", code="quantifier")
            return None
        return None if item is None else PRepeat(item, n.min, n.max)

    def anomaly(self, a: ast.Anomaly) -> AnomalySpec | None:
        method = a.method.value
        if method not in _ANOMALY_PARAMS:
            self.error(
                a.method.span,
                f"unknown anomaly method `{method}`",
                (*did_you_mean(method, _ANOMALY_PARAMS), "the methods are zscore, iqr and ema"),
                code="anomaly",
            )
            return None
        params = dict(_ANOMALY_PARAMS[method])
        positional = [x for x in a.args if x.name is None]
        if len(positional) != 1 or not isinstance(positional[0].value, ast.FieldRef):
            self.error(a.method.span, f"`{method}` takes the field to watch first: `{method}(field, ...)`", code="anomaly")
            return None
        fref = positional[0].value
        ft = self.c.typer.expr(fref, Scope(self.stream, "where"))
        if ft is None:
            return None
        if not ft.type.is_numeric:
            self.error(fref.span, f"`{method}` needs a numeric field, but `{fref.path.dotted}` is `{ft.type}`", code="anomaly")
            return None
        before = len(self.c.diags)
        for arg in a.args:
            if arg.name is None:
                continue
            k = arg.name.value
            if k not in params:
                self.c.unknown(
                    arg.name.span,
                    f"`{method}` has no parameter `{k}`",
                    k,
                    params,
                    f"its parameters are {', '.join(params)}",
                    "anomaly",
                )
                continue
            v = arg.value
            if not (isinstance(v, ast.Literal) and v.kind in ("int", "float")):
                self.error(v.span, f"`{k}` must be a number", code="anomaly")
                continue
            if not self.c.typer.literal_ok(v):
                continue
            val = float(v.value)
            if k == "alpha" and not 0 < val <= 1:
                self.error(v.span, f"`alpha` must be in (0, 1], got {_short(v.text)}", code="anomaly")
            elif k != "alpha" and val <= 0:
                self.error(v.span, f"`{k}` must be positive, got {_short(v.text)}", code="anomaly")
            params[k] = val
        baseline = int(a.baseline.value) if a.baseline is not None else 100
        warmup = int(a.warmup.value) if a.warmup is not None else 10
        if a.baseline is not None and not 1 <= baseline <= MAX_BASELINE:
            self.error(
                a.baseline.span, f"`baseline` must be between 1 and {MAX_BASELINE}, got {_short(a.baseline.text)}", code="anomaly"
            )
        if a.warmup is not None and warmup < 1:
            self.error(a.warmup.span, "`warmup` must be at least 1", code="anomaly")
        if len(self.c.diags) == before and method != "ema" and warmup > baseline:
            span = a.warmup.span if a.warmup is not None else a.method.span
            wtext = _short(a.warmup.text) if a.warmup is not None else str(warmup)
            btext = _short(a.baseline.text) if a.baseline is not None else str(baseline)
            self.error(span, f"`warmup {wtext}` is larger than `baseline {btext}`: no value would ever be scored", code="anomaly")
        if len(self.c.diags) > before:
            return None
        return AnomalySpec(method, fref.path.dotted, baseline=baseline, warmup=warmup, **params)

    def check_template(
        self, lit: ast.Literal, names: list[str], record_known: bool = True, where: str = "`message`", at: ast.Span | None = None
    ) -> None:
        """`at`: where to report (a `template("x")` reference reports at the reference,
        since the same template may suit one rule's record and not another's)."""
        # A dotted field `data.avg` is read as `data` by the template.
        names = names + sorted({n.split(".")[0] for n in names if "." in n})
        used = _template_names(lit.value)
        if not isinstance(used, frozenset):
            self.error(at or _template_error_span(lit, used), f"invalid message template: {used.message}", used.hints, code="template")
            return
        if not record_known:
            return
        for var in sorted(used - set(names)):
            self.error(
                at or _template_var_span(lit, var),
                f"unknown template variable `{var}` in {where}",
                did_you_mean(var, names) or (f"the match record has {', '.join(n for n in names if not n.startswith('alert_'))}",),
                code="template-variable",
            )


def keyword_span(clause: Any) -> ast.Span:
    """The span of a clause's first keyword: the caret marks `where`, not the whole clause."""
    sp = clause.span
    word = ast.CLAUSE_KEYWORD[type(clause)].split()[0]
    return ast.Span(sp.file, sp.line, sp.col, sp.line, sp.col + len(word))


def name_hints(word: str, known: list[str], what: str) -> tuple[str, ...]:
    """ "did you mean" when a name is close; else the names there are (when few)."""
    close = did_you_mean(word, known)
    if close:
        return close
    if not known:
        return (f"no {what} are declared in this file",)
    if len(known) <= 8:
        return (f"the declared {what} are {', '.join(known)}",)
    return ()


_SIMPLE_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z_][A-Za-z0-9_]*)*\s*\}\}")
# Names Jinja reads as constants or globals, not record fields: these take the slow path.
_JINJA_NAMES = frozenset(
    {"true", "false", "none", "True", "False", "None", "range", "dict", "lipsum", "cycler", "joiner", "namespace"}
)


@functools.lru_cache(maxsize=4096)
def _template_names(text: str) -> frozenset[str] | TemplateError:
    """The record names a template reads, or why the engine could not compile it.

    Most messages are text with `{{ field }}` holes; those are read with a regex
    (parsing each with Jinja was most of the checker's time). Anything else
    (filters, `{% %}`, comments, constants) goes through Jinja itself."""
    names = _SIMPLE_TEMPLATE.findall(text)
    rest = _SIMPLE_TEMPLATE.sub("", text)
    if not any(m in rest for m in ("{{", "{%", "{#")) and not _JINJA_NAMES.intersection(names):
        return frozenset(names)
    from cepdsl.templates import TemplateError, template_variables

    try:
        return frozenset(template_variables(text))
    except TemplateError as e:
        return e


def _template_error_span(lit: ast.Literal, err: TemplateError) -> ast.Span:
    """Where a template error is in the string as written: the offending text when the
    error names it (an unknown filter), else the start of its line, else the whole string."""
    start = None
    if err.near:
        found = re.search(err.near, lit.text)
        if found:
            start, length = found.start(), found.end() - found.start()
    if start is None and err.lineno and err.lineno > 1:
        at = -1
        for _ in range(err.lineno - 1):
            at = lit.text.find("\n", at + 1)
            if at < 0:
                return lit.span
        start = at + 1
        length = max(len(lit.text[start:].split("\n", 1)[0]), 1)
    if start is None:
        return lit.span
    before = lit.text[:start]
    line = lit.span.line + before.count("\n")
    col = (lit.span.col + len(before)) if "\n" not in before else len(before) - before.rfind("\n")
    return ast.Span(lit.span.file, line, col, line, col + length)


_TEMPLATE_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def _template_var_span(lit: ast.Literal, var: str) -> ast.Span:
    """Where `var` is first read inside `{{ }}` / `{% %}` in the string as written, so
    the caret marks the name, not the whole message; the string's span otherwise."""
    name = re.compile(r"(?<![A-Za-z0-9_.'\"])" + re.escape(var) + r"(?![A-Za-z0-9_])")
    for block in _TEMPLATE_BLOCK.finditer(lit.text):
        found = name.search(lit.text, block.start(), block.end())
        if found:
            before = lit.text[: found.start()]
            line = lit.span.line + before.count("\n")
            col = (lit.span.col + len(before)) if "\n" not in before else len(before) - before.rfind("\n")
            return ast.Span(lit.span.file, line, col, line, col + len(var))
    return lit.span


_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_CRON_RANGES = ("0-59", "0-23", "1-31", "1-12 or jan-dec", "0-7 or sun-sat")
_CRON_ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
                 "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}  # fmt: skip
_CRON_HINT = '5 fields: minute hour day-of-month month day-of-week, e.g. "0 9 * * *"'


@functools.lru_cache(maxsize=1024)
def cron_problem(cron: str) -> tuple[str, str] | None:
    """Why a cron string is refused (message, hint), or None."""
    from croniter import croniter
    from croniter.croniter import CroniterError

    fields = cron.split()
    alias = _CRON_ALIASES.get(cron.strip().lower())
    if alias:
        return (f"`{cron.strip()}` is not a 5-field cron string", f'write it as "{alias}"')
    if len(fields) != 5:
        return (f"expected 5 fields, found {len(fields)}", _CRON_HINT)
    for i, f in enumerate(fields):
        # Each field alone, with the others `*`: names the field that is wrong.
        probe = " ".join(f if j == i else "*" for j in range(5))
        if not croniter.is_valid(probe):
            return (
                f"the {_CRON_FIELDS[i]} field `{_short(f)}` is invalid",
                f"the {_CRON_FIELDS[i]} is {_CRON_RANGES[i]}, or `*`, a list, a range or a step",
            )
    if not croniter.is_valid(cron):
        return ("the fields do not fit together", _CRON_HINT)
    try:
        croniter(cron, 0).get_next(float)
    except (CroniterError, ValueError, OverflowError):
        return ("it never fires (no date matches it)", "check the day of month against the month")
    return None


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def check(file: ast.File | list[ast.File]) -> tuple[Program | None, list[Diagnostic]]:
    """Check a parsed file, or the files of one program; the plan comes back only when
    there is no error."""
    with gc_paused():
        return Checker(file).run()
