"""The hand-written LALR driver must build exactly the AST that Lark's own parser
builds through an inline transformer: over the whole corpus and over fuzzed inputs
(which reach odd corners: placeholders, empty rules, nested brackets)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import lark
import pytest
from lark.exceptions import UnexpectedInput

from cepdsl import parser
from tests.support.lark_reference import driver_parse, lark_parse

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "tests" / "corpus").glob("*/*.cep"))


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_frontend_for_driver", ROOT / "bench" / "fuzz_frontend.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _same(text: str, name: str) -> bool | None:
    """True/False: both parsers accept and agree or not; None: Lark refuses the text
    (then the driver must refuse it too)."""
    try:
        expected = lark_parse(text, name)
    except UnexpectedInput:
        assert driver_parse(text, name) is None, f"{name}: the driver accepted what Lark refuses"
        return None
    except RecursionError:  # Lark's tree transform recurses; the driver does not
        return None
    got = driver_parse(text, name)
    assert got is not None, f"{name}: the driver refused what Lark accepts"
    return got == expected


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_driver_builds_larks_ast_on_the_corpus(path: Path) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        pytest.skip("not UTF-8: refused before parsing")
    if len(text) > 200_000 or parser._too_deep_bracket(text) is not None:
        pytest.skip("refused by a size or nesting limit before parsing")
    assert _same(text, path.name) in (True, None)


def test_driver_builds_larks_ast_on_fuzzed_inputs() -> None:
    fuzz = _fuzz_module()
    agreed = refused = 0
    for i, text in enumerate(fuzz.inputs(600, seed=424242, texts=fuzz.corpus_texts())):
        if len(text) > 200_000 or parser._too_deep_bracket(text) is not None:
            continue
        same = _same(text, f"fuzz-{i}")
        if same is None:
            refused += 1
        else:
            assert same, f"fuzz input {i} parsed differently:\n{text[:500]}"
            agreed += 1
    assert agreed >= 50 and refused >= 50  # both sides of the grammar were exercised


def test_driver_refuses_a_lark_it_was_not_built_for() -> None:
    assert parser.driver_supports(lark.__version__)
    assert not parser.driver_supports("2.0.0")
    assert not parser.driver_supports("1.2.2")


def test_with_another_lark_the_parser_falls_back_to_larks_own(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [(p.name, p.read_text(encoding="utf-8")) for p in CORPUS if p.parent.name == "valid"]
    texts.append(("broken.cep", (ROOT / "examples" / "broken.cep").read_text(encoding="utf-8")))
    expected = [parser.parse(t, n) for n, t in texts]
    parser._driver.cache_clear()
    monkeypatch.setattr(parser, "driver_supports", lambda version: False)
    try:
        assert isinstance(parser._driver(), parser._LarkFallback)
        got = [parser.parse(t, n) for n, t in texts]
    finally:
        parser._driver.cache_clear()
    assert [g[0] for g in got] == [e[0] for e in expected]
    assert [[str(d) for d in g[1]] for g in got] == [[str(d) for d in e[1]] for e in expected]
