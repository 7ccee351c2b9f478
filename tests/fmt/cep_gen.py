"""Hypothesis strategies for random `.cep` files that are valid *syntax* (not
necessarily valid rules): every declaration and clause kind, every operator and
quantifier, dotted and backquoted names, escapes, long strings — written messily
(redundant parentheses, odd spacing, line breaks and comments between tokens) so
the formatter has something to normalise.

The generator knows the grammar's precedence only to decide where parentheses
are *required*; it adds others at random.  It never checks its own output
against the formatter: the tests compare parse trees.
"""

from __future__ import annotations

from hypothesis import strategies as st

# The reserved words of §9.1 (backquoted as names) and the contextual ones (bare names).
KEYWORDS = (
    "stream channel table template silence rule from where group by window having schedule pattern define "
    "absent anomaly severity throttle notify message join for resolve and or not in is null true false "
    "contains starts_with ends_with matches"
).split()
CONTEXTUAL = (
    "tumbling sliding every session gap last events over within as baseline warmup fallback time lateness "
    "key refresh after until on match"
).split()
BARE_ARG_KEYWORDS = "channel severity from window message pattern group".split()

OR, AND, NOT, CMP, SUM, PROD, UNARY, PRIMARY = range(1, 9)

# --------------------------------------------------------------------------- layout noise

_comment_text = st.text(alphabet=st.sampled_from(list("abc XYZ#()[]{}\"'`\\é→ ,;:=*")), max_size=12).map(lambda s: "#" + s)

GAPS = st.one_of(
    st.just(" "),
    st.just(" "),
    st.just(" "),
    st.just("  "),
    st.just("\n    "),
    st.just("\n"),
    st.just("\t"),
    _comment_text.map(lambda c: f" {c}\n  "),
    _comment_text.map(lambda c: f"\n{c}\n"),
)


CLEAN_GAPS = st.sampled_from([" ", " ", " ", " ", " ", "\n  "])


@st.composite
def joined(draw, tokens: list[str]) -> str:
    """Tokens with random whitespace, line breaks and (in a noisy declaration)
    comments between them."""
    gaps = GAPS if draw(st.booleans()) else CLEAN_GAPS
    out = [tokens[0]]
    for t in tokens[1:]:
        out.append(draw(gaps))
        out.append(t)
    return "".join(out)


# --------------------------------------------------------------------------- names and literals

_plain_ident = st.builds(
    lambda a, b: a + b,
    st.sampled_from(list("abcdefghijklmnopqrstuvwxyz_")),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", max_size=5),
)


@st.composite
def name(draw) -> str:
    kind = draw(st.integers(0, 10))
    if kind == 10:
        return draw(st.sampled_from(CONTEXTUAL))  # contextual keywords are bare names (§9.1)
    if kind == 0:
        return f"`{draw(st.sampled_from(KEYWORDS))}`"
    if kind == 1:
        return "`" + draw(st.sampled_from(["a b", "x-y", "9lives", "é", "cpu"])) + "`"
    ident = draw(_plain_ident | st.sampled_from(["cpu", "host", "ts", "data", "avg", "x", "Mixed_Case1"]))
    if ident in KEYWORDS:
        return f"`{ident}`"
    return f"`{ident}`" if draw(st.integers(0, 7)) == 0 else ident


@st.composite
def arg_name(draw) -> str:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from(BARE_ARG_KEYWORDS))
    return draw(name())


@st.composite
def path(draw) -> list[str]:
    parts = draw(st.lists(name(), min_size=1, max_size=3))
    return [parts[0]] + [t for p in parts[1:] for t in (".", p)]


_string_chars = st.sampled_from(list('ab Z0#{}"\\\n\té→`\'%') + ["{{ host }}"])


@st.composite
def string(draw) -> str:
    value = "".join(draw(st.lists(_string_chars, max_size=8)))
    if "\n" in value and '"' not in value and draw(st.booleans()):
        body = value.replace("\\", "\\\\")
        if draw(st.booleans()):
            body = body.replace("\t", "\\t")
        return f'"""{body}"""'
    body = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    if draw(st.booleans()):
        body = body.replace("\t", "\\t")
    return f'"{body}"'


number = st.one_of(
    st.integers(0, 10**12).map(str),
    st.sampled_from(["0", "007", "1.5", "2e-3", "1.0E+3", "3.25", "10e2", "0.0"]),
)
duration = st.builds(lambda n, u: f"{n}{u}", st.integers(0, 500), st.sampled_from(["ms", "s", "m", "h", "d"]))

# --------------------------------------------------------------------------- expressions
# An expression is (tokens, level): the precedence level of its outermost operator.

Expr = tuple[list[str], int]


@st.composite
def wrap(draw, e: Expr, need: int) -> list[str]:
    tokens, level = e
    if level < need or draw(st.integers(0, 6)) == 0:
        return ["(", *tokens, ")"]
    return tokens


@st.composite
def leaf(draw) -> Expr:
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return [draw(number)], PRIMARY
    if kind == 1:
        return [draw(string())], PRIMARY
    if kind == 2:
        return [draw(duration)], PRIMARY
    if kind == 3:
        return [draw(st.sampled_from(["true", "false", "null"]))], PRIMARY
    if kind == 4:
        return ["-", draw(number)], UNARY
    if kind == 5 and draw(st.integers(0, 3)) == 0:
        return [draw(st.sampled_from(["rule", "severity"]))], PRIMARY  # record fields in a silence's match
    return draw(path()), PRIMARY


_BINARY = {
    "or": OR,
    "and": AND,
    **dict.fromkeys(["==", "!=", "<", "<=", ">", ">=", "contains", "starts_with", "ends_with", "matches"], CMP),
    "+": SUM,
    "-": SUM,
    "*": PROD,
    "/": PROD,
    "%": PROD,
}


@st.composite
def expr(draw, depth: int = 3) -> Expr:
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return draw(leaf())
    sub = expr(depth - 1)
    kind = draw(st.integers(0, 9))
    if kind <= 3:
        op = draw(st.sampled_from(sorted(_BINARY)))
        lv = _BINARY[op]
        lneed, rneed = (SUM, SUM) if lv == CMP else (lv, lv + 1)
        left = draw(wrap(draw(sub), lneed))
        right = draw(wrap(draw(sub), rneed))
        return [*left, op, *right], lv
    if kind == 4:
        return ["not", *draw(wrap(draw(sub), NOT))], NOT
    if kind == 5:
        return ["-", *draw(wrap(draw(sub), UNARY))], UNARY
    if kind == 6:
        operand = draw(wrap(draw(sub), SUM))
        op = draw(st.sampled_from([["in"], ["not", "in"]]))
        return [*operand, *op, *draw(list_lit(depth - 1))], CMP
    if kind == 7:
        operand = draw(wrap(draw(sub), SUM))
        return [*operand, "is", *draw(st.sampled_from([["null"], ["not", "null"]]))], CMP
    if kind == 8:
        return draw(call(depth - 1)), PRIMARY
    return draw(st.one_of(list_lit(depth - 1), map_lit(depth - 1))), PRIMARY


def _commas(draw, items: list[list[str]], trailing_ok: bool) -> list[str]:
    out: list[str] = []
    for i, it in enumerate(items):
        if i:
            out.append(",")
        out += it
    if items and trailing_ok and draw(st.integers(0, 3)) == 0:
        out.append(",")
    return out


@st.composite
def list_lit(draw, depth: int) -> list[str]:
    items = [draw(expr(depth))[0] for _ in range(draw(st.integers(0, 3)))]
    return ["[", *_commas(draw, items, True), "]"]


@st.composite
def map_lit(draw, depth: int) -> list[str]:
    items = [[draw(string()), ":", *draw(expr(depth))[0]] for _ in range(draw(st.integers(0, 2)))]
    return ["{", *_commas(draw, items, True), "}"]


@st.composite
def arg(draw, depth: int, named: bool | None = None) -> list[str]:
    value = draw(expr(depth))[0]
    if named is None:
        named = draw(st.booleans())
    return [draw(arg_name()), "=", *value] if named else value


@st.composite
def call(draw, depth: int) -> list[str]:
    func = draw(st.sampled_from(["abs", "round", "coalesce", "avg", "count", "percentile", "env"]) | name())
    args = [draw(arg(depth)) for _ in range(draw(st.integers(0, 3)))]
    return [func, "(", *_commas(draw, args, False), ")"]


