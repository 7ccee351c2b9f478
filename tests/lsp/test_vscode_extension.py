"""The VS Code extension folder packages with the npm registry's `@vscode/vsce`, and
the command it starts (`cep lsp`, to which vscode-languageclient adds `--stdio`)
answers `initialize`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support.lsp_client import LspClient, cep_lsp_command

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "editors" / "vscode"

pytestmark = pytest.mark.timeout(400)


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None or shutil.which("npx") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("npm is needed to package the VS Code extension")
        pytest.skip("npm not installed")
    return npm


def test_manifest_points_at_files_that_exist() -> None:
    manifest = json.loads((EXT / "package.json").read_text())
    (lang,) = manifest["contributes"]["languages"]
    assert lang["id"] == "cep" and lang["extensions"] == [".cep"]
    assert json.loads((EXT / lang["configuration"]).read_text())["comments"]["lineComment"] == "#"
    (gram,) = manifest["contributes"]["grammars"]
    assert (EXT / gram["path"]).read_text() == (ROOT / "editors/textmate/cep.tmLanguage.json").read_text()
    assert manifest["contributes"]["configuration"]["properties"]["cep.server.command"]["default"] == ["cep", "lsp"]
    main = (EXT / manifest["main"]).read_text()
    assert "vscode-languageclient/node" in main
    for cmd in manifest["contributes"]["commands"]:  # every command shown is registered
        assert f'registerCommand("{cmd["command"]}"' in main


def test_vsce_packages_the_extension(tmp_path: Path) -> None:
    npm = _npm()
    if not (EXT / "node_modules" / "@vscode" / "vsce").exists():
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=EXT, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            if os.environ.get("CI") == "true":
                pytest.fail(f"npm ci failed:\n{proc.stderr}")
            pytest.skip(f"npm ci failed: {proc.stderr[-300:]}")
    out = tmp_path / "cep.vsix"
    proc = subprocess.run(
        ["npx", "--no-install", "vsce", "package", "--skip-license", "--out", str(out)],
        cwd=EXT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = set(zipfile.ZipFile(out).namelist())
    for name in ("extension/package.json", "extension/extension.js", "extension/language-configuration.json",
                 "extension/syntaxes/cep.tmLanguage.json", "extension/node_modules/vscode-languageclient/package.json"):  # fmt: skip
        assert name in names
    assert not any("/@vscode/vsce/" in n for n in names)  # build tools stay out of the package


def test_the_command_the_extension_starts_answers() -> None:
    client = LspClient([*cep_lsp_command(), "--stdio"])
    try:
        caps = client.initialize(None)["capabilities"]
        assert caps["documentFormattingProvider"] and caps["hoverProvider"] and caps["completionProvider"]
    finally:
        client.close()
