"""`cep explain`: the compiled plan of a checked file, as text for people.

It prints what the executors will run — the typed plan (`cepdsl.plan`), not the
source: every expression with its types (`(cpu:float > 80:int):bool`), the
aggregates and output columns by name and type, time parameters in duration
units, and which executor family runs each rule.

Secrets never appear: an `env("NAME")` value is shown as `env("NAME")` (the
plan holds the name only, the environment is never read here), and any other
value of an option marked secret in `cepdsl.channels` as `***`.
"""

from __future__ import annotations

from typing import Any

from cepdsl.channels import COMMON, KINDS
from cepdsl.fmt import duration_text, quote_string, window_text
from cepdsl.plan import (
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
    RuleKind,
    RulePlan,
    ScheduleSpec,
    StreamPlan,
    TAgg,
    TBinary,
    TCall,
    TExpr,
    TField,
    TIn,
    TIsNull,
    TLit,
    TUnary,
    WindowSpec,
)
from cepdsl.types import Type

__all__ = ["explain", "explain_rule", "typed_expr", "executor_hint"]

SECRET = "***"
_WIDTH = 88
_LABEL = 12  # column where a rule's values start


# --------------------------------------------------------------------------- values


def _dur(us: int) -> str:
    if us == 0:
        return "0s"
    try:
        return duration_text(us=us)
    except ValueError:  # below a millisecond: only reachable from a hand-built plan
        return f"{us}us"


def _value(v: Any, t: Type | None = None) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if t is Type.DURATION and isinstance(v, int):
        return _dur(v)
    if isinstance(v, str):
        return quote_string(v, long=False)
    if isinstance(v, float):
        return repr(v)
    return str(v)


def typed_expr(e: TExpr) -> str:
    """An expression with the type of every node: `(cpu:float > 80:int):bool`."""
    t = e.type
    if isinstance(e, TAgg):
        if e.func == "count" and e.field is None:
            return f"count():{t}"
        q = "" if e.q is None else f", {int(e.q) if float(e.q).is_integer() else e.q!r}"
        return f"{e.func}({e.field}{q}):{t}"
    if isinstance(e, TLit):
        return f"{_value(e.value, t)}:{t}"
    if isinstance(e, TField):
        return f"{e.name}:{t}"
    if isinstance(e, TUnary):
        op = "not " if e.op == "not" else "-"
        return f"({op}{typed_expr(e.operand)}):{t}"
    if isinstance(e, TBinary):
        return f"({typed_expr(e.left)} {e.op} {typed_expr(e.right)}):{t}"
    if isinstance(e, TIn):
        values = ", ".join(_value(v, e.operand.type) for v in e.values)
        return f"({typed_expr(e.operand)} {'not in' if e.negated else 'in'} [{values}]):{t}"
    if isinstance(e, TIsNull):
        return f"({typed_expr(e.operand)} is {'not null' if e.negated else 'null'}):{t}"
    if isinstance(e, TCall):
        return f"{e.func}({', '.join(typed_expr(a) for a in e.args)}):{t}"
    raise TypeError(f"explain has no layout for {type(e).__name__}")


def _columns(cols: tuple[FieldPlan, ...]) -> str:
    return ", ".join(f"{c.name}: {c.type}" for c in cols)


# --------------------------------------------------------------------------- parts


def _stream(s: StreamPlan) -> str:
    time = f"time {s.time_field}" if s.time_field else "no time field"
    return f"{s.name} ({time}, lateness {_dur(s.lateness_us)})"


def _option(kind: str, name: str, value: Any) -> str:
    opt = {**KINDS.get(kind, {}), **COMMON}.get(name)
    secret = opt is not None and opt.secret
    if isinstance(value, EnvVar):
        return f'env({quote_string(value.name, long=False)})'
    if isinstance(value, dict):
        items = ", ".join(f"{quote_string(str(k), long=False)}: {_option_value(v, secret)}" for k, v in value.items())
        return "{" + items + "}"
    return _option_value(value, secret)


def _option_value(value: Any, secret: bool) -> str:
    if isinstance(value, EnvVar):
        return f'env({quote_string(value.name, long=False)})'
    if secret:
        return SECRET
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_option_value(v, False) for v in value) + "]"
    return _value(value)


def channel_text(c: ChannelPlan) -> str:
    """`slack(webhook_url = env("SLACK_URL"), channel = "#ops", retries = 3, timeout = 10s)`: the
    declaration as it could be written, with the delivery defaults spelled out."""
    opts = [f"{k} = {_option(c.kind, k, v)}" for k, v in c.options]
    opts += [f"retries = {c.retries}", f"timeout = {_dur(round(c.timeout_s * 1_000_000))}"]
    return f"{c.kind}({', '.join(opts)})"


