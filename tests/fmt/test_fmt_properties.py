"""Formatter properties on generated files: idempotent, tree-preserving, comments kept."""

from __future__ import annotations

from collections import Counter

from hypothesis import example, given

from cepdsl.fmt import canonical, format_source
from cepdsl.frontend import parse_source
from tests.fmt.cep_gen import cep_file


def parsed(text: str):
    tree, diags = parse_source(text, "gen.cep")
    assert not diags, (text, [str(d) for d in diags])
    assert tree is not None
    return tree


@given(cep_file())
@example("")
@example("# only a comment\n\n# and another")
@example('rule r "t" # a\n # b\n from s # c\n where a > 1 # d\n and b < 2 # e\n')
def test_format_is_idempotent_and_keeps_tree_and_comments(text: str) -> None:
    before = parsed(text)
    out = format_source(text, "gen.cep")
    after = parsed(out)
    assert after == canonical(before), out
    assert Counter(c.text for c in after.comments) == Counter(c.text for c in before.comments), out
    assert format_source(out, "gen.cep") == out
    assert not out or out.endswith("\n") and not out.endswith("\n\n")
    assert all(line == line.rstrip() or "#" in line or '"""' in out for line in out.split("\n"))
