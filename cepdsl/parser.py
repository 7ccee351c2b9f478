"""Text → AST, with syntax errors as diagnostics (never tracebacks).

The grammar is loaded once (LALR, cached).  On a syntax error the parser
records it, blanks out the broken declaration (keeping line/column positions)
and parses again, so one run reports a syntax error per broken declaration
instead of stopping at the first.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from cepdsl import ast
from cepdsl.diagnostics import Diagnostic
from cepdsl.types import US_PER

#: Limits that keep a hostile or broken file from exhausting the machine.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_NESTING = 64
MAX_SYNTAX_ERRORS = 20

_comments = threading.local()


def _collect_comment(tok: Token) -> Token:
    _comments.items.append(tok)
    return tok


@functools.cache
def grammar() -> Lark:
    return Lark.open_from_package(
        "cepdsl",
        "grammar/cep.lark",
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


@functools.cache
def keywords() -> frozenset[str]:
    """Every reserved word: the grammar's string terminals that look like names."""
    words = set()
    for term in grammar().terminals:
        value = getattr(term.pattern, "value", "")
        if term.pattern.type == "str" and re.fullmatch(r"[a-z_]+", value):
            words.add(value)
    return frozenset(words)


# ----------------------------------------------------------------------------- transformer


def _tok_span(file: str, tok: Token) -> ast.Span:
    return ast.Span(file, tok.line or 0, tok.column or 0, tok.end_line or 0, tok.end_column or 0)


def _parse_duration(text: str) -> int:
    m = re.fullmatch(r"([0-9]+)(ms|s|m|h|d)", text)
    assert m, text  # the lexer guarantees the shape
    return int(m.group(1)) * US_PER[m.group(2)]


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


class _UserError(Exception):
    """A problem found while building the AST (bad escape, keyword as a name)."""

    def __init__(self, diag: Diagnostic):
        self.diag = diag


