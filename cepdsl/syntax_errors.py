"""Lark's syntax errors → diagnostics a rule author can act on.

Lark reports "unexpected token X, expected one of {40 terminals}".  A person
needs the category of what was expected ("an expression", "a clause"), a
"did you mean" when a keyword is misspelt, and the usual slips named outright
(`=` for `==`, `5` without a unit, `count(*)`, single quotes, a missing
comma).  The expected set comes from the interactive parser's `accepts()`,
which is exact; `UnexpectedToken.expected` lists lookaheads of every context
that shares the LALR state.
"""

from __future__ import annotations

import re
import unicodedata

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from cepdsl import ast
from cepdsl.diagnostics import Diagnostic, nearest
from cepdsl.keywords import CONTEXTUAL, DECL_KEYWORDS

_EXPR_START = {"INT", "FLOAT", "STRING", "LONG_STRING", "NAME", "QUOTED_NAME", "LPAR", "LSQB"}
_OPERATORS = {
    "PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "COMP_OP", "AND", "OR",
    "CONTAINS", "STARTS_WITH", "ENDS_WITH", "MATCHES", "IN", "IS", "NOT",
}  # fmt: skip
_CLAUSES = {
    "FROM", "WHERE", "GROUP", "WINDOW", "HAVING", "SCHEDULE", "PATTERN", "DEFINE",
    "ABSENT", "ANOMALY", "SEVERITY", "THROTTLE", "NOTIFY", "MESSAGE", "JOIN", "FOR", "RESOLVE",
}  # fmt: skip
_DECLS = {"STREAM", "CHANNEL", "TABLE", "TEMPLATE", "SILENCE", "RULE"}
#: What a clause keyword is called in a hint (`group` is always `group by`).
_CLAUSE_WORD = {"GROUP": "group by", "ABSENT": "absent for"}

_TERMINAL_WORDS = {
    "NAME": "a name",
    "QUOTED_NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "LONG_STRING": "a string",
    "DURATION": "a duration such as `5m`",
    "COMP_OP": "a comparison",
    "$END": "end of file",
}


def _terminal_text(lark: Lark, term: str) -> str | None:
    """The literal text of a keyword or punctuation terminal, or None for patterns."""
    try:
        pattern = lark.get_terminal(term).pattern
    except KeyError:
        return None
    return pattern.value if pattern.type == "str" else None


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def describe_expected(lark: Lark, expected: set[str]) -> str:
    """Name what the parser would have accepted, by category where one fits."""
    parts: list[str] = []
    rest = set(expected)
    if "NAME" in rest:
        # Contextual keywords are names there (§9.1): "a name" says it, listing them would not.
        rest = {t for t in rest if (_terminal_text(lark, t) or "") not in CONTEXTUAL}
    if _EXPR_START <= rest | {"LONG_STRING", "QUOTED_NAME"} and {"INT", "NAME", "LPAR"} <= rest:
        parts.append("an expression")
        rest -= _EXPR_START | {"FLOAT", "MINUS", "NOT", "TRUE", "FALSE", "NULL", "DURATION", "LBRACE"}
        # After `f(` the option names of channel calls (`channel =`, `severity =`) are
        # also acceptable; listing those keywords next to "an expression" misleads.
        rest = {t for t in rest if not re.fullmatch(r"[a-z_]+", _terminal_text(lark, t) or "")}
    if len(rest & _OPERATORS) >= 3:
        parts.append("an operator")
        rest -= _OPERATORS | {"DOT", "LPAR"}
    if len(rest & _CLAUSES) >= 3:
        parts.append("another clause (`where`, `window`, `severity`, ...)")
        rest -= _CLAUSES
    if _DECLS <= rest:
        parts.append("a new declaration (`stream`, `channel`, `table`, `template`, `silence` or `rule`)")
        rest -= _DECLS | {"$END"}
    singles = set()
    for term in rest:
        if term in _TERMINAL_WORDS:
            singles.add(_TERMINAL_WORDS[term])
        else:
            text = _terminal_text(lark, term)
            singles.add(f"`{text}`" if text is not None else term.lower())
    ordered = sorted(singles)
    if len(ordered) > 8:
        ordered = ordered[:8] + ["..."]
    return _join(parts + ordered)


def _accepted(err: UnexpectedToken) -> set[str]:
    try:
        return set(err.interactive_parser.accepts())
    except Exception:  # accepts() re-runs the parser; fall back to lark's own list
        return set(err.expected)


def _show(value: str) -> str:
    return value if len(value) <= 30 else value[:27] + "..."


def _char_name(ch: str) -> str:
    """A character as it can be printed in a message: control characters by code."""
    if ch.isprintable() and not ch.isspace():
        return f"`{ch}`"
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" ({name.lower()})" if name else "")


def _eof_span(file: str, text: str) -> ast.Span:
    # Point just after the last code, which is where something is missing.
    return _end_of_code_span(file, text, len(text))


