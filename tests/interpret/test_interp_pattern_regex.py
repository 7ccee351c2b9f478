"""The pattern matcher checked against Python's `re` (another backtracking engine
with the same preference order) when every row satisfies exactly one step:
the rows then spell a string and each match is a regex match on it."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from cepdsl.interpret import run
from tests.interpret.interp_helpers import compile_rules, events, examples

QUANTIFIERS = ["", "", "?", "*", "+", "{2}", "{1,2}", "{2,}"]
# Quantifiers whose iterations never go past the minimum. Python's re and the
# ECMAScript rule the matcher follows (docs/semantics.md) treat an iteration
# that matches no row past the minimum differently (re stops the loop, the
# matcher backtracks into the iteration's other alternatives), so a body that
# can match nothing only gets these.
EMPTY_SAFE = ["", "{2}"]


@st.composite
def patterns(draw: st.DrawFn, depth: int = 0) -> tuple[str, bool]:
    """(a random pattern over steps a, b, c — also a valid Python regex, whether it can match no row)."""
    n = draw(st.integers(min_value=1, max_value=3))
    items, nullable = [], True
    for _ in range(n):
        if depth < 2 and draw(st.booleans()):
            options = draw(st.lists(patterns(depth + 1), min_size=1, max_size=2))
            atom = "(" + " | ".join(text for text, _ in options) + ")"
            atom_nullable = any(e for _, e in options)
        else:
            atom, atom_nullable = draw(st.sampled_from("abc")), False
        q = draw(st.sampled_from(EMPTY_SAFE if atom_nullable else QUANTIFIERS))
        items.append(atom + q)
        nullable = nullable and (atom_nullable or q in ("?", "*"))
    return " ".join(items), nullable


def regex_matches(pattern: str, text: str) -> list[tuple[int, int]]:
    """MATCH_RECOGNIZE over `text` with Python's re: from each start, the first match in
    preference order that is non-empty. Matching on `text[start:]`, the lookbehind
    `(?<=.)` at the end fails exactly for the empty match, so re backtracks past it
    into the next preference (`(a? | b)` on "b" takes `b`, not the empty `a?`)."""
    rx = re.compile("(?:" + pattern.replace(" ", "") + ")(?<=.)")
    out, start = [], 0
    while start < len(text):
        m = rx.match(text[start:])
        if m is None:
            start += 1
            continue
        out.append((start, start + m.end()))
        start += m.end()
    return out


@examples(150)
@given(patterns(), st.text(alphabet="abc", max_size=12))
def test_matches_agree_with_python_re(generated: tuple[str, bool], text: str) -> None:
    pattern = generated[0]
    steps = [s for s in "abc" if s in pattern]
    rule = f"rule p from m pattern {pattern} define " + ", ".join(f'{s} as status == "{s}"' for s in steps) + "\n"
    frame = events(*({"ts": i, "status": ch} for i, ch in enumerate(text)))
    out = run(compile_rules(rule), {"m": frame})["p"]
    t0 = frame["ts"].min() if frame.height else None
    ours = [
        (int((r["match_start"] - t0).total_seconds()), int((r["ts"] - t0).total_seconds()) + 1)
        for r in out.select("match_start", "ts").to_dicts()
    ]
    assert ours == regex_matches(pattern, text)
    # Each row satisfies exactly its own step, so the counts are the letters of the match.
    for (start, end), r in zip(ours, out.to_dicts(), strict=True):
        for s in steps:
            assert r[f"{s}_count"] == text[start:end].count(s)


def test_regex_oracle_itself() -> None:
    # a+ b over "aabab": matches (0, 3) and (3, 5); a* over "bab": the empty
    # matches at 0 and 2 do not count, the one at 1 does; (a? | b) on "b" skips
    # the preferred empty `a?` and takes `b`.
    assert regex_matches("a+ b", "aabab") == [(0, 3), (3, 5)]
    assert regex_matches("a*", "bab") == [(1, 2)]
    assert regex_matches("(a? | b)", "b") == [(0, 1)]
