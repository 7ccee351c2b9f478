"""`cep lsp` on the command line: listed in the help, and a clear error (not a
traceback) when the optional `lsp` extra is not installed."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from runtime.cli import main


def test_listed_in_help() -> None:
    out = CliRunner().invoke(main, ["--help"]).output
    assert "lsp" in out
    assert "--stdio" in CliRunner().invoke(main, ["lsp", "--help"]).output


def test_without_the_extra_it_says_what_to_install() -> None:
    code = "import sys; sys.modules['pygls'] = None; from runtime.cli import main; main(['lsp'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "pip install 'cep[lsp]'" in proc.stderr and "Traceback" not in proc.stderr
