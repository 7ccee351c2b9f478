"""Parser unit tests: every construct → its AST node, spans where carets depend
on them, reserved keywords, escapes, durations, comments and error recovery."""

from __future__ import annotations

import pytest

from cepdsl import ast
from cepdsl.parser import MAX_DURATION_US, keywords, parse
from cepdsl.types import US_PER

S = "stream s (ts: timestamp, x: int, y: str, a.b: float)\n"


def N(v: str) -> ast.Name:
    return ast.Name(v)


def P(*parts: str) -> ast.Path:
    return ast.Path(tuple(N(p) for p in parts))


def F(*parts: str) -> ast.FieldRef:
    return ast.FieldRef(P(*parts))


def I(v: int) -> ast.Literal:  # noqa: E743
    return ast.Literal(v, "int")


def Str(v: str) -> ast.Literal:
    return ast.Literal(v, "str")


def rule_of(text: str) -> ast.RuleDecl:
    tree, diags = parse(S + text, "t.cep")
    assert diags == [], diags
    assert tree is not None
    (rule,) = [d for d in tree.decls if isinstance(d, ast.RuleDecl)]
    return rule


def where(expr_text: str) -> ast.Expr:
    return rule_of(f"rule r from s where {expr_text}").clause(ast.Where).expr


def errors(text: str) -> list:
    tree, diags = parse(text, "t.cep")
    return diags


# ----------------------------------------------------------------------------- declarations


def test_stream_declaration() -> None:
    tree, diags = parse("stream m (ts: timestamp, data.avg: float, `window`: int,)\n  time ts\n  lateness 5s\n")
    assert diags == []
    (s,) = tree.decls
    assert s == ast.StreamDecl(
        N("m"),
        (
            ast.FieldDecl(P("ts"), N("timestamp")),
            ast.FieldDecl(P("data", "avg"), N("float")),
            ast.FieldDecl(P("window"), N("int")),
        ),
        P("ts"),
        ast.Duration(5 * US_PER["s"]),
    )
    assert s.fields[2].path.parts[0].quoted is True


def test_channel_declaration_with_env_list_and_map() -> None:
    tree, _ = parse('channel c = webhook(url = env("U"), headers = {"X": "y"}, retries = 2, channel = "#x")')
    (c,) = tree.decls
    assert c.name == N("c") and c.kind == N("webhook")
    assert [a.name.value for a in c.args] == ["url", "headers", "retries", "channel"]
    assert c.args[0].value == ast.Call(N("env"), (ast.Arg(Str("U")),))
    assert c.args[1].value == ast.MapLit(((Str("X"), Str("y")),))
    assert c.args[2].value == I(2)


def test_rule_title_and_every_clause_kind() -> None:
    r = rule_of(
        'rule r "Title"\n from s\n where x > 1\n group by y, a.b\n window tumbling 5m\n having count() > 2\n'
        " severity high\n throttle 15m\n notify c1, c2 fallback c3\n message \"{{ y }}\"\n"
    )
    assert r.id == N("r") and r.title == Str("Title")
    assert [type(c) for c in r.clauses] == [
        ast.From,
        ast.Where,
        ast.GroupBy,
        ast.Window,
        ast.Having,
        ast.Severity,
        ast.Throttle,
        ast.Notify,
        ast.Message,
    ]
    assert r.clause(ast.From) == ast.From(N("s"))
    assert r.clause(ast.GroupBy) == ast.GroupBy((P("y"), P("a", "b")))
    assert r.clause(ast.Window) == ast.Window("tumbling", size=ast.Duration(5 * US_PER["m"]))
    assert r.clause(ast.Having).expr == ast.Binary(">", ast.Call(N("count"), ()), I(2))
    assert r.clause(ast.Severity) == ast.Severity(N("high"))
    assert r.clause(ast.Throttle) == ast.Throttle(ast.Duration(15 * US_PER["m"]))
    assert r.clause(ast.Notify) == ast.Notify((N("c1"), N("c2")), N("c3"))
    assert r.clause(ast.Message) == ast.Message(Str("{{ y }}"))


