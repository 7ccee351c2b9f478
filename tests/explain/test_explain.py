"""`cep explain`: golden plans, typed expressions, and no secret ever printed.

Regenerate the golden files after an intended change with
`CEP_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/explain -q` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cepdsl.explain import executor_hint, explain, typed_expr
from cepdsl.frontend import compile_source

CASES = sorted(Path(__file__).parent.joinpath("cases").glob("*.cep"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden(case: Path) -> None:
    out = explain(compile_source(case.read_text(encoding="utf-8"), case.name))
    expected = case.with_suffix(".explain")
    if os.environ.get("CEP_REGEN_GOLDEN") == "1":
        expected.write_text(out, encoding="utf-8")
    assert out == expected.read_text(encoding="utf-8")


def _rule(src: str, rule: str = "r"):
    program = compile_source("stream s (ts: timestamp, cpu: float, n: int, host: str, d.x: int)\n" + src)
    return program, program.rule(rule)


def test_typed_filter_expression() -> None:
    _, r = _rule("rule r from s where cpu > 80")
    assert typed_expr(r.where) == "(cpu:float > 80:int):bool"


@pytest.mark.parametrize(
    ("where", "typed"),
    [
        ("n / 2 > 1.5", "((n:int / 2:int):float > 1.5:float):bool"),
        ("not (host == \"a\")", '(not (host:str == "a":str):bool):bool'),
        ("-n < 0 or host is null", "(((-n:int):int < 0:int):bool or (host:str is null):bool):bool"),
        ("d.x in [1, 2]", "(d.x:int in [1, 2]):bool"),
        ("cpu not in [1, null]", "(cpu:float not in [1.0, null]):bool"),
        ("ts > ts - 5m", "(ts:timestamp > (ts:timestamp - 5m:duration):timestamp):bool"),
        ("round(cpu, 1) >= abs(n)", "(round(cpu:float, 1:int):float >= abs(n:int):int):bool"),
        ('lower(host) matches "^w\\\\d"', '(lower(host:str):str matches "^w\\\\d":str):bool'),
    ],
)
def test_typed_expressions(where: str, typed: str) -> None:
    _, r = _rule(f"rule r from s where {where}")
    assert typed_expr(r.where) == typed


def test_aggregates_with_names_and_types() -> None:
    program, r = _rule("rule r from s window tumbling 1m having percentile(cpu, 99.9) > 1 and sum(n) > count()")
    text = explain(program)
    assert "    p99_9_cpu: float = percentile(cpu, 99.9)" in text
    assert "    sum_n: int = sum(n)" in text
    assert "    count: int = count()" in text
    assert "window_start: timestamp" in text


def test_secrets_are_masked_and_env_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "value-from-the-environment")
    program, _ = _rule(
        'channel w = webhook(url = "https://x.example/SECRETPATH", headers = {"A": "plain-secret", "B": env("HOOK_TOKEN")})\n'
        'channel e = email(smtp_host = "h", sender = "s@x", to = "t@x", password = "hunter2")\n'
        'channel p = pagerduty(routing_key = env("PD_KEY"), severity = "error")\n'
        "rule r from s notify w, e fallback p"
    )
    text = explain(program)
    for secret in ("SECRETPATH", "plain-secret", "value-from-the-environment", "hunter2"):
        assert secret not in text
    assert 'url = ***' in text
    assert 'headers = {"A": ***, "B": env("HOOK_TOKEN")}' in text
    assert 'password = ***' in text
    assert 'routing_key = env("PD_KEY"), severity = "error"' in text
    assert '  fallback   p = pagerduty(' in text


def test_executor_hint_by_kind() -> None:
    program = compile_source(
        "stream s (ts: timestamp, x: int)\n"
        "rule f from s\n"
        "rule w from s window tumbling 1m\n"
        "rule c from s window last 5 events\n"
        "rule se from s window session gap 1m\n"
        'rule sc from s schedule "0 * * * *" over 1h\n'
        "rule p from s pattern a\n"
        "rule ab from s absent for 1m\n"
        "rule an from s anomaly zscore(x)\n"
    )
    hints = {r.id: executor_hint(r).split(":")[0] for r in program.rules}
    assert hints == {
        "f": "polars filter",
        "w": "polars window kernel",
        "c": "polars count window",
        "se": "polars session windows",
        "sc": "polars schedule",
        "p": "numba pattern matcher",
        "ab": "numba absence",
        "an": "numba anomaly kernel",
    }


def test_pattern_defines_listed_per_step() -> None:
    program, r = _rule("rule r from s pattern ((a) b | c)* c{2,} within 1m define a as n > 1")
    text = explain(program)
    assert "  pattern    (a b | c)* c{2,} within 1m\n" in text
    assert "    a  (n:int > 1:int):bool\n    b  (any row)\n    c  (any row)\n" in text


CORPUS_ROOT = Path(__file__).resolve().parents[2]
VALID_CORPUS = sorted(CORPUS_ROOT.joinpath("tests", "corpus", "valid").glob("*.cep"))


@pytest.mark.parametrize("case", VALID_CORPUS, ids=[c.stem for c in VALID_CORPUS])
def test_corpus_golden(case: Path) -> None:
    """Every valid corpus file's plan as `cep explain` prints it, beside the file as X.explain:
    a change in typing, naming, executor choice or output schema shows up as a reviewed diff."""
    name = case.relative_to(CORPUS_ROOT).as_posix()  # as a user names it from the repository root
    out = explain(compile_source(case.read_text(encoding="utf-8"), name))
    expected = case.with_suffix(".explain")
    if os.environ.get("CEP_REGEN_GOLDEN") == "1":
        expected.write_text(out, encoding="utf-8")
    assert expected.exists(), f"no golden file: CEP_REGEN_GOLDEN=1 pytest {Path(__file__).relative_to(CORPUS_ROOT)}"
    assert out == expected.read_text(encoding="utf-8")
