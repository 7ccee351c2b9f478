"""`cep test` (LANGUAGE.md §9.6) on passing, failing and malformed test files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from runtime.ruletest import FORMATS, exit_code, run_file

ROOT = Path(__file__).resolve().parents[2]

RULES = """
stream auth (ts: timestamp, user: str, ip: str, event_type: str)
stream metrics (ts: timestamp, host: str, cpu: float, ok: bool)

channel pager = pagerduty(routing_key = env("CEP_TEST_NEVER_SET_ROUTING_KEY"))
channel chat  = slack(webhook_url = env("CEP_TEST_NEVER_SET_WEBHOOK"), channel = "#ops")

rule logins "Every failed login"
  from auth
  where event_type == "login_failed"
  notify chat
  message "{{ user }} failed from {{ ip }}"

rule brute_force
  from auth
  group by user
  pattern fail{3,} ok within 10m
  define fail as event_type == "login_failed",
         ok   as event_type == "login_ok"
  severity critical
  notify pager

rule busy
  from metrics
  group by host
  window tumbling 1m
  having avg(cpu) > 50
"""


def cep(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEP_TEST_NEVER_SET")}
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=180, env=env)


def write(tmp_path: Path, body: str, name: str = "t.test.yaml", rules: str = RULES) -> Path:
    (tmp_path / "rules.cep").write_text(rules)
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip())
    return path


FAILS = """
  - {ts: "+0s",  user: a, ip: 1.2.3.4, event_type: login_failed}
  - {ts: "+10s", user: a, ip: 1.2.3.4, event_type: login_failed}
  - {ts: "+20s", user: a, ip: 1.2.3.4, event_type: login_failed}
  - {ts: "+30s", user: a, ip: 1.2.3.4, event_type: login_ok}
"""


def login_test(expect: str, extra: str = "", start: str = 'start: "2026-01-01T00:00:00Z"') -> str:
    rows = textwrap.indent(textwrap.dedent(FAILS).strip(), " " * 8)
    return f"""
