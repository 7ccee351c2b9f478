"""`cep fmt`: a parsed file → its canonical text, comments kept (docs/formatting.md).

The printer works from the AST, so layout is decided here and nowhere else;
the source text is only consulted for where comments stood.  Three properties
hold for every file that parses (tests/fmt check them on generated files):

* `format(format(x)) == format(x)`;
* `parse(format(x)) == canonical(parse(x))` — the same AST, with each rule's
  clauses in canonical order (the only change the printer makes to the tree);
* the comments of `x` come out unchanged, each next to the code it was next to.

Comments are attached to *units*: the pieces of output that start a line of their
own (a declaration's head, a clause, a stream field or channel option printed
one per line, a `define` item).  An own-line comment belongs before the unit it
precedes (or the unit it sits inside); a comment after code on the same line is
trailing and goes at the end of that unit's last line.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cepdsl import ast, durations
from cepdsl.diagnostics import CheckError
from cepdsl.parser import keywords, parse

__all__ = ["WIDTH", "canonical", "format_expr", "format_file", "format_source", "quote_string"]

#: Lines longer than this are broken where the layout allows (stream fields,
#: channel options, top-level `and`/`or` of `where` and `having`).
WIDTH = 88
INDENT = "  "

# --------------------------------------------------------------------------- clause order

_CLAUSE_RANK: dict[type, float] = {
    ast.From: 0,
    ast.Where: 1,
    ast.GroupBy: 2,
    ast.Window: 3,
    ast.Schedule: 3,
    ast.Pattern: 3,
    ast.Absent: 3,
    ast.Anomaly: 3,
    ast.Define: 3.5,  # right after its pattern
    ast.Having: 4,
    ast.Severity: 5,
    ast.Throttle: 6,
    ast.Notify: 7,
    ast.Message: 8,
    ast.Join: 0.5,  # after `from`, in the order written
    ast.For: 4.5,
    ast.Resolve: 4.6,
}


def _ordered(clauses: tuple[ast.Clause, ...]) -> tuple[ast.Clause, ...]:
    # Clauses keep the order they were written in: like gofmt and black, the formatter
    # changes layout, never the tree, so `parse(fmt(x)) == parse(x)` holds strictly.
    # `cep fmt` users who want the conventional order get it from `canonical_order`.
    return clauses


def canonical_order(clauses: tuple[ast.Clause, ...]) -> tuple[ast.Clause, ...]:
    """The conventional clause order (from, where, group by, shape, having, ...); stable,
    so duplicated clauses (a check error, but valid syntax) keep their order."""
    return tuple(sorted(clauses, key=lambda c: _CLAUSE_RANK[type(c)]))


def canonical(file: ast.File) -> ast.File:
    """The tree `format_file` prints — the parsed tree itself: `parse(format_source(x)) == parse(x)`."""
    return file


# --------------------------------------------------------------------------- tokens

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION = durations.LITERAL
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+([eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+)?")
_QUANTIFIER = re.compile(r"[?*+]|\{[0-9]+(,([0-9]+)?)?\}")

#: Keywords that may stand bare as an option or parameter name (`slack(channel = ...)`):
#: the grammar's `arg_name` rule.
_BARE_ARG_NAMES = frozenset("channel severity from window message pattern group".split())


def name_text(n: ast.Name, bare_keywords: frozenset[str] = frozenset()) -> str:
    """A name as it must be written: backquoted when it is a keyword or not an identifier."""
    v = n.value
    if _IDENT.fullmatch(v) and (v not in keywords() or v in bare_keywords):
        return v
    return f"`{v}`"


def path_text(p: ast.Path) -> str:
    return ".".join(name_text(x) for x in p.parts)


def quote_string(value: str, long: bool = True) -> str:
    """Canonical spelling of a string: `"..."` with `\\" \\\\ \\n \\t` escapes, or
    `\"\"\"...\"\"\"` when the value holds a newline, `long` allows it, and it can be
    written that way."""
    if long and "\n" in value and '""' not in value and not value.endswith('"'):
        # A long string ends at the first `"""`; a value without `""` and not ending in
        # `"` cannot contain that, so quotes inside need no escape.
        return '"""' + value.replace("\\", "\\\\").replace("\t", "\\t") + '"""'
    body = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{body}"'


