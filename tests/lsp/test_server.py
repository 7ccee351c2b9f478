"""`cep lsp` as an editor sees it: a real server subprocess driven over stdio."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cepdsl.explain import explain_rule
from cepdsl.fmt import format_source
from cepdsl.frontend import check_source
from tests.support.lsp_client import LspClient

pytestmark = pytest.mark.timeout(120)

STREAMS = """\
stream metrics (ts: timestamp, host: str, cpu: float, memory: float, status: str)

channel ops_slack = slack(webhook_url = "https://hooks.slack.test/T000/B000/XXXXSECRET", channel = "#ops")
channel oncall = pagerduty(routing_key = env("PD_KEY"))
"""

THREE_ERRORS = (
    STREAMS
    + """
rule high_cpu "High CPU"
  from metrics
  where cpux > 80 and memory > 70

rule busy
  from metrics
  where cpu > 90
  notify ops_slack
  message "{{ hots }}: cpu {{ cpu }}%"

rule hot
  from metrics
  group by host
  window tumbling 5m
  having avg(cpu) > 85
  notify ops_slak
"""
)

PATTERN = (
    STREAMS
    + """
rule brute
  from metrics
  group by host
  pattern fail{3,} ok within 10m
  define fail as status == "down",
         ok as status == "up"
  notify oncall fallback ops_slack
  message "{{ host }} failed {{ fail_count }} times"
