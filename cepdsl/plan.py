"""The typed, normalised plan of a checked rule file.

This is the only thing the executors (the reference interpreter and the
Polars/Numba backends) see: no spans to chase, no syntax sugar, every
expression typed, every duration in microseconds, every output column named.
`cep explain` prints it.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, dataclass_transform

from cepdsl.functions import AGGREGATES
from cepdsl.types import Type, polars_dtype

if TYPE_CHECKING:  # Polars loads on first use: `cep check` never needs it
    import polars as pl

# --------------------------------------------------------------------------- typed expressions


@dataclass_transform(frozen_default=True)
class _Tree:
    """The base of a tree's node kinds (typed expressions, pattern nodes): each subclass is
    made a frozen dataclass when it is defined, so a kind lists only its fields."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(frozen=True)(cls)


class TExpr(_Tree):
    type: Type


class TLit(TExpr):
    """A literal. Durations are `int` microseconds with type DURATION."""

    value: Any


class TField(TExpr):
    """A column of the event (dotted paths are flattened to one name, e.g. `data.avg`)."""

    name: str


class TUnary(TExpr):
    op: str  # "not" | "neg"
    operand: TExpr


# Binary operators, by family.
LOGICAL_OPS = ("and", "or")
ARITH_OPS = ("+", "-", "*", "/", "%")
COMPARE_OPS = ("==", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("contains", "starts_with", "ends_with", "matches")


class TBinary(TExpr):
    op: str
    left: TExpr
    right: TExpr


class TIn(TExpr):
    """`operand [not] in [v, ...]`; values are Python literals of the operand's type (may hold None)."""

    operand: TExpr
    values: tuple[Any, ...]
    negated: bool


class TIsNull(TExpr):
    operand: TExpr
    negated: bool


class TCall(TExpr):
    """Scalar function: abs round floor ceil lower upper len coalesce hour minute day_of_week."""

    func: str
    args: tuple[TExpr, ...]


class TAgg(TExpr):
    """An aggregate inside `having`; `name` is its column in the match record (§7)."""

    func: str  # count sum avg min max std percentile distinct
    field: str | None  # None only for count()
    q: float | None  # percentile only
    name: str


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class FieldPlan:
    name: str
    type: Type

    @property
    def dtype(self) -> pl.DataType:
        return polars_dtype(self.type)


class DeclaredFields:
    """What a declaration of typed fields (a stream, a table) answers about them."""

    fields: tuple[FieldPlan, ...]

    def field(self, name: str) -> FieldPlan | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return {f.name: f.dtype for f in self.fields}


@dataclass(frozen=True)
class StreamPlan(DeclaredFields):
    name: str
    fields: tuple[FieldPlan, ...]
    time_field: str | None
    lateness_us: int = 0


@dataclass(frozen=True)
class EnvVar:
    """`env("NAME")`: resolved when the channel is used, never stored resolved."""

    name: str


@dataclass(frozen=True)
class ChannelPlan:
    name: str
    kind: str  # console file webhook slack email sms pagerduty
    options: tuple[tuple[str, Any], ...]  # values: str/int/float/bool/list/dict or EnvVar
    retries: int = 3
    timeout_s: float = 10.0

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)


# --------------------------------------------------------------------------- rule parts


class RuleKind(enum.Enum):
    FILTER = "filter"
    WINDOW = "window"
    SCHEDULE = "schedule"
    PATTERN = "pattern"
    ABSENT = "absent"
    ANOMALY = "anomaly"


@dataclass(frozen=True)
class WindowSpec:
    kind: str  # "tumbling" | "sliding" | "session" | "count"
    size_us: int | None = None  # tumbling, sliding
    every_us: int | None = None  # sliding
    gap_us: int | None = None  # session
    count: int | None = None  # `last N events`


@dataclass(frozen=True)
class ScheduleSpec:
    cron: str
    over_us: int


class PNode(_Tree):
    """A node of a pattern's regex over step names."""


class PStep(PNode):
    name: str


class PSeq(PNode):
    items: tuple[PNode, ...]


