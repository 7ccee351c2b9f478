"""The TextMate grammar (editors/textmate) against the language: generated from the
Lark grammar's keywords (a stale file fails here), and every token of the valid
corpus, as the parser's own lexer cuts it, gets the scope it should from VS Code's
TextMate engine (vscode-textmate + vscode-oniguruma from the npm registry)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cepdsl.parser import grammar, keywords

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).resolve().parent / "textmate"
GRAMMAR = ROOT / "editors" / "textmate" / "cep.tmLanguage.json"
VALID = sorted((ROOT / "tests" / "corpus" / "valid").glob("*.cep"))

pytestmark = pytest.mark.timeout(300)


def test_the_grammar_file_is_generated_from_the_lark_grammar() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "editors/textmate/build_grammar.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = GRAMMAR.read_text(encoding="utf-8")
    for word in _words():
        assert word in text, f"keyword `{word}` of grammar/cep.lark is not in the TextMate grammar"


def _words() -> frozenset[str]:
    sys.path.insert(0, str(ROOT / "editors" / "textmate"))
    try:
        from build_grammar import grammar_words
    finally:
        sys.path.pop(0)
    return grammar_words()


def _node_tokens() -> dict[str, list]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are needed for the TextMate grammar test")
        pytest.skip("node/npm not installed")
    if not (HARNESS / "node_modules" / "vscode-textmate").exists():
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HARNESS, capture_output=True, text=True, timeout=240)
        if proc.returncode != 0:
            if os.environ.get("CI") == "true":
                pytest.fail(f"npm ci failed:\n{proc.stderr}")
            pytest.skip(f"npm ci failed: {proc.stderr[-300:]}")
    proc = subprocess.run(
        [node, "tokenize.mjs", str(GRAMMAR), *map(str, VALID)], cwd=HARNESS, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _expected(tok_type: str, value: str) -> tuple[str, ...]:
    """Scope prefixes the token's TextMate scopes must include one of."""
    if tok_type in ("STRING", "LONG_STRING"):
        return ("string.",)
    if tok_type == "COMMENT":
        return ("comment.",)
    if tok_type == "DURATION":
        return ("constant.numeric.duration",)
    if tok_type in ("INT", "FLOAT"):
        return ("constant.numeric",)
    if tok_type == "COMP_OP":
        return ("keyword.operator.comparison",)
    if tok_type == "QUOTED_NAME":
        return ("variable.other.quoted", "entity.name")
    if tok_type == "NAME":
        return ("variable.", "entity.name", "support.", "constant.language.severity")
    if value in _words() - keywords():  # contextual (§9.1): a keyword or, where a name fits, a name
        return ("keyword.", "storage.type", "constant.language", "variable.", "entity.name")
    if value in _words():
        return ("keyword.", "storage.type", "constant.language")
    return ("keyword.operator", "punctuation.")


def test_every_corpus_token_gets_its_scope() -> None:
    scopes = _node_tokens()
    lark = grammar()
    checked = 0
    for path in VALID:
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        tm = scopes[str(path.resolve())]
        by_line: dict[int, list] = {}
        for line, start, end, sc in tm:
            by_line.setdefault(line, []).append((start, end, sc))
        for tok in lark.lex(text, dont_ignore=True):
            if tok.type == "WS":
                continue
            want = _expected(tok.type, tok.value)
            # The token's lines and UTF-16 columns, as vscode-textmate counts them.
            for line in range(tok.line, tok.end_line + 1):
                src = lines[line - 1]
                c0 = tok.column - 1 if line == tok.line else 0
                c1 = tok.end_column - 1 if line == tok.end_line else len(src)
                u0 = len(src[:c0].encode("utf-16-le")) // 2
                u1 = len(src[:c1].encode("utf-16-le")) // 2
                covering = [sc for s, e, sc in by_line.get(line, []) if s < u1 and e > u0]
                assert covering, (path.name, tok)
                for sc in covering:
                    assert any(s.startswith(want) for s in sc), (
                        f"{path.name}:{line}: {tok.type} {tok.value!r} scoped {sc}, want {want}"
                    )
            checked += 1
    assert checked > 2000


def test_vim_syntax_file(tmp_path: Path) -> None:
    vim = shutil.which("vim")
    if vim is None:
        pytest.skip("vim not installed")  # optional: the Vim file is a convenience, the LSP is the feature
    src = tmp_path / "t.cep"
    src.write_text('# note\nrule r "t {{ x }}" from metrics where cpu > 5m\n')
    out = tmp_path / "out"
    spots = [[1, 3], [2, 1], [2, 8], [2, 12], [2, 35], [2, 45]]
    subprocess.run(
        [vim, "-es", "-N", "-u", "NONE", "-i", "NONE", "-c", f"set rtp^={ROOT / 'editors/vim'}", "-c", "filetype on",
         "-c", "syntax on", "-c", f"e {src}", "-c", "let out = []",
         "-c", f"for [l,c] in {spots} | call add(out, synIDattr(synID(l,c,1),'name')) | endfor",
         "-c", f"call writefile(out, '{out}')", "-c", "qa!"],
        timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.read_text().split() == ["cepComment", "cepDeclaration", "cepString", "cepTemplate", "cepClause", "cepDuration"]