"""
)


@pytest.fixture(scope="module")
def client() -> Iterator[LspClient]:
    c = LspClient()
    c.initialize(None, {"debounceMs": 20})
    yield c
    c.close()


def _doc(tmp_path: Path, text: str, name: str = "ops.cep") -> tuple[str, Path]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path.as_uri(), path


def _pos(text: str, needle: str, after: int = 0) -> dict[str, int]:
    """The LSP position of the first `needle` (plus `after` characters)."""
    off = text.index(needle) + after
    line = text.count("\n", 0, off)
    return {"line": line, "character": off - (text.rfind("\n", 0, off) + 1)}


def _range(span) -> dict:  # a checker span as the LSP range it must become
    return {
        "start": {"line": span.line - 1, "character": span.col - 1},
        "end": {"line": span.end_line - 1, "character": span.end_col - 1},
    }


def test_three_errors_three_diagnostics_as_cep_check(client: LspClient, tmp_path: Path) -> None:
    uri, path = _doc(tmp_path, THREE_ERRORS)
    client.open(uri, THREE_ERRORS)
    got = client.diagnostics(uri)
    _, expected = check_source(THREE_ERRORS, str(path))
    assert len(expected) == 3
    assert [(d["message"], d["code"], d["range"]) for d in got] == [(e.message, e.code, _range(e.span)) for e in expected]
    # Right places: the misspelt field, the template variable inside `message`, the channel.
    lines = THREE_ERRORS.split("\n")
    marked = [lines[d["range"]["start"]["line"]][d["range"]["start"]["character"] : d["range"]["end"]["character"]] for d in got]
    assert marked == ["cpux", "hots", "ops_slak"]
    assert got[1]["message"] == "unknown template variable `hots` in `message`"
    assert got[0]["data"]["replacement"] == "cpu"
    assert got[0]["relatedInformation"][0]["message"] == "hint: did you mean `cpu`?"


def test_a_typed_character_updates_the_diagnostics(client: LspClient, tmp_path: Path) -> None:
    uri, _ = _doc(tmp_path, THREE_ERRORS)
    client.open(uri, THREE_ERRORS)
    assert len(client.diagnostics(uri, version=1)) == 3
    # Delete the `x` of `cpux`, then type a `c` into `ops_slak` -> `ops_slack`... one at a time.
    p = _pos(THREE_ERRORS, "cpux", 3)
    client.change(uri, 2, (p["line"], p["character"]), (p["line"], p["character"] + 1), "")
    after = client.diagnostics(uri, version=2)
    assert [d["message"] for d in after] == ["unknown template variable `hots` in `message`", "unknown channel `ops_slak`"]
    text = THREE_ERRORS.replace("cpux", "cpu")
    p = _pos(text, "ops_slak\n", 7)
    client.change(uri, 3, (p["line"], p["character"]), (p["line"], p["character"]), "c")
    assert [d["message"] for d in client.diagnostics(uri, version=3)] == ["unknown template variable `hots` in `message`"]
    # A new syntax error appears as `cep check` reports it.
    text = text.replace("ops_slak\n", "ops_slack\n")
    p = _pos(text, "window tumbling 5m", 16)
    client.change(uri, 4, (p["line"], p["character"]), (p["line"], p["character"] + 2), "5x")
    broken = text.replace("window tumbling 5m", "window tumbling 5x")
    _, expected = check_source(broken, "x.cep")
    got = client.diagnostics(uri, version=4)
    assert [(d["message"], d["range"]) for d in got] == [(e.message, _range(e.span)) for e in expected]


def test_completion_after_where_lists_the_stream_fields(client: LspClient, tmp_path: Path) -> None:
    text = STREAMS + "\nrule r\n  from metrics where "
    uri, _ = _doc(tmp_path, text)
    client.open(uri, text)
    end = {"line": text.count("\n"), "character": len(text.split("\n")[-1])}
    items = client.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": end})["items"]
    fields = {i["label"]: i["detail"] for i in items if i["kind"] == 5}  # Field
    assert fields == {"ts": "timestamp", "host": "str", "cpu": "float", "memory": "float", "status": "str"}
    functions = {i["label"]: i["detail"] for i in items if i["kind"] == 3}
    assert functions["round"].startswith("round(x: number")
    assert "avg" not in functions  # aggregates only in `having`


def test_completion_of_names_in_context(client: LspClient, tmp_path: Path) -> None:
    def labels(text: str) -> set[str]:
        d = tmp_path / f"c{abs(hash(text))}"  # a directory each: the files of one directory form one program
        d.mkdir()
        uri, _ = _doc(d, text)
        client.open(uri, text)
        end = {"line": text.count("\n"), "character": len(text.split("\n")[-1])}
        return {
            i["label"] for i in client.request("textDocument/completion", {"textDocument": {"uri": uri}, "position": end})["items"]
        }

    assert {"ops_slack", "oncall"} <= labels(STREAMS + "\nrule r from metrics notify ")
    assert {"ops_slack", "oncall"} <= labels(STREAMS + "\nrule r from metrics notify oncall fallback ")
    assert {"fail", "ok"} <= labels(PATTERN.replace("pattern fail{3,} ok within 10m", "pattern fail{3,} ok ").split("  define")[0])
    assert labels(STREAMS + "\nrule r from metrics pattern a b\n define a as cpu > 1, ") >= {"b"}
    having = labels(STREAMS + "\nrule r from metrics window tumbling 1m having ")
    assert {"avg", "count", "percentile", "cpu"} <= having
    opts = labels("channel c = email(smtp_host = \"m\", ")
    assert {"sender", "to", "starttls", "password", "retries", "timeout"} <= opts and "smtp_host" not in opts
    assert labels("channel c = ") >= {"slack", "webhook", "pagerduty", "email", "sms", "file", "console"}
    assert labels(STREAMS + "\nrule r from ") >= {"metrics"}
    assert labels(STREAMS + "\nrule r from metrics severity ") == {"info", "low", "medium", "high", "critical"}
    assert labels(STREAMS + '\nrule r from metrics message "cpu is ') == set()  # inside a string
    assert labels(STREAMS + '\nrule r from metrics where cpu > 1 # a note ') == set()  # inside a comment
    # Inside a message's `{{ }}`: the match record's names, aggregates included.
    record = labels(STREAMS + '\nrule r from metrics group by host window tumbling 1m having avg(cpu) > 1\n  message "{{ ')
    assert record == {"rule", "ts", "severity", "host", "window_start", "window_end", "avg_cpu", "title"}


def test_formatting_returns_the_formatters_output(client: LspClient, tmp_path: Path) -> None:
    text = "stream  s(ts:timestamp,x:int)\nrule r from s where x>1   severity high\n"
    uri, _ = _doc(tmp_path, text)
    client.open(uri, text)
    edits = client.request("textDocument/formatting", {"textDocument": {"uri": uri}, "options": {"tabSize": 2, "insertSpaces": True}})
    assert len(edits) == 1 and edits[0]["range"]["start"] == {"line": 0, "character": 0}
    assert edits[0]["newText"] == format_source(text)
    # Already formatted: nothing to do; not parsing: nothing offered.
    done = format_source(text)
    uri2, _ = _doc(tmp_path, done, "done.cep")
    client.open(uri2, done)
    assert (
        client.request("textDocument/formatting", {"textDocument": {"uri": uri2}, "options": {"tabSize": 2, "insertSpaces": True}})
        == []
    )


def test_quick_fix_replaces_the_misspelt_name(client: LspClient, tmp_path: Path) -> None:
    uri, _ = _doc(tmp_path, THREE_ERRORS)
    client.open(uri, THREE_ERRORS)
    diags = client.diagnostics(uri)
    actions = client.request(
        "textDocument/codeAction",
        {"textDocument": {"uri": uri}, "range": diags[0]["range"], "context": {"diagnostics": [diags[0]]}},
    )
    assert [a["title"] for a in actions] == ["Replace with `cpu`"]
    (edit,) = actions[0]["edit"]["changes"][uri]
    lines = THREE_ERRORS.split("\n")
    r = edit["range"]
    line = lines[r["start"]["line"]]
    lines[r["start"]["line"]] = line[: r["start"]["character"]] + edit["newText"] + line[r["end"]["character"] :]
    fixed = "\n".join(lines)
    assert "where cpu > 80" in fixed
    _, left = check_source(fixed, "x.cep")
    assert "cpux" not in " ".join(d.message for d in left) and len(left) == 2


def test_hover(client: LspClient, tmp_path: Path) -> None:
    text = (
        STREAMS
        + """
