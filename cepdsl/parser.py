"""Text → AST, with syntax errors as diagnostics (never tracebacks).

The grammar is loaded once (LALR, cached).  On a syntax error the parser
records it, blanks out the broken declaration (keeping line/column positions)
and parses again, so one run reports a syntax error per broken declaration
instead of stopping at the first.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import re
import threading
from collections.abc import Iterator
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from cepdsl import ast
from cepdsl.diagnostics import Diagnostic
from cepdsl.durations import US_PER, parse_duration_us
from cepdsl.keywords import DECL_KEYWORDS, RESERVED
from cepdsl.syntax_errors import declaration_read_as_name, syntax_diagnostic

#: Limits that keep a hostile or broken file from exhausting the machine.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NESTING = 64  # brackets
#: Levels of the parse tree: about 190 operators in one expression. Later passes
#: recurse over expressions, so this keeps them well inside Python's stack.
MAX_TREE_DEPTH = 200
#: The longest duration a rule may name (36500d, about 100 years): longer ones
#: overflow int64 microseconds once added to a timestamp.
MAX_DURATION_US = 36_500 * US_PER["d"]
MAX_SYNTAX_ERRORS = 20

_comments = threading.local()


def _collect_comment(tok: Token) -> Token:
    items = getattr(_comments, "items", None)
    if items is not None:  # None when the grammar is used outside `parse`
        items.append(tok)
    return tok


@functools.cache
def grammar() -> Lark:
    try:
        import cepdsl.grammar  # noqa: F401 - the top-level grammar/ folder, mapped by the install
    except ModuleNotFoundError:
        # An editable install made before grammar/ became the package cepdsl.grammar maps only
        # cepdsl/: say how to fix it rather than fail inside Lark.
        raise RuntimeError(
            "the package cepdsl.grammar (the grammar/ folder) is not installed: re-run `pip install -e .` (or install cep again)"
        ) from None
    return Lark.open_from_package(
        "cepdsl.grammar",  # the top-level grammar/ folder, mapped in pyproject.toml
        "cep.lark",
        parser="lalr",
        # A basic lexer keeps keywords reserved everywhere; the contextual one would
        # read `rule` as a field name after `cpu >` and misplace the error.
        lexer="basic",
        strict=True,
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _collect_comment},
        cache=True,
    )


def keywords() -> frozenset[str]:
    """Every reserved word (§9.1): a name spelt so must be backquoted. The other
    words of the grammar are contextual (`cepdsl.keywords.CONTEXTUAL`)."""
    return RESERVED


# ----------------------------------------------------------------------------- transformer


def _tok_span(file: str, tok: Token) -> ast.Span:
    return ast.Span(file, tok.line or 0, tok.column or 0, tok.end_line or 0, tok.end_column or 0)


def _parse_duration(text: str) -> int:
    return parse_duration_us(text, literal=True)  # the lexer guarantees the shape


#: An integer of more digits than this is past every limit; it is held as this
#: stand-in, because Python refuses to convert strings of over 4,300 digits.
_MAX_DIGITS = 30
_HUGE = 10**_MAX_DIGITS


def _int(text: str) -> int:
    """An integer token's value; absurdly long ones become `_HUGE` (the checks
    that refuse them quote the token's text, not this value)."""
    return int(text) if len(text.lstrip("0")) <= _MAX_DIGITS else _HUGE


def _short(text: str) -> str:
    return text if len(text) <= 30 else text[:27] + "..."


_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


class _BadEscape(Exception):
    def __init__(self, char: str, offset: int):
        self.char, self.offset = char, offset


def _unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise _BadEscape(nxt, i)
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def has_bad_escape(lit: ast.Literal) -> bool:
    """True for a string literal the parser already reported for an unknown escape:
    later checks of its value (regex, cron, template) keep quiet about it."""
    if lit.kind != "str" or "\\" not in lit.text:
        return False
    raw = lit.text
    body = raw[3:-3] if raw.startswith('"""') else raw[1:-1]
    try:
        _unescape(body)
    except _BadEscape:
        return True
    return False