# --------------------------------------------------------------------------- patterns


@st.composite
def quantifier(draw) -> list[str]:
    n = draw(st.integers(0, 20))
    m = n + draw(st.integers(0, 5))
    return draw(st.sampled_from([["?"], ["*"], ["+"], ["{", str(n), "}"], ["{", str(n), ",", "}"], ["{", str(n), ",", str(m), "}"]]))


@st.composite
def pat_alt(draw, depth: int = 2) -> list[str]:
    options = [draw(pat_seq(depth)) for _ in range(draw(st.integers(1, 3)))]
    out = options[0]
    for o in options[1:]:
        out = [*out, "|", *o]
    return out


@st.composite
def pat_seq(draw, depth: int) -> list[str]:
    out: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        if depth > 0 and draw(st.integers(0, 3)) == 0:
            atom = ["(", *draw(pat_alt(depth - 1)), ")"]
        else:
            step = draw(name())
            atom = ["`within`" if step == "within" else step]  # a bare `within` ends the regex
        if draw(st.booleans()):
            atom += draw(quantifier())
        out += atom
    return out


# --------------------------------------------------------------------------- declarations


@st.composite
def stream_decl(draw) -> list[str]:
    fields = [
        [*draw(path()), ":", draw(st.sampled_from(["int", "float", "str", "bool", "timestamp"]) | name())]
        for _ in range(draw(st.integers(1, 7)))
    ]
    tokens = ["stream", draw(name()), "(", *_commas(draw, fields, True), ")"]
    opts = []
    if draw(st.booleans()):
        opts.append(["time", *draw(path())])
    if draw(st.booleans()):
        opts.append(["lateness", draw(duration)])
    for o in draw(st.permutations(opts)):
        tokens += o
    return tokens


@st.composite
def channel_value(draw) -> list[str]:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return ["env", "(", draw(string()), ")"]
    if kind == 1:
        return draw(map_lit(1))
    if kind == 2:
        return draw(list_lit(0))
    return draw(expr(1))[0]


@st.composite
def channel_decl(draw) -> list[str]:
    args = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 5)) == 0:
            args.append(draw(channel_value()))
        else:
            args.append([draw(arg_name()), "=", *draw(channel_value())])
    kind = draw(st.sampled_from(["console", "file", "webhook", "slack", "email", "sms", "pagerduty"]) | name())
    return ["channel", draw(name()), "=", kind, "(", *_commas(draw, args, True), ")"]


@st.composite
def clause(draw) -> list[str]:
    kind = draw(st.integers(0, 13))
    if kind == 0:
        return ["from", draw(name())]
    if kind == 1:
        return ["where", *draw(expr())[0]]
    if kind == 2:
        keys = [draw(path()) for _ in range(draw(st.integers(1, 3)))]
        return ["group", "by", *_commas(draw, keys, False)]
    if kind == 3:
        spec = draw(
            st.sampled_from(["tumbling", "sliding", "session", "last"]).flatmap(
                lambda k: {
                    "tumbling": duration.map(lambda d: ["tumbling", d]),
                    "sliding": st.tuples(duration, duration).map(lambda t: ["sliding", t[0], "every", t[1]]),
                    "session": duration.map(lambda d: ["session", "gap", d]),
                    "last": st.integers(0, 10**6).map(lambda n: ["last", str(n), "events"]),
                }[k]
            )
        )
        return ["window", *spec]
    if kind == 4:
        return ["having", *draw(expr())[0]]
    if kind == 5:
        return ["schedule", draw(st.sampled_from(['"0 9 * * *"', '"*/5 * * * *"']) | string()), "over", draw(duration)]
    if kind == 6:
        within = ["within", draw(duration)] if draw(st.booleans()) else []
        return ["pattern", *draw(pat_alt()), *within]
    if kind == 7:
        items = [[draw(name()), "as", *draw(expr(2))[0]] for _ in range(draw(st.integers(1, 3)))]
        return ["define", *_commas(draw, items, False)]
    if kind == 8:
        return ["absent", "for", draw(duration)]
    if kind == 9:
        args = [draw(arg(1, named=i > 0 and draw(st.booleans()))) for i in range(draw(st.integers(0, 3)))]
        tokens = ["anomaly", draw(st.sampled_from(["zscore", "iqr", "ema"]) | name()), "(", *_commas(draw, args, False), ")"]
        if draw(st.booleans()):
            tokens += ["baseline", str(draw(st.integers(0, 2000)))]
        if draw(st.booleans()):
            tokens += ["warmup", str(draw(st.integers(0, 2000)))]
        return tokens
    if kind == 10:
        return ["severity", draw(st.sampled_from(["info", "low", "medium", "high", "critical"]) | name())]
    if kind == 11:
        return ["throttle", draw(duration)]
    if kind == 13 and draw(st.booleans()):
        return draw(
            st.sampled_from(["join", "for", "resolve", "template"]).flatmap(
                lambda k: {
                    "join": st.tuples(name(), st.booleans(), name(), expr(2)).map(
                        lambda t: ["join", t[0], *(["as", t[2]] if t[1] else []), "on", *t[3][0]]
                    ),
                    "for": duration.map(lambda d: ["for", d]),
                    "resolve": st.tuples(st.booleans(), duration, st.booleans(), string()).map(
                        lambda t: ["resolve", *(["after", t[1]] if t[0] else []), *([t[3]] if t[2] else [])]
                    ),
                    "template": string().map(lambda x: ["message", "template", "(", x, ")"]),
                }[k]
            )
        )
    if kind == 12:
        chans = [draw(name()) for _ in range(draw(st.integers(1, 3)))]
        tokens = ["notify", *_commas(draw, [[c] for c in chans], False)]
        if draw(st.booleans()):
            tokens += ["fallback", draw(name())]
        return tokens
    return ["message", draw(string())]