def duration_text(d: ast.Duration | None = None, us: int | None = None) -> str:
    """A duration as spelled in the source, or (when that is lost) in its largest exact unit."""
    if d is not None and _DURATION.fullmatch(d.text):
        return d.text
    us = d.us if d is not None else us
    assert us is not None
    return durations.duration_text(us)


def _number_text(lit: ast.Literal) -> str:
    # `--5` folds to the literal 5 in the parser; print the sign once, keep the digits.
    text = lit.text
    digits = text.lstrip("- \t\n\r")
    if _NUMBER.fullmatch(digits):
        minus = text[: len(text) - len(digits)].count("-") % 2
        return ("-" if minus else "") + digits
    return repr(lit.value) if lit.kind == "float" else str(lit.value)


def literal_text(lit: ast.Literal) -> str:
    if lit.kind == "str":
        # A `"...\n..."` stays on one line: only text written as `"""` is laid out as lines.
        return quote_string(lit.value, long=not lit.text.startswith('"') or lit.text.startswith('"""'))
    if lit.kind in ("int", "float"):
        return _number_text(lit)
    if lit.kind == "duration":
        text = lit.text if _DURATION.fullmatch(lit.text) else duration_text(us=lit.value)
        return text
    if lit.kind == "bool":
        return "true" if lit.value else "false"
    return "null"


# --------------------------------------------------------------------------- expressions

# Precedence levels, lowest first (LANGUAGE.md §4).
_OR, _AND, _NOT, _CMP, _SUM, _PROD, _UNARY, _PRIMARY = range(1, 9)
_BINARY_LEVEL = {
    "or": _OR,
    "and": _AND,
    **dict.fromkeys(("==", "!=", "<", "<=", ">", ">=", "contains", "starts_with", "ends_with", "matches"), _CMP),
    "+": _SUM,
    "-": _SUM,
    "*": _PROD,
    "/": _PROD,
    "%": _PROD,
}


def _level(e: ast.Expr) -> int:
    if isinstance(e, ast.Binary):
        return _BINARY_LEVEL[e.op]
    if isinstance(e, ast.Unary):
        return _NOT if e.op == "not" else _UNARY
    if isinstance(e, (ast.InList, ast.IsNull)):
        return _CMP
    if isinstance(e, ast.Literal) and e.kind in ("int", "float") and _number_text(e).startswith("-"):
        return _UNARY
    return _PRIMARY


def _operand_levels(e: ast.Binary) -> tuple[int, int]:
    """The lowest level each side may have without parentheses."""
    lv = _BINARY_LEVEL[e.op]
    if lv == _CMP:  # comparisons do not chain: both sides are sums
        return _SUM, _SUM
    return lv, lv + 1  # left-associative


def format_expr(e: ast.Expr, min_level: int = _OR) -> str:
    """An expression with the parentheses precedence needs, and no others — except
    that `not` before a comparison keeps them: `not (a == b)` reads unambiguously."""
    text = _expr(e)
    return f"({text})" if _level(e) < min_level else text


def _args(args: tuple[ast.Arg, ...]) -> str:
    return ", ".join(
        format_expr(a.value) if a.name is None else f"{name_text(a.name, _BARE_ARG_NAMES)} = {format_expr(a.value)}" for a in args
    )


def _expr(e: ast.Expr) -> str:
    if isinstance(e, ast.Literal):
        return literal_text(e)
    if isinstance(e, ast.FieldRef):
        first = e.path.parts[0]
        if len(e.path.parts) == 1 and first.value in ("rule", "severity") and not first.quoted:
            return first.value  # a silence's record field, written bare (§9.1)
        return path_text(e.path)
    if isinstance(e, ast.Binary):
        lo, ro = _operand_levels(e)
        return f"{format_expr(e.left, lo)} {e.op} {format_expr(e.right, ro)}"
    if isinstance(e, ast.Unary):
        if e.op == "not":
            # `not a == b` parses as `not (a == b)`, but reads as `(not a) == b`: keep them.
            need = _CMP + 1 if _level(e.operand) == _CMP else _NOT
            return "not " + format_expr(e.operand, need)
        return "-" + format_expr(e.operand, _UNARY)
    if isinstance(e, ast.InList):
        return f"{format_expr(e.operand, _SUM)} {'not in' if e.negated else 'in'} {_expr(e.items)}"
    if isinstance(e, ast.IsNull):
        return f"{format_expr(e.operand, _SUM)} is {'not null' if e.negated else 'null'}"
    if isinstance(e, ast.Call):
        return f"{name_text(e.func)}({_args(e.args)})"
    if isinstance(e, ast.ListLit):
        return "[" + ", ".join(format_expr(i) for i in e.items) + "]"
    if isinstance(e, ast.MapLit):
        return "{" + ", ".join(f"{literal_text(k)}: {format_expr(v)}" for k, v in e.items) + "}"
    raise TypeError(f"no layout for expression node {type(e).__name__}")


