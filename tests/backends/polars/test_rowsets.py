"""One-pass `where` (backends.polars.rowsets) and dictionary-encoded str fields."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

import cepdsl
from cepdsl.backends.polars import rowsets
from cepdsl.backends.polars.rowsets import WhereSet, decode
from cepdsl.frontend import compile_source
from tests.support.frames import assert_frames_match

STREAM = "stream s (ts: timestamp, g: str, x: float, n: int)\n"
T0 = datetime(2024, 1, 1)
FRAME = pl.DataFrame(
    {
        "ts": [T0 + timedelta(seconds=i) for i in range(8)],
        "g": ["a", "b", None, "c", "a", "b", None, "zz"],
        "x": [2.0, None, -1.0, 3.0, None, 0.5, 1.5, None],
        "n": [1, 2, None, 4, 5, None, 8, 0],
    }
)


@pytest.mark.parametrize("big_from", [None, 0], ids=["as sized", "every batch big"])
def test_split_equals_filter_per_rule(big_from: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    if big_from is not None:  # the big-batch ways (lazy filter; arg_true per predicate column)
        monkeypatch.setattr(rowsets, "_FILTER_ROWS", big_from)
    wheres = ['g == "a"', "x > 1", "n % 2 == 0 or x < 0", 'g in ["b", null]', "x is null"]
    prog = compile_source(STREAM + "\n".join(f"rule r{i} from s where {w}" for i, w in enumerate(wheres)))
    ws = WhereSet([r.where for r in prog.rules] + [None])
    got = ws.split(FRAME)
    assert len(got) == len(wheres) + 1
    assert got[-1].equals(FRAME)
    expected_rows = {0: [0, 4], 1: [0, 3, 6], 2: [1, 2, 3, 6, 7], 3: [1, 5], 4: [1, 4, 7]}
    for i, rows in expected_rows.items():
        assert got[i].equals(FRAME[rows]), wheres[i]
        # one rule alone takes the single-predicate path: same rows
        assert WhereSet([prog.rules[i].where]).split(FRAME)[0].equals(FRAME[rows])


def test_big_batch_path_with_a_field_named_like_its_row_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rowsets, "_FILTER_ROWS", 0)
    frame = FRAME.with_columns(pl.col("n").alias(rowsets._ROW))
    prog = compile_source(STREAM.replace("n: int)", f"n: int, {rowsets._ROW}: int)") + "rule r from s where x > 1")
    assert WhereSet([prog.rules[0].where]).split(frame)[0].equals(frame[[0, 3, 6]])


def test_decode_only_touches_encoded_columns() -> None:
    enc = FRAME.with_columns(pl.col("g").cast(pl.Enum(["zz", "c", "b", "a"])))
    assert decode(enc).schema == FRAME.schema
    assert decode(FRAME) is FRAME


def test_encoded_str_fields_give_the_same_matches() -> None:
    """Every string operation on Categorical/Enum input (equality on codes, the rest on
    the text: ordering, functions, coalesce) matches the String input, in the records too."""
    text = (
        STREAM
        + "\n".join(
            f"rule r{i} from s where {w}"
            for i, w in enumerate(
                [
                    'g == "a"',
                    'g != "zz" and x is null',
                    'g in ["b", null]',
                    'g starts_with "a" or g < "b"',
                    'coalesce(g, "q") == "q"',
                    'len(upper(g)) == 1 and not (g == "c")',
                    'g == "not-a-category"',
                ]  # fmt: skip
            )
        )
        + "\nrule w from s group by g window tumbling 1m having count() > 0"
    )
    rules = cepdsl.compile(text)
    plain = rules.replay({"s": FRAME})
    assert plain["r0"].height == 2 and plain["r3"].height == 2 and plain["r6"].height == 0
    for dtype in (pl.Enum(["zz", "c", "b", "a"]), pl.Categorical):
        enc = FRAME.with_columns(pl.col("g").cast(dtype))
        for name, out in rules.replay({"s": enc}).items():
            assert_frames_match(out, plain[name], ordered=True, label=f"{dtype} {name}")
        s = rules.session()  # streaming: encoded and plain batches mixed
        outs = [s.push("s", enc[:3]), s.push("s", FRAME[3:5]), s.push("s", enc[5:]), s.flush()]
        for name in plain:
            assert_frames_match(pl.concat([o[name] for o in outs]), plain[name], ordered=True, label=name)
