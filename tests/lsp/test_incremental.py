"""The language server parses declaration by declaration; the result must be what
`cepdsl.parser.parse` gives for the whole text, on the corpus and on broken variants
of it, and after edits that move declarations up and down."""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path

import pytest

from cepdsl import ast
from cepdsl.parser import parse
from runtime.lsp.incremental import IncrementalParser

CORPUS = sorted(Path(__file__).resolve().parents[1].joinpath("corpus").glob("*/*.cep"))
# The whole parser's recovery cuts a declaration at an indented top-level keyword one
# character early (into the indentation), which blanks the wrong region; the pieces
# here follow the declarations.  Texts with an indented keyword are left out.
_INDENTED_KEYWORD = re.compile(r"^[ \t]+(stream|channel|rule)\b", re.M)


def _spans(node, out: list) -> list:
    """Every span in a tree, depth first (equality of AST nodes ignores spans)."""
    if isinstance(node, ast.Span):
        out.append((node.file, node.line, node.col, node.end_line, node.end_col))
    elif isinstance(node, tuple):
        for x in node:
            _spans(x, out)
    elif dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            _spans(getattr(node, f.name), out)
    return out


def _summary(result):
    tree, diags = result
    d = sorted((str(x.span), x.span.end_line, x.span.end_col, x.message, x.hints, x.code) for x in diags)
    if tree is None:
        return None, d
    spans = _spans(tree.decls, [])
    comments = [(c.text, c.span.line) for c in tree.comments]
    return (tree.decls, spans, comments, tree.broken), d


def _variants(text: str, rng: random.Random, n: int) -> list[str]:
    out = [text]
    for _ in range(n):
        pos = rng.randrange(len(text) + 1)
        op = rng.random()
        if op < 0.35:
            t = text[:pos] + text[pos + 1 :]
        elif op < 0.8:
            t = text[:pos] + rng.choice(['(', ')', '"', "x", " =", ",", "\n", "#", "`", "{", "[", "rule ", "\n\n"]) + text[pos:]
        else:
            a, b = sorted((pos, rng.randrange(len(text) + 1)))
            t = text[:a] + text[b:]
        out.append(t)
    return [t for t in out if not _INDENTED_KEYWORD.search(t)]


def _cascade(mine, whole) -> bool:
    """The whole parser's recovery can cut the wrong declaration after a broken one (an
    unclosed `(` before a line starting with `channel`, read as an option name, or an
    incomplete `where` before the next rule): it then reports one error per declaration
    that follows. The pieces here stop at the first. Same first errors, the rest syntax."""
    (_, m), (_, w) = mine, whole
    return bool(m) and len(w) > len(m) and all(x in w for x in m) and all(x[-1] == "syntax" for x in w)


@pytest.mark.timeout(240)
def test_pieces_parse_as_the_whole_file() -> None:
    rng = random.Random(20)
    inc = IncrementalParser()  # one parser for everything: its caches must not leak between texts
    checked = cascades = 0
    for path in CORPUS:
        text = path.read_bytes().decode("utf-8", errors="replace")
        for t in _variants(text, rng, 6):
            mine, whole = _summary(inc.parse(t, str(path))), _summary(parse(t, str(path)))
            if mine != whole and _cascade(mine, whole):
                cascades += 1
                continue
            assert mine == whole, (path, t)
            checked += 1
    assert checked > 1000 and cascades < checked / 50, (checked, cascades)