def _chain(e: ast.Expr) -> tuple[str, list[ast.Expr]] | None:
    """A top-level `and`/`or` chain as (op, operands), flattened along the left spine."""
    if not (isinstance(e, ast.Binary) and e.op in ("and", "or")):
        return None
    op, items = e.op, []
    while isinstance(e, ast.Binary) and e.op == op:
        items.append(e.right)
        e = e.left
    items.append(e)
    return op, items[::-1]


def _condition_lines(keyword: str, e: ast.Expr) -> list[str]:
    """`where`/`having`: one line when it fits, else broken before each top-level and/or."""
    line = f"{INDENT}{keyword} {format_expr(e)}"
    chain = _chain(e)
    if len(line) <= WIDTH or chain is None:
        return [line]
    op, items = chain
    lv = _BINARY_LEVEL[op]
    lines = [f"{INDENT}{keyword} {format_expr(items[0], lv)}"]
    lines += [f"{INDENT * 2}{op} {format_expr(x, lv + 1)}" for x in items[1:]]
    return lines


# --------------------------------------------------------------------------- patterns


def _quantifier(r: ast.PatRepeat) -> str:
    if _QUANTIFIER.fullmatch(r.text):
        return r.text
    if (r.min, r.max) == (0, 1):
        return "?"
    if r.max is None:
        return {0: "*", 1: "+"}.get(r.min, f"{{{r.min},}}")
    return f"{{{r.min}}}" if r.min == r.max else f"{{{r.min},{r.max}}}"


def pattern_text(n: ast.PatNode, top: bool = True) -> str:
    """The parser keeps every parenthesised group as a PatAlt (even `(a)`), so the
    groups printed here are exactly those of the source: none is redundant to the tree."""
    if isinstance(n, ast.PatStep):
        # `within` ends the regex when bare (`a b within 5m`), so a step named so is quoted.
        return name_text(n.name) if n.name.value != "within" else "`within`"
    if isinstance(n, ast.PatRepeat):
        return pattern_text(n.item, top=False) + _quantifier(n)
    if isinstance(n, ast.PatSeq):
        return " ".join(pattern_text(i, top=False) for i in n.items)
    text = " | ".join(pattern_text(o, top=False) for o in n.options)
    return text if top else f"({text})"


# --------------------------------------------------------------------------- units


Pos = tuple[int, int]


def _start(span: ast.Span) -> Pos:
    return (span.line, span.col)


def _end(span: ast.Span) -> Pos:
    return (span.end_line, span.end_col)


@dataclass
class _Unit:
    """A piece of output that starts its own line, and the comments attached to it."""

    start: Pos  # source position, for attaching comments
    end: Pos
    lines: list[str]
    indent: str  # where its leading comments go
    leading: list[ast.Comment] = field(default_factory=list)
    trailing: list[ast.Comment] = field(default_factory=list)


def _listed(head: str, items: list[str], close: str, starts: list[Pos], ends: list[Pos], multiline: bool) -> list[_Unit]:
    """A head with a bracketed list: inline, or one item per line aligned under the first.
    `starts`/`ends`: the source span of the head (index 0: from the declaration's start)
    and of each item after it."""
    if not multiline:
        return [_Unit(starts[0], ends[-1], [head + ", ".join(items) + close], "")]
    pad = " " * len(head)
    units = []
    for i, item in enumerate(items):
        text = (head if i == 0 else pad) + item + (close if i == len(items) - 1 else ",")
        units.append(_Unit(starts[i], ends[i], [text], pad if i else ""))
    return units


