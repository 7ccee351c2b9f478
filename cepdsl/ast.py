"""The syntax tree of a `.cep` file: frozen data, every node with its span.

Nodes carry no behaviour beyond small helpers; checking, formatting and
planning are passes in their own modules.  Equality ignores spans
(`compare=False`), so "the AST of fmt(x) equals the AST of x" is plain `==`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, dataclass_transform


@dataclass(frozen=True)
class Span:
    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_SPAN = Span("<none>", 0, 0, 0, 0)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
@dataclass(frozen=True)
class Node:
    """What every node is: a frozen dataclass with the span of its text.

    A subclass is made a frozen dataclass when it is defined, and lists only its own
    fields: `span` is declared here once, keyword-only (so it follows them in the
    constructor) and left out of `==` and repr."""

    span: Span = field(default=NO_SPAN, compare=False, repr=False, kw_only=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(frozen=True)(cls)


class Name(Node):
    value: str
    quoted: bool = field(default=False, compare=False)


class Path(Node):
    """A field reference as written: `cpu`, `data.avg`, `` `window` ``."""

    parts: tuple[Name, ...]

    @property
    def dotted(self) -> str:
        return ".".join(p.value for p in self.parts)


# ----------------------------------------------------------------------------- expressions


class Literal(Node):
    """`value` is the Python value; `kind` one of int float str bool null duration.
    Durations are held in microseconds; `text` keeps the spelling for the formatter."""

    value: Any
    kind: str
    text: str = field(default="", compare=False)


class ListLit(Node):
    items: tuple[Expr, ...]


class MapLit(Node):
    """`{"k": v}` — only meaningful as a channel option value (webhook headers)."""

    items: tuple[tuple[Literal, Expr], ...]


class FieldRef(Node):
    path: Path


class Arg(Node):
    """A call argument: positional when `name` is None."""

    value: Expr
    name: Name | None = None


class Call(Node):
    func: Name
    args: tuple[Arg, ...]


class Unary(Node):
    op: str  # "not" | "-"
    operand: Expr


class Binary(Node):
    """Logical, arithmetic, comparison and string operators."""

    op: str
    left: Expr
    right: Expr
    op_span: Span = field(default=NO_SPAN, compare=False, repr=False)


class InList(Node):
    operand: Expr
    items: ListLit
    negated: bool


class IsNull(Node):
    operand: Expr
    negated: bool


Expr = Literal | ListLit | MapLit | FieldRef | Call | Unary | Binary | InList | IsNull

# ----------------------------------------------------------------------------- patterns


class PatStep(Node):
    name: Name


class PatSeq(Node):
    items: tuple[PatNode, ...]


class PatAlt(Node):
    options: tuple[PatNode, ...]


class PatRepeat(Node):
    """`?` = {0,1}, `*` = {0,}, `+` = {1,}; `text` keeps the spelling."""

    item: PatNode
    min: int
    max: int | None
    text: str = field(default="", compare=False)


PatNode = PatStep | PatSeq | PatAlt | PatRepeat

# ----------------------------------------------------------------------------- declarations


class FieldDecl(Node):
    path: Path
    type: Name


class Duration(Node):
    """A duration clause argument (microseconds), with its spelling."""

    us: int
    text: str = field(default="", compare=False)


class StreamDecl(Node):
    name: Name
    fields: tuple[FieldDecl, ...]
    time: Path | None = None
    lateness: Duration | None = None


class ChannelDecl(Node):
    name: Name
    kind: Name
    args: tuple[Arg, ...]


# Rule clauses. Each keeps the span of its keyword for "duplicate clause" errors.


class From(Node):
    stream: Name


class Where(Node):
    expr: Expr


class GroupBy(Node):
    keys: tuple[Path, ...]


class Window(Node):
    kind: str  # tumbling sliding session count
    size: Duration | None = None
    every: Duration | None = None
    gap: Duration | None = None
    count: Literal | None = None


class Having(Node):
    expr: Expr


class Schedule(Node):
    cron: Literal
    over: Duration


class Pattern(Node):
    regex: PatNode
    within: Duration | None


class Definition(Node):
    name: Name
    expr: Expr


class Define(Node):
    items: tuple[Definition, ...]


class Absent(Node):
    duration: Duration


class Anomaly(Node):
    method: Name
    args: tuple[Arg, ...]
    baseline: Literal | None = None
    warmup: Literal | None = None


class Severity(Node):
    level: Name


class Throttle(Node):
    duration: Duration


class Notify(Node):
    channels: tuple[Name, ...]
    fallback: Name | None = None


class Message(Node):
    """`message "TEMPLATE"`, or `message template("NAME")` (`named`: `template` holds the name)."""

    template: Literal
    named: bool = False


class Join(Node):
    """`join TABLE [as ALIAS] on EXPR` (§9.2); the one clause a rule may repeat."""

    table: Name
    alias: Name | None
    on: Expr

    @property
    def prefix(self) -> str:
        """The name the table's fields go by in the rule: `ALIAS.field`, ALIAS defaulting to TABLE."""
        return (self.alias or self.table).value


