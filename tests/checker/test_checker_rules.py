"""Checker pieces the corpus exercises only by example: regex and cron screening,
rule-count limit, no cascades, and the renderer's handling of odd source text."""

from __future__ import annotations

import pytest

from cepdsl import checker
from cepdsl.ast import Span
from cepdsl.checker import cron_problem
from cepdsl.diagnostics import Diagnostic, render
from cepdsl.frontend import check_source
from cepdsl.typecheck import regex_problem

S = "stream s (ts: timestamp, x: int, y: str)\n"


def diags(text: str) -> list[Diagnostic]:
    _, found = check_source(S + text, "t.cep")
    return found


@pytest.mark.parametrize("pattern", ["^web-[0-9]+$", r"\d+", "(?i)abc", "[(?=]", r"\\1", "[[:alpha:]]", r"\pL"])
def test_linear_time_regexes_pass(pattern: str) -> None:
    assert regex_problem(pattern) is None


@pytest.mark.parametrize(
    "pattern, start",
    [
        (r"(a)\1", "backreferences"),
        ("(?P<n>a)(?P=n)", "backreferences"),
        (r"\k<n>", "backreferences"),
        ("a(?=b)", "look-around"),
        ("(?<!a)b", "look-around"),
        ("(a", "invalid regular expression"),
        ("a{1001}", "invalid regular expression"),  # RE2's repeat limit
        (r"\Qa\E", "invalid regular expression"),  # RE2 takes it, Rust `regex` (Polars) does not
    ],
)
def test_refused_regexes(pattern: str, start: str) -> None:
    problem = regex_problem(pattern)
    assert problem is not None and problem[0].startswith(start)


def test_regex_errors_are_not_printed_by_re2(capfd: pytest.CaptureFixture[str]) -> None:
    regex_problem("(unclosed-" + "x")
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    "cron, fragment",
    [
        ("0 9 * * * *", "expected 5 fields, found 6"),
        ("61 * * * *", "the minute field `61` is invalid"),
        ("0 9 * 13 *", "the month field `13` is invalid"),
        ("@hourly", "is not a 5-field cron string"),
        ("0 9 31 2 *", "never fires"),
    ],
)
def test_invalid_crons(cron: str, fragment: str) -> None:
    problem = cron_problem(cron)
    assert problem is not None and fragment in problem[0]


@pytest.mark.parametrize("cron", ["0 9 * * *", "*/15 * * * *", "0 0 29 2 *", "30 8 * * mon-fri", "0 0,12 1-15 jan,jul *"])
def test_valid_crons(cron: str) -> None:
    assert cron_problem(cron) is None


def test_rule_count_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checker, "MAX_RULES", 3)
    found = diags("".join(f"rule r{i} from s\n" for i in range(5)))
    assert [d.message for d in found] == ["a file may hold at most 3 rules, this one has 5"]
    assert found[0].span.line == 5  # the first rule over the limit


def test_every_independent_error_is_reported_once() -> None:
    found = diags(
        "rule a from s where xx > 1\n"  # unknown field
        "rule b from s where y > 1\n"  # str vs int
        "rule c from nope\n"  # unknown stream
        "rule a from s\n"  # duplicate id
        'rule d from s where xx > 1 message "{{ zz }}"\n'  # one field error; the template is not judged on a broken rule
    )
    assert [(d.span.line, d.code) for d in found] == [
        (2, "unknown-field"),
        (3, "type"),
        (4, "unknown-stream"),
        (5, "duplicate-rule"),
        (6, "unknown-field"),
    ]


def test_broken_stream_silences_unknown_stream_errors() -> None:
    _, found = check_source("stream s (ts: timestamp x: int)\nrule r from s where x > 1\n", "t.cep")
    assert [d.code for d in found] == ["syntax"]


def test_compare_with_null_is_allowed_and_typed_bool() -> None:
    program, found = check_source(S + "rule r from s where x == null", "t.cep")
    assert found == [] and program is not None
    assert program.rules[0].where.type.value == "bool"


def test_huge_numbers_never_reach_the_plan() -> None:
    for text in (
        "rule r from s where x > 99999999999999999999999",
        "rule r from s where x in [1, 99999999999999999999999]",
        "rule r from s where round(x, 99999999999999999999999) > 1",
        "rule r from s window last 99999999999999999999999 events",
        "rule r from s anomaly zscore(x, threshold = 1e999)",
        "rule r from s anomaly zscore(x) baseline 99999999999999999999999",
        "rule r from s pattern a{99999999999999999999999} within 1m",
    ):
        assert len(diags(text)) == 1, text


# ----------------------------------------------------------------------------- rendering


def _diag(line: int, col: int, end: int) -> Diagnostic:
    return Diagnostic(Span("f", line, col, line, end), "msg", ("a hint",))


def test_render_format() -> None:
    out = render(_diag(2, 3, 6), "first\n  abc def\n")
    assert out == "f:2:3: error: msg\n  abc def\n  ^^^\nhint: a hint"


def test_render_keeps_tabs_and_widens_for_wide_characters() -> None:
    assert render(_diag(1, 3, 4), "\tx1").splitlines()[2] == "\t ^"
    assert render(_diag(1, 3, 5), "漢字ab").splitlines()[2] == "    ^^"


def test_render_replaces_control_characters_and_counts_lines_by_newline_only() -> None:
    out = render(_diag(2, 1, 2), "a\x0cb\nc\x00d").splitlines()
    assert out[1] == "c\ufffdd"  # form feed is not a line break; NUL is shown as U+FFFD


def test_render_windows_very_long_lines() -> None:
    line = "x" * 10_000 + "HERE" + "y" * 10_000
    out = render(_diag(1, 10_001, 10_005), line).splitlines()
    assert len(out[1]) < 200 and "HERE" in out[1] and out[1].startswith("...") and out[1].endswith("...")
    assert out[2].index("^") == out[1].index("HERE") and out[2].count("^") == 4