@st.composite
def table_decl(draw) -> list[str]:
    fields = [
        [draw(name()), ":", draw(st.sampled_from(["int", "float", "str", "bool", "timestamp"]))]
        for _ in range(draw(st.integers(1, 4)))
    ]
    tokens = ["table", draw(name()), "(", *_commas(draw, fields, True), ")"]
    opts = []
    if draw(st.booleans()):
        opts.append(["key", *draw(path())])
    if draw(st.booleans()):
        opts.append(["from", draw(st.sampled_from(['"hosts.csv"', '"t.parquet"']) | string())])
    elif draw(st.booleans()):
        opts.append(["from", "redis", "(", draw(string()), ")"])
    if draw(st.booleans()):
        opts.append(["refresh", draw(duration)])
    for o in draw(st.permutations(opts)):
        tokens += o
    return tokens


@st.composite
def template_decl(draw) -> list[str]:
    return ["template", draw(name()), "=", draw(string())]


@st.composite
def silence_decl(draw) -> list[str]:
    tokens = ["silence", draw(name())]
    if draw(st.booleans()):
        tokens.append(draw(string()))
    opts = []
    if draw(st.booleans()):
        opts.append(["match", *draw(expr())[0]])
    kind = draw(st.integers(0, 2))
    if kind == 1:
        opts.append(["every", draw(st.sampled_from(['"0 2 * * *"']) | string()), "for", draw(duration)])
    elif kind == 2:
        opts.append(["from", draw(string()), "until", draw(string())])
    for o in draw(st.permutations(opts)):
        tokens += o
    return tokens


@st.composite
def rule_decl(draw) -> list[str]:
    tokens = ["rule", draw(name())]
    if draw(st.booleans()):
        tokens.append(draw(string()))
    for c in draw(st.lists(clause(), max_size=9)):
        tokens += c
    return tokens


@st.composite
def cep_file(draw) -> str:
    """A whole file: declarations in any order, noise between every two tokens,
    sometimes comments before the first and after the last."""
    decls = draw(
        st.lists(st.one_of(stream_decl(), channel_decl(), rule_decl(), table_decl(), template_decl(), silence_decl()), max_size=5)
    )
    parts = []
    if draw(st.booleans()):
        parts.append(draw(_comment_text) + "\n" + ("\n" if draw(st.booleans()) else ""))
    for d in decls:
        parts.append(draw(joined(d)))
        parts.append(draw(st.sampled_from(["\n", "\n\n", " ", "\n\n\n"])))
    if draw(st.booleans()):
        parts.append(draw(_comment_text))
    return "".join(parts)
