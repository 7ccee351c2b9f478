"""cepdsl.templates: sandbox, strictness, variables, and bounded render time/size."""

from __future__ import annotations

import time

import pytest

from cepdsl.templates import TemplateError, render, template_variables

pytestmark = pytest.mark.timeout(20)

REC = {"host": "web-1", "cpu": 93.5, "title": "High CPU", "rule": "high_cpu", "data.avg": 3.25}


def test_renders_record_fields_and_dotted_names():
    assert (
        render("{{ host }}: {{ cpu }}% avg {{ data.avg }} ({{ title }}/{{ rule }})", REC)
        == "web-1: 93.5% avg 3.25 (High CPU/high_cpu)"
    )
    assert render("{{ host|upper }} {{ '%.1f'|format(cpu) }}", REC) == "WEB-1 93.5"


def test_template_variables_lists_what_the_record_must_provide():
    text = "{{ host }}{% for i in range(2) %}{{ i }}{{ data.avg }}{% endfor %}{% set z = 1 %}{{ z }}{{ loop_var|default(1) }}"
    assert template_variables(text) == {"host", "data", "loop_var"}
    with pytest.raises(TemplateError, match="syntax"):
        template_variables("{% for x in %}")


@pytest.mark.parametrize(
    "text, why",
    [
        ("{{ nope }}", "undefined"),
        ("{{ host.__class__ }}", "not allowed"),
        ("{{ host.__class__.__mro__[1].__subclasses__() }}", "not allowed"),
        ("{{ ''.format }}", "str.format"),
        ("{{ 1/0 }}", "ZeroDivisionError"),
        ("{{ lipsum(10) }}", "undefined"),
    ],
)
def test_sandbox_and_strictness(text, why):
    with pytest.raises(TemplateError, match=why):
        render(text, REC)


@pytest.mark.parametrize(
    "text",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{{ 'x' * 100000000 }}",
        "{{ 2 ** 100000000 }}",
        "{{ 'x'|center(999999999) }}",
        "{% set ns = namespace(x='ab') %}{% for i in range(64) %}{% set ns.x = ns.x ~ ns.x %}{% endfor %}",
        "{% for i in range(100000) %}{{ i }}{% endfor %}",
        "{{ '%999999999d' % 1 }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    ],
)
def test_runaway_templates_fail_fast(text):
    t0 = time.perf_counter()
    with pytest.raises(TemplateError):
        render(text, REC, max_chars=16_000, max_seconds=0.2)
    assert time.perf_counter() - t0 < 3.0  # the limit is 0.2 s of CPU; wall time has slack for a busy machine


def test_a_runaway_template_does_not_stop_the_rest_of_the_batch(receiver, make_notifier):
    from conftest import cpu_rows, matches, program

    prog = program("""
channel hook = webhook(url = env("HOOK_URL"))
rule slow from metrics where cpu > 1 notify hook
  message "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
rule fine from metrics where cpu > 1 notify hook message "{{ host }} ok"
""")
    n = make_notifier(prog, {"HOOK_URL": receiver.url + "/hook"}, template_max_seconds=0.05).start()
    n.submit("slow", matches(prog, "slow", cpu_rows(2)))
    n.submit("fine", matches(prog, "fine", cpu_rows(2)))
    assert n.drain(10)
    got = [r.json() for r in receiver.received("/hook")]
    assert len(got) == 4
    fine = sorted(g["message"] for g in got if g["rule"] == "fine")
    assert fine == ["web-0 ok", "web-1 ok"]
    slow = [g["message"] for g in got if g["rule"] == "slow"]
    assert all("(message template failed: template took too long" in m and "host=web-" in m for m in slow)
    assert n.stats()["template_errors"] == 2