rules: rules.cep
{start}
tests:
  - name: logins
{extra}    input:
      auth:
{rows}
{textwrap.indent(textwrap.dedent(expect).strip(), "    ")}
"""


# ----------------------------------------------------------------------------- the command


def test_the_example_file_passes_from_the_command_line() -> None:
    r = cep("test", "examples/ops.test.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "5 passed, 0 failed" in r.stdout


def test_a_failing_test_exits_1_with_a_diff_naming_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        login_test("""
        expect:
          brute_force: [{user: a, ts: "+30s", fail_count: 4}]
    """),
    )
    r = cep("test", str(path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL" in r.stdout and "logins" in r.stdout
    assert "fail_count: expected 4, got 3" in r.stdout
    assert "line 12" in r.stdout  # the expected match's line
    assert "0 passed, 1 failed" in r.stdout


def test_a_malformed_file_exits_2_naming_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        login_test("""
        expect:
          brute_forse: []
    """),
    )
    r = cep("test", str(path))
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{path}:12:7: error: the rule file has no rule `brute_forse`" in r.stderr
    assert "did you mean `brute_force`?" in r.stderr


def test_json_and_junit_reports(tmp_path: Path) -> None:
    good = write(tmp_path, login_test("expect:\n  brute_force: [{user: a}]"), "good.test.yaml")
    bad = write(tmp_path, login_test("expect:\n  brute_force: []"), "bad.test.yaml")
    r = cep("test", str(good), str(bad), "--format", "json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert (doc["passed"], doc["failed"], doc["errors"], doc["exit_code"]) == (1, 1, 0, 1)
    assert [t["passed"] for f in doc["files"] for t in f["tests"]] == [True, False]
    r = cep("test", str(good), str(bad), "--format", "junit")
    root = ET.fromstring(r.stdout)
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "0")
    failure = root.findall(".//testcase/failure")
    assert len(failure) == 1 and "produced 1" in failure[0].get("message")


# ----------------------------------------------------------------------------- matching


def run(tmp_path: Path, body: str, rules: str = RULES):  # noqa: ANN201
    return run_file(write(tmp_path, body, rules=rules))


def test_order_insensitive_unless_ordered(tmp_path: Path) -> None:
    expect = """
        expect:
          logins: [{ts: "+20s"}, {ts: "+0s"}, {ts: "+10s"}]
    """
    out = run(tmp_path, login_test(expect))
    assert out.passed, out
    out = run(tmp_path, login_test(expect, extra="    ordered: true\n"))
    assert not out.passed
    assert "(in order)" in out.tests[0].failures[0]
    per_rule = """
        expect:
          logins: {ordered: true, matches: [{ts: "+0s"}, {ts: "+10s"}, {ts: "+20s"}]}
    """
    assert run(tmp_path, login_test(per_rule)).passed


def test_exact_list_missing_extra_and_none(tmp_path: Path) -> None:
    assert not run(tmp_path, login_test("expect:\n  logins: [{user: a}, {user: a}]")).passed  # 3 produced
    assert not run(tmp_path, login_test("expect:\n  logins: []")).passed
    assert run(tmp_path, login_test("expect:\n  busy: []")).passed  # no metrics rows
    four = run(tmp_path, login_test("expect:\n  logins: [{user: a}, {user: a}, {user: a}, {user: a}]"))
    assert not four.passed and "nothing" not in four.tests[0].failures[0]


def test_rules_not_named_are_not_checked(tmp_path: Path) -> None:
    assert run(tmp_path, login_test("expect:\n  brute_force: [{user: a, ip: 1.2.3.4}]")).passed


def test_pairing_is_one_to_one_not_first_fit(tmp_path: Path) -> None:
    # The loose expectation must not take the only record the strict one fits.
    body = login_test('expect:\n  logins: [{user: a}, {user: a}, {ts: "+0s", ip: 1.2.3.4}]')
    assert run(tmp_path, body).passed


def test_absolute_times_and_offsets_agree(tmp_path: Path) -> None:
    body = login_test('expect:\n  brute_force: [{ts: "2026-01-01T00:00:30Z", match_start: 2026-01-01T00:00:00Z}]')
    assert run(tmp_path, body).passed
    body = login_test('expect:\n  brute_force: [{ts: "2026-01-01T01:00:30+01:00", match_start: "+0s"}]')
    assert run(tmp_path, body).passed
    body = login_test('expect:\n  brute_force: [{ts: "+31s"}]')
    out = run(tmp_path, body)
    assert "ts: expected +31s, got +30s" in "\n".join(out.tests[0].failures)


def test_plain_yaml_words_stay_text_for_str_fields(tmp_path: Path) -> None:
    body = """
        rules: rules.cep
        start: "2026-01-01T00:00:00Z"
        tests:
          - name: user called no
            input:
              auth:
                - {ts: "+0s", user: no, ip: 1.10, event_type: login_failed}
            expect:
              logins: [{user: no, ip: 1.10}]
    """
    assert run(tmp_path, body).passed


def test_csv_input_with_empty_cells_as_null(tmp_path: Path) -> None:
    body = """
        rules: rules.cep
        start: "2026-01-01T00:00:00Z"
        tests:
          - name: csv
            input:
              metrics: |
                ts,host,cpu,ok
                +0s,h1,80,true
                +10s,h1,,false
                +20s,h2,10,
                +70s,h1,90,true
            expect:
              busy: [{host: h1, ts: "+1m", avg_cpu: 80}, {host: h1, ts: "+2m", avg_cpu: 90}]
    """
    out = run(tmp_path, body)
    assert out.passed, out.tests[0].failures


def test_messages_per_channel_without_resolving_secrets(tmp_path: Path) -> None:
    assert "CEP_TEST_NEVER_SET_WEBHOOK" not in os.environ
    expect = """
        expect_messages:
          chat:
            - equals: "a failed from 1.2.3.4"
            - "a failed from 1.2.3.4"
            - {contains: "failed", rule: logins}
          pager:
            - contains: "brute_force"
    """
    out = run(tmp_path, login_test(expect))
    assert out.passed, out.tests[0].failures
    wrong = run(tmp_path, login_test('expect_messages:\n  chat: [{contains: "a failed"}]'))
    text = "\n".join(wrong.tests[0].failures)
    assert "expected 1 message, rendered 3" in text and "[logins] 'a failed from 1.2.3.4'" in text
    assert not run(tmp_path, login_test("expect_messages:\n  chat: []")).passed


# ----------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        (login_test("expect:\n  logins: []", start=""), 7, "has no `start`"),
        (login_test("expect:\n  logins: [{cpu: 1}]").replace("    input:", "    inptu:"), 5, "unknown key `inptu`"),
        (login_test("expect:\n  logins: []").replace("auth:", "auht:"), 6, "declares no stream `auht`"),
        (login_test("expect:\n  logins: []\n  logins: []"), 13, "`logins` is given twice"),
        (login_test("expect:\n  logins: [{ts: soon}]"), 12, "not an RFC 3339 time"),
        (login_test("expect:\n  brute_force: [{fail_count: many}]"), 12, "expected an integer"),
        (login_test("expect:\n  logins: []").replace('"+10s"', '"+10"'), 8, "is not an offset"),
        ("rules: rules.cep\ntests: []\n", 2, "`tests` is empty"),
        ("rules: missing.cep\ntests: []\n", 1, "does not exist"),
        ("tests:\n  - name: x\n    expect: {r: []}\n", 2, "no rule file to test"),
        ("rules: rules.cep\ntests:\n  - name: x\n", 3, "checks nothing"),
        ("rules: rules.cep\ntests:\n  - name: [x\n", 4, "not valid YAML"),
        (
            "rules: rules.cep\ntests:\n  - name: x\n    input:\n      metrics: |\n        ts,host\n        +0s\n"
            "    expect: {busy: []}\n",
            7,
            "has 1 cells, the header 2",
        ),
    ],
)
def test_malformed_files_name_their_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = write(tmp_path, body)
    out = run_file(path)
    assert out.error is not None, out
    first = out.error.split("\n")[0]
    assert first.startswith(f"{path}:{line}:"), out.error
    assert message in first, out.error
    assert exit_code([out]) == 2


def test_a_rule_file_that_does_not_check_is_exit_2_with_its_diagnostics(tmp_path: Path) -> None:
    path = write(tmp_path, login_test("expect:\n  logins: []"), rules=RULES.replace("event_type ==", "event_typ =="))
    out = run_file(path)
    assert exit_code([out]) == 2
    assert "rules.cep:" in out.error and "unknown field `event_typ`" in out.error


def test_undeclared_input_fields_are_warned_about_and_ignored(tmp_path: Path) -> None:
    body = login_test("expect:\n  logins: [{user: a}, {user: a}, {user: a}]").replace("ip: 1.2.3.4,", "ipp: 1.2.3.4,", 1)
    out = run(tmp_path, body)
    assert out.passed
    assert any("`ipp` is not declared" in w and "did you mean `ip`?" in w for w in out.warnings)
    assert FORMATS["text"]([out]).endswith("1 passed, 0 failed")


LIFECYCLE_RULES = """
stream m (ts: timestamp, host: str, cpu: float)
channel ops = console()
rule hot "Hot host"
  from m
  group by host
  window tumbling 1m
  having avg(cpu) > 80
  resolve
  throttle 10m
  notify ops
  message "{{ host }} is hot"