rule hot "Hot hosts"
  from metrics
  group by host
  window tumbling 5m
  having avg(cpu) > 85 and percentile(memory, 95) > 1
  notify ops_slack
  message "{{ host }}: {{ avg_cpu }}"
"""
    )
    uri, path = _doc(tmp_path, text)
    client.open(uri, text)

    def hover(needle: str, after: int = 0) -> str:
        res = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": _pos(text, needle, after)})
        return res["contents"]["value"] if res else ""

    assert "cpu: float" in hover("cpu: float") and "stream `metrics`" in hover("cpu: float")
    assert "output column `avg_cpu`: float" in hover("avg(cpu)", 1)
    assert "output column `p95_memory`: float" in hover("percentile(", 2)
    slack = hover("notify ops_slack", 9)
    assert "slack(" in slack and "SECRET" not in slack and "channel = \"#ops\"" in slack
    assert 'routing_key = env("PD_KEY")' in hover("oncall", 1)
    (program, _) = check_source(text, str(path))
    assert program is not None
    plan = hover("hot", 1)
    assert explain_rule(program.rule("hot"), program).rstrip() in plan
    assert "host: str" in hover("metrics\n  group", 2)
    # A template variable: the match record column it reads.
    assert "avg_cpu: float" in hover("{{ avg_cpu", 4) and "rule `hot`" in hover("{{ avg_cpu", 4)


def test_definition_and_references(client: LspClient, tmp_path: Path) -> None:
    uri, _ = _doc(tmp_path, PATTERN)
    client.open(uri, PATTERN)

    def at(method: str, needle: str, after: int = 1, **extra) -> list[tuple[int, int]]:
        res = client.request(method, {"textDocument": {"uri": uri}, "position": _pos(PATTERN, needle, after), **extra})
        return [(r["range"]["start"]["line"], r["range"]["start"]["character"]) for r in res]

    def where(needle: str, after: int = 0) -> tuple[int, int]:
        p = _pos(PATTERN, needle, after)
        return (p["line"], p["character"])

    assert at("textDocument/definition", "fail{3,}") == [where("fail as")]
    assert at("textDocument/definition", "oncall fallback") == [where("oncall =")]
    assert at("textDocument/definition", "metrics\n  group") == [where("metrics (")]
    assert at("textDocument/definition", "host\n  pattern") == [where("host: str")]
    assert at("textDocument/definition", "{{ host", 4) == [where("host: str")]  # a template variable
    refs = at("textDocument/references", "fail as", context={"includeDeclaration": True})
    assert sorted(refs) == sorted([where("fail{3,}"), where("fail as")])
    refs = at("textDocument/references", "ops_slack =", context={"includeDeclaration": False})
    assert refs == [where("ops_slack\n")]
    refs = at("textDocument/references", "metrics (", context={"includeDeclaration": True})
    assert sorted(refs) == sorted([where("metrics ("), where("metrics\n  group")])
    refs = at("textDocument/references", "status: str", context={"includeDeclaration": False})
    assert sorted(refs) == sorted([where('status == "down"'), where('status == "up"')])


def test_files_of_a_directory_form_one_program(client: LspClient, tmp_path: Path) -> None:
    streams_uri, _ = _doc(tmp_path, STREAMS, "a_streams.cep")  # on disk only, never opened
    rules = "rule r\n  from metrics\n  where cpu > 1\n  notify oncall\n"
    uri, _ = _doc(tmp_path, rules, "b_rules.cep")
    client.open(uri, rules)
    assert client.diagnostics(uri) == []
    res = client.request("textDocument/definition", {"textDocument": {"uri": uri}, "position": _pos(rules, "oncall", 1)})
    assert [r["uri"] for r in res] == [streams_uri]
    assert res[0]["range"]["start"] == _pos(STREAMS, "oncall =")
    # A file of the directory that is not UTF-8: the error `cep check` gives, on that file.
    bad = tmp_path / "c_bad.cep"
    bad.write_bytes(b"# caf\xe9\n")
    n = len(client.notifications)
    client.notify("workspace/didChangeWatchedFiles", {"changes": [{"uri": bad.as_uri(), "type": 1}]})
    (d,) = client.wait_for("textDocument/publishDiagnostics", lambda p: p["uri"] == bad.as_uri(), after=n)["diagnostics"]
    assert d["message"] == "the file is not valid UTF-8" and d["range"]["start"] == {"line": 0, "character": 5}
    bad.unlink()
    # A rule using a stream nobody declares: the same error `cep check` gives.
    n = len(client.notifications)
    client.change(uri, 2, (1, 7), (1, 14), "metricz")
    got = client.diagnostics(uri, version=2, after=n)
    assert [d["message"] for d in got] == ["unknown stream `metricz`"]
    assert got[0]["data"]["replacement"] == "metrics"


def test_document_symbols(client: LspClient, tmp_path: Path) -> None:
    uri, _ = _doc(tmp_path, PATTERN)
    client.open(uri, PATTERN)
    syms = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert [(s["name"], s["kind"]) for s in syms] == [("metrics", 23), ("ops_slack", 24), ("oncall", 24), ("brute", 12)]
    assert [c["name"] for c in syms[0]["children"]] == ["ts", "host", "cpu", "memory", "status"]
    assert [c["name"] for c in syms[3]["children"]] == ["fail", "ok"]
    assert syms[3]["selectionRange"]["start"] == _pos(PATTERN, "brute")


def test_positions_count_utf16_units(client: LspClient, tmp_path: Path) -> None:
    text = 'stream s (ts: timestamp, x: int)\nrule r from s where x > 1 message "🚀🚀 {{ y }}"\n'
    uri, _ = _doc(tmp_path, text)
    client.open(uri, text)
    (d,) = client.diagnostics(uri)
    line = text.split("\n")[1]
    col = len(line[: line.index("y }}")].encode("utf-16-le")) // 2
    assert d["range"]["start"] == {"line": 1, "character": col}


def test_program_modes_and_debounce(tmp_path: Path) -> None:
    """`workspace` reads rule files in subdirectories; `file` checks a file alone; with a
    long debounce, quick edits are checked once, at the last version."""
    (tmp_path / "decls").mkdir()
    (tmp_path / "decls" / "streams.cep").write_text(STREAMS)
    (tmp_path / "rules").mkdir()
    rules = "rule r\n  from metrics\n  where cpu > 1\n"
    uri, _ = _doc(tmp_path / "rules", rules)

    ws = LspClient()
    try:
        ws.initialize(tmp_path, {"program": "workspace", "debounceMs": 1000})
        ws.open(uri, rules)
        assert ws.diagnostics(uri, version=1) == []
        n = len(ws.notifications)
        for v, ch in enumerate("abc", start=2):  # `cpu` -> `cpua`, `cpuab`, `cpuabc` within the debounce
            ws.change(uri, v, (2, 11 + v - 2), (2, 11 + v - 2), ch)
        got = ws.diagnostics(uri, version=4, after=n)
        assert [d["message"] for d in got] == ["unknown field `cpuabc` in stream `metrics`"]
        published = [
            m for _, m in ws.notifications[n:] if m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri
        ]
        assert [m["params"]["version"] for m in published] == [4]
    finally:
        ws.close()

    alone = LspClient()
    try:
        alone.initialize(tmp_path, {"program": "file"})
        alone.open(uri, rules)
        assert [d["code"] for d in alone.diagnostics(uri)] == ["unknown-stream"]
    finally:
        alone.close()


def test_unsaved_buffers_and_closing(client: LspClient) -> None:
    """An untitled buffer is a program of its own; closing it clears its diagnostics."""
    uri = "untitled:Untitled-1"
    text = "stream s (ts: timestamp, x: int)\nrule r from s where y > 1\n"
    client.open(uri, text)
    (d,) = client.diagnostics(uri)
    assert d["message"] == "unknown field `y` in stream `s`" and d["range"]["start"] == {"line": 1, "character": 20}
    n = len(client.notifications)
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    assert client.diagnostics(uri, after=n) == []


def test_signature_help(client: LspClient, tmp_path: Path) -> None:
    text = STREAMS + "\nrule r from metrics window tumbling 1m having percentile(cpu, "
    uri, _ = _doc(tmp_path, text)
    client.open(uri, text)
    end = {"line": text.count("\n"), "character": len(text.split("\n")[-1])}
    help_ = client.request("textDocument/signatureHelp", {"textDocument": {"uri": uri}, "position": end})
    (sig,) = help_["signatures"]
    assert sig["label"].startswith("percentile(f: number, q: literal 0..100)")
    assert help_["activeParameter"] == 1
    text2 = 'channel c = email(smtp_host = "m", '
    uri2, _ = _doc(tmp_path, text2, "ch.cep")
    client.open(uri2, text2)
    help2 = client.request(
        "textDocument/signatureHelp", {"textDocument": {"uri": uri2}, "position": {"line": 0, "character": len(text2)}}
    )
    assert help2["signatures"][0]["label"].startswith("email(smtp_host, smtp_port?, sender, to,")


def test_rename_a_channel_across_files(client: LspClient, tmp_path: Path) -> None:
    _doc(tmp_path, STREAMS, "a_decls.cep")
    rules = "rule r\n  from metrics\n  notify oncall fallback ops_slack\n"
    uri, _ = _doc(tmp_path, rules, "b_rules.cep")
    client.open(uri, rules)
    client.diagnostics(uri)
    pos = {"textDocument": {"uri": uri}, "position": _pos(rules, "oncall", 2)}
    rng = client.request("textDocument/prepareRename", pos)
    assert rng["start"] == _pos(rules, "oncall")
    edit = client.request("textDocument/rename", {**pos, "newName": "pager"})["changes"]
    decls_uri = (tmp_path / "a_decls.cep").as_uri()
    assert {u: [e["newText"] for e in es] for u, es in edit.items()} == {decls_uri: ["pager"], uri: ["pager"]}
    assert edit[decls_uri][0]["range"]["start"] == _pos(STREAMS, "oncall =")
    # A field may be used inside message templates: not offered.
    with pytest.raises(RuntimeError, match="not supported"):
        client.request(
            "textDocument/prepareRename",
            {"textDocument": {"uri": uri}, "position": _pos(rules, "metrics", 1)}
            | {"position": _pos(STREAMS, "cpu", 1), "textDocument": {"uri": decls_uri}},
        )
    with pytest.raises(RuntimeError, match="is not a name"):
        client.request("textDocument/rename", {**pos, "newName": "2x"})


TABLES = (
    STREAMS
    + """
