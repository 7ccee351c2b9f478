"""Every name in a program's trees, where it stands and what it names.

Hover, go to definition and find references all start from "what is under the
cursor"; this index answers it once per analysis.  An occurrence names a stream,
table, channel, rule, pattern step or field (scoped: a field by its stream, a step by
its rule), or a function, aggregate, channel kind or channel option.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from cepdsl import ast
from cepdsl.typecheck import AGGREGATES

#: Kinds that have a declaration to go to.
DECLARED = ("stream", "table", "channel", "template", "silence", "rule", "step", "field")


@dataclass(frozen=True)
class Occurrence:
    kind: str  # stream table channel template silence rule step field aggregate function channel_kind option template_var
    name: str
    span: ast.Span
    definition: bool = False
    scope: str = ""  # field: its stream or table; step: its rule; option: the channel kind; aggregate: its rule
    node: Any = None  # the AST node the name belongs to (declaration, call, ...)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.scope, self.name)


class Index:
    def __init__(self, trees: dict[str, ast.File]):
        self.by_file: dict[str, list[Occurrence]] = defaultdict(list)
        self.by_key: dict[tuple[str, str, str], list[Occurrence]] = defaultdict(list)
        for path, tree in trees.items():
            for d in tree.decls:
                for occ in _decl(d):
                    self.by_file[path].append(occ)
                    self.by_key[occ.key].append(occ)

    def at(self, path: str, line: int, col: int) -> Occurrence | None:
        """The innermost occurrence at a 1-based line and column (the cursor may sit just
        after the name, as it does while typing)."""
        best: Occurrence | None = None
        for occ in self.by_file.get(path, ()):
            sp = occ.span
            if (sp.line, sp.col) <= (line, col) <= (sp.end_line, sp.end_col):
                if best is None or _size(sp) < _size(best.span):
                    best = occ
        return best

    def definitions(self, occ: Occurrence) -> list[Occurrence]:
        if occ.kind == "template_var":  # a record field that comes from the stream
            stream = occ.scope.split("/", 1)[1]
            return [o for o in self.by_key.get(("field", stream, occ.name), []) if o.definition]
        same = self.by_key.get(occ.key, [])
        defs = [o for o in same if o.definition]
        if not defs and occ.kind == "step":  # a step without `define`: its first use
            defs = same[:1]
        return defs

    def references(self, occ: Occurrence, include_declaration: bool = True) -> list[Occurrence]:
        return [o for o in self.by_key.get(occ.key, []) if include_declaration or not o.definition]


def _size(sp: ast.Span) -> tuple[int, int]:
    return (sp.end_line - sp.line, sp.end_col - sp.col if sp.end_line == sp.line else sp.end_col)


def _decl(d: ast.Decl) -> list[Occurrence]:
    out: list[Occurrence] = []
    if isinstance(d, ast.StreamDecl):
        out.extend(_schema("stream", d, d.time))
    elif isinstance(d, ast.ChannelDecl):
        out.append(Occurrence("channel", d.name.value, d.name.span, True, node=d))
        out.append(Occurrence("channel_kind", d.kind.value, d.kind.span, False, node=d))
        for a in d.args:
            if a.name is not None:
                out.append(Occurrence("option", a.name.value, a.name.span, False, d.kind.value, a))
    elif isinstance(d, ast.RuleDecl):
        out.extend(_rule(d))
    elif isinstance(d, ast.TableDecl):
        out.extend(_schema("table", d, d.key))
    elif isinstance(d, ast.TemplateDecl):
        out.append(Occurrence("template", d.name.value, d.name.span, True, node=d))
    elif isinstance(d, ast.SilenceDecl):
        out.append(Occurrence("silence", d.name.value, d.name.span, True, node=d))
    return out


def _schema(kind: str, d: ast.StreamDecl | ast.TableDecl, named: ast.Path | None) -> list[Occurrence]:
    """A stream's or table's name, the fields it declares, and the field its `time` or `key`
    clause names (a use, not a declaration)."""
    name = d.name.value
    out = [Occurrence(kind, name, d.name.span, True, node=d)]
    out.extend(Occurrence("field", f.path.dotted, f.path.span, True, name, f) for f in d.fields)
    if named is not None:
        out.append(Occurrence("field", named.dotted, named.span, False, name))
    return out


def _rule(r: ast.RuleDecl) -> list[Occurrence]:
    rid = r.id.value
    out = [Occurrence("rule", rid, r.id.span, True, node=r)]
    frm = r.clause(ast.From)
    stream = frm.stream.value if frm is not None else ""
    # `join hosts as h`: `h.region` is the field `region` of table `hosts`.
    joined = {c.prefix: c.table.value for c in r.clauses if isinstance(c, ast.Join)}
    scope = Scope(stream, joined)
    for c in r.clauses:
        if isinstance(c, ast.From):
            out.append(Occurrence("stream", stream, c.stream.span))
        elif isinstance(c, ast.Join):
            out.append(Occurrence("table", c.table.value, c.table.span))
            _expr(c.on, scope, rid, out)
        elif isinstance(c, (ast.Where, ast.Having)):
            _expr(c.expr, scope, rid, out)
        elif isinstance(c, ast.GroupBy):
            out.extend(scope.field(k, k.span) for k in c.keys)
        elif isinstance(c, ast.Pattern):
            _pattern(c.regex, rid, out)
        elif isinstance(c, ast.Define):
            for item in c.items:
                out.append(Occurrence("step", item.name.value, item.name.span, True, rid, item))
                _expr(item.expr, scope, rid, out)
        elif isinstance(c, ast.Anomaly):
            for a in c.args:
                if a.name is None:
                    _expr(a.value, scope, rid, out)
        elif isinstance(c, ast.Message):
            if c.named:  # `message template("NAME")`
                out.append(Occurrence("template", c.template.value, c.template.span))
            else:
                out.extend(_template_vars(c.template, rid, stream))
        elif isinstance(c, ast.Resolve) and c.template is not None:
            out.extend(_template_vars(c.template, rid, stream))
        elif isinstance(c, ast.Notify):
            for ch in (*c.channels, *([c.fallback] if c.fallback is not None else [])):
                out.append(Occurrence("channel", ch.value, ch.span))
    return out


_HOLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)")


def _template_vars(lit: Any, rid: str, stream: str) -> list[Occurrence]:
    """The names read by `{{ name ... }}` in a message, where they stand in the file
    (scope: `rule/stream`, for hover and go to definition)."""
    text = getattr(lit, "text", "") or ""
    out = []
    for m in _HOLE.finditer(text):
        before = text[: m.start(1)]
        line = lit.span.line + before.count("\n")
        col = lit.span.col + len(before) if "\n" not in before else len(before) - before.rfind("\n")
        span = ast.Span(lit.span.file, line, col, line, col + len(m.group(1)))
        out.append(Occurrence("template_var", m.group(1), span, False, f"{rid}/{stream}"))
    return out


def _pattern(n: ast.PatNode, rid: str, out: list[Occurrence]) -> None:
    if isinstance(n, ast.PatStep):
        out.append(Occurrence("step", n.name.value, n.name.span, False, rid))
    elif isinstance(n, ast.PatSeq):
        for i in n.items:
            _pattern(i, rid, out)
    elif isinstance(n, ast.PatAlt):
        for o in n.options:
            _pattern(o, rid, out)
    elif isinstance(n, ast.PatRepeat):
        _pattern(n.item, rid, out)


@dataclass(frozen=True)
class Scope:
    """What a field name means in a rule: the stream's field, or `prefix.field` of a joined table."""

    stream: str
    joined: dict[str, str]

    def field(self, path: ast.Path, span: ast.Span) -> Occurrence:
        parts = path.dotted.split(".", 1)
        if len(parts) == 2 and parts[0] in self.joined:
            return Occurrence("field", parts[1], span, False, self.joined[parts[0]])
        return Occurrence("field", path.dotted, span, False, self.stream)


def _expr(e: ast.Expr, scope: Scope, rid: str, out: list[Occurrence]) -> None:
    stack: list[Any] = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, ast.FieldRef):
            out.append(scope.field(x.path, x.path.span))
        elif isinstance(x, ast.Call):
            kind = "aggregate" if x.func.value in AGGREGATES else "function"
            out.append(Occurrence(kind, x.func.value, x.func.span, False, rid if kind == "aggregate" else "", x))
            stack.extend(a.value for a in x.args)
        elif isinstance(x, ast.Binary):
            stack.extend((x.left, x.right))
        elif isinstance(x, (ast.Unary, ast.IsNull)):
            stack.append(x.operand)
        elif isinstance(x, ast.InList):
            stack.extend((x.operand, x.items))
        elif isinstance(x, ast.ListLit):
            stack.extend(x.items)
