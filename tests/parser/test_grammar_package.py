"""The grammar file lives in the top-level grammar/ folder and is installed as `cepdsl.grammar`
(package-dir in pyproject.toml, the package list in setup.py): the parser must find it from
the editable install the tests run in and from a regular, non-editable install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cepdsl.grammar
from cepdsl.parser import grammar

ROOT = Path(__file__).resolve().parents[2]

LOAD = """
import pathlib, cepdsl, cepdsl.grammar
from cepdsl.frontend import check_source
program, diags = check_source("stream s (ts: timestamp, cpu: float)\\nrule r from s where cpu > 1\\n", "x.cep")
assert diags == [] and [r.id for r in program.rules] == ["r"], diags
print(pathlib.Path(cepdsl.grammar.__file__).parent)
print(pathlib.Path(cepdsl.__file__).parent)
"""


def test_grammar_folder_holds_the_file_itself() -> None:
    folder = ROOT / "grammar"
    assert not folder.is_symlink() and (folder / "cep.lark").is_file() and not (folder / "cep.lark").is_symlink()
    assert not (ROOT / "cepdsl" / "grammar" / "cep.lark").exists()  # one copy only


def test_editable_install_loads_the_grammar_from_the_folder() -> None:
    assert Path(cepdsl.grammar.__file__).resolve().parent == ROOT / "grammar"
    assert "rule" in {t.pattern.value for t in grammar().terminals if t.pattern.type == "str"}
    out = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == str(ROOT / "grammar")


@pytest.mark.timeout(900)
def test_regular_install_carries_the_grammar(tmp_path: Path) -> None:
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert (target / "cepdsl" / "grammar" / "cep.lark").read_bytes() == (ROOT / "grammar" / "cep.lark").read_bytes()
    assert (target / "runtime" / "console" / "templates").is_dir()  # package data beside it still ships
    # PYTHONPATH comes before site-packages, and the editable install's finder is consulted
    # after the path: the copy in `target` is the one imported (the asserts below check it).
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    grammar_dir, package_dir = out.stdout.splitlines()[:2]
    assert grammar_dir == str(target / "cepdsl" / "grammar") and package_dir == str(target / "cepdsl")


def test_an_install_without_the_grammar_package_says_how_to_fix_it(tmp_path: Path) -> None:
    """An editable install made before grammar/ became cepdsl.grammar maps only cepdsl/:
    the parser says to reinstall instead of failing inside Lark."""
    (tmp_path / "cepdsl").symlink_to(ROOT / "cepdsl")
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    # -S: no .pth files, so no editable-install finder; the checkout's cepdsl/ alone.
    code = (
        f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {site_packages!r}]\n"
        "from cepdsl.parser import grammar\n"
        "try:\n    grammar()\nexcept RuntimeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "cepdsl.grammar" in out.stdout and "pip install -e ." in out.stdout