@v_args(meta=True)
class _ToAst(Transformer):
    def __init__(self, file: str):
        super().__init__()
        self.file = file
        self.problems: list[Diagnostic] = []

    def _span(self, meta: Any) -> ast.Span:
        if getattr(meta, "empty", True):
            return ast.NO_SPAN
        return ast.Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    # -- names, paths, literals ----------------------------------------------------
    def name(self, meta, children):
        (tok,) = children
        span = _tok_span(self.file, tok)
        if tok.type == "QUOTED_NAME":
            return ast.Name(tok.value[1:-1], quoted=True, span=span)
        return ast.Name(tok.value, span=span)

    def arg_name(self, meta, children):
        (x,) = children
        return x if isinstance(x, ast.Name) else ast.Name(x.value, span=_tok_span(self.file, x))

    def path(self, meta, children):
        return ast.Path(tuple(children), self._span(meta))

    def string(self, meta, children):
        (tok,) = children
        raw = tok.value
        body = raw[3:-3] if tok.type == "LONG_STRING" else raw[1:-1]
        try:
            value = _unescape(body)
        except _BadEscape as e:
            self.problems.append(
                Diagnostic(
                    _tok_span(self.file, tok),
                    f"unknown escape `\\{e.char}` in string",
                    ('the escapes are \\" \\\\ \\n \\t',),
                    code="bad-escape",
                )
            )
            value = body
        return ast.Literal(value, "str", raw, self._span(meta))

    def int_lit(self, meta, children):
        return ast.Literal(int(children[0]), "int", children[0].value, self._span(meta))

    def float_lit(self, meta, children):
        return ast.Literal(float(children[0]), "float", children[0].value, self._span(meta))

    def duration_lit(self, meta, children):
        return ast.Literal(_parse_duration(children[0]), "duration", children[0].value, self._span(meta))

    def true_lit(self, meta, children):
        return ast.Literal(True, "bool", "true", self._span(meta))

    def false_lit(self, meta, children):
        return ast.Literal(False, "bool", "false", self._span(meta))

    def null_lit(self, meta, children):
        return ast.Literal(None, "null", "null", self._span(meta))

    def list(self, meta, children):
        return ast.ListLit(tuple(c for c in children if c is not None), self._span(meta))

    def map(self, meta, children):
        return ast.MapLit(tuple(c for c in children if c is not None), self._span(meta))

    def map_item(self, meta, children):
        return (children[0], children[1])

    def _duration(self, tok: Token) -> ast.Duration:
        return ast.Duration(_parse_duration(tok), tok.value, _tok_span(self.file, tok))

    # -- expressions -----------------------------------------------------------------
    def _binary(self, op, meta, left, right, op_span=ast.NO_SPAN):
        return ast.Binary(op, left, right, op_span, self._span(meta))

    def or_(self, meta, c):
        return self._binary("or", meta, c[0], c[1])

    def and_(self, meta, c):
        return self._binary("and", meta, c[0], c[1])

    def not_(self, meta, c):
        return ast.Unary("not", c[0], self._span(meta))

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
        return ast.InList(c[0], c[1], False, self._span(meta))

    def not_in(self, meta, c):
        return ast.InList(c[0], c[1], True, self._span(meta))

    def is_null(self, meta, c):
        return ast.IsNull(c[0], False, self._span(meta))

    def is_not_null(self, meta, c):
        return ast.IsNull(c[0], True, self._span(meta))

    def neg(self, meta, c):
        operand = c[1]
        # Fold `-5` into a literal so `fmt` and the checker see a number.
        if isinstance(operand, ast.Literal) and operand.kind in ("int", "float"):
            return ast.Literal(-operand.value, operand.kind, "-" + operand.text, self._span(meta))
        return ast.Unary("-", operand, self._span(meta))

    def field(self, meta, c):
        return ast.FieldRef(c[0], self._span(meta))

    def call(self, meta, c):
        return ast.Call(c[0], tuple(a for a in c[1:] if a is not None), self._span(meta))

    def pos_arg(self, meta, c):
        return ast.Arg(c[0], None, self._span(meta))

    def kw_arg(self, meta, c):
        return ast.Arg(c[1], c[0], self._span(meta))

    # -- patterns --------------------------------------------------------------------
    def pat_step(self, meta, c):
        return ast.PatStep(c[0], self._span(meta))

    def pat_seq(self, meta, c):
        return ast.PatSeq(tuple(c), self._span(meta))

    def pat_alt(self, meta, c):
        return ast.PatAlt(tuple(c), self._span(meta))

    def pat_rep(self, meta, c):
        lo, hi, text = c[1]
        return ast.PatRepeat(c[0], lo, hi, text, self._span(meta))

    def q_opt(self, meta, c):
        return (0, 1, "?")

    def q_star(self, meta, c):
        return (0, None, "*")

    def q_plus(self, meta, c):
        return (1, None, "+")

    def q_exact(self, meta, c):
        return (int(c[0]), int(c[0]), f"{{{c[0]}}}")

    def q_min(self, meta, c):
        return (int(c[0]), None, f"{{{c[0]},}}")

    def q_range(self, meta, c):
        return (int(c[0]), int(c[1]), f"{{{c[0]},{c[1]}}}")

    # -- declarations ----------------------------------------------------------------
    def field_decl(self, meta, c):
        return ast.FieldDecl(c[0], c[1], self._span(meta))

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
        return ast.StreamDecl(name, fields, time, lateness, self._span(meta))

    def channel_decl(self, meta, c):
        return ast.ChannelDecl(c[0], c[1], tuple(a for a in c[2:] if a is not None), self._span(meta))

    def rule_decl(self, meta, c):
        return ast.RuleDecl(c[0], c[1], tuple(c[2:]), self._span(meta))

    def start(self, meta, c):
        return tuple(c)

    # -- clauses ---------------------------------------------------------------------
    def from_clause(self, meta, c):
        return ast.From(c[0], self._span(meta))

    def where_clause(self, meta, c):
        return ast.Where(c[0], self._span(meta))

    def group_clause(self, meta, c):
        return ast.GroupBy(tuple(c), self._span(meta))

    def window_clause(self, meta, c):
        w = c[0]
        return ast.Window(w.kind, w.size, w.every, w.gap, w.count, self._span(meta))

    def tumbling(self, meta, c):
        return ast.Window("tumbling", size=self._duration(c[0]), span=self._span(meta))

    def sliding(self, meta, c):
        return ast.Window("sliding", size=self._duration(c[0]), every=self._duration(c[1]), span=self._span(meta))

    def session(self, meta, c):
        return ast.Window("session", gap=self._duration(c[0]), span=self._span(meta))

    def count_window(self, meta, c):
        tok = c[0]
        return ast.Window("count", count=ast.Literal(int(tok), "int", tok.value, _tok_span(self.file, tok)), span=self._span(meta))

    def having_clause(self, meta, c):
        return ast.Having(c[0], self._span(meta))

    def schedule_clause(self, meta, c):
        return ast.Schedule(c[0], self._duration(c[1]), self._span(meta))

    def pattern_clause(self, meta, c):
        within = self._duration(c[2]) if c[2] is not None else None
        return ast.Pattern(c[0], within, self._span(meta))

    def define(self, meta, c):
        return ast.Definition(c[0], c[1], self._span(meta))

    def define_clause(self, meta, c):
        return ast.Define(tuple(c), self._span(meta))

    def absent_clause(self, meta, c):
        return ast.Absent(self._duration(c[0]), self._span(meta))

    def anomaly_clause(self, meta, c):
        method, rest = c[0], c[1:]
        args = tuple(a for a in rest[:-4] if a is not None)
        b_tok, b_val, w_tok, w_val = rest[-4:]

        def lit(tok):
            return None if tok is None else ast.Literal(int(tok), "int", tok.value, _tok_span(self.file, tok))

        return ast.Anomaly(method, args, lit(b_val), lit(w_val), self._span(meta))

    def severity_clause(self, meta, c):
        return ast.Severity(c[0], self._span(meta))

    def throttle_clause(self, meta, c):
        return ast.Throttle(self._duration(c[0]), self._span(meta))

    def notify_clause(self, meta, c):
        names = [x for x in c[:-2]]
        return ast.Notify(tuple(names), c[-1], self._span(meta))

    def message_clause(self, meta, c):
        return ast.Message(c[0], self._span(meta))