class For(Node):
    """`for D` (§9.3): how long the condition must hold before an episode fires."""

    duration: Duration


class Resolve(Node):
    """`resolve [after D] ["TEMPLATE"]` (§9.3)."""

    after: Duration | None = None
    template: Literal | None = None


Clause = (
    From
    | Where
    | GroupBy
    | Window
    | Having
    | Schedule
    | Pattern
    | Define
    | Absent
    | Anomaly
    | Severity
    | Throttle
    | Notify
    | Message
    | Join
    | For
    | Resolve
)

#: The keyword that introduces each clause, for messages and the formatter.
CLAUSE_KEYWORD: dict[type, str] = {
    From: "from",
    Where: "where",
    GroupBy: "group by",
    Window: "window",
    Having: "having",
    Schedule: "schedule",
    Pattern: "pattern",
    Define: "define",
    Absent: "absent for",
    Anomaly: "anomaly",
    Severity: "severity",
    Throttle: "throttle",
    Notify: "notify",
    Message: "message",
    Join: "join",
    For: "for",
    Resolve: "resolve",
}

#: Clauses a rule may give more than once (§9.2: "an exception to at most once").
REPEATABLE_CLAUSES: frozenset[type] = frozenset({Join})


class RuleDecl(Node):
    id: Name
    title: Literal | None
    clauses: tuple[Clause, ...]

    def clause(self, kind: type) -> Any:
        """The first clause of this kind, or None."""
        return next((c for c in self.clauses if isinstance(c, kind)), None)


class TableDecl(Node):
    """`table NAME (field: type, ...) key F from "file" | from redis("hash") [refresh D]` (§9.2).

    `source` is the file name literal, or the call (`redis("cep:table:hosts")`)."""

    name: Name
    fields: tuple[FieldDecl, ...]
    key: Path | None = None
    source: Literal | Call | None = None
    refresh: Duration | None = None


class TemplateDecl(Node):
    """`template NAME = "..."` (§9.5)."""

    name: Name
    text: Literal


class SilenceDecl(Node):
    """`silence NAME ["Title"] match EXPR` with `every "CRON" for D` or `from "T1" until "T2"` (§9.4)."""

    name: Name
    title: Literal | None = None
    match: Expr | None = None
    cron: Literal | None = None
    duration: Duration | None = None
    start: Literal | None = None
    until: Literal | None = None


Decl = StreamDecl | ChannelDecl | TableDecl | TemplateDecl | SilenceDecl | RuleDecl

#: The keyword each declaration starts with.
DECL_KEYWORD: dict[type, str] = {
    StreamDecl: "stream",
    ChannelDecl: "channel",
    TableDecl: "table",
    TemplateDecl: "template",
    SilenceDecl: "silence",
    RuleDecl: "rule",
}


class Comment(Node):
    text: str


@dataclass(frozen=True)
class File:
    decls: tuple[Decl, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False)
    name: str = field(default="<string>", compare=False)
    #: Names of declarations dropped for syntax errors: the checker does not report
    #: them again as unknown (one mistake, one message).
    broken: frozenset[str] = field(default=frozenset(), compare=False)