class _ToAst:
    """AST builders: one method per grammar rule (or alias), called by the LALR
    driver on each reduce with the rule's position and its already-built
    children.  The position is `(line, column, end_line, end_column)` of the
    rule's text, brackets included, or None for an empty rule."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Diagnostic] = []

    def _span(self, meta: tuple[int, int, int, int] | None) -> ast.Span:
        if meta is None:
            return ast.NO_SPAN
        return ast.Span(self.file, *meta)

    # -- names, paths, literals ----------------------------------------------------
    def name(self, meta, children):
        (tok,) = children
        span = _tok_span(self.file, tok)
        if tok.type == "QUOTED_NAME":
            return ast.Name(tok.value[1:-1], quoted=True, span=span)
        return ast.Name(tok.value, span=span)

    step_name = name

    def arg_name(self, meta, children):
        (x,) = children
        return x if isinstance(x, ast.Name) else ast.Name(x.value, span=_tok_span(self.file, x))

    def path(self, meta, children):
        return ast.Path(tuple(children), span=self._span(meta))

    def string(self, meta, children):
        (tok,) = children
        raw = tok.value
        quote = 3 if tok.type == "LONG_STRING" else 1
        body = raw[quote:-quote]
        try:
            value = _unescape(body)
        except _BadEscape as e:
            # The caret goes under the escape itself, which may sit lines into a long string.
            before = raw[: quote + e.offset]
            line = (tok.line or 1) + before.count("\n")
            col = (tok.column or 1) + len(before) if "\n" not in before else len(before) - before.rfind("\n")
            shown = e.char if e.char.isprintable() else f"U+{ord(e.char):04X}"
            self.problems.append(
                Diagnostic(
                    ast.Span(self.file, line, col, line, col + 2),
                    f"unknown escape `\\{shown}` in string",
                    (f'the escapes are \\" \\\\ \\n \\t; to keep the backslash (e.g. in a regex), write `\\\\{shown}`',),
                    code="bad-escape",
                )
            )
            value = body
        return ast.Literal(value, "str", raw, span=self._span(meta))

    def int_lit(self, meta, children):
        return ast.Literal(_int(children[0]), "int", children[0].value, span=self._span(meta))

    def float_lit(self, meta, children):
        return ast.Literal(float(children[0]), "float", children[0].value, span=self._span(meta))

    def duration_lit(self, meta, children):
        return ast.Literal(self._duration_us(children[0]), "duration", children[0].value, span=self._span(meta))

    def true_lit(self, meta, children):
        return ast.Literal(True, "bool", "true", span=self._span(meta))

    def false_lit(self, meta, children):
        return ast.Literal(False, "bool", "false", span=self._span(meta))

    def null_lit(self, meta, children):
        return ast.Literal(None, "null", "null", span=self._span(meta))

    def list(self, meta, children):
        return ast.ListLit(tuple(c for c in children if c is not None), span=self._span(meta))

    def map(self, meta, children):
        return ast.MapLit(tuple(c for c in children if c is not None), span=self._span(meta))

    def map_item(self, meta, children):
        return (children[0], children[1])

    def _duration_us(self, tok: Token) -> int:
        us = _parse_duration(tok)
        if us > MAX_DURATION_US:
            self.problems.append(
                Diagnostic(
                    _tok_span(self.file, tok),
                    f"duration `{_short(tok.value)}` is too long",
                    ("the longest duration is 36500d (about 100 years)",),
                    code="duration",
                )
            )
            # Clamped, so later checks see a sane value and stay quiet about it.
            return MAX_DURATION_US
        return us

    def _duration(self, tok: Token) -> ast.Duration:
        return ast.Duration(self._duration_us(tok), tok.value, span=_tok_span(self.file, tok))

    # -- expressions -----------------------------------------------------------------
    def _binary(self, op, meta, left, right, op_span=ast.NO_SPAN):
        return ast.Binary(op, left, right, op_span, span=self._span(meta))

    def or_(self, meta, c):
        return self._binary("or", meta, c[0], c[1])

    def and_(self, meta, c):
        return self._binary("and", meta, c[0], c[1])

    def not_(self, meta, c):
        return ast.Unary("not", c[0], span=self._span(meta))

    def compare(self, meta, c):
        return self._binary(c[1].value, meta, c[0], c[2], _tok_span(self.file, c[1]))

    def arith(self, meta, c):
        return self._binary(c[1].value, meta, c[0], c[2], _tok_span(self.file, c[1]))

    def _string_op(op):  # noqa: N805 - builds methods
        def method(self, meta, c):
            return self._binary(op, meta, c[0], c[1])

        return method

    contains = _string_op("contains")
    starts_with = _string_op("starts_with")
    ends_with = _string_op("ends_with")
    matches = _string_op("matches")

    def in_(self, meta, c):
        return ast.InList(c[0], c[1], False, span=self._span(meta))

    def not_in(self, meta, c):
        return ast.InList(c[0], c[1], True, span=self._span(meta))

    def is_null(self, meta, c):
        return ast.IsNull(c[0], False, span=self._span(meta))

    def is_not_null(self, meta, c):
        return ast.IsNull(c[0], True, span=self._span(meta))

    def neg(self, meta, c):
        operand = c[1]
        # Fold `-5` into a literal so `fmt` and the checker see a number.
        if isinstance(operand, ast.Literal) and operand.kind in ("int", "float"):
            return ast.Literal(-operand.value, operand.kind, "-" + operand.text, span=self._span(meta))
        return ast.Unary("-", operand, span=self._span(meta))

    def field(self, meta, c):
        return ast.FieldRef(c[0], span=self._span(meta))

    def call(self, meta, c):
        return ast.Call(c[0], tuple(a for a in c[1:] if a is not None), span=self._span(meta))

    def pos_arg(self, meta, c):
        return ast.Arg(c[0], None, span=self._span(meta))

    def kw_arg(self, meta, c):
        return ast.Arg(c[1], c[0], span=self._span(meta))

    # -- patterns --------------------------------------------------------------------
    def pat_step(self, meta, c):
        return ast.PatStep(c[0], span=self._span(meta))

    def pat_seq(self, meta, c):
        return ast.PatSeq(tuple(c), span=self._span(meta))

    def pat_alt(self, meta, c):
        return ast.PatAlt(tuple(c), span=self._span(meta))

    def pat_rep(self, meta, c):
        lo, hi, text = c[1]
        return ast.PatRepeat(c[0], lo, hi, text, span=self._span(meta))

    def q_opt(self, meta, c):
        return (0, 1, "?")

    def q_star(self, meta, c):
        return (0, None, "*")

    def q_plus(self, meta, c):
        return (1, None, "+")

    def q_exact(self, meta, c):
        return (_int(c[0]), _int(c[0]), f"{{{_short(c[0])}}}")

    def q_min(self, meta, c):
        return (_int(c[0]), None, f"{{{_short(c[0])},}}")

    def q_range(self, meta, c):
        return (_int(c[0]), _int(c[1]), f"{{{_short(c[0])},{_short(c[1])}}}")

    # -- declarations ----------------------------------------------------------------
    def field_decl(self, meta, c):
        return ast.FieldDecl(c[0], c[1], span=self._span(meta))

    def time_opt(self, meta, c):
        return ("time", c[0])

    def lateness_opt(self, meta, c):
        return ("lateness", self._duration(c[0]))

    def stream_decl(self, meta, c):
        name, rest = c[0], c[1:]
        fields = tuple(x for x in rest if isinstance(x, ast.FieldDecl))
        opts = [x for x in rest if isinstance(x, tuple)]
        time = next((v for k, v in opts if k == "time"), None)
        lateness = next((v for k, v in opts if k == "lateness"), None)
        for kind in ("time", "lateness"):
            extra = [v for k, v in opts if k == kind][1:]
            for v in extra:
                self.problems.append(
                    Diagnostic(v.span, f"`{kind}` is given more than once for stream `{name.value}`", code="duplicate-option")
                )
        return ast.StreamDecl(name, fields, time, lateness, span=self._span(meta))

    def channel_decl(self, meta, c):
        return ast.ChannelDecl(c[0], c[1], tuple(a for a in c[2:] if a is not None), span=self._span(meta))

    def rule_decl(self, meta, c):
        return ast.RuleDecl(c[0], c[1], tuple(c[2:]), span=self._span(meta))

    def start(self, meta, c):
        return tuple(c)

    # -- clauses ---------------------------------------------------------------------
    def from_clause(self, meta, c):
        return ast.From(c[0], span=self._span(meta))

    def where_clause(self, meta, c):
        return ast.Where(c[0], span=self._span(meta))

    def group_clause(self, meta, c):
        return ast.GroupBy(tuple(c), span=self._span(meta))

    def window_clause(self, meta, c):
        w = c[0]
        return ast.Window(w.kind, w.size, w.every, w.gap, w.count, span=self._span(meta))

    def tumbling(self, meta, c):
        return ast.Window("tumbling", size=self._duration(c[0]), span=self._span(meta))

    def sliding(self, meta, c):
        return ast.Window("sliding", size=self._duration(c[0]), every=self._duration(c[1]), span=self._span(meta))

    def session(self, meta, c):
        return ast.Window("session", gap=self._duration(c[0]), span=self._span(meta))

    def count_window(self, meta, c):
        tok = c[0]
        return ast.Window(
            "count", count=ast.Literal(_int(tok), "int", tok.value, span=_tok_span(self.file, tok)), span=self._span(meta)
        )

    def having_clause(self, meta, c):
        return ast.Having(c[0], span=self._span(meta))

    def schedule_clause(self, meta, c):
        return ast.Schedule(c[0], self._duration(c[1]), span=self._span(meta))

    def pattern_clause(self, meta, c):
        within = self._duration(c[2]) if c[2] is not None else None
        return ast.Pattern(c[0], within, span=self._span(meta))

    def define(self, meta, c):
        return ast.Definition(c[0], c[1], span=self._span(meta))

    def define_clause(self, meta, c):
        return ast.Define(tuple(c), span=self._span(meta))

    def absent_clause(self, meta, c):
        return ast.Absent(self._duration(c[0]), span=self._span(meta))

    def anomaly_clause(self, meta, c):
        method, rest = c[0], c[1:]
        args = tuple(a for a in rest[:-4] if a is not None)
        b_tok, b_val, w_tok, w_val = rest[-4:]

        def lit(tok):
            return None if tok is None else ast.Literal(_int(tok), "int", tok.value, span=_tok_span(self.file, tok))

        return ast.Anomaly(method, args, lit(b_val), lit(w_val), span=self._span(meta))

    def severity_clause(self, meta, c):
        return ast.Severity(c[0], span=self._span(meta))

    def throttle_clause(self, meta, c):
        return ast.Throttle(self._duration(c[0]), span=self._span(meta))

    def notify_clause(self, meta, c):
        names = [x for x in c[:-2]]
        return ast.Notify(tuple(names), c[-1], span=self._span(meta))

    def message_clause(self, meta, c):
        return ast.Message(c[0], span=self._span(meta))

    def message_ref_clause(self, meta, c):
        return ast.Message(c[0], named=True, span=self._span(meta))

    def join_clause(self, meta, c):
        table, _as, alias, on = c
        return ast.Join(table, alias, on, span=self._span(meta))

    def for_clause(self, meta, c):
        return ast.For(self._duration(c[0]), span=self._span(meta))

    def resolve_clause(self, meta, c):
        _after, dur, template = c
        return ast.Resolve(self._duration(dur) if dur is not None else None, template, span=self._span(meta))

    # -- §9 declarations -------------------------------------------------------------
    def _options(self, what: str, name: ast.Name, opts: list[tuple[str, Any, ast.Span]]) -> dict[str, Any]:
        """Options of a declaration by kind; a repeated one is reported (the first counts)."""
        out: dict[str, Any] = {}
        for kind, value, span in opts:
            if kind in out:
                self.problems.append(
                    Diagnostic(
                        span, f"`{kind}` is given more than once for {what} `{name.value}`", ("give it once",), code="duplicate-option"
                    )
                )
                continue
            out[kind] = value
        return out

    def key_opt(self, meta, c):
        return ("key", c[0], self._span(meta))

    def table_file(self, meta, c):
        return ("from", c[0], self._span(meta))

    def table_source(self, meta, c):
        call = ast.Call(c[0], tuple(a for a in c[1:] if a is not None), span=self._span(meta))
        return ("from", call, self._span(meta))

    def refresh_opt(self, meta, c):
        return ("refresh", self._duration(c[0]), self._span(meta))

    def table_decl(self, meta, c):
        name, rest = c[0], c[1:]
        fields = tuple(x for x in rest if isinstance(x, ast.FieldDecl))
        opts = self._options("table", name, [x for x in rest if isinstance(x, tuple)])
        return ast.TableDecl(name, fields, opts.get("key"), opts.get("from"), opts.get("refresh"), span=self._span(meta))

    def template_decl(self, meta, c):
        return ast.TemplateDecl(c[0], c[1], span=self._span(meta))

    def match_opt(self, meta, c):
        return ("match", c[0], self._span(meta))

    def every_opt(self, meta, c):
        return ("every", (c[0], self._duration(c[1])), self._span(meta))

    def period_opt(self, meta, c):
        return ("from", (c[0], c[1]), self._span(meta))

    def silence_decl(self, meta, c):
        name, title, rest = c[0], c[1], c[2:]
        opts = self._options("silence", name, list(rest))
        cron, duration = opts.get("every", (None, None))
        start, until = opts.get("from", (None, None))
        if "every" in opts and "from" in opts:
            span = next(sp for k, _, sp in rest if k == "from")
            self.problems.append(
                Diagnostic(
                    span,
                    f"silence `{name.value}` has both `every` and `from ... until`",
                    ("a silence is either recurring (`every \"CRON\" for D`) or one period (`from \"T1\" until \"T2\"`)",),
                    code="duplicate-option",
                )
            )
        return ast.SilenceDecl(name, title, opts.get("match"), cron, duration, start, until, span=self._span(meta))

    def keyword_field(self, meta, c):
        (tok,) = c
        name = ast.Name(tok.value, span=_tok_span(self.file, tok))
        return ast.FieldRef(ast.Path((name,), span=name.span), span=self._span(meta))


# ----------------------------------------------------------------------------- the LALR driver
#
# Lark's own loop builds a `Tree` per reduce through a chain of wrappers
# (child filter, single-child expansion, position propagation), and the AST was
# then built from that tree in a second pass: two thirds of the parse time.
# The driver below runs lark's parse table and lexer itself and calls the
# `_ToAst` method on each reduce, bottom-up, so no tree is built and nothing
# recurses.  It reproduces lark's tree shaping exactly:
# - tokens of anonymous terminals (`"("`, keywords) are dropped, `[x]` leaves a
#   None, `__x_star_n` helper rules are inlined into their parent;
# - a `?rule` with a single child is that child (a unit reduce costs no call);
# - a rule's position runs from its first to its last token, brackets
#   included: a parenthesised expression is positioned at its `(` when a
#   parent takes its position from it, and by its content in its own span
#   (lark's `container_*` positions under `propagate_positions`).
# Any syntax error makes the caller parse again with lark's own parser, so
# error reports (expected tokens, interactive-parser state) are lark's.


class _Node:
    """A built value on the parse stack, with its position and tree height."""

    __slots__ = ("value", "line", "column", "end_line", "end_column", "height")

    def __init__(self, value: Any, line: int, column: int, end_line: int, end_column: int, height: int):
        self.value, self.line, self.column, self.end_line, self.end_column, self.height = (
            value,
            line,
            column,
            end_line,
            end_column,
            height,
        )


class _Inline(_Node):
    """A helper rule's children (`x*` in the grammar), spliced into its parent."""

    __slots__ = ()


class _SyntaxError(Exception):
    """The driver met input it cannot parse; lark's parser will say why."""


def _rule_callback(rule: Any, current: threading.local) -> Any:
    """The reduce action of one grammar rule, mirroring lark's ParseTreeBuilder
    (`maybe_create_child_filter`, `ExpandSingleChild`, `PropagatePositions`).
    Built once per driver (building them took 3 ms, which was most of parsing a
    small file): the parse's `_ToAst` is read from `current.builder` at reduce time."""
    expansion = rule.expansion
    options = rule.options
    empty = options.empty_indices
    if empty:
        s = "".join(str(int(b)) for b in empty)
        nones = [len(ones) for ones in s.split("0")]
    else:
        nones = [0] * (len(expansion) + 1)
    include: list[tuple[int, bool, int]] = []
    pending = 0
    for i, sym in enumerate(expansion):
        pending += nones[i]
        if options.keep_all_tokens or not (sym.is_term and sym.filter_out):
            include.append((i, not sym.is_term and sym.name.startswith("_"), pending))
            pending = 0
    trailing = pending + nones[len(expansion)]
    inline = rule.origin.name.startswith("_")
    expand1 = options.expand1 and not rule.alias
    if (
        expand1
        and len(expansion) == 1
        and include
        and not include[0][1]
        and not include[0][2]
        and not trailing
        and not expansion[0].is_term
    ):
        return None  # a unit reduce: the child is the value, positions unchanged
    name = rule.alias or options.template_source or rule.origin.name
    # A `?rule` of one child never builds; any other rule must have a method (a
    # missing one is a bug, raised on use, never a silent tree).
    method = None if inline else getattr(_ToAst, name, None)

    def reduce(raw: list[Any]) -> Any:
        kids = []
        height = 0
        for i, expand, add_none in include:
            if add_none:
                kids += [None] * add_none
            c = raw[i]
            if expand:
                kids += c.value
                if c.height > height:
                    height = c.height
            elif c.__class__ is _Node:
                if c.height > height:
                    height = c.height
                kids.append(c.value)
            else:
                kids.append(c)
        if trailing:
            kids += [None] * trailing
        if raw:
            first, last = raw[0], raw[-1]
            line, column, end_line, end_column = first.line, first.column, last.end_line, last.end_column
            meta: tuple[int, int, int, int] | None = (line, column, end_line, end_column)
        else:
            line = column = end_line = end_column = 0
            meta = None
        if inline:
            return _Inline(kids, line, column, end_line, end_column, height)
        if expand1 and len(kids) == 1:
            child = kids[0]
            if child is None or isinstance(child, Token):
                return child
            node = raw[include[0][0]]  # the child's own _Node, now positioned by its container
            node.line, node.column, node.end_line, node.end_column = line, column, end_line, end_column
            return node
        if method is None:
            raise AttributeError(f"_ToAst has no method for rule `{name}`")
        return _Node(method(current.builder, meta, kids), line, column, end_line, end_column, height + 1)

    return reduce


class _Driver:
    """lark's LALR table and lexer, with `_ToAst` reduce actions."""

    def __init__(self, lark: Lark):
        frontend = lark.parser
        self.lexer = frontend.lexer
        table = frontend.parser._parse_table
        self.start_state = table.start_states["start"]
        self.end_state = table.end_states["start"]
        self.rules = list(frontend.parser.parser.callbacks)
        self.table = table.states
        self.tokens = _Lexer(frontend.lexer)
        self.current = threading.local()  # the `_ToAst` of this thread's parse
        self.actions = {rule: (len(rule.expansion), _rule_callback(rule, self.current), rule.origin.name) for rule in self.rules}

    def parse(self, text: str, builder: _ToAst) -> _Node:
        from lark.parsers.lalr_analysis import Shift

        self.current.builder = builder
        actions = self.actions
        states = self.table
        end_state = self.end_state
        state_stack = [self.start_state]
        value_stack: list[Any] = []
        try:
            for token in itertools.chain(self.tokens.lex(text), (None,)):  # None: the end of input
                ttype = "$END" if token is None else token.type
                while True:
                    try:
                        action, arg = states[state_stack[-1]][ttype]
                    except KeyError:
                        raise _SyntaxError from None
                    if action is Shift:
                        state_stack.append(arg)
                        value_stack.append(token)
                        break
                    size, reduce, origin = actions[arg]
                    if reduce is None:  # unit reduce
                        del state_stack[-1]
                        state_stack.append(states[state_stack[-1]][origin][1])
                        continue
                    if size:
                        raw = value_stack[-size:]
                        del state_stack[-size:]
                        del value_stack[-size:]
                    else:
                        raw = []
                    value_stack.append(reduce(raw))
                    state_stack.append(states[state_stack[-1]][origin][1])
                    if token is None and state_stack[-1] == end_state:
                        return value_stack[-1]
            raise _SyntaxError  # not reached: the end token is accepted or refused above
        except UnexpectedInput:  # not expected from `_Lexer`; lark reports it
            raise _SyntaxError from None