# ----------------------------------------------------------------------------- syntax errors

_TOP_LEVEL = re.compile(r"^[ \t]*(stream|channel|rule)\b", re.M)

_TERMINAL_WORDS = {
    "NAME": "a name",
    "QUOTED_NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "LONG_STRING": "a string",
    "DURATION": "a duration such as `5m`",
    "COMP_OP": "a comparison",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "COMMA": "`,`",
    "COLON": "`:`",
    "DOT": "`.`",
    "EQUAL": "`=`",
    "$END": "end of file",
}


_EXPR_START = {"INT", "FLOAT", "STRING", "NAME", "LPAR", "LSQB"}
_OPERATORS = {"PLUS", "STAR", "SLASH", "PERCENT", "COMP_OP"}


def _describe_expected(expected: set[str]) -> str:
    # Long lists of tokens help nobody: name the category instead.
    if _EXPR_START <= expected:
        return "an expression"
    if _OPERATORS <= expected:
        rest = {t for t in expected if t not in _OPERATORS and t not in ("MINUS", "DOT", "LPAR")}
        tail = _describe_expected(rest) if rest else ""
        return "an operator" + (f", or {tail}" if tail else "")
    words = set()
    for term in expected:
        if term in _TERMINAL_WORDS:
            words.add(_TERMINAL_WORDS[term])
            continue
        try:
            pattern = grammar().get_terminal(term).pattern
        except KeyError:
            words.add(term.lower())
            continue
        words.add(f"`{pattern.value}`" if pattern.type == "str" else term.lower())
    ordered = sorted(words)
    if len(ordered) > 8:
        ordered = ordered[:8] + ["…"]
    return ", ".join(ordered)


def _syntax_diagnostic(file: str, err: UnexpectedInput, text: str) -> Diagnostic:
    line, col = err.line, err.column
    if isinstance(err, UnexpectedToken) and err.token.type == "$END":
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
        span = ast.Span(file, line, col, line, col + 1)
        return Diagnostic(span, "unexpected end of file", (f"expected {_describe_expected(set(err.expected))}",), code="syntax")
    if isinstance(err, UnexpectedToken):
        tok = err.token
        span = _tok_span(file, tok)
        if tok.value in ("stream", "channel", "rule"):
            return Diagnostic(
                span,
                f"unexpected `{tok.value}`: the declaration before it is incomplete",
                (f"expected {_describe_expected(set(err.expected))} before it",),
                code="syntax",
            )
        if tok.value in keywords() and ({"NAME", "QUOTED_NAME"} & set(err.expected)):
            return Diagnostic(
                span,
                f"`{tok.value}` is a reserved keyword and cannot be used as a name here",
                (f"write it in backquotes to use it as a name: `{tok.value}` → `\`{tok.value}\``",),
                code="keyword-as-name",
            )
        shown = tok.value if len(tok.value) <= 30 else tok.value[:27] + "..."
        hints = [f"expected {_describe_expected(set(err.expected))}"]
        if tok.value == "=":
            hints.insert(0, "equality is written `==`")
        if tok.type == "INT" and "DURATION" in err.expected:
            hints.insert(0, "a duration needs a unit: ms, s, m, h or d (e.g. `5m`)")
        return Diagnostic(span, f"unexpected `{shown}`", tuple(hints), code="syntax")
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        span = ast.Span(file, line, col, line, col + 1)
        hints: list[str] = []
        if ch == '"':
            hints.append("this string is not closed before the end of the line; use \"\"\"...\"\"\" for text over several lines")
        elif ch == "'":
            hints.append('strings use double quotes: "..."')
        elif ch == "`":
            hints.append("a backquoted name must be closed on the same line")
        elif ch.isdigit():
            hints.append("a duration unit is one of ms, s, m, h, d")
        elif ch in "&|!" or ch == "=":
            hints.append("logical operators are `and`, `or`, `not`; equality is `==`")
        return Diagnostic(span, f"unexpected character `{ch}`" if ch.strip() else "unexpected character", tuple(hints), code="syntax")
    if isinstance(err, UnexpectedEOF):
        lines = text.splitlines() or [""]
        span = ast.Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        return Diagnostic(span, "unexpected end of file", code="syntax")
    span = ast.Span(file, line or 1, col or 1, line or 1, (col or 1) + 1)
    return Diagnostic(span, "syntax error", code="syntax")