table hosts (host: str, region: str, tier: int)
  key host
  from "hosts.csv"

template oncall = "{{ title }} on {{ host }}"

rule by_region
  from metrics
  join hosts as h on host
  where h.region == "eu" and cpu > 90
  message template("oncall")

silence nightly "Backups"
  match rule in ["by_region"] and host starts_with "db-"
  every "0 2 * * *" for 2h
"""
)


def test_tables_joins_templates_silences(client: LspClient, tmp_path: Path) -> None:
    (tmp_path / "hosts.csv").write_text("host,region,tier\na,eu,1\n")
    uri, path = _doc(tmp_path, TABLES)
    client.open(uri, TABLES)
    assert client.diagnostics(uri) == check_source(TABLES, str(path))[1] == []

    def at(method: str, needle: str, after: int = 1, **extra):
        return client.request(method, {"textDocument": {"uri": uri}, "position": _pos(TABLES, needle, after), **extra})

    # Definitions: the table from `join`, its field from `h.region`, the template from `template("oncall")`.
    assert [r["range"]["start"] for r in at("textDocument/definition", "hosts as h")] == [_pos(TABLES, "hosts (")]
    assert [r["range"]["start"] for r in at("textDocument/definition", "h.region ==")] == [_pos(TABLES, "region: str")]
    assert [r["range"]["start"] for r in at("textDocument/definition", '"oncall")', 2)] == [_pos(TABLES, 'oncall = "{{')]
    assert "field of table `hosts`" in at("textDocument/hover", "h.region ==", 3)["contents"]["value"]
    assert "table hosts" in at("textDocument/hover", "hosts as h")["contents"]["value"]
    syms = client.request("textDocument/documentSymbol", {"textDocument": {"uri": uri}})
    assert [s["name"] for s in syms] == ["metrics", "ops_slack", "oncall", "hosts", "oncall", "by_region", "nightly"]

    def labels(text: str) -> set[str]:
        d = tmp_path / f"c{abs(hash(text))}"
        d.mkdir()
        u, _ = _doc(d, text)
        client.open(u, text)
        end = {"line": text.count("\n"), "character": len(text.split("\n")[-1])}
        return {i["label"] for i in client.request("textDocument/completion", {"textDocument": {"uri": u}, "position": end})["items"]}

    head = TABLES.split("rule by_region")[0]
    assert labels(head + "rule r from metrics join ") >= {"hosts"}
    assert labels(head + "rule r from metrics join hosts as h on host where ") >= {"h.region", "h.tier", "cpu"}
    assert labels(head + 'rule r from metrics message template("') == {"oncall"}