def _list_pinned(units: list[_Unit], n: int) -> bool:
    """Whether comments (attached with the one-per-line layout) sit *between* items, so
    the list must stay one per line.  A comment after the last item is not: inline, it
    simply trails the line."""
    return n >= 2 and bool(units[0].trailing or any(u.leading for u in units[1:n]) or any(u.trailing for u in units[1 : n - 1]))


def _line(span: ast.Span, lines: list[str]) -> _Unit:
    """Indented lines under a declaration's head (a clause, a stream's `time`, a table's
    `key`), standing for the source at `span`."""
    return _Unit(_start(span), _end(span), lines, INDENT)


def _bracketed(d: ast.Decl, head: str, items: list[str], spans: list[ast.Span], multiline: bool) -> tuple[list[_Unit], int, int]:
    """A declaration's head with its bracketed items (stream or table fields, channel
    options at `spans`): the units, how many of them are items, the width of the inline layout."""
    if not items:
        return [_Unit(_start(d.span), _end(d.span), [head + ")"], "")], 0, len(head) + 1
    starts = [_start(d.span)] + [_start(sp) for sp in spans[1:]]
    units = _listed(head, items, ")", starts, [_end(sp) for sp in spans], multiline)
    return units, len(items), len(head) + len(", ".join(items)) + 1


def _fields(d: ast.StreamDecl | ast.TableDecl, multiline: bool) -> tuple[list[_Unit], int, int]:
    head = f"{ast.DECL_KEYWORD[type(d)]} {name_text(d.name)} ("
    items = [f"{path_text(f.path)}: {name_text(f.type)}" for f in d.fields]
    return _bracketed(d, head, items, [f.span for f in d.fields], multiline)


def _titled(d: ast.RuleDecl | ast.SilenceDecl, name: ast.Name, title: ast.Literal | None) -> _Unit:
    """The head line of a rule or silence: keyword, name and optional title."""
    last = name if title is None else title
    head = f"{ast.DECL_KEYWORD[type(d)]} {name_text(name)}" + ("" if title is None else f" {literal_text(title)}")
    return _Unit(_start(d.span), _end(last.span), [head], "")


def _stream_units(d: ast.StreamDecl, multiline: bool) -> tuple[list[_Unit], int, int]:
    units, n, width = _fields(d, multiline)
    if d.time is not None:
        units.append(_line(d.time.span, [f"{INDENT}time {path_text(d.time)}"]))
    if d.lateness is not None:
        units.append(_line(d.lateness.span, [f"{INDENT}lateness {duration_text(d.lateness)}"]))
    return units, n, width


def _channel_units(d: ast.ChannelDecl, multiline: bool) -> tuple[list[_Unit], int, int]:
    head = f"channel {name_text(d.name)} = {name_text(d.kind)}("
    return _bracketed(d, head, [_args((a,)) for a in d.args], [a.span for a in d.args], multiline)


def _optional(word: str, value: Any, text: Callable[[Any], str]) -> list[str]:
    """An optional part of a clause: `word TEXT` (TEXT alone when `word` is empty), or nothing when it is absent."""
    return [] if value is None else [word, text(value)] if word else [text(value)]


def window_text(kind: str, size: str, every: str, gap: str, count: str) -> str:
    """What follows `window`, from the text of its parts (`cep explain` prints it too)."""
    if kind == "tumbling":
        return f"tumbling {size}"
    if kind == "sliding":
        return f"sliding {size} every {every}"
    if kind == "session":
        return f"session gap {gap}"
    return f"last {count} events"


def _window_spec(c: ast.Window) -> str:
    size, every, gap = ("" if d is None else duration_text(d) for d in (c.size, c.every, c.gap))
    return window_text(c.kind, size, every, gap, "" if c.count is None else literal_text(c.count))