"""


def test_lifecycle_records_and_their_messages(tmp_path: Path) -> None:
    body = """
        rules: rules.cep
        start: "2026-01-01T00:00:00Z"
        tests:
          - name: two episodes, the second throttled
            input:
              m: |
                ts,host,cpu
                +5s,a,90
                +65s,a,10
                +125s,a,95
                +185s,a,10
                +245s,b,1
            expect:
              hot:
                - {state: firing, ts: "+1m", firing_since: "+1m", suppressed: false}
                - {state: resolved, ts: "+2m", resolved_at: "+2m", avg_cpu: 10}
                - {state: firing, ts: "+3m", suppressed: true}
                - {state: resolved, ts: "+4m", firing_since: "+3m", suppressed: true}
            expect_messages:
              ops:
                - equals: "a is hot"
                - equals: "[RESOLVED] a is hot"
    """
    out = run(tmp_path, body, rules=LIFECYCLE_RULES)
    assert out.passed, out.tests[0].failures


def test_a_test_may_name_its_own_rule_file(tmp_path: Path) -> None:
    (tmp_path / "life.cep").write_text(LIFECYCLE_RULES)
    body = login_test("expect:\n  logins: [{user: a}, {user: a}, {user: a}]").replace("rules: rules.cep\n", "", 1)
    body = body.replace("  - name: logins\n", "  - name: logins\n    rules: rules.cep\n", 1)
    body += """
  - name: the other file
    rules: life.cep
    input:
      m: [{ts: "+5s", host: a, cpu: 99}]
    expect:
      hot: [{state: firing, ts: "+1m"}]
"""
    out = run(tmp_path, body)
    assert out.passed, (out.error, [t.failures for t in out.tests])
    assert len(out.tests) == 2