def without_comment_tail(line: str) -> str:
    """`line` without its trailing comment: from the first `#` after the line's last `"`
    (what `re.sub(r'#[^"]*$', "", line)` gives, in one pass: that regex backtracks
    quadratically on a line of many `#` before a quote, 0.7 s for a 70 KB fuzz input)."""
    hash_at = line.find("#", line.rfind('"') + 1)
    return line if hash_at < 0 else line[:hash_at]


def _end_of_code_span(file: str, text: str, offset: int) -> ast.Span:
    """The position just after the last code before `offset` (comments and blank
    lines skipped): where a declaration that ended too early needed more."""
    lines = text[:offset].split("\n")
    idx = len(lines) - 1
    while idx > 0 and not without_comment_tail(lines[idx]).strip():
        idx -= 1
    col = len(without_comment_tail(lines[idx]).rstrip()) + 1
    return ast.Span(file, idx + 1, col, idx + 1, col + 1)


def _tok_span(file: str, tok: Token) -> ast.Span:
    return ast.Span(file, tok.line or 1, tok.column or 1, tok.end_line or 1, tok.end_column or 1)


def syntax_diagnostic(
    lark: Lark, keywords: frozenset[str], file: str, err: UnexpectedInput, text: str, parsed: str | None = None
) -> Diagnostic:
    """`parsed`: the text the parser read, when recovery blanked broken declarations out of
    `text` (same positions); what was expected at a point is asked of it."""
    if isinstance(err, UnexpectedToken):
        if err.token.type == "$END":
            expected = describe_expected(lark, _accepted(err))
            return Diagnostic(_eof_span(file, text), "unexpected end of file", (f"expected {expected}",), code="syntax")
        return _unexpected_token(lark, keywords, file, err, text, text if parsed is None else parsed)
    if isinstance(err, UnexpectedCharacters):
        return _unexpected_character(file, err, text)
    if isinstance(err, UnexpectedEOF):
        return Diagnostic(_eof_span(file, text), "unexpected end of file", code="syntax")
    line, col = getattr(err, "line", 1) or 1, getattr(err, "column", 1) or 1
    return Diagnostic(ast.Span(file, line, col, line, col + 1), "syntax error", code="syntax")


_RULE_AT_LINE_START = re.compile(r"(?:^|\n)[ \t]*(rule)[ \t]+$")


def declaration_read_as_name(text: str, tok: Token) -> int | None:
    """Offset of a `rule` that starts the token's line and was read as a name, or None.

    `rule` is also a field (silences match on it, §9.1), so after an unfinished clause
    (`where`, `from`, ...) the parser takes the next declaration's `rule` as that field
    and only fails at the rule's name.  A name right after a line-leading `rule` is
    never an expression: the declaration before it is the one that broke."""
    if tok.start_pos is None or tok.type not in ("NAME", "QUOTED_NAME"):
        return None
    m = _RULE_AT_LINE_START.search(text, max(tok.start_pos - 200, 0), tok.start_pos)
    return None if m is None else m.start(1)


def _expected_before(lark: Lark, text: str, offset: int) -> str | None:
    """What the parser needed at `offset` (the text cut there): exact, from the parser itself."""
    try:
        lark.parse(text[:offset])
    except UnexpectedToken as err:
        if err.token.type == "$END":
            return describe_expected(lark, _accepted(err))
    except UnexpectedInput:
        return None
    return None


