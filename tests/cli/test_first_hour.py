"""The first hour of a new user (issue 19): what the commands say when things go right,
when input is left over from an earlier run, and what a script can rely on."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
OPS = str(EXAMPLES / "ops.cep")
AUTH_JSONL = EXAMPLES / "data" / "auth.jsonl"


def cep(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


# ----------------------------------------------------------------------------- check


def test_check_says_what_it_checked(tmp_path: Path) -> None:
    (tmp_path / "a.cep").write_text("stream s (ts: timestamp, x: int)\nrule r1 from s where x > 1\nrule r2 from s where x > 2\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.cep").write_text("stream t (ts: timestamp, y: int)\nrule r3 from t where y > 1\n")
    (tmp_path / "notes.txt").write_text("not a rule file")
    r = cep("check", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "checked 2 files: 3 rules, no errors\n"
    assert r.stderr == ""


def test_check_reads_stdin_and_names_it(tmp_path: Path) -> None:
    r = cep("check", "-", stdin="stream s (ts: timestamp, x: int)\nrule r from s where y > 1\n")
    assert r.returncode == 1
    assert r.stderr.startswith("<stdin>:2:21: error: unknown field `y`")
    ok = cep("check", "-", OPS, stdin="stream s (ts: timestamp, x: int)\nrule r from s where x > 1\n")
    assert ok.returncode == 0 and ok.stdout == "checked 2 files: 7 rules, no errors\n"


def test_check_formats_for_machines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cep"
    bad.write_text("stream m (ts: timestamp, cpu: float)\nrule a from m where cpuu > 1\n")
    j = cep("check", "--format", "json", str(bad), OPS)
    assert j.returncode == 1 and j.stderr == ""
    doc = json.loads(j.stdout)
    # The files form one program (LANGUAGE.md §9.1): with an error in it, no rule compiled.
    assert doc["ok"] is False and doc["files"] == [str(bad), OPS] and doc["rules"] == 0
    (d,) = doc["diagnostics"]
    assert {k: d[k] for k in ("file", "line", "col", "end_line", "end_col", "code", "message", "hints")} == {
        "file": str(bad),
        "line": 2,
        "col": 21,
        "end_line": 2,
        "end_col": 25,
        "code": d["code"],
        "message": "unknown field `cpuu` in stream `m`",
        "hints": ["did you mean `cpu`?"],
    }
    assert d["code"] and "^^^^" in d["rendered"]

    s = json.loads(cep("check", "--format", "sarif", str(bad)).stdout)
    assert s["version"] == "2.1.0"
    (res,) = s["runs"][0]["results"]
    assert res["ruleId"] == d["code"] and res["level"] == "error"
    assert res["locations"][0]["physicalLocation"]["region"] == {"startLine": 2, "startColumn": 21, "endLine": 2, "endColumn": 25}
    assert "hint: did you mean `cpu`?" in res["message"]["text"]

    g = cep("check", "--format", "github", str(bad))
    assert g.returncode == 1
    assert g.stdout == (
        f"::error file={bad},line=2,col=21,endLine=2,endColumn=25,title=cep {d['code']}::"
        "unknown field `cpuu` in stream `m`%0Ahint: did you mean `cpu`?\n"
    )
    clean = json.loads(cep("check", "--format", "json", OPS).stdout)
    assert clean == {"ok": True, "files": [OPS], "rules": 6, "diagnostics": []}


# ----------------------------------------------------------------------------- fmt


def test_every_example_is_formatted() -> None:
    files = sorted(str(p) for p in EXAMPLES.glob("*.cep"))
    assert OPS in files
    r = cep("fmt", "--check", *files)
    assert r.returncode == 0, r.stderr
    assert f"{len(files)} files already formatted" in r.stderr


def test_fmt_many_files_with_check_diff_and_write(tmp_path: Path) -> None:
    messy = "stream s(ts:timestamp,x:int)   rule r from s where (x>1)\n"
    for name in ("a.cep", "b.cep"):
        (tmp_path / name).write_text(messy)
    formatted = cep("fmt", "-", stdin=messy).stdout
    (tmp_path / "c.cep").write_text(formatted)

    chk = cep("fmt", "--check", str(tmp_path))
    assert chk.returncode == 1
    assert f"{tmp_path / 'a.cep'}: would be reformatted" in chk.stderr
    assert "2 files would be reformatted, 1 file already formatted" in chk.stderr

    diff = cep("fmt", "--diff", str(tmp_path))
    assert diff.returncode == 0  # like black: --diff alone reports, --check --diff fails
    assert f"--- {tmp_path / 'a.cep'} (original)" in diff.stdout and "+rule r" in diff.stdout
    assert (tmp_path / "a.cep").read_text() == messy
    assert cep("fmt", "--check", "--diff", str(tmp_path)).returncode == 1

    w = cep("fmt", "--write", str(tmp_path))
    assert w.returncode == 0, w.stderr
    assert all((tmp_path / n).read_text() == formatted for n in ("a.cep", "b.cep", "c.cep"))
    assert cep("fmt", "--check", str(tmp_path)).returncode == 0


# ----------------------------------------------------------------------------- run


def run_auth(tmp_path: Path, *extra: str, source: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return cep("run", OPS, "--source", source or f"auth=jsonl:{AUTH_JSONL}?follow=false", *extra, cwd=tmp_path, stdin=stdin)


@pytest.mark.timeout(300)
def test_second_run_says_why_it_read_nothing_and_fresh_reads_again(tmp_path: Path) -> None:
    first = run_auth(tmp_path, "--out", "out")
    assert first.returncode == 0, first.stderr
    assert "cep run: read 13 rows" in first.stderr
    assert "matched 1 (brute_force 1 → ops_console)" in first.stderr
    assert "records in out/<rule>.jsonl" in first.stderr
    assert "dead letters 1 (field 'ts': expected timestamp: 1) in out/_dead_letter.jsonl" in first.stderr
    assert "state saved in .cep-state.sqlite" in first.stderr

    second = run_auth(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "resuming at byte 1,117, the end of the file" in second.stderr
    assert "--fresh" in second.stderr
    assert "cep run: read 0 rows" in second.stderr
    assert "nothing new was read" in second.stderr

    # The same rows piped in: the restored watermark makes them late; say so, and what to do.
    piped = run_auth(tmp_path, source="auth=jsonl:-", stdin=AUTH_JSONL.read_text())
    assert piped.returncode == 0, piped.stderr
    assert "late against the watermark restored from the state store" in piped.stderr
    assert "late rows: the input is older than the state an earlier run saved (--fresh" in piped.stderr

    fresh = run_auth(tmp_path, "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert "--fresh: forgot" in fresh.stderr
    assert "cep run: read 13 rows" in fresh.stderr
    assert "matched 1 (brute_force 1 → ops_console)" in fresh.stderr
    assert "already sent by an earlier run" in fresh.stderr  # --fresh never touches the outbox's history


@pytest.mark.timeout(300)
def test_state_and_outbox_paths_as_help_says(tmp_path: Path) -> None:
    r = run_auth(tmp_path, "--state", "x.sqlite", "--outbox", "sqlite:o.sqlite", "--checkpoint-every", "5s", "--no-stats")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.sqlite").is_file() and (tmp_path / "o.sqlite").is_file()
    assert not (tmp_path / "sqlite:o.sqlite").exists() and not any(p.name.startswith("sqlite:") for p in tmp_path.iterdir())
    # --no-stats: no live table, no summary, no JSON counters
    assert "read 13" not in r.stderr and "dead_letters" not in r.stderr and "{" not in r.stderr


@pytest.mark.timeout(120)
def test_followed_missing_file_is_an_error_in_the_json_log(tmp_path: Path) -> None:
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "run",
            OPS,
            "--source",
            "metrics=jsonl:/var/log/nope/metrics.jsonl",
            "--log-format",
            "json",
            "--state",
            "memory",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = p.stderr.readline()  # blocks until the first log line
        rec = json.loads(line)
        assert rec["level"] == "error" and "/var/log/nope/metrics.jsonl: no such file" in rec["message"]
        assert set(rec) >= {"time", "level", "logger", "message"}
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=60)
    assert p.returncode == 0


@pytest.mark.parametrize("kind", ["jsonl", "parquet-dir"])
def test_missing_followed_input_is_on_the_source_and_in_health(tmp_path: Path, kind: str) -> None:
    import threading

    from cepdsl.frontend import compile_path
    from runtime.sources import open_source
    from runtime.stream_loop import StreamingEngine

    program = compile_path(OPS)
    missing = tmp_path / ("later.jsonl" if kind == "jsonl" else "later")
    src = open_source(f"{kind}:{missing}?poll=50ms", program.stream("metrics"))
    engine = StreamingEngine(program, {"metrics#0": src})
    stop = threading.Event()
    t = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while src.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
        health = engine.health()
        assert health["degraded"] is True
        assert "no such" in health["sources"]["metrics#0"]["last_error"]
        missing.write_text("") if kind == "jsonl" else missing.mkdir()  # it appears: no longer an error
        deadline = time.monotonic() + 10
        while src.last_error is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.health()["degraded"] is False
    finally:
        stop.set()
        t.join(30)


# ----------------------------------------------------------------------------- replay, colour


@pytest.mark.timeout(300)
def test_replay_summary_as_json_and_no_color(tmp_path: Path) -> None:
    args = ("replay", OPS, "--data", f"auth={EXAMPLES / 'data' / 'auth.parquet'}", "--out", str(tmp_path / "o"), "--no-progress")
    j = cep(*args, "--format", "json")
    assert j.returncode == 0, j.stderr
    doc = json.loads(j.stdout)
    assert doc["rows"] == 12 and doc["rules"]["brute_force"]["matches"] == 1
    assert doc["rules"]["brute_force"]["path"] == str(tmp_path / "o" / "brute_force.parquet")
    coloured = cep(*args, env={"FORCE_COLOR": "1", "NO_COLOR": ""})
    assert "\x1b[" in coloured.stdout  # the table is styled on a terminal...
    plain = cep(*args, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert plain.returncode == 0 and "\x1b[" not in plain.stdout + plain.stderr  # ...and not at all with NO_COLOR


def test_progress_bar_says_it_is_compiling() -> None:
    from rich.progress import Progress

    from runtime.progress import ReplayBar

    bar = ReplayBar(Progress())
    bar(5762, 5762)
    bar.compiling(True)
    assert "compiling" in bar.progress.tasks[0].fields["phase"]
    bar.compiling(False)
    assert bar.progress.tasks[0].fields["phase"] == "replay"


def test_compile_watch_announces_once_after_the_threshold() -> None:
    import io

    import numba

    from runtime.compile_notice import MESSAGE, CompileWatch, announce_compilation

    out = io.StringIO()
    seen = []
    w = CompileWatch(after_s=0.05, out=out, on_change=seen.append)
    w.start()
    w.on_start(None)
    time.sleep(0.4)
    w.on_end(None)
    w.stop()
    assert out.getvalue() == f"cep: {MESSAGE}\n" and seen == [True, False]

    # Numba's own events reach it (a function defined here is never in the disk cache).
    with announce_compilation(after_s=60) as watch:
        numba.njit(lambda x: x + 1)(1)
    assert watch.busy_s > 0 and not watch.announced


# ----------------------------------------------------------------------------- notify, explain


@pytest.mark.timeout(120)
def test_notify_test_exits_non_zero_when_delivery_fails(tmp_path: Path) -> None:
    from tests.support.services import free_port

    f = tmp_path / "n.cep"
    f.write_text(
        "stream s (ts: timestamp, host: str)\n"
        f'channel hook = webhook(url = "http://127.0.0.1:{free_port()}/x", retries = 0, timeout = 2s)\n'
        "rule r from s where host == \"a\" notify hook\n"
    )
    r = cep("notify", "test", str(f), "--rule", "r", "--channel", "hook", "--allow-host", "127.0.0.1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "error: delivery through `hook` failed" in r.stderr
    assert json.loads(r.stdout)["ok"] is False
    assert cep("notify", "test", str(f), "--rule", "r", "--channel", "hook", "--dry-run", "--allow-host", "127.0.0.1").returncode == 0


def test_explain_spells_channels_as_declarations() -> None:
    r = cep("explain", OPS)
    assert "channel ops_console = console(retries = 3, timeout = 10s)" in r.stdout
    assert "(;" not in r.stdout and "; retries" not in r.stdout


def test_string_and_number_hints_say_the_right_thing(tmp_path: Path) -> None:
    from cepdsl.frontend import check_source

    head = "stream m (ts: timestamp, cpu: float, status: str)\n"
    hints = {}
    for where in ('cpu > "ninety"', 'cpu > "90"', "status == 3"):
        _, diags = check_source(head + f"rule r from m where {where}\n")
        (d,) = diags
        hints[where] = d.hints
    assert "quote" not in hints['cpu > "ninety"'][0] and "number" in hints['cpu > "ninety"'][0]
    assert hints['cpu > "90"'] == ("write the number without quotes: `90`",)
    assert hints["status == 3"] == ('the other side is a string: quote the number, `"3"`',)


# ----------------------------------------------------------------------------- docs


def test_readme_embedding_snippet_prints_only_matches(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "session.push" in b)
    for doc in (ROOT / "docs" / "embedding.md",):
        assert "if matches.height" in doc.read_text() or "session.push" not in doc.read_text()
    r = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr
    assert "brute_force" in r.stdout
    assert "shape: (0," not in r.stdout  # no empty tables for the rules that matched nothing


def test_docs_carry_the_language_reference_and_a_license() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme and "docs/language.md" in readme
    lang = (ROOT / "docs" / "language.md").read_text()
    assert "## 8. Command line" in lang and "## 9. Additions in v2" in lang
    shared = ROOT.parent.parent / "shared" / "LANGUAGE.md"
    for spec in (shared, ROOT.parent / "shared" / "LANGUAGE.md"):
        if spec.exists():  # beside the spec: the copy must be the spec
            assert lang == spec.read_text()
    assert (ROOT / "LICENSE").read_text().startswith(("MIT License", "                                 Apache License"))
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta.get("license")