class _Lexer:
    """lark's basic lexer, run by a plain loop over its own compiled regexes:
    same tokens, types, positions and callbacks (`lexer_callbacks`), a third of
    the cost.  Keywords are typed by a dict lookup where lark runs a second
    regex (`UnlessCallback`) over every name.  Input no terminal matches raises
    `_SyntaxError` (lark's lexer then reports it)."""

    def __init__(self, lexer: Any):
        from lark.lexer import UnlessCallback

        scanner = lexer.scanner
        self.mres = scanner._mres
        self.ignore = lexer.ignore_types
        self.newline = lexer.newline_types
        self.callback = dict(lexer.callback)
        self.keywords: dict[str, dict[str, str]] = {}
        for type_, cb in lexer.callback.items():
            if isinstance(cb, UnlessCallback):
                terms = cb.scanner.terminals
                if all(t.pattern.type == "str" and not t.pattern.flags for t in terms):
                    self.keywords[type_] = {t.pattern.value: t.name for t in terms}
                    del self.callback[type_]

    def lex(self, text: str) -> Iterator[Token]:
        mres, ignore, newline, callback, keywords = self.mres, self.ignore, self.newline, self.callback, self.keywords
        pos, line, line_start, end = 0, 1, 0, len(text)
        while pos < end:
            for mre in mres:
                m = mre.match(text, pos)
                if m:
                    break
            else:
                raise _SyntaxError
            value = m.group(0)
            type_ = m.lastgroup
            end_pos = pos + len(value)
            end_line = line
            column = pos - line_start + 1
            if type_ in newline:
                n = value.count("\n")
                if n:
                    end_line += n
                    line_start = pos + value.rindex("\n") + 1
            if type_ in ignore:
                if type_ in callback:
                    callback[type_](Token(type_, value, pos, line, column, end_line, end_pos - line_start + 1, end_pos))
            else:
                kw = keywords.get(type_)
                if kw is not None:
                    type_ = kw.get(value, type_)
                t = Token(type_, value, pos, line, column, end_line, end_pos - line_start + 1, end_pos)
                if type_ in callback:
                    t = callback[type_](t)
                yield t
            pos, line = end_pos, end_line