def _blank(text: str, start: int, end: int) -> str:
    """Replace text[start:end] by spaces, keeping newlines (so positions stay put)."""
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def _failed_region(text: str, offset: int) -> tuple[int, int]:
    """The declaration around `offset`: from the last top-level keyword at or before it
    to the next one after it."""
    starts = [m.start() for m in _TOP_LEVEL.finditer(text)]
    begin = max((s for s in starts if s <= offset), default=0)
    end = min((s for s in starts if s > offset), default=len(text))
    if end <= begin:
        end = len(text)
    return begin, end


def _nesting_depth(text: str) -> int:
    depth = best = 0
    in_str = False
    for ch in text:
        if ch == '"':
            in_str = not in_str
        elif not in_str and ch in "([{":
            depth += 1
            best = max(best, depth)
        elif not in_str and ch in ")]}":
            depth -= 1
    return best


def parse(text: str, file: str = "<string>") -> tuple[ast.File | None, list[Diagnostic]]:
    """Parse a `.cep` file. Returns the AST (None when nothing could be parsed) and
    every syntax diagnostic found."""
    diags: list[Diagnostic] = []
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        span = ast.Span(file, 1, 1, 1, 2)
        return None, [Diagnostic(span, f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", code="limit")]
    if _nesting_depth(text) > MAX_NESTING:
        span = ast.Span(file, 1, 1, 1, 2)
        return None, [Diagnostic(span, f"expressions are nested more than {MAX_NESTING} levels deep", code="limit")]

    work = text
    broken: set[str] = set()
    for _ in range(MAX_SYNTAX_ERRORS + 1):
        _comments.items = []
        try:
            tree = grammar().parse(work)
        except UnexpectedInput as err:
            diags.append(_syntax_diagnostic(file, err, text))
            offset = getattr(err, "pos_in_stream", None)
            if offset is None and isinstance(err, UnexpectedToken):
                offset = err.token.start_pos
            if offset is None or isinstance(err, UnexpectedEOF) or (
                isinstance(err, UnexpectedToken) and err.token.type == "$END"
            ):
                offset = len(work)
            # An unexpected top-level keyword means the declaration *before* it broke.
            at_keyword = isinstance(err, UnexpectedToken) and err.token.value in ("stream", "channel", "rule")
            if offset >= len(work) or at_keyword:
                offset = max(offset - 1, 0)
            begin, end = _failed_region(work, offset)
            if not work[begin:end].strip():
                break
            head = re.match(r"\s*(?:stream|channel|rule)\s+`?([A-Za-z_][A-Za-z0-9_]*)", work[begin:end])
            if head:
                broken.add(head.group(1))
            work = _blank(work, begin, end)
            if len(diags) >= MAX_SYNTAX_ERRORS:
                break
            continue
        except RecursionError:
            span = ast.Span(file, 1, 1, 1, 2)
            return None, [Diagnostic(span, "the file is nested too deeply to parse", code="limit")]
        comments = tuple(
            ast.Comment(t.value, _tok_span(file, t)) for t in _comments.items
        )
        transformer = _ToAst(file)
        try:
            decls = transformer.transform(tree)
        except VisitError as e:  # a bug in the transformer, not the user's fault
            raise e.orig_exc from e
        diags.extend(transformer.problems)
        return ast.File(decls, comments, file, frozenset(broken)), diags
    return None, diags
