"""A `cep test` file (LANGUAGE.md §9.6), read into plain data with the line of every part.

    rules: ops.cep                      # relative to the test file
    start: "2026-01-01T00:00:00Z"       # offsets like +90s count from here (a test may override it)
    tests:
      - name: ...
        input: {STREAM: [ {field: value, ...}, ... ] | "CSV text"}
        expect: {RULE: [ {field: value, ...}, ... ] | {ordered: true, matches: [...]}}
        expect_messages: {CHANNEL: [ "exact text" | {contains: ..., equals: ..., rule: ...}, ... ]}
        ordered: false                  # default for every list of this test

Inputs are typed here, against the rule file's streams (so a bad value is an error
naming its line, exit 2); expected values are typed later, against the columns the
rule's records actually have.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from cepdsl.diagnostics import CheckError, Diagnostic, did_you_mean
from cepdsl.plan import Program, StreamPlan
from cepdsl.types import Type
from runtime.ruletest.timing import TimeTextError, parse_instant, resolve_time
from runtime.ruletest.yamlnodes import MalformedTestFile, Node, Where, compose

_FILE_KEYS = ("rules", "start", "tests")
_TEST_KEYS = ("name", "rules", "start", "input", "expect", "expect_messages", "ordered")
_RULE_EXPECT_KEYS = ("matches", "ordered")
_MESSAGES_EXPECT_KEYS = ("messages", "ordered")
_MESSAGE_KEYS = ("equals", "contains", "rule")


class RulesDoNotCheck(Exception):
    """The rule file a test file names does not check: its diagnostics."""

    def __init__(self, error: CheckError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class ExpectedMatch:
    fields: dict[str, Node]  # field name → value node (typed against the record's column later)
    keys: dict[str, Node]  # field name → its key node (for messages about unknown fields)
    where: Where


@dataclass(frozen=True, kw_only=True)
class _Expectation:
    """What a rule's and a channel's expectation share: whether the order of the list counts,
    and where the expectation is written."""

    ordered: bool
    where: Where


@dataclass(frozen=True)
class RuleExpectation(_Expectation):
    rule: str
    matches: tuple[ExpectedMatch, ...]


@dataclass(frozen=True)
class ExpectedMessage:
    equals: str | None
    contains: str | None
    rule: str | None
    where: Where

    def accepts(self, rule: str, text: str) -> bool:
        if self.rule is not None and rule != self.rule:
            return False
        if self.equals is not None and text != self.equals:
            return False
        return self.contains is None or self.contains in text

    def describe(self) -> str:
        parts = []
        if self.rule is not None:
            parts.append(f"rule {self.rule}")
        if self.equals is not None:
            parts.append(f"equals {self.equals!r}")
        if self.contains is not None:
            parts.append(f"contains {self.contains!r}")
        return ", ".join(parts)


@dataclass(frozen=True)
class MessageExpectation(_Expectation):
    channel: str
    messages: tuple[ExpectedMessage, ...]


@dataclass
class RuleTest:
    name: str
    where: Where
    start: dt.datetime | None
    inputs: dict[str, pl.DataFrame]
    program: Program
    expect: list[RuleExpectation] = field(default_factory=list)
    expect_messages: list[MessageExpectation] = field(default_factory=list)


@dataclass
class RuleTestFile:
    path: str
    source: str
    rules_path: str
    program: Program
    tests: list[RuleTest]
    warnings: list[str] = field(default_factory=list)


def load_test_file(path: str | Path) -> RuleTestFile:
    """Read, check and type a test file. Raises MalformedTestFile (with the line) or RulesDoNotCheck."""
    name = str(path)
    try:
        source = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise MalformedTestFile(_file_diag(name, "no such file")) from None
    except IsADirectoryError:
        raise MalformedTestFile(_file_diag(name, "is a directory, not a test file")) from None
    except UnicodeDecodeError:
        raise MalformedTestFile(_file_diag(name, "the file is not valid UTF-8")) from None
    try:
        return _read(name, source)
    except MalformedTestFile as e:
        e.source = source
        raise


def _file_diag(name: str, message: str) -> Diagnostic:
    from cepdsl.ast import Span

    return Diagnostic(Span(name, 1, 1, 1, 2), message)


def _read(name: str, source: str) -> RuleTestFile:
    root = compose(source, name)
    top = root.fields("the test file", _FILE_KEYS, required=("tests",))
    compiled: dict[str, Program] = {}
    rules_path, program = _rules_of(top.get("rules"), name, compiled) if "rules" in top else ("", None)
    start = _start(top.get("start"))
    out = RuleTestFile(name, source, rules_path, program, [])  # type: ignore[arg-type]
    tests = top["tests"].sequence("`tests`")
    if not tests:
        top["tests"].fail("`tests` is empty: there is nothing to run")
    for node in tests:
        own = node.fields("a test", _TEST_KEYS, required=("name",)).get("rules") if node.is_mapping else None
        test_program = _rules_of(own, name, compiled)[1] if own is not None else program
        if test_program is None:
            node.fail("no rule file to test: give `rules:` at the top of the file (or in this test)")
        out.tests.append(_read_test(node, test_program, start, out.warnings))
    return out


def _rules_of(node: Node | None, test_file: str, compiled: dict[str, Program]) -> tuple[str, Program]:
    """The rule file a `rules:` names (relative to the test file), checked once per file."""
    assert node is not None
    path = str(Path(test_file).parent / node.string("`rules` (the rule file to test)"))
    if path not in compiled:
        compiled[path] = _compile_rules(node, path)
    return path, compiled[path]


def _compile_rules(node: Node, rules_path: str) -> Program:
    from cepdsl.frontend import compile_path

    try:
        return compile_path(rules_path)
    except FileNotFoundError:
        node.fail(f"rule file `{rules_path}` does not exist", "`rules` is relative to the test file")
    except IsADirectoryError:
        node.fail(f"`{rules_path}` is a directory, not a rule file")
    except CheckError as e:
        raise RulesDoNotCheck(e) from None


def _start(node: Node | None) -> dt.datetime | None:
    if node is None:
        return None
    value = node.value()
    if isinstance(value, dt.datetime):
        from runtime.ruletest.timing import to_utc_naive

        return to_utc_naive(value)
    try:
        return parse_instant(node.string("`start`"))
    except TimeTextError as e:
        node.fail(f"`start`: {e}")


def _read_test(node: Node, program: Program, start: dt.datetime | None, warnings: list[str]) -> RuleTest:
    f = node.fields("a test", _TEST_KEYS, required=("name",))
    name = f["name"].string("a test's `name`")
    if "start" in f:
        start = _start(f["start"])
    ordered = f["ordered"].boolean("`ordered`") if "ordered" in f else False
    inputs: dict[str, pl.DataFrame] = {}
    if "input" in f:
        streams = {s.name: s for s in program.streams}
        for sname, key, value in f["input"].items("`input`"):
            if sname not in streams:
                key.fail(
                    f"the rule file declares no stream `{sname}`",
                    *(did_you_mean(sname, streams) or (f"streams: {', '.join(streams)}",)),
                )
            inputs[sname] = _read_input(value, streams[sname], start, warnings)
    test = RuleTest(name, node.where, start, inputs, program)
    if "expect" in f:
        rules = [r.id for r in program.rules]
        for rid, key, value in f["expect"].items("`expect`"):
            if rid not in rules:
                key.fail(f"the rule file has no rule `{rid}`", *(did_you_mean(rid, rules) or (f"rules: {', '.join(rules)}",)))
            test.expect.append(_read_rule_expectation(rid, key, value, ordered))
    if "expect_messages" in f:
        channels = [c.name for c in program.channels]
        for ch, key, value in f["expect_messages"].items("`expect_messages`"):
            if ch not in channels:
                key.fail(
                    f"the rule file has no channel `{ch}`",
                    *(did_you_mean(ch, channels) or (f"channels: {', '.join(channels) or 'none'}",)),
                )
            test.expect_messages.append(_read_message_expectation(ch, key, value, ordered))
    if not test.expect and not test.expect_messages:
        node.fail(f"test `{name}` checks nothing: give `expect` or `expect_messages`")
    return test


# --------------------------------------------------------------------------- input


def _read_input(node: Node, stream: StreamPlan, start: dt.datetime | None, warnings: list[str]) -> pl.DataFrame:
    from runtime.sources.records import type_rows

    what = f"input of stream `{stream.name}`"
    if node.is_scalar and isinstance(node.value(), str):
        records, wheres = _csv_rows(node, stream, start, warnings)
    else:
        records, wheres = [], []
        for row in node.sequence(what + " (a list of objects, or CSV text)"):
            records.append(_json_row(row, stream, start, warnings))
            wheres.append(row)
    frame, reasons, _dead = type_rows(stream, records)
    if reasons:
        i = min(reasons)
        wheres[i].fail(f"{what}, row {i + 1}: {reasons[i]}")
    return frame


def _known(stream: StreamPlan) -> set[str]:
    names: set[str] = set()
    for f in stream.fields:
        parts = f.name.split(".")
        names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return names


def _warn_unknown(key: Node, name: str, stream: StreamPlan, warnings: list[str]) -> None:
    hint = did_you_mean(name, [f.name for f in stream.fields])
    warnings.append(
        f"{key.where}: warning: field `{name}` is not declared in stream `{stream.name}` (ignored)" + (f"; {hint[0]}" if hint else "")
    )


def _json_row(row: Node, stream: StreamPlan, start: dt.datetime | None, warnings: list[str]) -> dict[str, Any]:
    types = {f.name: f.type for f in stream.fields}
    known = _known(stream)
    out: dict[str, Any] = {}
    for name, key, value in row.items(f"a row of stream `{stream.name}`"):
        if name not in known:
            _warn_unknown(key, name, stream, warnings)
            continue
        out[name] = _input_value(value, types.get(name), start)
    return out


def _input_value(node: Node, typ: Type | None, start: dt.datetime | None) -> Any:
    value = node.value()
    if value is None:
        return None
    if typ is Type.TIMESTAMP:
        if not node.is_scalar:
            node.fail(f"expected a time, got {node.kind}")
        try:
            return _rfc3339(resolve_time(node.text if node.is_plain and not isinstance(value, dt.datetime) else value, start))
        except TimeTextError as e:
            node.fail(str(e))
    if typ is Type.STR and node.is_plain:
        return node.text  # `user: no` is the text "no", not false
    return value


def _rfc3339(t: dt.datetime) -> str:
    return t.isoformat(timespec="microseconds") + "Z"


def _csv_rows(
    node: Node, stream: StreamPlan, start: dt.datetime | None, warnings: list[str]
) -> tuple[list[dict[str, Any]], list[Node]]:
    """Inline CSV: a header line of field names, then one row per line; an empty cell is null."""
    text = node.value()
    # A block scalar (`|`) starts on the line after its indicator.
    first_line = node.where.line + (1 if node.raw.style in ("|", ">") else 0)
    reader = csv.reader(io.StringIO(text))
    lines = [(i, r) for i, r in enumerate(reader) if any(c.strip() for c in r)]
    if not lines:
        node.fail(f"input of stream `{stream.name}`: the CSV text is empty (a header line of field names first)")
    header_at, header = lines[0]
    header = [h.strip() for h in header]
    types = {f.name: f.type for f in stream.fields}
    for h in header:
        if h not in types:
            _warn_unknown(_LineNode(node, first_line + header_at), h, stream, warnings)
    records, wheres = [], []
    for i, cells in lines[1:]:
        at = _LineNode(node, first_line + i)
        if len(cells) != len(header):
            at.fail(f"input of stream `{stream.name}`: this CSV line has {len(cells)} cells, the header {len(header)}")
        rec: dict[str, Any] = {}
        for h, cell in zip(header, cells):
            if h not in types:
                continue
            cell = cell.strip()
            if cell == "":
                rec[h] = None
            elif types[h] is Type.TIMESTAMP:
                try:
                    rec[h] = _rfc3339(resolve_time(cell, start))
                except TimeTextError as e:
                    at.fail(f"field `{h}`: {e}")
            else:
                rec[h] = cell
        records.append(rec)
        wheres.append(at)
    return records, wheres


class _LineNode(Node):
    """A line inside a block scalar (a CSV row), for messages."""

    __slots__ = ("line",)

    def __init__(self, node: Node, line: int) -> None:
        super().__init__(node.raw, node.file)
        self.line = line

    @property
    def where(self) -> Where:
        return Where(self.file, self.line, max(1, self.raw.start_mark.column + 1))

    @property
    def width(self) -> int:
        return 1


# --------------------------------------------------------------------------- expectations


def _listed(node: Node, what: str, keys: tuple[str, str], ordered: bool) -> tuple[Node, bool]:
    """An expectation's list and whether its order counts: a bare list (the test's `ordered`),
    or `{ITEMS: [...], ordered: BOOL}` with `keys` = (ITEMS, "ordered")."""
    if not node.is_mapping:
        return node, ordered
    f = node.fields(what, keys, required=keys[:1])
    return f[keys[0]], (f["ordered"].boolean("`ordered`") if "ordered" in f else ordered)


def _read_rule_expectation(rid: str, key: Node, node: Node, ordered: bool) -> RuleExpectation:
    items_node, ordered = _listed(node, f"the expectation of rule `{rid}`", _RULE_EXPECT_KEYS, ordered)
    matches = []
    for item in items_node.sequence(f"the expected matches of rule `{rid}` (`[]` for none)"):
        fields: dict[str, Node] = {}
        keys: dict[str, Node] = {}
        for name, k, v in item.items(f"an expected match of rule `{rid}` (record fields and values)"):
            fields[name] = v
            keys[name] = k
        matches.append(ExpectedMatch(fields, keys, item.where))
    return RuleExpectation(rid, tuple(matches), ordered=ordered, where=key.where)


def _read_message_expectation(channel: str, key: Node, node: Node, ordered: bool) -> MessageExpectation:
    items_node, ordered = _listed(node, f"the expected messages of channel `{channel}`", _MESSAGES_EXPECT_KEYS, ordered)
    out = []
    for item in items_node.sequence(f"the expected messages of channel `{channel}` (`[]` for none)"):
        if item.is_scalar:
            out.append(ExpectedMessage(item.string("an expected message"), None, None, item.where))
            continue
        f = item.fields("an expected message", _MESSAGE_KEYS)
        if "equals" not in f and "contains" not in f:
            item.fail("an expected message needs `equals` or `contains`")
        out.append(
            ExpectedMessage(
                f["equals"].string("`equals`") if "equals" in f else None,
                f["contains"].string("`contains`") if "contains" in f else None,
                f["rule"].string("`rule`") if "rule" in f else None,
                item.where,
            )
        )
    return MessageExpectation(channel, tuple(out), ordered=ordered, where=key.where)


__all__ = ["MalformedTestFile", "RuleTestFile", "RulesDoNotCheck", "load_test_file"]