#: The Lark releases whose parse-table and lexer internals the driver was written
#: against (pyproject allows only these); any other falls back to Lark's own parser.
DRIVER_LARK_VERSIONS = ("1.3.",)


def driver_supports(version: str) -> bool:
    return version.startswith(DRIVER_LARK_VERSIONS)


class _LarkFallback:
    """Lark's own LALR parser with an inline transformer calling the same `_ToAst`
    methods: slower (it builds a tree first), but independent of Lark's internals."""

    def __init__(self, lark: Lark):
        self.lark = lark

    def parse(self, text: str, builder: _ToAst) -> _Node:
        from lark import Transformer, v_args

        def method(name: str) -> Any:
            def call(_self: Any, meta: Any, children: list[Any]) -> Any:
                pos = None if meta.empty else (meta.line, meta.column, meta.end_line, meta.end_column)
                return getattr(builder, name)(pos, children)

            return call

        names = {r.alias or r.options.template_source or r.origin.name for r in self.lark.rules}
        methods = {n: method(n) for n in names if not n.startswith("_") and hasattr(_ToAst, n)}
        try:
            tree = self.lark.parse(text)
        except UnexpectedInput:
            raise _SyntaxError from None
        height = MAX_TREE_DEPTH + 1 if _too_deep_node(tree) is not None else 0
        if height:
            return _Node(None, 1, 1, 1, 1, height)
        value = v_args(meta=True)(type("LarkToAst", (Transformer,), methods))().transform(tree)
        return _Node(value, 1, 1, 1, 1, height)


