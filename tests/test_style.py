"""House style, checked like any other behaviour: ruff's lint, ruff's layout, mypy.

The settings live in pyproject.toml ([tool.ruff], [tool.mypy]). To put the layout right:

    .venv/bin/ruff check --select I --fix . && .venv/bin/ruff format .

mypy keeps its cache in .mypy_cache: a warm run takes a few seconds, a cold one a few
minutes on a loaded 2-CPU machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_ruff_lint_is_clean() -> None:
    # Import order (I001) belongs with the layout below: it is rewritten by the same one-off run.
    r = run("ruff", "check", "--extend-ignore", "I001", "--output-format", "concise", ".", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_layout_is_applied() -> None:
    """Formatting and import order as `ruff format` / `ruff check --select I --fix` leave them."""
    imports = run("ruff", "check", "--select", "I", "--output-format", "concise", ".", timeout=120)
    layout = run("ruff", "format", "--check", ".", timeout=120)
    assert imports.returncode == 0 and layout.returncode == 0, (
        "run: ruff check --select I --fix . && ruff format .\n" + imports.stdout + layout.stdout + layout.stderr
    )


@pytest.mark.timeout(900)
def test_mypy_finds_no_errors() -> None:
    r = run("mypy", timeout=880)  # packages and per-module exceptions: [tool.mypy] in pyproject.toml
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr
