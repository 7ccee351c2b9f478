"""Running a test file: replay each test's input through its rule file, compare, explain."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cepdsl.plan import Program
from runtime.ruletest.compare import (
    field_differences,
    fits,
    nearest,
    pair_up,
    show_expected,
    show_record,
    type_expectation,
)
from runtime.ruletest.spec import MessageExpectation, RuleExpectation, RuleTest, RuleTestFile, load_test_file

_EARLIEST = dt.datetime.min


@dataclass
class TestOutcome:
    """One test's result; `failures` holds the readable diff (empty when it passed)."""

    __test__ = False  # not a pytest class

    name: str
    file: str
    line: int
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class FileOutcome:
    path: str
    tests: list[TestOutcome] = field(default_factory=list)
    error: str | None = None  # rendered diagnostics: the file could not be run (exit 2)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.error is None and all(t.passed for t in self.tests)


def run_file(path: str | Path) -> FileOutcome:
    """Load and run one test file; a malformed file gives an outcome with `error` set."""
    from cepdsl.diagnostics import render, render_all
    from runtime.ruletest.spec import RulesDoNotCheck
    from runtime.ruletest.yamlnodes import MalformedTestFile

    try:
        loaded = load_test_file(path)
    except MalformedTestFile as e:
        return FileOutcome(str(path), error=render(e.diagnostic, e.source))
    except RulesDoNotCheck as e:
        return FileOutcome(str(path), error=render_all(e.error.diagnostics, e.error.sources))
    out = FileOutcome(str(path), warnings=list(loaded.warnings))
    for test in loaded.tests:
        try:
            out.tests.append(run_test(loaded, test))
        except _Malformed as e:  # an expected value that cannot be of its field's type
            out.error = e.rendered
            return out
    return out


class _Malformed(Exception):
    def __init__(self, rendered: str) -> None:
        super().__init__(rendered)
        self.rendered = rendered


def run_test(file: RuleTestFile, test: RuleTest) -> TestOutcome:
    from cepdsl import Rules
    from cepdsl.diagnostics import render
    from runtime.ruletest.yamlnodes import MalformedTestFile

    t0 = time.perf_counter()
    outcome = TestOutcome(test.name, file.path, test.where.line)
    try:
        matches, dead = Rules(test.program).replay_with_dead_letters(test.inputs)
    except Exception as e:  # noqa: BLE001 - a frame that does not fit: the test's fault, named
        outcome.failures.append(f"replay failed: {e}")
        outcome.seconds = time.perf_counter() - t0
        return outcome
    try:
        for exp in test.expect:
            outcome.failures += _check_rule(exp, matches[exp.rule], test)
        for mexp in test.expect_messages:
            outcome.failures += _check_messages(mexp, test.program, matches)
    except MalformedTestFile as e:
        raise _Malformed(render(e.diagnostic, file.source)) from None
    if outcome.failures and dead.height:
        reasons = dead.group_by("reason", maintain_order=True).len()
        outcome.failures.append(
            "note: input rows that went to the dead letters: " + "; ".join(f"{n} × {r}" for r, n in reasons.iter_rows())
        )
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _check_rule(exp: RuleExpectation, frame: pl.DataFrame, test: RuleTest) -> list[str]:
    start = test.start
    schema = dict(frame.schema)
    expected = [type_expectation(m, schema, start) for m in exp.matches]
    records = frame.to_dicts()
    first = list(dict.fromkeys(n for e in expected for n in e.values))
    head = f"rule {exp.rule} (line {exp.where.line}): expected {_n(len(expected), 'match', 'matches')}, produced {len(records)}"
    if exp.ordered:
        lines = []
        for k in range(max(len(expected), len(records))):
            if k >= len(records):
                lines.append(
                    f"  #{k + 1} (line {expected[k].line}): expected {show_expected(expected[k], start)}, "
                    "but nothing more was produced"
                )
            elif k >= len(expected):
                lines.append(f"  #{k + 1}: produced {show_record(records[k], start, first)}, not expected")
            elif not fits(expected[k], records[k]):
                diffs = field_differences(expected[k], records[k], start, list(schema))
                lines.append(f"  #{k + 1} (line {expected[k].line}): {'; '.join(diffs)}")
                lines.append(f"      produced {show_record(records[k], start, first)}")
        return [head + " (in order)", *lines] if lines else []
    pairing = pair_up(len(expected), len(records), lambda i, j: fits(expected[i], records[j]))
    used = {j for j in pairing if j is not None}
    spare = [j for j in range(len(records)) if j not in used]
    lines = []
    missing = [i for i, j in enumerate(pairing) if j is None]
    if missing:
        lines.append("  expected, not produced:")
        for i in missing:
            lines.append(f"    line {expected[i].line}: {show_expected(expected[i], start)}")
            near = nearest(expected[i], records, spare or range(len(records)))
            if near is not None:
                diffs = field_differences(expected[i], records[near], start, list(schema))
                lines.append(f"      nearest produced: {show_record(records[near], start, first)}")
                lines.append(f"      differs in: {'; '.join(diffs)}")
    if spare:
        lines.append("  produced, not expected:")
        for j in spare:
            lines.append(f"    {show_record(records[j], start, first)}")
    return [head, *lines] if lines else []