class PAlt(PNode):
    options: tuple[PNode, ...]  # left alternative preferred


class PRepeat(PNode):
    item: PNode
    min: int
    max: int | None  # None = unbounded; greedy always


#: Instructions a pattern may take once bounded repeats are unrolled (`e{2,4}` = e e (e (e)?)?).
#: The checker refuses bigger ones, so every checked pattern compiles (the Numba matcher's
#: memo is program size × rows: bigger programs cost memory nobody can afford).
MAX_PATTERN_PROGRAM = 100_000


def field_nodes(e: Any) -> list[TField]:
    """Every `TField` inside a typed expression (or any plan dataclass), in order."""
    import dataclasses

    if isinstance(e, TField):
        return [e]
    out: list[TField] = []
    if dataclasses.is_dataclass(e):
        for f in dataclasses.fields(e):
            v = getattr(e, f.name)
            for x in v if isinstance(v, tuple) else (v,):
                if dataclasses.is_dataclass(x):
                    out += field_nodes(x)
    return out


def fields_read(e: Any) -> set[str]:
    """The names of the fields a typed expression reads."""
    return {f.name for f in field_nodes(e)}


def pattern_nullable(node: PNode) -> bool:
    """Whether `node` can match zero rows."""
    if isinstance(node, PStep):
        return False
    if isinstance(node, PSeq):
        return all(pattern_nullable(i) for i in node.items)
    if isinstance(node, PAlt):
        return any(pattern_nullable(o) for o in node.options)
    if isinstance(node, PRepeat):
        return node.min == 0 or pattern_nullable(node.item)
    raise TypeError(f"unknown pattern node {type(node).__name__}")


def pattern_program_size(node: PNode) -> int:
    """How many instructions the backtracking program of `node` has (without the final MATCH),
    computed without unrolling anything: the emitter in backends/numba/pattern_compile.py,
    counted (STEP 1; alternation: options + SPLIT/JMP per extra option; repeat: `min` copies,
    then per optional iteration a SPLIT and the item, wrapped in SAVE/CHECK when nullable)."""
    if isinstance(node, PStep):
        return 1
    if isinstance(node, PSeq):
        return sum(pattern_program_size(i) for i in node.items)
    if isinstance(node, PAlt):
        return sum(pattern_program_size(o) for o in node.options) + 2 * (len(node.options) - 1)
    if isinstance(node, PRepeat):
        item = pattern_program_size(node.item)
        body = item + (2 if pattern_nullable(node.item) else 0)
        if node.max is None:
            return node.min * item + body + 2
        return node.min * item + (node.max - node.min) * (body + 1)
    raise TypeError(f"unknown pattern node {type(node).__name__}")


@dataclass(frozen=True)
class PatternSpec:
    regex: PNode
    within_us: int | None
    steps: tuple[str, ...]  # distinct step names in order of first appearance in the regex
    defines: tuple[tuple[str, TExpr | None], ...]  # per step, in `steps` order; None = any row

    def condition(self, step: str) -> TExpr | None:
        return dict(self.defines).get(step)


@dataclass(frozen=True)
class AbsentSpec:
    duration_us: int


@dataclass(frozen=True)
class AnomalySpec:
    method: str  # "zscore" | "iqr" | "ema"
    field: str
    threshold: float = 3.0  # zscore, ema
    multiplier: float = 1.5  # iqr
    alpha: float = 0.3  # ema
    baseline: int = 100
    warmup: int = 10

    @property
    def stat_columns(self) -> tuple[str, ...]:
        """The baseline statistics the record carries for this method."""
        return ("baseline_q1", "baseline_q3") if self.method == "iqr" else ("baseline_mean", "baseline_std")


SEVERITIES = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class ResolveSpec:
    """`resolve [after D] ["TEMPLATE"]` (§9.3): `after_us` None = resolve at the first
    non-holding evaluation; `message` None = the firing message prefixed `[RESOLVED] `."""

    after_us: int | None = None
    message: str | None = None