@functools.cache
def _driver() -> _Driver | _LarkFallback:
    import lark

    if driver_supports(lark.__version__):
        return _Driver(grammar())
    return _LarkFallback(grammar())


# ----------------------------------------------------------------------------- limits and recovery

_TOP_LEVEL = re.compile(r"^[ \t]*(stream|channel|table|template|silence|rule)\b", re.M)

# Strings, comments and backquoted names hold brackets that are not nesting.
# (`[\s\S]`, not `(?:.|\n)`: one character class is ~10x faster over an unterminated `"""`.)
_NESTING_TOKENS = re.compile(r'"""[\s\S]*?"""|"(?:\\.|[^"\\\n])*"|`[^`\n]*`|#[^\n]*|[()\[\]{}]')


def _too_deep_bracket(text: str) -> int | None:
    """Offset of the first bracket that opens more than MAX_NESTING levels, or None."""
    depth = 0
    for m in _NESTING_TOKENS.finditer(text):
        tok = m.group(0)
        if tok in "([{":
            depth += 1
            if depth > MAX_NESTING:
                return m.start()
        elif tok in ")]}":
            depth = max(depth - 1, 0)
    return None


def _too_deep_node(tree: Tree) -> Tree | None:
    """The expression that reaches more than MAX_TREE_DEPTH levels, found without recursion.

    Later passes (the transformer, the typer, the backends) recurse over
    expressions; a chain such as `x + x + ... + x` of thousands of terms would
    overflow Python's stack there, so it is refused here with a diagnostic.
    The node returned is the whole expression (depth 4: start → declaration →
    clause → expression), so the caret marks where it begins."""
    stack: list[tuple[Tree, int, Tree]] = [(tree, 1, tree)]
    while stack:
        node, depth, top = stack.pop()
        if depth > MAX_TREE_DEPTH:
            return top
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, depth + 1, child if depth + 1 <= 4 else top))
    return None


def _offset_of(text: str, line: int, col: int) -> int:
    start = 0
    for _ in range(line - 1):
        nl = text.find("\n", start)
        if nl < 0:
            return len(text)
        start = nl + 1
    return start + col - 1


def _blank(text: str, start: int, end: int) -> str:
    """Replace text[start:end] by spaces, keeping newlines (so positions stay put)."""
    # (Line by line: a per-character `re.sub` took 0.2 s on a 2.5 MB fuzz input.)
    return text[:start] + "\n".join(" " * len(line) for line in text[start:end].split("\n")) + text[end:]


def _failed_region(text: str, offset: int) -> tuple[int, int]:
    """The declaration around `offset`: from the last top-level keyword at or before it
    to the next one after it."""
    starts = [m.start() for m in _TOP_LEVEL.finditer(text)]
    begin = max((s for s in starts if s <= offset), default=0)
    end = min((s for s in starts if s > offset), default=len(text))
    if end <= begin:
        end = len(text)
    return begin, end


