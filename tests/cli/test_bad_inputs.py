"""Every command over a table of bad inputs, as a new user types them: one `error:` line
(plus `hint:` lines), exit 2 for a bad flag, spec or file, exit 1 for a rule file that
does not check (LANGUAGE.md §8), and never a Python traceback (issue 19)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OPS = "examples/ops.cep"
AUTH_JSONL = "examples/data/auth.jsonl"
AUTH_PARQUET = "examples/data/auth.parquet"


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad")
    (d / "empty").mkdir()
    (d / "a_file").write_text("not a directory\n")
    (d / "junk.parquet").write_bytes(b"PAR1 this is not parquet at all" * 10)
    (d / "bad.json").write_text("{\n  \"rules\": [,]\n}\n")
    (d / "latin1.cep").write_bytes(b"stream s (ts: timestamp, caf\xe9: int)\n")
    (d / "broken.cep").write_text("stream m (ts: timestamp, cpu: float)\nrule r from m where cpux > 1\n")
    return d


def cep(args: list[str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CEP_DEBUG": ""},
    )


#: (arguments, exit code, text stderr must contain); {T} is a scratch directory, paths relative to the repository.
CASES: list[tuple[list[str], int, list[str]]] = [
    # the group
    (["--bogus"], 2, ["error: no such option: --bogus"]),
    (["chek", OPS], 2, ["error: no such command", "hint: did you mean check?"]),
    # check
    (["check", "nope.cep"], 2, ["error: nope.cep: no such file"]),
    (["check", "{T}/empty"], 2, ["no .cep files"]),
    (["check", "--formt", "json", OPS], 2, ["error: no such option: --formt", "hint: did you mean --format?"]),
    (["check", "--format", "xml", OPS], 2, ["error: invalid value for '--format'"]),
    (["check", "{T}/broken.cep"], 1, [": error: unknown field `cpux`"]),
    (["check", "{T}/latin1.cep"], 1, ["not valid UTF-8"]),
    # fmt
    (["fmt", "nope.cep"], 2, ["no such file"]),
    (["fmt", "--write", "--check", OPS], 2, ["exclude each other"]),
    (["fmt", OPS, "examples/broken.cep"], 2, ["say what to do", "hint: add --write"]),
    (["fmt", "--write", "-"], 2, ["stdin cannot be rewritten"]),
    # explain
    (["explain", "nope.cep"], 2, ["no such file"]),
    (["explain", "{T}/empty"], 2, ["no .cep files in this directory"]),
    (["explain", "{T}/broken.cep"], 1, ["unknown field `cpux`"]),
    # replay
    (["replay", OPS, "--data", f"auths={AUTH_PARQUET}", "--out", "{T}/o"], 2, ["no stream `auths`", "hint: did you mean `auth`?"]),
    (["replay", OPS, "--data", "auth=nope.parquet", "--out", "{T}/o"], 2, ["nope.parquet"]),
    (
        ["replay", OPS, "--data", f"auth={AUTH_JSONL}", "--out", "{T}/o", "--no-progress"],
        2,
        [
            "replay reads Parquet files, not JSON lines",
            f"hint: for a JSON-lines file: cep run FILE --source 'auth=jsonl:{AUTH_JSONL}?follow=false'",
        ],
    ),
    (
        ["replay", OPS, "--data", "auth={T}/junk.parquet", "--out", "{T}/o", "--no-progress"],
        2,
        ["junk.parquet: cannot read it as Parquet"],
    ),
    (["replay", OPS, "--data", f"auth={AUTH_PARQUET}", "--out", "{T}/a_file"], 2, ["not a directory"]),
    (["replay", OPS, "--data", f"auth={AUTH_PARQUET}", "--out", "{T}/o", "--batch-rows", "0"], 2, ["--batch-rows"]),
    (["replay", OPS, "--data", f"auth={AUTH_PARQUET}", "--out", "{T}/o", "--format", "yaml"], 2, ["--format"]),
    (["replay", "{T}/broken.cep", "--data", AUTH_PARQUET, "--out", "{T}/o"], 1, ["unknown field `cpux`"]),
    # run: the typos first
    (["run", OPS, "--source", f"auth=jsonl:{AUTH_JSONL}?follw=false"], 2, ["unknown option(s) follw", "hint: did you mean `follow`?"]),
    (["run", OPS, "--source", f"auth=jsonll:{AUTH_JSONL}"], 2, ["unknown source kind 'jsonll'", "hint: did you mean `jsonl:`?"]),
    (["run", OPS, "--source", f"auth={AUTH_JSONL}"], 2, ["has no kind", f"hint: did you mean `jsonl:{AUTH_JSONL}`?"]),
    (
        ["run", OPS, "--source", "auth=redis://127.0.0.1:1/0?strem=auth&group=cep", "--state", "memory"],
        2,
        ["unknown option(s) strem", "hint: did you mean `stream`?"],
    ),
    (
        ["run", OPS, "--source", "metrics=http://127.0.0.1:1/m?intervl=5s&page=2", "--state", "memory"],
        2,
        ["unknown option intervl", "hint: did you mean `interval`?"],
    ),
    (["run", OPS, "--source", f"authh=jsonl:{AUTH_JSONL}"], 2, ["no stream `authh`", "hint: did you mean `auth`?"]),
    (["run", OPS, "--source", f"jsonl:{AUTH_JSONL}"], 2, ["say which stream it feeds"]),
    (["run", OPS, "--source", "auth=jsonl:{T}/missing.jsonl?follow=false", "--state", "memory"], 2, ["missing.jsonl: no such file"]),
    (["run", OPS, "--source", f"auth=jsonl:{AUTH_JSONL}?poll=soon", "--state", "memory"], 2, ["not a duration: 'soon'"]),
    (["run", OPS, "--source", f"auth=jsonl:{AUTH_JSONL}?max_rows=0", "--state", "memory"], 2, ["max_rows"]),
    (
        ["run", OPS, "--source", f"auth=jsonl:{AUTH_JSONL}", "--state", "redis://127.0.0.1:1/7?prefx=a"],
        2,
        ["unknown option(s) prefx", "hint: did you mean `prefix`?"],
    ),
    (
        ["run", OPS, "--source", f"auth=jsonl:{AUTH_JSONL}", "--state", "reddis://127.0.0.1:1/7"],
        2,
        ["unknown store", "hint: did you mean `redis://`?"],
    ),
    (["run", OPS, "--source", f"auth=jsonl:{AUTH_JSONL}", "--outbox", "etcd://x"], 2, ["--outbox: unknown store"]),
    (["run", OPS, "--source", f"auth=jsonl:{AUTH_JSONL}", "--state", "{T}/a_file/x.sqlite"], 2, ["--state"]),
    (["run", OPS, "--source", f"auth=jsonl:{AUTH_JSONL}", "--checkpoint-every", "soon"], 2, ["not a duration: 'soon'"]),
    (["run", OPS, "--source", f"auth=jsonl:{AUTH_JSONL}", "--checkpoint-every", "0s"], 2, ["longer than zero"]),
    (["run", OPS, "--source", f"auth=jsonl:{AUTH_JSONL}", "--api", "localhost"], 2, ["--api localhost: expected HOST:PORT"]),
    (["run", OPS, "--source", f"auth=jsonl:{AUTH_JSONL}", "--log-format", "xml"], 2, ["--log-format"]),
    (["run", OPS, "--source", f"auth=jsonl:{AUTH_JSONL}", "--out", "{T}/a_file"], 2, ["not a directory"]),
    (["run", OPS, "--folow"], 2, ["no such option: --folow"]),
    (["run", "{T}/broken.cep", "--source", f"jsonl:{AUTH_JSONL}"], 1, ["unknown field `cpux`"]),
    # notify test
    (
        ["notify", "test", OPS, "--rule", "brute_forse", "--channel", "ops_console", "--dry-run"],
        2,
        ["no rule `brute_forse`", "hint: did you mean `brute_force`?"],
    ),
    (
        ["notify", "test", OPS, "--rule", "brute_force", "--channel", "ops_consol", "--dry-run"],
        2,
        ["no channel `ops_consol`", "hint: did you mean `ops_console`?"],
    ),
    (["notify", "test", OPS, "--rule", "brute_force", "--channel", "ops_console", "--record", "{"], 2, ["--record: invalid JSON"]),
    (["notify", "test", "nope.cep", "--rule", "r", "--channel", "c"], 2, ["no such file"]),
    # import
    (["import", "nope.json"], 2, ["nope.json: no such file"]),
    (["import", "{T}/empty"], 2, ["is a directory"]),
    (["import", "{T}/bad.json"], 1, ["invalid JSON"]),
    (["import", "{T}/bad.json", "--stream"], 2, ["--stream"]),
    (["import", "tests/cli/data/seed.json", "-o", "{T}/a_file/x.cep"], 2, ["a_file/x.cep"]),
    # serve
    (["serve", "nope.cep"], 2, ["no such file"]),
    (["serve", "--port", "99999"], 2, ["--port"]),
    (["serve", "--port", "http"], 2, ["--port"]),
    (["serve", "{T}/broken.cep"], 1, ["unknown field `cpux`"]),
]


@pytest.mark.timeout(150)
@pytest.mark.parametrize(("args", "code", "wanted"), CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_gives_one_error_line_and_an_exit_code(place: Path, args: list[str], code: int, wanted: list[str]) -> None:
    args = [a.replace("{T}", str(place)) for a in args]
    r = cep(args, ROOT)
    out = r.stdout + r.stderr
    assert "Traceback" not in out, out
    assert r.returncode == code, out
    for text in wanted:
        assert text.replace("{T}", str(place)) in r.stderr, r.stderr
    if code == 2:
        lines = r.stderr.strip().splitlines()
        errors = [ln for ln in lines if ln.startswith("error: ")]
        assert len(errors) == 1, r.stderr
        # the error line, then only hints (a run may have said what it was starting first)
        assert all(ln.startswith("hint: ") for ln in lines[lines.index(errors[0]) + 1 :]), r.stderr
        assert not any("internal error" in ln for ln in lines)


def test_a_state_file_that_is_not_a_database_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "state.sqlite"
    bad.write_text("this is not a database, " * 100)
    r = cep(
        [
            "run",
            str(ROOT / OPS),
            "--source",
            f"auth=jsonl:{ROOT / AUTH_JSONL}?follow=false",
            "--state",
            str(bad),
            "--outbox",
            str(tmp_path / "o.sqlite"),
        ],
        tmp_path,
    )
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2, r.stderr
    assert "error: --state" in r.stderr


def test_a_bare_group_prints_its_help() -> None:
    r = cep(["notify"], ROOT)
    assert r.returncode == 2 and r.stderr.startswith("Usage: cep notify") and "error:" not in r.stderr


def test_a_bug_is_one_line_exit_3_and_the_traceback_only_with_cep_debug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import click

    from runtime.cli.group import CepGroup

    @click.group(cls=CepGroup)
    def g() -> None:
        pass

    @g.command()
    def boom() -> None:
        raise RuntimeError("kaboom")

    monkeypatch.delenv("CEP_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        g.main(["boom"], prog_name="cep")
    err = capsys.readouterr().err
    assert e.value.code == 3
    assert err.splitlines()[0] == "error: internal error: RuntimeError: kaboom"
    assert "Traceback" not in err and "CEP_DEBUG=1" in err
    monkeypatch.setenv("CEP_DEBUG", "1")
    with pytest.raises(SystemExit):
        g.main(["boom"], prog_name="cep")
    assert "Traceback" in capsys.readouterr().err
