"""`cep import`: seed JSON rules → .cep (golden files), problems with JSON paths.

Golden files: tests/compat/cases/X.json → X.cep (converted) or X.problems (one
problem per line).  Regenerate with
`CEP_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/compat -q` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cepdsl.compat import ImportFailed, ImportProblem, import_rules, parse_duration_us
from cepdsl.fmt import format_source
from cepdsl.frontend import check_source

CASES = sorted(Path(__file__).parent.joinpath("cases").glob("*.json"))


def _convert(case: Path) -> tuple[str, str]:
    """(suffix, text): the .cep text, or the problems one per line."""
    data = json.loads(case.read_text(encoding="utf-8"))
    try:
        return ".cep", import_rules(data, case.name)
    except ImportFailed as e:
        return ".problems", "\n".join(str(p) for p in e.problems) + "\n"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden(case: Path) -> None:
    suffix, text = _convert(case)
    expected = case.with_suffix(suffix)
    if os.environ.get("CEP_REGEN_GOLDEN") == "1":
        for stale in (case.with_suffix(".cep"), case.with_suffix(".problems")):
            stale.unlink(missing_ok=True)
        expected.write_text(text, encoding="utf-8")
    assert expected.exists(), f"{case.name} gave {suffix}, but there is no {expected.name}"
    assert text == expected.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", [c for c in CASES if c.with_suffix(".cep").exists()], ids=lambda c: c.stem)
def test_imported_files_check_clean_and_are_formatted(case: Path) -> None:
    text = case.with_suffix(".cep").read_text(encoding="utf-8")
    program, diags = check_source(text, case.with_suffix(".cep").name)
    assert diags == [] and program is not None
    assert format_source(text) == text


def test_the_blueprint_examples_import() -> None:
    assert {"blueprint_rule", "blueprint_anomaly"} <= {c.stem for c in CASES if c.with_suffix(".cep").exists()}


RULE = {"rule_id": "r1", "trigger_type": "metric", "trigger_spec": {"conditions": [{"field": "cpu", "op": ">", "value": 80}]}}


@pytest.mark.parametrize("shape", ["object", "list", "rules"])
def test_a_rule_a_list_or_a_rules_object(shape: str) -> None:
    data = {"object": RULE, "list": [RULE], "rules": {"rules": [RULE]}}[shape]
    text = import_rules(data)
    assert "rule r1\n  from events\n  where cpu > 80\n" in text
    assert "stream events (ts: timestamp, cpu: float)\n  time ts\n" in text


def test_stream_name_option() -> None:
    assert "stream metrics (ts: timestamp, cpu: float)" in import_rules(RULE, stream="metrics")


def test_problems_carry_paths_and_all_are_collected() -> None:
    data = {"rules": [RULE, {**RULE, "trigger_spec": {"conditions": [{"field": "a", "op": "like", "value": 1}, {"field": "b"}]}}]}
    with pytest.raises(ImportFailed) as err:
        import_rules(data)
    problems = err.value.problems
    assert all(isinstance(p, ImportProblem) for p in problems)
    assert sorted(p.path for p in problems) == [
        "$.rules[1].rule_id",  # the same id as rule 0
        "$.rules[1].trigger_spec.conditions[0].op",
        "$.rules[1].trigger_spec.conditions[1]",  # no `op`
    ]
    assert "unknown operator 'like'" in problems[[p.path for p in problems].index("$.rules[1].trigger_spec.conditions[0].op")].message


def test_secrets_never_reach_the_rule_file() -> None:
    data = {
        "channels": {"s": {"type": "slack", "config": {"webhook_url": "https://hooks.slack.com/T/B/SECRET1"}}},
        "rules": [
            {
                **RULE,
                "actions": [
                    {"channel_id": "s"},
                    {"type": "sms", "account_sid": "AC", "auth_token": "SECRET2", "from_number": "+1", "to": "+2"},
                    {"endpoint": "https://x.example/h", "headers": {"Authorization": "SECRET3"}},
                ],
            }
        ],
    }
    text = import_rules(data)
    for secret in ("SECRET1", "SECRET2", "SECRET3"):
        assert secret not in text
    assert 'webhook_url = env("S_WEBHOOK_URL")' in text
    assert 'headers = {"Authorization": env("X_EXAMPLE_HEADER_AUTHORIZATION")}' in text
    assert check_source(text)[1] == []


def test_seed_template_variables_are_renamed() -> None:
    text = import_rules({**RULE, "action_spec": {"message": "{{ alert_title }} / {{alert_severity}} on {{ rule_id | upper }}"}})
    assert 'message "{{ title }} / {{severity}} on {{ rule | upper }}"' in text


def test_a_template_variable_without_equivalent_is_a_problem_at_the_rule() -> None:
    with pytest.raises(ImportFailed) as err:
        import_rules({**RULE, "action_spec": {"message": "{{ alert_message }}"}})
    (p,) = err.value.problems
    assert p.path == "$" and "alert_message" in p.message


def test_rule_ids_keep_their_spelling_when_safe() -> None:
    assert "rule `rule-7`" in import_rules({**RULE, "rule_id": "rule-7"})
    text = import_rules({**RULE, "rule_id": "a/b c"})
    assert "rule a_b_c" in text and "# note: rule id 'a/b c' renamed to 'a_b_c'" in text


@pytest.mark.parametrize(
    ("value", "us"),
    [(60, 60_000_000), (0.5, 500_000), ("5m", 300_000_000), ("30 seconds", 30_000_000), ("1.5h", 5_400_000_000), ("250ms", 250_000)],
)
def test_durations(value: object, us: int) -> None:
    assert parse_duration_us(value) == us


@pytest.mark.parametrize("value", [0, -5, "5 fortnights", "0.0001s", True, None, "-1m"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration_us(value)


@pytest.mark.parametrize(
    ("interval", "cron"),
    [("1m", "* * * * *"), ("15m", "*/15 * * * *"), ("1h", "0 * * * *"), ("6h", "0 */6 * * *"), ("1d", "0 0 * * *")],
)
def test_schedule_interval_becomes_cron(interval: str, cron: str) -> None:
    rule = {"rule_id": "s", "trigger_type": "schedule", "trigger_spec": {"interval": interval}}
    assert f'schedule "{cron}" over' in import_rules(rule)


def test_schedule_interval_that_cron_cannot_express() -> None:
    with pytest.raises(ImportFailed) as err:
        import_rules({"rule_id": "s", "trigger_type": "schedule", "trigger_spec": {"interval": "7m"}})
    assert err.value.problems[0].path == "$.trigger_spec.interval"


def test_aggregation_without_condition_keeps_the_value_in_the_record() -> None:
    rule = {
        "rule_id": "w",
        "trigger_type": "metric",
        "trigger_spec": {"window": {"type": "tumbling", "size": 60}, "aggregation": {"type": "avg", "field": "cpu"}},
    }
    text = import_rules(rule)
    assert "window tumbling 1m\n  having avg(cpu) is not null\n" in text
    program, _ = check_source(text)
    assert "avg_cpu" in [c.name for c in program.rule("w").output]