@dataclass(frozen=True)
class TablePlan(DeclaredFields):
    """A lookup table (§9.2). `source` is "file" (`path` as written, relative to
    `base_dir`, the directory of the rule file that declares it) or "redis" (`path` is
    the hash name). `fields` are the declared columns, `key` one of them."""

    name: str
    fields: tuple[FieldPlan, ...]
    key: str
    source: str  # "file" | "redis"
    path: str
    refresh_us: int | None = None
    base_dir: str = "."
    file: str = "<string>"
    line: int = 0


@dataclass(frozen=True)
class JoinPlan:
    """`join TABLE [as ALIAS] on EXPR`: a left lookup of `on` (typed over the stream and
    the joins before it) in the table's key. Joined columns are named `ALIAS.field`."""

    table: TablePlan
    alias: str
    on: TExpr

    @property
    def columns(self) -> tuple[FieldPlan, ...]:
        return tuple(FieldPlan(f"{self.alias}.{f.name}", f.type) for f in self.table.fields)


@dataclass(frozen=True)
class TemplatePlan:
    """`template NAME = "..."` (§9.5)."""

    name: str
    text: str


@dataclass(frozen=True)
class SilencePlan:
    """A silence (§9.4). `match` is typed over match-record fields (`TField` names are
    record columns; a rule whose records lack one reads it as null). Either a cron
    period (`cron`, `duration_us`) or one period [`start_us`, `until_us`), in event time."""

    name: str
    title: str | None
    match: TExpr | None
    fields: tuple[str, ...] = ()  # the record fields `match` reads
    cron: str | None = None
    duration_us: int | None = None
    start_us: int | None = None
    until_us: int | None = None


@dataclass(frozen=True)
class RulePlan:
    id: str
    title: str | None
    stream: StreamPlan
    kind: RuleKind
    where: TExpr | None = None
    group_by: tuple[FieldPlan, ...] = ()
    window: WindowSpec | None = None
    having: TExpr | None = None
    aggregates: tuple[TAgg, ...] = ()  # distinct by name, in order of first use
    schedule: ScheduleSpec | None = None
    pattern: PatternSpec | None = None
    absent: AbsentSpec | None = None
    anomaly: AnomalySpec | None = None
    severity: str = "medium"
    throttle_us: int | None = None
    notify: tuple[str, ...] = ()
    fallback: str | None = None
    message: str | None = None
    file: str = "<string>"
    line: int = 0
    output: tuple[FieldPlan, ...] = field(default=())
    #: §9: lookup joins (applied before `where`, in order), `for`, `resolve`, and the
    #: name of the `template("...")` the message came from (`message` holds its text).
    joins: tuple[JoinPlan, ...] = ()
    for_us: int | None = None
    resolve: ResolveSpec | None = None
    message_template: str | None = None

    @property
    def source_stream(self) -> StreamPlan:
        """The stream as the source delivers it: `stream` without the joined columns."""
        if not self.joins:
            return self.stream
        joined = {c.name for j in self.joins for c in j.columns}
        s = self.stream
        return StreamPlan(s.name, tuple(f for f in s.fields if f.name not in joined), s.time_field, s.lateness_us)

    @property
    def lifecycle(self) -> bool:
        """Whether records are episodes (§9.3): `for` or `resolve` given."""
        return self.for_us is not None or self.resolve is not None

    @property
    def group_keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.group_by)

    @property
    def output_schema(self) -> dict[str, pl.DataType]:
        return {f.name: f.dtype for f in self.output}

    def empty_output(self) -> pl.DataFrame:
        # Executors ask for this on every batch; building a frame from a schema costs ~0.3 ms.
        return _empty_frame(self.output).clear()


@dataclass(frozen=True)
class Program:
    streams: tuple[StreamPlan, ...]
    channels: tuple[ChannelPlan, ...]
    rules: tuple[RulePlan, ...]
    tables: tuple[TablePlan, ...] = ()
    templates: tuple[TemplatePlan, ...] = ()
    silences: tuple[SilencePlan, ...] = ()

    def table(self, name: str) -> TablePlan:
        return next(t for t in self.tables if t.name == name)

    def template(self, name: str) -> TemplatePlan:
        return next(t for t in self.templates if t.name == name)

    def stream(self, name: str) -> StreamPlan:
        return next(s for s in self.streams if s.name == name)

    def channel(self, name: str) -> ChannelPlan:
        return next(c for c in self.channels if c.name == name)

    def rule(self, rule_id: str) -> RulePlan:
        return next(r for r in self.rules if r.id == rule_id)