#: What follows each clause's keyword (`ast.CLAUSE_KEYWORD`), as words joined by spaces.
#: `where`/`having` (which may break over lines) and `define` (aligned items) are laid out apart.
_CLAUSE_WORDS: dict[type, Callable[[Any], list[str]]] = {
    ast.From: lambda c: [name_text(c.stream)],
    ast.GroupBy: lambda c: [", ".join(path_text(p) for p in c.keys)],
    ast.Window: lambda c: [_window_spec(c)],
    ast.Schedule: lambda c: [literal_text(c.cron), "over", duration_text(c.over)],
    ast.Pattern: lambda c: [pattern_text(c.regex), *_optional("within", c.within, duration_text)],
    ast.Absent: lambda c: [duration_text(c.duration)],
    ast.Anomaly: lambda c: [
        f"{name_text(c.method)}({_args(c.args)})",
        *_optional("baseline", c.baseline, literal_text),
        *_optional("warmup", c.warmup, literal_text),
    ],
    ast.Severity: lambda c: [name_text(c.level)],
    ast.Throttle: lambda c: [duration_text(c.duration)],
    ast.Notify: lambda c: [", ".join(name_text(n) for n in c.channels), *_optional("fallback", c.fallback, name_text)],
    ast.Message: lambda c: [f"template({literal_text(c.template)})" if c.named else literal_text(c.template)],
    ast.Join: lambda c: [name_text(c.table), *_optional("as", c.alias, name_text), "on", format_expr(c.on)],
    ast.For: lambda c: [duration_text(c.duration)],
    ast.Resolve: lambda c: [*_optional("after", c.after, duration_text), *_optional("", c.template, literal_text)],
}


def _clause_lines(c: ast.Clause) -> list[str]:
    if isinstance(c, (ast.Where, ast.Having)):
        return _condition_lines(ast.CLAUSE_KEYWORD[type(c)], c.expr)
    words = _CLAUSE_WORDS.get(type(c))
    if words is None:
        raise TypeError(f"no layout for clause {type(c).__name__}")
    return [" ".join((INDENT + ast.CLAUSE_KEYWORD[type(c)], *words(c)))]


def _define_units(c: ast.Define) -> list[_Unit]:
    """`define a as ...,` with the other items aligned under the first, `as` in one column."""
    head = f"{INDENT}define "
    names = [name_text(i.name) for i in c.items]
    width = max(len(n) for n in names)
    items = [f"{n.ljust(width)} as {format_expr(i.expr)}" for n, i in zip(names, c.items)]
    starts = [_start(c.span)] + [_start(i.span) for i in c.items[1:]]
    units = _listed(head, items, "", starts, [_end(i.span) for i in c.items], multiline=True)
    units[0].indent = INDENT
    return units


def _rule_units(d: ast.RuleDecl) -> list[_Unit]:
    units = [_titled(d, d.id, d.title)]
    for c in _ordered(d.clauses):
        if isinstance(c, ast.Define):
            units += _define_units(c)
        else:
            units.append(_line(c.span, _clause_lines(c)))
    return units


def _table_units(d: ast.TableDecl, multiline: bool) -> tuple[list[_Unit], int, int]:
    units, n, width = _fields(d, multiline)
    if d.key is not None:
        units.append(_line(d.key.span, [f"{INDENT}key {path_text(d.key)}"]))
    if d.source is not None:
        src = literal_text(d.source) if isinstance(d.source, ast.Literal) else format_expr(d.source)
        units.append(_line(d.source.span, [f"{INDENT}from {src}"]))
    if d.refresh is not None:
        units.append(_line(d.refresh.span, [f"{INDENT}refresh {duration_text(d.refresh)}"]))
    return units, n, width


def _silence_units(d: ast.SilenceDecl) -> list[_Unit]:
    units = [_titled(d, d.name, d.title)]
    if d.match is not None:
        units.append(_line(d.match.span, _condition_lines("match", d.match)))
    if d.cron is not None and d.duration is not None:
        line = f"{INDENT}every {literal_text(d.cron)} for {duration_text(d.duration)}"
        units.append(_Unit(_start(d.cron.span), _end(d.duration.span), [line], INDENT))
    if d.start is not None and d.until is not None:
        line = f"{INDENT}from {literal_text(d.start)} until {literal_text(d.until)}"
        units.append(_Unit(_start(d.start.span), _end(d.until.span), [line], INDENT))
    return units