@pytest.mark.parametrize(
    "text, node",
    [
        ("window sliding 5m every 1m", ast.Window("sliding", size=ast.Duration(300_000_000), every=ast.Duration(60_000_000))),
        ("window session gap 30s", ast.Window("session", gap=ast.Duration(30_000_000))),
        ("window last 20 events", ast.Window("count", count=I(20))),
        ('schedule "0 9 * * *" over 24h', ast.Schedule(Str("0 9 * * *"), ast.Duration(24 * US_PER["h"]))),
        ("absent for 2m", ast.Absent(ast.Duration(120_000_000))),
        (
            "anomaly zscore(x, threshold = 3.0) baseline 100 warmup 10",
            ast.Anomaly(N("zscore"), (ast.Arg(F("x")), ast.Arg(ast.Literal(3.0, "float"), N("threshold"))), I(100), I(10)),
        ),
        ("anomaly iqr(x)", ast.Anomaly(N("iqr"), (ast.Arg(F("x")),))),
    ],
)
def test_shape_clauses(text: str, node: object) -> None:
    r = rule_of(f"rule r from s {text}")
    assert r.clauses[1] == node


def test_pattern_and_define() -> None:
    r = rule_of('rule r from s pattern a? (b | c d)+ e{2} f{2,} g{1,3} h* within 10m define a as x > 1, b as y == "z"')
    p = r.clause(ast.Pattern)
    step = lambda n: ast.PatStep(N(n))  # noqa: E731
    assert p.within == ast.Duration(600_000_000)
    # Alternation and sequence nodes are always present (one option, one item), as the grammar aliases them.
    assert p.regex == ast.PatAlt(
        (
            ast.PatSeq(
                (
                    ast.PatRepeat(step("a"), 0, 1),
                    ast.PatRepeat(ast.PatAlt((ast.PatSeq((step("b"),)), ast.PatSeq((step("c"), step("d"))))), 1, None),
                    ast.PatRepeat(step("e"), 2, 2),
                    ast.PatRepeat(step("f"), 2, None),
                    ast.PatRepeat(step("g"), 1, 3),
                    ast.PatRepeat(step("h"), 0, None),
                )
            ),
        )
    )
    items = p.regex.options[0].items
    assert [q.text for q in items] == ["?", "+", "{2}", "{2,}", "{1,3}", "*"]
    assert (items[1].span.col, items[1].span.end_col) == (26, 36)  # `(b | c d)+`
    d = r.clause(ast.Define)
    assert [i.name.value for i in d.items] == ["a", "b"]
    assert d.items[0].expr == ast.Binary(">", F("x"), I(1))


# ----------------------------------------------------------------------------- expressions


def test_precedence_or_and_not_comparison_arith() -> None:
    e = where("not x > 1 + 2 * 3 or y == \"a\" and x < -4")
    assert e == ast.Binary(
        "or",
        ast.Unary("not", ast.Binary(">", F("x"), ast.Binary("+", I(1), ast.Binary("*", I(2), I(3))))),
        ast.Binary("and", ast.Binary("==", F("y"), Str("a")), ast.Binary("<", F("x"), I(-4))),
    )


def test_arithmetic_is_left_associative_and_parens_group() -> None:
    assert where("x - 1 - 2 > 0").left == ast.Binary("-", ast.Binary("-", F("x"), I(1)), I(2))
    assert where("x - (1 - 2) > 0").left == ast.Binary("-", F("x"), ast.Binary("-", I(1), I(2)))
    assert where("x % 2 / 3 > 0").left == ast.Binary("/", ast.Binary("%", F("x"), I(2)), I(3))


@pytest.mark.parametrize("op", ["contains", "starts_with", "ends_with", "matches"])
def test_string_operators(op: str) -> None:
    assert where(f'y {op} "a"') == ast.Binary(op, F("y"), Str("a"))