def _unexpected_token(lark: Lark, keywords: frozenset[str], file: str, err: UnexpectedToken, text: str, parsed: str) -> Diagnostic:
    tok = err.token
    span = _tok_span(file, tok)
    accepted = _accepted(err)
    expected = describe_expected(lark, accepted)
    before = text[: tok.start_pos].rstrip() if tok.start_pos is not None else ""
    after = text[tok.end_pos :] if tok.end_pos is not None else ""

    if tok.value in DECL_KEYWORDS and tok.type != "QUOTED_NAME" and "$END" not in accepted:
        # The next declaration began while this one still needed something: the
        # caret goes where that something is missing, not under the next keyword.
        return Diagnostic(
            _end_of_code_span(file, text, tok.start_pos or 0),
            "unexpected end of declaration",
            (f"expected {expected}", f"the next declaration starts at line {tok.line}"),
            code="syntax",
        )
    rule_start = declaration_read_as_name(text, tok)
    if rule_start is not None:
        next_line = text.count("\n", 0, rule_start) + 1
        # `rule` at the start of a line, read as a name (silences' `rule` field, §9.1) because
        # the declaration before it was unfinished: report that one, as for `stream`.
        needed = _expected_before(lark, parsed, rule_start)
        return Diagnostic(
            _end_of_code_span(file, parsed, rule_start),  # the code the parser read (recovery blanks some)
            "unexpected end of declaration",
            ((f"expected {needed}",) if needed else ()) + (f"the next declaration starts at line {next_line}",),
            code="syntax",
        )
    kw_field = re.search(r"(?<![A-Za-z0-9_`])(rule|severity)$", before)
    if kw_field and "PLUS" in accepted:  # PLUS: the word was read as an operand
        # `rule`/`severity` parse as fields for silences (§9.1); anywhere else, an
        # expression that stops at them was most likely left unfinished.
        start = len(before) - len(kw_field.group(1))
        line = text.count("\n", 0, start) + 1
        col = start - (text.rfind("\n", 0, start) + 1) + 1
        word = kw_field.group(1)
        return Diagnostic(
            ast.Span(file, line, col, line, col + len(word)),
            f"expected an expression, found the keyword `{word}`",
            (f"if `{word}` is a field, write it in backquotes: `` `{word}` ``",),
            code="syntax",
        )
    if tok.value in keywords and tok.type != "QUOTED_NAME" and "NAME" in accepted:
        quoted = f"`` `{tok.value}` ``"
        if {"INT", "LPAR"} <= accepted:  # an expression was expected: maybe it is just missing
            return Diagnostic(
                span,
                f"expected an expression, found the keyword `{tok.value}`",
                (f"if `{tok.value}` is a field, write it in backquotes: {quoted}",),
                code="syntax",
            )
        return Diagnostic(
            span,
            f"`{tok.value}` is a reserved keyword and cannot be used as a name here",
            (f"write it in backquotes to use it as a name: {quoted}",),
            code="keyword-as-name",
        )

    hints: list[str] = []
    message = f"unexpected `{_show(tok.value)}`"
    if tok.type == "INT" and re.match(r"[A-Za-z_]", after):
        word = tok.value + re.match(r"[A-Za-z0-9_]*", after).group(0)  # type: ignore[union-attr]
        span = ast.Span(file, span.line, span.col, span.line, span.col + len(word))
        message = f"`{_show(word)}` is not a number or a duration"
        hints.append("duration units are ms, s, m, h and d, e.g. `500ms`, `5m`, `7d`")
        return Diagnostic(span, message, tuple(hints), code="syntax")
    if tok.value == "=" and "COMP_OP" in accepted | set(err.expected):
        hints.append("equality is written `==`")
    if tok.type == "INT" and "DURATION" in accepted:
        hints.append("a duration needs a unit right after the number: ms, s, m, h or d (e.g. `5m`)")
    if tok.type == "MINUS" and "DURATION" in accepted:
        hints.append("durations cannot be negative")
    if tok.type in ("QMARK", "STAR", "PLUS", "LBRACE") and before[-1:] in ("?", "*", "+", "}"):
        hints.append("a step takes one quantifier; to repeat a repetition, group it: `(a+)?`")
    if tok.type == "STAR" and before.endswith("count("):
        hints.append("`count()` counts rows; `count(field)` counts non-null values")
    if tok.type == "LPAR" and "LSQB" in accepted and before.endswith("in"):
        hints.append("the values after `in` are a list in square brackets: `[1, 2]`")
    if tok.type in ("NAME", "QUOTED_NAME", "STRING", "INT", "FLOAT", "DURATION") and "COMMA" in accepted:
        hints.append("is a `,` missing before it?")
    if tok.type == "NAME":
        words = [w for w in (_terminal_text(lark, t) for t in accepted) if w and re.fullmatch(r"[a-z_]+", w)]
        best = nearest(tok.value, words)
        if best:
            hints.insert(0, f"did you mean `{_CLAUSE_WORD.get(best.upper(), best)}`?")
    hints.append(f"expected {expected}")
    return Diagnostic(span, message, tuple(hints), code="syntax")


def _unexpected_character(file: str, err: UnexpectedCharacters, text: str) -> Diagnostic:
    pos = err.pos_in_stream
    ch = text[pos] if pos < len(text) else ""
    line, col = err.line, err.column
    span = ast.Span(file, line, col, line, col + 1)
    if ch == '"':
        if text[max(pos - 2, 0) : pos] == '""':  # `"""` lexed as `""` then a stray `"`
            span = ast.Span(file, line, col - 2, line, col + 1)
            return Diagnostic(span, 'this `"""` string is never closed', ('a long string ends with `"""`',), code="syntax")
        return Diagnostic(
            span,
            "this string is not closed on its line",
            ('close it with `"`; for text over several lines use `"""...."""`',),
            code="syntax",
        )
    if ch == "`":
        return Diagnostic(span, "this backquoted name is not closed on its line", ("close it with a backquote",), code="syntax")
    hints: list[str] = []
    if ch == "'":
        hints.append('strings are written in double quotes: "..."')
    elif ch in "&|" or ch == "!":
        hints.append("logical operators are `and`, `or` and `not`; `!=` means not equal")
    elif ch == ";":
        hints.append("clauses and declarations need no terminator")
    elif ch == "$" or ch == "@":
        hints.append("names are letters, digits and `_`")
    return Diagnostic(span, f"unexpected character {_char_name(ch)}" if ch else "unexpected character", tuple(hints), code="syntax")