def _limit(file: str, line: int, col: int, width: int, message: str, hint: str) -> Diagnostic:
    return Diagnostic(ast.Span(file, line, col, line, col + max(width, 1)), message, (hint,), code="limit")


def _error_offset(err: UnexpectedInput, work: str) -> int:
    """Where recovery should cut: inside the declaration that broke."""
    if isinstance(err, UnexpectedToken):
        if err.token.type == "$END":
            return max(len(work) - 1, 0)
        offset = err.token.start_pos or 0
        # An unexpected top-level keyword means the declaration *before* it broke.
        if err.token.value in DECL_KEYWORDS and err.token.type != "QUOTED_NAME":
            offset = max(offset - 1, 0)
        # So does a name after a line-leading `rule` read as a field: the rule's own text
        # stays, to be parsed (and checked) once the broken declaration is blanked out.
        rule_start = declaration_read_as_name(work, err.token)
        if rule_start is not None:
            offset = max(rule_start - 1, 0)
        return offset
    if isinstance(err, UnexpectedCharacters):
        return err.pos_in_stream
    return max(len(work) - 1, 0)


def parse(text: str, file: str = "<string>") -> tuple[ast.File | None, list[Diagnostic]]:
    """Parse a `.cep` file. Returns the AST (None when nothing could be parsed) and
    every syntax diagnostic found."""
    with gc_paused():
        return _parse(text, file)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Parsing allocates a few hundred thousand small objects and no cycles; the
    cyclic collector would walk them all again and again (a third of the time
    for a 1,000-rule file), so it waits until the pass is over."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parse(text: str, file: str) -> tuple[ast.File | None, list[Diagnostic]]:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        span = ast.Span(file, 1, 1, 1, 2)
        message = f"the file is {size / (1024 * 1024):.1f} MiB; rule files may be at most {MAX_FILE_BYTES // (1024 * 1024)} MiB"
        return None, [Diagnostic(span, message, ("split the rules over several files",), code="limit")]
    deep = _too_deep_bracket(text)
    if deep is not None:
        line = text.count("\n", 0, deep) + 1
        col = deep - (text.rfind("\n", 0, deep) + 1) + 1
        return None, [
            _limit(
                file,
                line,
                col,
                1,
                f"brackets are nested more than {MAX_NESTING} levels deep",
                "simplify the expression or split it over several rules",
            )
        ]

    diags: list[Diagnostic] = []
    work = text
    broken: set[str] = set()
    lark = grammar()
    driver = _driver()
    for _ in range(MAX_SYNTAX_ERRORS + 1):
        _comments.items = []
        builder = _ToAst(file)
        try:
            root = driver.parse(work, builder)
        except _SyntaxError:
            # lark's own parser meets the same error and reports it with its expected set
            _comments.items = []
            try:
                lark.parse(work)
            except UnexpectedInput as err:
                diags.append(syntax_diagnostic(lark, keywords(), file, err, text, work))
                offset = _error_offset(err, work)
            else:  # pragma: no cover - the driver and lark share the table and lexer
                raise AssertionError("the LALR driver refused what lark accepts")
        else:
            if root.height <= MAX_TREE_DEPTH:
                break
            # Rare: lark's tree tells which expression is too deep.
            node = _too_deep_node(lark.parse(work))
            assert node is not None
            meta = node.meta
            line, col = (meta.line, meta.column) if not meta.empty else (1, 1)
            diags.append(
                _limit(
                    file,
                    line,
                    col,
                    1,
                    f"this expression is nested more than {MAX_TREE_DEPTH} levels deep",
                    "split it into smaller conditions, or use `in [...]` instead of a long chain of `or`",
                )
            )
            offset = _offset_of(work, line, col)
        begin, end = _failed_region(work, offset)
        if not work[begin:end].strip():
            return None, diags
        head = re.match(r"\s*(?:stream|channel|table|template|silence|rule)\s+`?([A-Za-z_][A-Za-z0-9_]*)", work[begin:end])
        if head:
            broken.add(head.group(1))
        work = _blank(work, begin, end)
        if len(diags) >= MAX_SYNTAX_ERRORS:
            return None, diags
    else:
        return None, diags
    comments = tuple(ast.Comment(t.value, span=_tok_span(file, t)) for t in _comments.items)
    decls = root.value
    diags.extend(builder.problems)
    return ast.File(decls, comments, file, frozenset(broken)), diags