def test_in_not_in_is_null() -> None:
    assert where("x in [1, 2, null]") == ast.InList(F("x"), ast.ListLit((I(1), I(2), ast.Literal(None, "null"))), False)
    assert where('y not in ["a",]') == ast.InList(F("y"), ast.ListLit((Str("a"),)), True)
    assert where("y is null") == ast.IsNull(F("y"), False)
    assert where("y is not null") == ast.IsNull(F("y"), True)


def test_literals_and_calls() -> None:
    e = where("round(a.b, 2) == 1.5e3 and x != -2 and true and not false and ts + 500ms > ts")
    first = e.left.left.left.left
    assert first == ast.Binary("==", ast.Call(N("round"), (ast.Arg(F("a", "b")), ast.Arg(I(2)))), ast.Literal(1500.0, "float"))
    assert e.right.left.right == ast.Literal(500 * US_PER["ms"], "duration")


def test_unary_minus_folds_into_number_literals_only() -> None:
    assert where("x > -5") == ast.Binary(">", F("x"), I(-5))
    assert where("-x > 0").left == ast.Unary("-", F("x"))


@pytest.mark.parametrize(
    "text, us", [("500ms", 500_000), ("30s", 30_000_000), ("5m", 300_000_000), ("1h", 3_600_000_000), ("7d", 604_800_000_000)]
)
def test_duration_units(text: str, us: int) -> None:
    assert rule_of(f"rule r from s throttle {text}").clause(ast.Throttle).duration == ast.Duration(us)


# ----------------------------------------------------------------------------- strings


def test_escapes() -> None:
    assert where(r'y == "a\"b\\c\nd\te"').right == Str('a"b\\c\nd\te')


def test_long_string_spans_lines_and_keeps_text() -> None:
    r = rule_of('rule r from s message """line 1\n  "quoted" {{ y }}\nend"""')
    assert r.clause(ast.Message).template.value == 'line 1\n  "quoted" {{ y }}\nend'


def test_unknown_escape_is_reported_under_the_escape() -> None:
    diags = errors(S + 'rule r from s where y matches "ab\\d+"')
    (d,) = diags
    assert d.message == "unknown escape `\\d` in string"
    assert (d.span.line, d.span.col, d.span.end_col) == (2, 34, 36)


# ----------------------------------------------------------------------------- spans


def test_spans_mark_the_exact_tokens() -> None:
    tree, _ = parse(S + "rule hot\n  from s\n  where x >= 10 and y == \"a\"\n", "f.cep")
    r = tree.decls[1]
    assert (r.id.span.line, r.id.span.col, r.id.span.end_col) == (2, 6, 9)
    frm = r.clause(ast.From)
    assert (frm.span.line, frm.span.col) == (3, 3)
    assert (frm.stream.span.col, frm.stream.span.end_col) == (8, 9)
    w = r.clause(ast.Where).expr
    cmp = w.left
    assert (cmp.op_span.line, cmp.op_span.col, cmp.op_span.end_col) == (4, 11, 13)
    assert (cmp.left.span.col, cmp.left.span.end_col) == (9, 10)
    assert (cmp.right.span.col, cmp.right.span.end_col) == (14, 16)
    assert w.span.file == "f.cep"


def test_parenthesised_expression_span_includes_the_parens() -> None:
    tree, _ = parse(S + "rule r from s where (x > 1) and x < 5")
    w = tree.decls[1].clause(ast.Where).expr
    assert (w.span.col, w.span.end_col) == (21, 38)


# ----------------------------------------------------------------------------- keywords and comments


def test_keywords_are_reserved_and_backquotes_free_them() -> None:
    kw = keywords()
    for word in ("stream", "rule", "from", "where", "window", "in", "is", "not", "null", "join", "for", "resolve"):
        assert word in kw
    for word in ("time", "last", "as", "within", "events", "match", "key"):  # contextual since v2 (§9.1)
        assert word not in kw
    assert "count" not in kw and "avg" not in kw  # functions are names
    (d,) = errors("stream s (ts: timestamp, window: int)")
    assert d.code == "keyword-as-name" and "`window`" in d.message
    tree, diags = parse("stream s (ts: timestamp, `window`: int)\nrule r from s where `window` > 1")
    assert diags == []
    assert tree.decls[1].clause(ast.Where).expr.left == F("window")