def _simplify(n: PNode) -> PNode:
    """Drop the one-item groups the plan keeps from the source's parentheses."""
    if isinstance(n, PAlt):
        opts = tuple(_simplify(o) for o in n.options)
        return opts[0] if len(opts) == 1 else PAlt(opts)
    if isinstance(n, PSeq):
        items = tuple(_simplify(i) for i in n.items)
        return items[0] if len(items) == 1 else PSeq(items)
    if isinstance(n, PRepeat):
        return PRepeat(_simplify(n.item), n.min, n.max)
    return n


def pattern_text(n: PNode) -> str:
    """A pattern regex with only the parentheses it needs."""
    return _pattern_text(_simplify(n))


def _pattern_text(n: PNode, nested: bool = False) -> str:
    if isinstance(n, PStep):
        return n.name
    if isinstance(n, PRepeat):
        q = {(0, 1): "?", (0, None): "*", (1, None): "+"}.get((n.min, n.max))
        if q is None:
            q = f"{{{n.min}}}" if n.min == n.max else f"{{{n.min},{'' if n.max is None else n.max}}}"
        item = _pattern_text(n.item, nested=True)
        return (item if isinstance(n.item, PStep) or item.startswith("(") else f"({item})") + q
    if isinstance(n, PSeq):
        return " ".join(_pattern_text(i, nested=True) for i in n.items)
    assert isinstance(n, PAlt)
    text = " | ".join(_pattern_text(o) for o in n.options)
    return f"({text})" if nested else text


#: What each window kind covers, after its spec.
_WINDOW_NOTE = {
    "tumbling": "(epoch-aligned windows [start, end))",
    "sliding": "(windows [kS, kS + D), epoch-aligned)",
    "session": "(a session is [first, last + gap))",
    "count": "(per group, after each event)",
}


def _window(w: WindowSpec) -> str:
    size, every, gap = (_dur(us or 0) for us in (w.size_us, w.every_us, w.gap_us))
    return f"{window_text(w.kind, size, every, gap, str(w.count))} {_WINDOW_NOTE[w.kind]}"


def _schedule(s: ScheduleSpec) -> str:
    return f"cron {quote_string(s.cron, long=False)} (UTC) over {_dur(s.over_us)}: rows in [T - {_dur(s.over_us)}, T) at each tick T"


def _anomaly(a: AnomalySpec) -> str:
    if a.method == "zscore":
        params = f"threshold {a.threshold!r}"
    elif a.method == "iqr":
        params = f"multiplier {a.multiplier!r}"
    else:
        params = f"alpha {a.alpha!r}, threshold {a.threshold!r}"
    return f"{a.method}({a.field}) {params}, baseline {a.baseline}, warmup {a.warmup}"


def _absent(a: AbsentSpec) -> str:
    return f"for {_dur(a.duration_us)}: fires at last_seen + {_dur(a.duration_us)} once the watermark reaches it"


def executor_hint(r: RulePlan) -> str:
    """Which executor family runs the rule, and how (see cepdsl.backends)."""
    if r.kind is RuleKind.FILTER:
        return "polars filter: `where` is one vectorised predicate per batch; every row left is a match"
    if r.kind is RuleKind.WINDOW:
        assert r.window is not None
        if r.window.kind in ("tumbling", "sliding"):
            return "polars window kernel: partial aggregates per (group, pane) merged into windows, fired by the watermark"
        if r.window.kind == "session":
            return "polars session windows: open sessions kept as partial aggregates, merged per group"
        return "polars count window: rolling aggregates over each group's last N rows"
    if r.kind is RuleKind.SCHEDULE:
        return "polars schedule: rows kept until their last tick, one group_by per batch of due ticks"
    if r.kind is RuleKind.PATTERN:
        return "numba pattern matcher: the regex compiled to a backtracking program, one pass over group-sorted rows"
    if r.kind is RuleKind.ABSENT:
        return "numba absence: each group's last row in a slot table; deadlines fire with the watermark"
    return "numba anomaly kernel: per-group baselines in ring buffers, one pass per batch"


# --------------------------------------------------------------------------- rules


class _Lines:
    def __init__(self) -> None:
        self.out: list[str] = []

    def add(self, label: str, value: str) -> None:
        prefix = f"  {label}".ljust(_LABEL)
        self.out.append((prefix + " " + value).rstrip() if value else prefix.rstrip())

    def wrapped(self, label: str, items: list[str]) -> None:
        """Comma-separated items, wrapped under the first one."""
        pad = " " * (_LABEL + 1)
        line = f"  {label}".ljust(_LABEL) + " "
        first = True
        for i, item in enumerate(items):
            piece = item + ("," if i < len(items) - 1 else "")
            if not first and len(line) + 1 + len(piece) > _WIDTH:
                self.out.append(line)
                line = pad + piece
            else:
                line += ("" if first else " ") + piece
            first = False
        self.out.append(line.rstrip())


