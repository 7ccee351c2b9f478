"""§9.1: files given together (or a directory) form one program with one namespace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cepdsl.frontend import check_sources, compile_path, program_files

ROOT = Path(__file__).resolve().parents[2]

STREAM = "stream metrics (ts: timestamp, host: str, cpu: float)\n"
CHANNEL = 'channel ops = console()\n'
RULE = "rule hot\n  from metrics\n  where cpu > 90\n  notify ops\n"


def cep(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_names_resolve_across_files() -> None:
    program, diags = check_sources({"a.cep": STREAM + CHANNEL, "b.cep": RULE})
    assert diags == []
    assert program is not None and [r.id for r in program.rules] == ["hot"]
    assert program.rule("hot").file == "b.cep" and program.rule("hot").line == 1


def test_a_name_declared_in_two_files_names_both_places() -> None:
    _, diags = check_sources({"a.cep": STREAM + RULE + CHANNEL, "b.cep": "\n" + STREAM + RULE})
    got = [(d.span.file, d.span.line, d.message, d.hints) for d in diags]
    assert got == [
        ("b.cep", 2, "stream `metrics` is declared twice", ("the first declaration is at a.cep:1:8",)),
        ("b.cep", 3, "rule `hot` is defined twice", ("the first definition is at a.cep:2:6",)),
    ]


def test_each_kind_is_its_own_namespace() -> None:
    # §1's `channel oncall` and §9.5's `template oncall` may live in one program.
    text = STREAM + "channel oncall = console()\ntemplate oncall = \"{{ host }}\"\n"
    program, diags = check_sources({"a.cep": text, "b.cep": RULE.replace("notify ops", 'notify oncall\n  message template("oncall")')})
    assert diags == [] and program is not None
    assert program.rule("hot").message == "{{ host }}"


def test_syntax_errors_of_every_file_are_reported() -> None:
    _, diags = check_sources({"a.cep": STREAM + "rule x from metrics where cpu >\n", "b.cep": "rule y from metrics where >\n"})
    assert [(d.span.file, d.code) for d in diags] == [("a.cep", "syntax"), ("b.cep", "syntax")]


def test_directory_is_its_cep_files_recursively(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.cep").write_text(STREAM + CHANNEL)
    (tmp_path / "sub" / "b.cep").write_text(RULE)
    (tmp_path / "notes.txt").write_text("not a rule file")
    assert program_files([tmp_path]) == [str(tmp_path / "a.cep"), str(tmp_path / "sub" / "b.cep")]
    # a file given as well as its directory is read once
    assert program_files([tmp_path / "a.cep", tmp_path]) == [str(tmp_path / "a.cep"), str(tmp_path / "sub" / "b.cep")]
    assert [r.id for r in compile_path(tmp_path).rules] == ["hot"]


def test_cli_check_and_explain_take_several_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "a.cep").write_text(STREAM + CHANNEL)
    (tmp_path / "b.cep").write_text(RULE)
    assert cep("check", "a.cep", "b.cep", cwd=tmp_path).returncode == 0
    alone = cep("check", "b.cep", cwd=tmp_path)
    assert alone.returncode == 1 and "b.cep:2:8: error: unknown stream `metrics`" in alone.stderr
    assert cep("check", ".", cwd=tmp_path).returncode == 0
    out = cep("explain", "a.cep", "b.cep", cwd=tmp_path)
    assert out.returncode == 0 and "rule hot  (b.cep:1)" in out.stdout
    (tmp_path / "c.cep").write_text("\n" + RULE)
    dup = cep("check", str(tmp_path), cwd=ROOT)
    assert dup.returncode == 1
    assert f"{tmp_path / 'c.cep'}:2:6: error: rule `hot` is defined twice" in dup.stderr
    assert f"hint: the first definition is at {tmp_path / 'b.cep'}:1:6" in dup.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = cep("check", str(empty), cwd=ROOT)
    assert none.returncode == 2 and "no .cep files" in none.stderr


def test_public_api_compiles_a_list_or_a_directory(tmp_path: Path) -> None:
    import cepdsl

    (tmp_path / "a.cep").write_text(STREAM + CHANNEL)
    (tmp_path / "b.cep").write_text(RULE)
    assert cepdsl.compile(tmp_path).ids == ("hot",)
    assert cepdsl.compile([str(tmp_path / "a.cep"), str(tmp_path / "b.cep")]).ids == ("hot",)