def _decl_units(d: ast.Decl, multiline: bool = True) -> tuple[list[_Unit], int, int]:
    if isinstance(d, ast.StreamDecl):
        return _stream_units(d, multiline)
    if isinstance(d, ast.ChannelDecl):
        return _channel_units(d, multiline)
    if isinstance(d, ast.TableDecl):
        return _table_units(d, multiline)
    if isinstance(d, ast.TemplateDecl):
        line = f"template {name_text(d.name)} = {literal_text(d.text)}"
        return [_Unit(_start(d.span), _end(d.span), [line], "")], 0, 0
    if isinstance(d, ast.SilenceDecl):
        return _silence_units(d), 0, 0
    return _rule_units(d), 0, 0


def _layout(decls: tuple[ast.Decl, ...], comments: list[ast.Comment], source_lines: list[str]) -> list[list[_Unit]]:
    """Each declaration's units.  A stream's fields (a channel's options) go one per line
    when they do not fit on one, or when comments sit between them — found by
    attaching the comments to the one-per-line layout first."""
    tentative = [_decl_units(d) for d in decls]
    _attach([u for units, _, _ in tentative for u in units], comments, source_lines)
    out = []
    for d, (units, n, width) in zip(decls, tentative):
        if isinstance(d, (ast.RuleDecl, ast.TemplateDecl, ast.SilenceDecl)):  # one layout only: keep it, drop the trial comments
            out.append([dataclasses.replace(u, leading=[], trailing=[]) for u in units])
            continue
        inline = n and width <= WIDTH and not _list_pinned(units, n)
        out.append(_decl_units(d, multiline=not inline)[0])
    return out


# --------------------------------------------------------------------------- comments


def _attach(units: list[_Unit], comments: list[ast.Comment], source_lines: list[str]) -> list[ast.Comment]:
    """Give each comment to a unit; return those after all code (the file's tail)."""
    by_start = sorted(units, key=lambda u: u.start)
    starts = [u.start for u in by_start]
    tail: list[ast.Comment] = []
    for c in comments:
        pos = _start(c.span)
        line = source_lines[c.span.line - 1] if 0 < c.span.line <= len(source_lines) else ""
        i = bisect.bisect_right(starts, pos) - 1  # the last unit starting before the comment
        own_line = not line[: max(c.span.col - 1, 0)].strip()
        if not own_line and i >= 0:
            by_start[i].trailing.append(c)
        elif i >= 0 and pos < by_start[i].end:
            by_start[i].leading.append(c)
        elif i + 1 < len(by_start):
            by_start[i + 1].leading.append(c)
        else:
            tail.append(c)
    return tail


def _blank_after(c: ast.Comment, source_lines: list[str]) -> bool:
    """Whether the source has an empty line right after this (own-line) comment."""
    nxt = c.span.line  # index of the following line
    return nxt < len(source_lines) and not source_lines[nxt].strip()


def _render(units: list[_Unit], out: list[str], source_lines: list[str], top: bool) -> None:
    for n, u in enumerate(units):
        # Only one comment fits at the end of a line; earlier trailing comments of the
        # unit go above it (where they stay on the next run: they are own-line then).
        leading = u.leading + u.trailing[:-1]
        for c in leading:
            out.append(u.indent + c.text)
            if top and n == 0 and _blank_after(c, source_lines):
                out.append("")
        lines = list(u.lines)
        if u.trailing:
            lines[-1] += "  " + u.trailing[-1].text
        out.extend(lines)


def format_file(file: ast.File, source: str) -> str:
    """The canonical text of a parsed file. `source` is the text it was parsed from
    (for comment placement)."""
    source_lines = source.split("\n")
    comments = sorted(file.comments, key=lambda c: _start(c.span))
    decl_units = _layout(file.decls, comments, source_lines)
    tail = _attach([u for units in decl_units for u in units], comments, source_lines)
    out: list[str] = []
    for units in decl_units:
        if out:
            out.append("")
        _render(units, out, source_lines, top=True)
    if tail:
        if out:
            out.append("")
        for i, c in enumerate(tail):
            out.append(c.text)
            if i < len(tail) - 1 and _blank_after(c, source_lines):
                out.append("")
    return "\n".join(out) + "\n" if out else ""


def format_source(text: str, filename: str = "<string>") -> str:
    """Parse and print a `.cep` text in canonical layout.  Raises CheckError when it
    does not parse; semantic problems (unknown fields, ...) do not stop formatting."""
    tree, diags = parse(text, filename)
    if diags or tree is None:
        raise CheckError(diags, {filename: text})
    return format_file(tree, text)