def explain_rule(r: RulePlan, program: Program | None = None) -> str:
    title = f" {quote_string(r.title, long=False)}" if r.title is not None else ""
    where = f"  ({r.file}:{r.line})" if r.line else ""
    lines = _Lines()
    lines.out.append(f"rule {r.id}{title}{where}")
    lines.add("kind", r.kind.value)
    lines.add("executor", executor_hint(r))
    lines.add("stream", _stream(r.source_stream))
    for j in r.joins:
        t = j.table
        lines.add("join", f"{t.name} as {j.alias} on {t.key} == {typed_expr(j.on)} (left hash join, before where)")
    lines.add("where", typed_expr(r.where) if r.where is not None else "(every row)")
    if r.group_by:
        lines.add("group by", _columns(r.group_by))
    if r.window is not None:
        lines.add("window", _window(r.window))
    if r.schedule is not None:
        lines.add("schedule", _schedule(r.schedule))
    if r.pattern is not None:
        _pattern(lines, r.pattern)
    if r.absent is not None:
        lines.add("absent", _absent(r.absent))
    if r.anomaly is not None:
        lines.add("anomaly", _anomaly(r.anomaly))
    if r.aggregates:
        lines.add("aggregates", "")
        for a in r.aggregates:
            lines.out.append(f"    {a.name}: {a.type} = {typed_expr(a).rsplit(':', 1)[0]}")
    if r.having is not None:
        lines.add("having", typed_expr(r.having))
    if r.for_us is not None:
        lines.add("for", f"{_dur(r.for_us)} (the condition holds this long before an episode fires)")
    if r.resolve is not None:
        after = f"after {_dur(r.resolve.after_us)}" if r.resolve.after_us is not None else "at the first evaluation that does not hold"
        message = f", message {quote_string(r.resolve.message, long=False)}" if r.resolve.message is not None else ""
        lines.add("resolve", after + message)
    elif r.for_us is not None:
        lines.add("resolve", "none (one firing record per episode)")
    lines.wrapped("output", [f"{c.name}: {c.type}" for c in r.output])
    lines.add("severity", r.severity)
    throttle = "none"
    if r.throttle_us:
        throttle = f"{_dur(r.throttle_us)} per " + ("group key" if r.group_by else "rule")
    lines.add("throttle", throttle)
    if r.notify:
        channels = {c.name: c for c in program.channels} if program is not None else {}
        for i, name in enumerate((*r.notify, *([r.fallback] if r.fallback else []))):
            role = "fallback" if r.fallback is not None and i == len(r.notify) else "notify"
            ch = channels.get(name)
            lines.add(role, f"{name} = {channel_text(ch)}" if ch is not None else name)
    else:
        lines.add("notify", "none (matches go to the output only)")
    if r.message is not None:
        named = f"template {r.message_template}: " if r.message_template is not None else ""
        lines.add("message", named + quote_string(r.message, long=False))
    return "\n".join(lines.out) + "\n"


def _pattern(lines: _Lines, p: PatternSpec) -> None:
    within = f" within {_dur(p.within_us)}" if p.within_us is not None else ""
    lines.add("pattern", pattern_text(p.regex) + within)
    width = max(len(s) for s in p.steps)
    for step, cond in p.defines:
        lines.out.append(f"    {step.ljust(width)}  {typed_expr(cond) if cond is not None else '(any row)'}")


def _instant(us: int | None) -> str:
    import datetime as dt

    if us is None:
        return "?"
    t = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=us)
    return t.isoformat().replace("+00:00", "Z")


def explain(program: Program) -> str:
    """Every stream, channel and rule of a checked file, as `cep explain` prints it."""
    out: list[str] = []
    for s in program.streams:
        out.append(f"stream {_stream(s)}")
        out.append(f"  fields  {_columns(s.fields)}")
    for c in program.channels:
        out.append(f"channel {c.name} = {channel_text(c)}")
    for t in program.tables:
        where = f'file "{t.path}" (relative to {t.base_dir})' if t.source == "file" else f'redis hash "{t.path}"'
        refresh = f", refresh {_dur(t.refresh_us)}" if t.refresh_us else ""
        out.append(f"table {t.name} ({_columns(t.fields)}) key {t.key} from {where}{refresh}")
    for tp in program.templates:
        out.append(f"template {tp.name} = {quote_string(tp.text, long=False)}")
    for si in program.silences:
        title = f" {quote_string(si.title, long=False)}" if si.title is not None else ""
        match = typed_expr(si.match) if si.match is not None else "(every match)"
        if si.cron is not None:
            period = f'every "{si.cron}" for {_dur(si.duration_us or 0)} (UTC, event time)'
        else:
            period = f"from {_instant(si.start_us)} until {_instant(si.until_us)} (event time, half-open)"
        out.append(f"silence {si.name}{title}")
        out.append(f"  match   {match}")
        out.append(f"  period  {period}")
    blocks = ["\n".join(out) + "\n"] if out else []
    blocks += [explain_rule(r, program) for r in program.rules]
    return "\n".join(blocks)
