"""Completion: what may be typed at the cursor, from the tokens before it.

While a rule is being typed its text rarely parses, so the context is read from the
tokens of the current declaration (from the last top-level keyword before the cursor
to the next one), not from the tree; the names offered (streams, fields, channels)
come from the program's last analysis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lsprotocol import types

from cepdsl.channels import KINDS, options_for
from cepdsl.parser import _TOP_LEVEL  # noqa: PLC2701 - declarations start where the parser says
from runtime.lsp.program_analysis import ProgramAnalysis
from runtime.lsp.vocabulary import (
    AGGREGATE_DOCS,
    ANOMALY_METHODS,
    CLAUSES,
    DECLARATIONS,
    EXPRESSION_WORDS,
    FIELD_TYPES,
    FUNCTIONS,
    SEVERITY_LEVELS,
    WINDOW_KINDS,
)

_TOKEN = re.compile(
    r'"""(?:.|\n)*?(?:"""|\Z)|"(?:\\.|[^"\\\n])*(?:"|$)|`[^`\n]*`?|#[^\n]*'
    r"|[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9A-Za-z_.]*|==|!=|<=|>=|\S",
    re.M,
)
_CLAUSE_WORDS = frozenset(c.split()[0] for c in CLAUSES) | {"on"}
_OPERAND_BEFORE = frozenset(
    {"where", "having", "as", "and", "or", "not", "(", ",", "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%",
     "in", "contains", "starts_with", "ends_with", "matches", "[", "on"}
)  # fmt: skip
K = types.CompletionItemKind


@dataclass
class Context:
    decl: str  # "" (top level), a declaration keyword, "message-hole" ({{ in a message), "template-name"
    tokens: list[str]  # before the cursor, the word being typed left out
    prefix: str
    rest: list[str]  # the whole declaration's tokens
    patched: str = ""  # message-hole: the rule up to the message, with an empty message


def context_at(text: str, offset: int) -> Context | None:
    """None inside a string or a comment."""
    starts = [m.start() for m in _TOP_LEVEL.finditer(text, 0, offset)]
    # A keyword at the cursor's own line start belongs to the declaration being typed.
    begin = starts[-1] if starts else 0
    nxt = _TOP_LEVEL.search(text, offset)
    end = nxt.start() if nxt else len(text)
    before = [m for m in _TOKEN.finditer(text, begin, offset)]
    tokens = [m.group(0) for m in before]
    prefix = ""
    if before and before[-1].end() == offset:
        last = tokens[-1]
        if last.startswith('"') and len(tokens) >= 2 and tokens[-2] == "message" and _in_template_hole(last):
            hole = last[last.rindex("{") + 1 :]
            word = re.search(r"[A-Za-z_][A-Za-z0-9_]*$", hole)
            rest = [m.group(0) for m in _TOKEN.finditer(text, begin, end)]
            patched = text[begin : before[-1].start()] + '""\n'
            return Context("message-hole", tokens[:-1], word.group(0) if word else "", rest, patched)
        if last.startswith('"') and tokens[-3:-1] == ["template", "("]:
            return Context("template-name", tokens[:-1], "", [])
        if last.startswith(('"', "#", "`")):
            return None  # inside a string, comment or backquoted name
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", last):
            prefix = last
            tokens = tokens[:-1]
    elif before and before[-1].group(0).startswith(('"""',)) and not before[-1].group(0).endswith('"""'):
        return None
    rest = [m.group(0) for m in _TOKEN.finditer(text, begin, end)]
    decl = tokens[0] if tokens and tokens[0] in DECLARATIONS else ""
    return Context(decl, tokens, prefix, rest)


def complete(text: str, offset: int, prog: ProgramAnalysis | None) -> list[types.CompletionItem]:
    ctx = context_at(text, offset)
    if ctx is None:
        return []
    prog = prog or ProgramAnalysis()
    if not ctx.tokens or (len(ctx.tokens) == 1 and ctx.decl == ""):
        return _keywords(DECLARATIONS)
    if ctx.decl == "message-hole":
        return _template(ctx, prog)
    if ctx.decl == "template-name":
        return [_item(t, K.Text, "named template") for t in _names(prog, "template")]
    if ctx.decl == "rule":
        return _rule(ctx, prog)
    if ctx.decl == "channel":
        return _channel(ctx, prog)
    if ctx.decl in ("stream", "table"):
        return _stream(ctx)
    return _keywords(DECLARATIONS)


# ------------------------------------------------------------------ rules


def _rule(ctx: Context, prog: ProgramAnalysis) -> list[types.CompletionItem]:
    toks = ctx.tokens
    prev = toks[-1]
    clause = next((t for t in reversed(toks[2:]) if t in _CLAUSE_WORDS), "")
    stream = _after(ctx.rest, "from")
    if len(toks) <= 2 and prev != "from":
        return _keywords(CLAUSES)  # after `rule NAME ["Title"]`
    if prev == "from":
        return [_item(s, K.Class, _stream_detail(prog, s)) for s in _names(prog, "stream")]
    if prev == "join":
        return [_item(t, K.Class, _stream_detail(prog, t, "table")) for t in _names(prog, "table")]
    if clause == "notify":
        if prev in ("notify", ",", "fallback"):
            return [_item(c, K.Event, _channel_detail(prog, c)) for c in _names(prog, "channel")]
        return _keywords(("fallback",)) + _keywords(CLAUSES)
    if clause == "severity" and prev == "severity":
        return _keywords(SEVERITY_LEVELS, K.EnumMember)
    if clause == "window" and prev == "window":
        return _keywords(WINDOW_KINDS)
    if clause == "anomaly" and prev == "anomaly":
        return [_item(m, K.Function, sig) for m, sig in ANOMALY_METHODS.items()]
    if clause == "pattern" and "within" not in toks[toks.index("pattern") :]:
        return [_item(s, K.EnumMember, "pattern step") for s in _steps(ctx.rest)] + _keywords(("within",))
    if clause == "define" and prev in ("define", ","):
        defined = _defined(toks)
        return [_item(s, K.EnumMember, "pattern step") for s in _steps(ctx.rest) if s not in defined]
    if clause == "group":
        if prev in ("by", ","):
            return _fields(prog, stream, ctx.rest)
        return _keywords(CLAUSES)
    if clause in ("where", "having", "define", "anomaly", "on"):
        if prev in _OPERAND_BEFORE or (clause == "anomaly" and prev == "("):
            items = _fields(prog, stream, ctx.rest) + [_item(f, K.Function, sig, doc) for f, (sig, doc) in FUNCTIONS.items()]
            if clause == "having":
                items += [_item(a, K.Function, sig, doc) for a, (sig, doc) in AGGREGATE_DOCS.items()]
            return items + _keywords(("not", "true", "false", "null"))
        return _keywords(EXPRESSION_WORDS[:10]) + _keywords(CLAUSES)
    return _keywords(CLAUSES)


def _in_template_hole(string_so_far: str) -> bool:
    """Whether the cursor, at the end of this unfinished string, is inside `{{ ... }}`."""
    opened = max(string_so_far.rfind("{{"), string_so_far.rfind("{%"))
    closed = max(string_so_far.rfind("}}"), string_so_far.rfind("%}"))
    return opened > closed


def _template(ctx: Context, prog: ProgramAnalysis) -> list[types.CompletionItem]:
    """Inside `message "... {{ `: the names the match record has (LANGUAGE.md §7)."""
    rule_id = ctx.tokens[1].strip("`") if len(ctx.tokens) > 1 else ""
    plan = _plan_of(ctx.patched, rule_id, prog)  # this declaration's, not another of the same id
    if plan is not None:
        names = {c.name: str(c.type) for c in plan.output}
    else:  # a rule with errors: at least its stream's fields
        names = dict(prog.fields_of(_after(ctx.rest, "from") or ""))
    names["title"] = "str"
    return [_item(n, K.Variable, t, "match record field") for n, t in names.items()]


def _plan_of(rule_text: str, rule_id: str, prog: ProgramAnalysis) -> object | None:
    """The plan of a rule being typed (its message string is not closed yet, so the
    document does not parse): the rule with an empty message, checked with the
    program's other declarations."""
    from cepdsl import ast
    from cepdsl.checker import Checker
    from cepdsl.parser import parse

    tree, _ = parse(rule_text, "<completion>")
    if tree is None:
        return None
    others = tuple(d for _, d in prog.decls() if not isinstance(d, ast.RuleDecl))
    checker = Checker(ast.File(others + tree.decls, (), "<completion>"))
    checker.run()
    return next((r for r in checker.rules if r.id == rule_id), None)


def _after(tokens: list[str], word: str) -> str | None:
    for i, t in enumerate(tokens[:-1]):
        if t == word:
            return tokens[i + 1].strip("`")
    return None


def _steps(tokens: list[str]) -> list[str]:
    """Step names of the rule: those in `pattern` and in `define NAME as`."""
    out: list[str] = []
    mode = ""
    for i, t in enumerate(tokens):
        if t in _CLAUSE_WORDS:
            mode = t
            continue
        if mode == "pattern" and t == "within":
            mode = ""
        if mode == "pattern" and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", t) and t not in out:
            out.append(t)
        if mode == "define" and i + 1 < len(tokens) and tokens[i + 1] == "as" and t not in out:
            out.append(t)
    return out


def _defined(tokens: list[str]) -> set[str]:
    return {tokens[i] for i in range(len(tokens) - 1) if tokens[i + 1] == "as"}


def _fields(prog: ProgramAnalysis, stream: str | None, rest: list[str] | None = None) -> list[types.CompletionItem]:
    items = []
    if stream:
        items = [_item(_quoted(n), K.Field, t, f"field of stream `{stream}`") for n, t in prog.fields_of(stream).items()]
    for prefix, table in _joins(rest or []).items():  # `join hosts as h`: h.region, ...
        items += [_item(f"{prefix}.{_quoted(n)}", K.Field, t, f"field of table `{table}`") for n, t in prog.fields_of(table).items()]
    return items


def _joins(tokens: list[str]) -> dict[str, str]:
    """`join TABLE [as ALIAS]` clauses of a rule's tokens: prefix -> table."""
    out = {}
    for i, t in enumerate(tokens[:-1]):
        if t == "join":
            table = tokens[i + 1].strip("`")
            alias = tokens[i + 3].strip("`") if i + 3 < len(tokens) and tokens[i + 2] == "as" else table
            out[alias] = table
    return out


def _quoted(name: str) -> str:
    from cepdsl.parser import keywords

    return ".".join(f"`{p}`" if p in keywords() else p for p in name.split("."))


# ------------------------------------------------------------------ channels and streams


def _channel(ctx: Context, prog: ProgramAnalysis) -> list[types.CompletionItem]:
    toks = ctx.tokens
    depth = toks.count("(") - toks.count(")")
    if depth <= 0:
        if toks[-1] == "=":
            return [_item(k, K.Class, "channel kind: " + (", ".join(options_for(k)) or "no options")) for k in KINDS]
        return []
    kind = toks[toks.index("(") - 1] if "(" in toks else ""
    if kind not in KINDS:
        return []
    if toks[-1] in ("(", ","):
        given = {toks[i] for i in range(len(toks) - 1) if toks[i + 1] == "=" and i > toks.index("(")}
        return [
            _item(n, K.Property, f"{o.type}{' (required)' if o.required else ''}{', secret' if o.secret else ''}", insert=f"{n} = ")
            for n, o in options_for(kind).items()
            if n not in given
        ]
    if toks[-1] == "=":
        return [_item("env", K.Function, 'env("NAME"): read a secret from the environment', insert='env("')]
    return []


def _stream(ctx: Context) -> list[types.CompletionItem]:
    toks = ctx.tokens
    depth = toks.count("(") - toks.count(")")
    if depth > 0 and toks[-1] == ":":
        return _keywords(FIELD_TYPES, K.TypeParameter)
    if depth <= 0 and "(" in toks:
        if toks[-1] == "time":
            fields = [toks[i - 1] for i in range(1, len(toks)) if toks[i] == ":"]
            return [_item(f, K.Field, "") for f in fields]
        return _keywords(("time", "lateness"))
    return []


# ------------------------------------------------------------------ items


def _names(prog: ProgramAnalysis, kind: str) -> list[str]:
    from cepdsl import ast

    cls = {"stream": ast.StreamDecl, "channel": ast.ChannelDecl, "table": ast.TableDecl, "template": ast.TemplateDecl}[kind]
    seen: list[str] = []
    for _, d in prog.decls():
        if isinstance(d, cls) and d.name.value not in seen:
            seen.append(d.name.value)
    return seen


def _stream_detail(prog: ProgramAnalysis, s: str, what: str = "stream") -> str:
    return f"{what} (" + ", ".join(f"{n}: {t}" for n, t in prog.fields_of(s).items()) + ")"


def _channel_detail(prog: ProgramAnalysis, c: str) -> str:
    from cepdsl.explain import channel_text

    plan = prog.channels.get(c)
    return f"channel {channel_text(plan)}" if plan is not None else "channel"


def _keywords(words: tuple[str, ...], kind: types.CompletionItemKind = K.Keyword) -> list[types.CompletionItem]:
    return [_item(w, kind) for w in words]


def _item(
    label: str, kind: types.CompletionItemKind, detail: str = "", doc: str = "", insert: str | None = None
) -> types.CompletionItem:
    return types.CompletionItem(
        label=label,
        kind=kind,
        detail=detail or None,
        documentation=doc or None,
        insert_text=insert,
    )