def _n(k: int, one: str, many: str) -> str:
    return f"{k} {one if k == 1 else many}"


def messages_for(program: Program, channel: str, matches: dict[str, pl.DataFrame]) -> list[tuple[str, Any, str]]:
    """(rule, ts, text) of every message the rules would send to `channel`, in time order
    (ties: file order of the rules).  Rendered as the notifier renders them; nothing is sent,
    and channel options (`env(...)` secrets among them) are never resolved."""
    from runtime.notify.records import frame_records, notified
    from runtime.notify.templates import render_message

    kind = program.channel(channel).kind
    out: list[tuple[Any, ...]] = []
    for order, rule in enumerate(program.rules):
        if channel not in rule.notify:
            continue
        for k, record in enumerate(frame_records(notified(matches[rule.id]))):
            text = render_message(rule, kind, record).text
            ts = record.get("ts")
            out.append((ts is None, ts or _EARLIEST, order, k, rule.id, ts, text))
    out.sort(key=lambda m: m[:4])
    return [(m[4], m[5], m[6]) for m in out]


def _check_messages(exp: MessageExpectation, program: Program, matches: dict[str, pl.DataFrame]) -> list[str]:
    sent = messages_for(program, exp.channel, matches)
    want = exp.messages
    head = f"channel {exp.channel} (line {exp.where.line}): expected {_n(len(want), 'message', 'messages')}, rendered {len(sent)}"
    lines = []
    if exp.ordered:
        for k in range(max(len(want), len(sent))):
            if k >= len(sent):
                lines.append(
                    f"  #{k + 1} (line {want[k].where.line}): expected a message that {want[k].describe()}, but no more were rendered"
                )
            elif k >= len(want):
                lines.append(f"  #{k + 1}: rendered {_show_message(sent[k])}, not expected")
            elif not want[k].accepts(sent[k][0], sent[k][2]):
                lines.append(f"  #{k + 1} (line {want[k].where.line}): expected a message that {want[k].describe()}")
                lines.append(f"      rendered {_show_message(sent[k])}")
        return [head + " (in order)", *lines] if lines else []
    pairing = pair_up(len(want), len(sent), lambda i, j: want[i].accepts(sent[j][0], sent[j][2]))
    used = {j for j in pairing if j is not None}
    missing = [i for i, j in enumerate(pairing) if j is None]
    spare = [j for j in range(len(sent)) if j not in used]
    if missing:
        lines.append("  expected, not rendered:")
        lines += [f"    line {want[i].where.line}: a message that {want[i].describe()}" for i in missing]
    if spare:
        lines.append("  rendered, not expected:")
        lines += [f"    {_show_message(sent[j])}" for j in spare]
    return [head, *lines] if lines else []


def _show_message(message: tuple[str, Any, str]) -> str:
    rule, _ts, text = message
    return f"[{rule}] {text!r}"
