"""The syntax tree of a `.cep` file: frozen data, every node with its span.

Nodes carry no behaviour beyond small helpers; checking, formatting and
planning are passes in their own modules.  Equality ignores spans
(`compare=False`), so "the AST of fmt(x) equals the AST of x" is plain `==`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


def _span() -> Any:
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Name:
    value: str
    quoted: bool = field(default=False, compare=False)
    span: Span = _span()


@dataclass(frozen=True)
class Path:
    """A field reference as written: `cpu`, `data.avg`, `` `window` ``."""

    parts: tuple[Name, ...]
    span: Span = _span()

    @property
    def dotted(self) -> str:
        return ".".join(p.value for p in self.parts)


# ----------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Literal:
    """`value` is the Python value; `kind` one of int float str bool null duration.
    Durations are held in microseconds; `text` keeps the spelling for the formatter."""

    value: Any
    kind: str
    text: str = field(default="", compare=False)
    span: Span = _span()


@dataclass(frozen=True)
class ListLit:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class MapLit:
    """`{"k": v}` — only meaningful as a channel option value (webhook headers)."""

    items: tuple[tuple[Literal, Expr], ...]
    span: Span = _span()


@dataclass(frozen=True)
class FieldRef:
    path: Path
    span: Span = _span()


@dataclass(frozen=True)
class Arg:
    """A call argument: positional when `name` is None."""

    value: Expr
    name: Name | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Call:
    func: Name
    args: tuple[Arg, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Unary:
    op: str  # "not" | "-"
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Binary:
    """Logical, arithmetic, comparison and string operators."""

    op: str
    left: Expr
    right: Expr
    op_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True)
class InList:
    operand: Expr
    items: ListLit
    negated: bool
    span: Span = _span()


@dataclass(frozen=True)
class IsNull:
    operand: Expr
    negated: bool
    span: Span = _span()


Expr = Literal | ListLit | MapLit | FieldRef | Call | Unary | Binary | InList | IsNull

# ----------------------------------------------------------------------------- patterns


@dataclass(frozen=True)
class PatStep:
    name: Name
    span: Span = _span()


@dataclass(frozen=True)
class PatSeq:
    items: tuple[PatNode, ...]
    span: Span = _span()


@dataclass(frozen=True)
class PatAlt:
    options: tuple[PatNode, ...]
    span: Span = _span()


@dataclass(frozen=True)
class PatRepeat:
    """`?` = {0,1}, `*` = {0,}, `+` = {1,}; `text` keeps the spelling."""

    item: PatNode
    min: int
    max: int | None
    text: str = field(default="", compare=False)
    span: Span = _span()


PatNode = PatStep | PatSeq | PatAlt | PatRepeat

# ----------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class FieldDecl:
    path: Path
    type: Name
    span: Span = _span()


@dataclass(frozen=True)
class Duration:
    """A duration clause argument (microseconds), with its spelling."""

    us: int
    text: str = field(default="", compare=False)
    span: Span = _span()


@dataclass(frozen=True)
class StreamDecl:
    name: Name
    fields: tuple[FieldDecl, ...]
    time: Path | None = None
    lateness: Duration | None = None
    span: Span = _span()


@dataclass(frozen=True)
class ChannelDecl:
    name: Name
    kind: Name
    args: tuple[Arg, ...]
    span: Span = _span()


# Rule clauses. Each keeps the span of its keyword for "duplicate clause" errors.


@dataclass(frozen=True)
class From:
    stream: Name
    span: Span = _span()


@dataclass(frozen=True)
class Where:
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class GroupBy:
    keys: tuple[Path, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Window:
    kind: str  # tumbling sliding session count
    size: Duration | None = None
    every: Duration | None = None
    gap: Duration | None = None
    count: Literal | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Having:
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Schedule:
    cron: Literal
    over: Duration
    span: Span = _span()


@dataclass(frozen=True)
class Pattern:
    regex: PatNode
    within: Duration | None
    span: Span = _span()


@dataclass(frozen=True)
class Definition:
    name: Name
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Define:
    items: tuple[Definition, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Absent:
    duration: Duration
    span: Span = _span()


@dataclass(frozen=True)
class Anomaly:
    method: Name
    args: tuple[Arg, ...]
    baseline: Literal | None = None
    warmup: Literal | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Severity:
    level: Name
    span: Span = _span()


@dataclass(frozen=True)
class Throttle:
    duration: Duration
    span: Span = _span()


@dataclass(frozen=True)
class Notify:
    channels: tuple[Name, ...]
    fallback: Name | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Message:
    """`message "TEMPLATE"`, or `message template("NAME")` (`named`: `template` holds the name)."""

    template: Literal
    span: Span = _span()
    named: bool = False


@dataclass(frozen=True)
class Join:
    """`join TABLE [as ALIAS] on EXPR` (§9.2); the one clause a rule may repeat."""

    table: Name
    alias: Name | None
    on: Expr
    span: Span = _span()

    @property
    def prefix(self) -> str:
        """The name the table's fields go by in the rule: `ALIAS.field`, ALIAS defaulting to TABLE."""
        return (self.alias or self.table).value


@dataclass(frozen=True)
class For:
    """`for D` (§9.3): how long the condition must hold before an episode fires."""

    duration: Duration
    span: Span = _span()


@dataclass(frozen=True)
class Resolve:
    """`resolve [after D] ["TEMPLATE"]` (§9.3)."""

    after: Duration | None = None
    template: Literal | None = None
    span: Span = _span()


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


@dataclass(frozen=True)
class RuleDecl:
    id: Name
    title: Literal | None
    clauses: tuple[Clause, ...]
    span: Span = _span()

    def clause(self, kind: type) -> Any:
        """The first clause of this kind, or None."""
        return next((c for c in self.clauses if isinstance(c, kind)), None)


@dataclass(frozen=True)
class TableDecl:
    """`table NAME (field: type, ...) key F from "file" | from redis("hash") [refresh D]` (§9.2).

    `source` is the file name literal, or the call (`redis("cep:table:hosts")`)."""

    name: Name
    fields: tuple[FieldDecl, ...]
    key: Path | None = None
    source: Literal | Call | None = None
    refresh: Duration | None = None
    span: Span = _span()


@dataclass(frozen=True)
class TemplateDecl:
    """`template NAME = "..."` (§9.5)."""

    name: Name
    text: Literal
    span: Span = _span()


@dataclass(frozen=True)
class SilenceDecl:
    """`silence NAME ["Title"] match EXPR` with `every "CRON" for D` or `from "T1" until "T2"` (§9.4)."""

    name: Name
    title: Literal | None = None
    match: Expr | None = None
    cron: Literal | None = None
    duration: Duration | None = None
    start: Literal | None = None
    until: Literal | None = None
    span: Span = _span()


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


@dataclass(frozen=True)
class Comment:
    text: str
    span: Span = _span()


@dataclass(frozen=True)
class File:
    decls: tuple[Decl, ...]
    comments: tuple[Comment, ...] = field(default=(), compare=False)
    name: str = field(default="<string>", compare=False)
    #: Names of declarations dropped for syntax errors: the checker does not report
    #: them again as unknown (one mistake, one message).
    broken: frozenset[str] = field(default=frozenset(), compare=False)