def test_edits_that_move_declarations() -> None:
    base = "stream s (ts: timestamp, x: int)\n\n" + "".join(f"rule r{i}\n  from s\n  where x > {i}\n\n" for i in range(30))
    base += 'channel c = slack(webhook_url = env("U"), channel = "#x")\n'
    base += 'rule a from s group by x anomaly zscore(x, threshold = 2.0) notify c message "{{ x }}"\n\n'
    inc = IncrementalParser()
    texts = [
        base,
        "\n" + base,
        "\n\n\n" + base,
        base.replace("rule r5\n", "rule r5\n\n\n"),
        base.replace("where x > 7", "where x > (7)"),
        base,
    ]
    texts.append(base.replace("rule r9\n", "rule r9\nrule r9b from s\n"))  # a new rule in the middle
    texts.append(base + base.split("\n\n", 1)[1])  # the same rules twice: each copy keeps its own lines
    for t in texts:
        assert _summary(inc.parse(t, "f.cep")) == _summary(parse(t, "f.cep"))
    assert ast.NO_SPAN == ast.Span("<none>", 0, 0, 0, 0)  # the shared "no position" span never moved


def _diag_key(d):
    return (d.span.file, d.span.line, d.span.col, d.span.end_line, d.span.end_col, d.message, d.hints, d.code)


def test_program_analysis_equals_cep_check_through_a_run_of_edits() -> None:
    """The analyzer reuses pieces and per-rule results between edits; after every edit
    its diagnostics and plans must equal a fresh `check_source` of the text."""
    from cepdsl.frontend import check_source
    from cepdsl.parser import parse as whole_parse
    from runtime.lsp.documents import Document
    from runtime.lsp.program_analysis import ProgramAnalyzer

    sys_path = str(Path(__file__).resolve().parents[2])
    import sys

    if sys_path not in sys.path:
        sys.path.insert(0, sys_path)
    from bench.bench_check import generate

    text, _ = generate(60, seed=3)
    rng = random.Random(5)
    analyzer = ProgramAnalyzer()
    doc = Document("file:///t/rules.cep", "/t/rules.cep", text, 1)
    words = ["cpu", "cpux", "\n", "\n\n", "x", "rule dup from metrics\n", "", ")", '"']
    for step in range(60):
        if step % 3 == 0:  # a line above many rules, in and out
            pos = text.index("rule ", rng.randrange(len(text) // 2))
        else:
            pos = rng.randrange(len(text))
        op = rng.random()
        if op < 0.5:
            text = text[:pos] + rng.choice(words) + text[pos:]
        else:
            text = text[:pos] + text[pos + rng.randint(1, 3) :]
        doc.text, doc.version = text, step + 2
        got = analyzer.analyze([doc])
        _, expected = check_source(text, "/t/rules.cep")
        assert sorted(map(_diag_key, got.files["/t/rules.cep"].diagnostics)) == sorted(map(_diag_key, expected)), step
        tree, syntax = whole_parse(text, "/t/rules.cep")
        if tree is not None and not syntax:
            from cepdsl.checker import Checker

            fresh = Checker(tree)
            fresh.run()
            assert list(got.rules.values()) == fresh.rules, step
    assert analyzer._rules.hits > 0


def test_a_program_of_several_files_equals_cep_check_of_them() -> None:
    """Diagnostics of a two-file program as `cep check a.cep b.cep` gives them: names
    resolve across the files, a name declared twice is reported naming the first place."""
    from cepdsl.frontend import check_sources
    from runtime.lsp.documents import Document
    from runtime.lsp.program_analysis import ProgramAnalyzer

    a = "stream s (ts: timestamp, x: int)\nchannel c = console()\n"
    b = "stream s (ts: timestamp, y: int)\nrule r from s where x > 1 notify c, d\n"
    docs = [Document("file:///p/a.cep", "/p/a.cep", a, 1), Document("file:///p/b.cep", "/p/b.cep", b, 1)]
    got = ProgramAnalyzer().analyze(docs)
    _, expected = check_sources({"/p/a.cep": a, "/p/b.cep": b})
    mine = [d for f in got.files.values() for d in f.diagnostics]
    assert sorted(map(_diag_key, mine)) == sorted(map(_diag_key, expected))
    assert {d.span.file for d in mine} == {"/p/b.cep"} and len(mine) == 2  # the second `s`, the unknown `d`