def test_comments_are_collected_with_spans() -> None:
    tree, diags = parse("# head\nstream s (ts: timestamp) # tail\n", "c.cep")
    assert diags == []
    assert [c.text for c in tree.comments] == ["# head", "# tail"]
    assert (tree.comments[1].span.line, tree.comments[1].span.col) == (2, 26)


def test_channel_option_names_may_be_keywords() -> None:
    tree, diags = parse('channel c = slack(webhook_url = "u", channel = "#x")')
    assert diags == [] and tree.decls[0].args[1].name == N("channel")


# ----------------------------------------------------------------------------- errors and recovery


def test_several_syntax_errors_in_one_file_are_all_reported() -> None:
    text = S + "rule a from s where x >> 1\nrule b from s where x > 1\nrule c from s window tumbling\nrule d from s severity = high\n"
    tree, diags = parse(text)
    assert [(d.span.line, d.message) for d in diags] == [
        (2, "unexpected `>`"),
        (4, "unexpected end of declaration"),
        (5, "unexpected `=`"),
    ]
    # the good declarations survive, the broken ones are remembered (no "unknown rule" cascades)
    assert [d.id.value for d in tree.decls if isinstance(d, ast.RuleDecl)] == ["b"]
    assert tree.broken == frozenset({"a", "c", "d"})


@pytest.mark.parametrize(
    "text, message, hint",
    [
        ("rule r from s where y = \"a\"", "unexpected `=`", "equality is written `==`"),
        ("rule r from s window tumbling 5", "unexpected `5`", "a duration needs a unit"),
        ("rule r from s throttle 5min", "`5min` is not a number or a duration", "duration units are"),
        ("rule r from s absent for -1m", "unexpected `-`", "durations cannot be negative"),
        ("rule r from s wher x > 1", "unexpected `wher`", "did you mean `where`?"),
        ("rule r from s where y in (1)", "unexpected `(`", "square brackets"),
        ("rule r from s where y == 'a'", "unexpected character `'`", "double quotes"),
        ("rule r from s where y == \"a", "this string is not closed on its line", "close it"),
        ("rule r from s where x > 1 &&", "unexpected character `&`", "`and`"),
    ],
)
def test_syntax_messages_name_the_usual_slips(text: str, message: str, hint: str) -> None:
    (d,) = errors(S + text)
    assert d.message == message
    assert any(hint in h for h in d.hints), d.hints


def test_end_of_file_points_after_the_last_code() -> None:
    (d,) = errors(S + "rule r from s where\n\n# trailing comment\n")
    assert d.message == "unexpected end of file"
    assert (d.span.line, d.span.col) == (2, 20)
    assert d.hints == ("expected an expression",)


def test_limits() -> None:
    (d,) = errors(S + "rule r from s where " + "(" * 70 + "x > 1" + ")" * 70)
    assert d.code == "limit" and (d.span.line, d.span.col) == (2, 85)
    (d,) = errors(S + "rule r from s where " + " or ".join(["x > 1"] * 300))
    assert d.code == "limit" and (d.span.line, d.span.col) == (2, 21)
    (d,) = errors(S + "rule r from s window tumbling 36501d")
    assert d.message == "duration `36501d` is too long"
    assert rule_of("rule r from s window tumbling 36500d").clause(ast.Window).size.us == MAX_DURATION_US
    (d,) = errors("#" * (5 * 1024 * 1024))
    assert d.code == "limit" and "at most 4 MiB" in d.message


def test_brackets_in_strings_and_comments_do_not_count_as_nesting() -> None:
    text = S + "# " + "(" * 100 + "\nrule r from s where y == \"" + "[" * 100 + "\""
    assert errors(text) == []


def test_empty_and_comment_only_files() -> None:
    for text in ("", "\n\n", "# only\n"):
        tree, diags = parse(text)
        assert diags == [] and tree is not None and tree.decls == ()