# --------------------------------------------------------------------------- match records (§7)


def aggregate_name(func: str, field_name: str | None, q: float | None = None) -> str:
    """Column name of an aggregate: `count`, `avg_cpu`, `p95_latency_ms`, `p99_9_f`, dots as `_`."""
    return AGGREGATES[func].column(field_name, q)


def aggregate_type(func: str, arg_type: Type | None) -> Type:
    return Type.INT if arg_type is None else AGGREGATES[func].result(arg_type)


HEAD = (FieldPlan("rule", Type.STR), FieldPlan("ts", Type.TIMESTAMP), FieldPlan("severity", Type.STR))

#: Columns a rule with `for` or `resolve` adds to its records (§9.3); `resolved_at` is
#: null on firing records.
LIFECYCLE_COLUMNS = (
    FieldPlan("state", Type.STR),
    FieldPlan("firing_since", Type.TIMESTAMP),
    FieldPlan("resolved_at", Type.TIMESTAMP),
    # Whether the record is held back from the channels while staying in the output: a
    # throttled firing record, or a resolved one whose firing record was not notified.
    FieldPlan("suppressed", Type.BOOL),
)

#: The column a silence sets (§9.4): the silence's name, null when none applies.
SILENCED_COLUMN = FieldPlan("silenced", Type.STR)


def output_columns(
    kind: RuleKind,
    stream: StreamPlan,
    group_by: tuple[FieldPlan, ...],
    aggregates: tuple[TAgg, ...] = (),
    pattern: PatternSpec | None = None,
    anomaly: AnomalySpec | None = None,
    lifecycle: bool = False,
) -> tuple[FieldPlan, ...]:
    """The ordered columns of a rule's match record (LANGUAGE.md §7, §9.3).
    `stream` is the rule's view of it: joined columns (`A.field`) included."""
    cols: list[FieldPlan] = [*HEAD, *group_by]
    seen = {c.name for c in cols}  # a set: a scan of `cols` per field made this quadratic in wide streams

    def add(fp: FieldPlan) -> None:
        if fp.name not in seen:
            seen.add(fp.name)
            cols.append(fp)

    ts = Type.TIMESTAMP
    if kind in (RuleKind.FILTER, RuleKind.ANOMALY, RuleKind.PATTERN):
        for f in stream.fields:
            add(f)
    if kind in (RuleKind.WINDOW, RuleKind.SCHEDULE):
        add(FieldPlan("window_start", ts))
        add(FieldPlan("window_end", ts))
        for a in aggregates:
            add(FieldPlan(a.name, a.type))
    elif kind is RuleKind.PATTERN and pattern is not None:
        add(FieldPlan("match_start", ts))
        for step in pattern.steps:
            add(FieldPlan(f"{step}_count", Type.INT))
    elif kind is RuleKind.ABSENT:
        add(FieldPlan("last_seen", ts))
    elif kind is RuleKind.ANOMALY and anomaly is not None:
        add(FieldPlan("score", Type.FLOAT))
        add(FieldPlan("method", Type.STR))
        add(FieldPlan("baseline_n", Type.INT))
        for s in anomaly.stat_columns:
            add(FieldPlan(s, Type.FLOAT))
    if lifecycle:
        for c in LIFECYCLE_COLUMNS:
            add(c)
    return tuple(cols)


@functools.lru_cache(maxsize=1024)
def _empty_frame(fields: tuple[FieldPlan, ...]) -> pl.DataFrame:
    """An empty frame of these fields, shared: callers get `.clear()` copies, never this one."""
    import polars as pl

    return pl.DataFrame(schema={f.name: f.dtype for f in fields})
