"""Pattern executor paths that small batches take: matches held back while an earlier
start is open (nothing built, then part of them emitted), the buffer kept as positions
in the rows received and compacted, searches that outgrow the kernel's stack and memo
table.  Expected values are written out by hand."""

from __future__ import annotations

import polars as pl
import pytest

import cepdsl.backends.numba.pattern as pattern_mod
from cepdsl.backends import executor_for
from cepdsl.executor import Progress

from harness import at, released, rule_of, run_batches, us

AUTH = "stream auth (ts: timestamp, user: str, event_type: str, price: float)\n"
FFO = """rule ffo
  from auth
  group by user
  pattern f{2,} o within 10m
  define f as event_type == "f", o as event_type == "o"
"""


def frame(events: list[tuple[float, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [at(t) for t, _, _ in events],
            "user": [u for _, u, _ in events],
            "event_type": [e for _, _, e in events],
            "price": [None] * len(events),
        },
        schema={"ts": pl.Datetime("us"), "user": pl.String, "event_type": pl.String, "price": pl.Float64},
    )


def summary(out: pl.DataFrame, steps: tuple[str, ...]) -> list[tuple]:
    cols = ["user", "match_start", "ts", *(f"{s}_count" for s in steps)]
    return [(r[0], (r[1] - at(0)).total_seconds(), (r[2] - at(0)).total_seconds(), *r[3:]) for r in out.select(cols).iter_rows()]


# u opens a start at 0; v's match (ts 4) is decided but must wait for it; w opens a start
# at 5; u's match (ts 7) lets v's go but waits for w's start; w's match releases the rest.
HELD = [(0, "u", "f"), (1, "u", "f"), (2, "v", "f"), (3, "v", "f"), (4, "v", "o"),
        (5, "w", "f"), (6, "w", "f"), (7, "u", "o"), (8, "w", "o")]  # fmt: skip
HELD_MATCHES = [("v", 2, 4, 2, 1), ("u", 0, 7, 2, 1), ("w", 5, 8, 2, 1)]


def test_held_matches_wait_then_leave_in_order_one_row_per_batch() -> None:
    _, rule = rule_of(AUTH + FFO)
    rows = released(rule, frame(HELD))
    ex = executor_for(rule)
    per_row = []
    for i in range(rows.height):
        t = us(HELD[i][0])
        per_row.append(summary(ex.process(rows.slice(i, 1), Progress(t, us(0), t)), ("f", "o")))
    # Row 4 decides v's match, held (u's start at 0 is open): nothing out.  Row 7 lets
    # v's out but holds u's (w's start at 5 is open).  Row 8 releases u's and w's.
    assert per_row[4] == [] and per_row[5] == [] and per_row[6] == []
    assert per_row[7] == [HELD_MATCHES[0]]
    assert per_row[8] == HELD_MATCHES[1:]
    assert ex.finish(Progress(us(8), us(0), us(8))).height == 0


@pytest.mark.parametrize("snapshot_at", [None, 5, 6, 7, 8])
def test_held_matches_any_split_and_snapshot(snapshot_at: int | None) -> None:
    _, rule = rule_of(AUTH + FFO)
    df = frame(HELD)
    assert summary(run_batches(rule, df), ("f", "o")) == HELD_MATCHES
    every = list(range(df.height))
    assert summary(run_batches(rule, df, every, snapshot_at=snapshot_at), ("f", "o")) == HELD_MATCHES
    assert summary(run_batches(rule, df, [3, 5, 8], snapshot_at=snapshot_at and 2), ("f", "o")) == HELD_MATCHES


def test_long_run_outgrows_the_stack_and_memo_table() -> None:
    # 700 f's from one start: ~1,400 stack entries and memo offsets up to 700 (the
    # kernel starts with 256 and 64, grows them and searches that start again).
    _, rule = rule_of(AUTH + FFO.replace(" within 10m", ""))
    df = frame([(i, "u", "f") for i in range(700)] + [(700, "u", "o"), (701, "v", "f"), (702, "v", "f")])
    want = [("u", 0, 700, 700, 1)]
    assert summary(run_batches(rule, df), ("f", "o")) == want
    assert summary(run_batches(rule, df, [1, 300, 699, 700, 702]), ("f", "o")) == want


def test_long_run_through_save_and_check() -> None:
    # `(a?)*` can match nothing, so its iterations are wrapped in SAVE/CHECK; a search
    # cut short must start again with the registers it began with.
    text = """rule sac
  from auth
  group by user
  pattern s (a?)* e
  define s as event_type == "s", a as event_type == "a", e as event_type == "e"
"""
    _, rule = rule_of(AUTH + text)
    ev = [(0, "u", "s"), *((1 + i, "u", "a") for i in range(400)), (401, "u", "e"),
          (402, "u", "s"), (403, "u", "e")]  # fmt: skip
    want = [("u", 0, 401, 1, 400, 1), ("u", 402, 403, 1, 0, 1)]
    assert summary(run_batches(rule, frame(ev)), ("s", "a", "e")) == want
    assert summary(run_batches(rule, frame(ev), [2, 200, 401, 402]), ("s", "a", "e")) == want


def test_buffer_compaction_keeps_the_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    _, rule = rule_of(AUTH + FFO)
    users = ["u", "v", "w", "x"]
    ev = [(i, users[i % 4], "o" if i % 7 == 6 else "f") for i in range(120)]
    df = frame(ev)
    cuts = list(range(0, df.height, 3))
    want = summary(run_batches(rule, df), ("f", "o"))
    assert len(want) > 5
    for compact_rows, max_chunks in ((0, 32), (1 << 30, 1), (1 << 30, 1 << 30)):
        monkeypatch.setattr(pattern_mod, "_COMPACT_ROWS", compact_rows)
        monkeypatch.setattr(pattern_mod, "_MAX_CHUNKS", max_chunks)
        assert summary(run_batches(rule, df, cuts), ("f", "o")) == want
        assert summary(run_batches(rule, df, cuts, snapshot_at=9), ("f", "o")) == want


def test_input_columns_in_another_order_or_with_extras() -> None:
    _, rule = rule_of(AUTH + FFO)
    rows = released(rule, frame(HELD))
    outs = {}
    for name, batch in (
        ("as is", rows),
        ("reversed", rows.select(reversed(rows.columns))),
        ("extra", rows.with_columns(pl.lit(1).alias("zz"))),
    ):
        ex = executor_for(rule)
        first = ex.process(batch.slice(0, 5), Progress(us(4), us(0), us(4)))
        rest = ex.process(batch.slice(5), Progress(us(8), us(0), us(8)))
        outs[name] = pl.concat([first, rest])
    assert summary(outs["as is"], ("f", "o")) == HELD_MATCHES
    assert outs["reversed"].equals(outs["as is"]) and outs["extra"].equals(outs["as is"])


@pytest.mark.parametrize("max_values", [4096, 2, 0])
def test_conditions_on_one_column_by_value(monkeypatch: pytest.MonkeyPatch, max_values: int) -> None:
    # Conditions reading only `event_type` are evaluated once per value (null included);
    # past `_MAX_VALUES` values, per row again.  Same matches either way.
    monkeypatch.setattr(pattern_mod, "_MAX_VALUES", max_values)
    text = """rule nv
  from auth
  group by user
  pattern f+ n
  define f as event_type == "f", n as event_type is null or event_type == "x"
"""
    _, rule = rule_of(AUTH + text)
    ev = [(0, "u", "f"), (1, "u", "g"), (2, "u", "f"), (3, "u", "f"), (4, "u", None), (5, "v", "f"),
          (6, "v", "x"), (7, "u", "f"), (8, "u", "h"), (9, "u", "f"), (10, "u", "x")]  # fmt: skip
    want = [("u", 2, 4, 2, 1), ("v", 5, 6, 1, 1), ("u", 9, 10, 1, 1)]
    for cuts, snap in (([], None), (list(range(11)), None), ([3, 6, 9], 2)):
        ex = executor_for(rule)
        assert summary(run_batches(rule, frame(ev), cuts, snapshot_at=snap, executor=ex), ("f", "n")) == want


def test_conditions_on_an_int_column_by_value() -> None:
    stream = "stream m (ts: timestamp, user: str, code: int)\n"
    text = """rule ic
  from m
  group by user
  pattern e{2} ok
  define e as code >= 500, ok as code < 300
"""
    _, rule = rule_of(stream + text)
    df = pl.DataFrame(
        {"ts": [at(i) for i in range(7)], "user": ["u"] * 7, "code": [500, 503, 200, None, 502, 599, 204]},
        schema={"ts": pl.Datetime("us"), "user": pl.String, "code": pl.Int64},
    )
    out = run_batches(rule, df, [1, 2, 3, 4, 5, 6])
    assert [(r["match_start"], r["ts"]) for r in out.select("match_start", "ts").iter_rows(named=True)] == [
        (at(0), at(2)),
        (at(4), at(6)),
    ]


@pytest.mark.parametrize("stale_keys", [65536, 0])
def test_group_codes_kept_across_batches_two_keys_and_nulls(monkeypatch: pytest.MonkeyPatch, stale_keys: int) -> None:
    # Group codes of new rows only, kept with the buffered rows; with `_STALE_KEYS` 0 the
    # code table starts afresh after every call and the buffered rows are coded again.
    monkeypatch.setattr(pattern_mod, "_STALE_KEYS", stale_keys)
    stream = "stream k (ts: timestamp, a: str, b: int, e: str)\n"
    text = """rule two
  from k
  group by a, b
  pattern f{2,} o
  define f as e == "f", o as e == "o"
"""
    _, rule = rule_of(stream + text)
    keys = [("x", 1), ("x", 2), (None, 1), ("x", None), ("x", 1), ("x", 2), (None, 1), ("x", None),
            (None, 1), ("x", 1), ("x", 2), ("x", None), ("x", 1)]  # fmt: skip
    es = ["f", "f", "f", "f", "f", "f", "f", "f", "o", "o", "f", "o", "o"]
    df = pl.DataFrame(
        {"ts": [at(i) for i in range(13)], "a": [k[0] for k in keys], "b": [k[1] for k in keys], "e": es},
        schema={"ts": pl.Datetime("us"), "a": pl.String, "b": pl.Int64, "e": pl.String},
    )
    want = [(None, 1, 2, 8), ("x", 1, 0, 9), ("x", None, 3, 11)]  # (x, 2) takes f f f, then ends
    for cuts in ([], list(range(13)), [4, 9]):
        out = run_batches(rule, df, cuts)
        got = [(r["a"], r["b"], (r["match_start"] - at(0)).total_seconds(), (r["ts"] - at(0)).total_seconds())
               for r in out.iter_rows(named=True)]  # fmt: skip
        assert got == want


# `a b+` is decided when a row that is not b comes, so a match ending earlier can be
# decided later: u's (ts 3) after v's (ts 5), both held while w's start (0) is open;
# x's start (5.5) stays open to the end, so w's match (ts 8) waits for `finish`.
LATE = [(0, "w", "a"), (1, "u", "a"), (2, "u", "b"), (3, "u", "b"), (4, "v", "a"), (5, "v", "b"),
        (5.5, "x", "a"), (6, "v", "c"), (7, "u", "c"), (8, "w", "b"), (9, "w", "c")]  # fmt: skip
LATE_MATCHES = [("u", 1, 3, 1, 2), ("v", 4, 5, 1, 1), ("w", 0, 8, 1, 1)]
AB = """rule ab
  from auth
  group by user
  pattern a b+
  define a as event_type == "a", b as event_type == "b"
"""


def test_held_matches_decided_out_of_order_leave_sorted() -> None:
    _, rule = rule_of(AUTH + AB)
    rows = released(rule, frame(LATE))
    ex = executor_for(rule)
    outs = []
    for i in range(rows.height):
        t = us(LATE[i][0])
        outs.append(summary(ex.process(rows.slice(i, 1), Progress(t, us(0), t)), ("a", "b")))
    assert outs[:10] == [[]] * 10
    assert outs[10] == LATE_MATCHES[:2]  # w's match is held: x's start (5.5) is before it
    assert summary(ex.finish(Progress(us(9), us(0), us(9))), ("a", "b")) == LATE_MATCHES[2:]
    df = frame(LATE)
    for cuts, snap in (([], None), (list(range(df.height)), 9), ([7, 8, 10], 2)):
        assert summary(run_batches(rule, df, cuts, snapshot_at=snap), ("a", "b")) == LATE_MATCHES


@pytest.mark.parametrize(("fresh_rows", "value_rows"), [(1 << 30, 1 << 30), (3, 3), (1, 1), (3, 1 << 30), (1 << 30, 2)])
def test_big_batches_number_groups_afresh_and_evaluate_per_row(
    monkeypatch: pytest.MonkeyPatch, fresh_rows: int, value_rows: int
) -> None:
    # Batches of at least `_FRESH_GROUP_ROWS` rows number the groups over buffered and
    # new rows (the kept code table starts afresh); from `_VALUE_ROWS` rows, conditions
    # are evaluated per row.  Batches of mixed sizes alternate between the ways.
    monkeypatch.setattr(pattern_mod, "_FRESH_GROUP_ROWS", fresh_rows)
    monkeypatch.setattr(pattern_mod, "_VALUE_ROWS", value_rows)
    _, held_rule = rule_of(AUTH + FFO)
    _, late_rule = rule_of(AUTH + AB)
    for cuts in ([], [1, 2, 6, 7], [4, 5, 9], list(range(11))):
        assert summary(run_batches(held_rule, frame(HELD), cuts), ("f", "o")) == HELD_MATCHES
        assert summary(run_batches(late_rule, frame(LATE), cuts, snapshot_at=2), ("a", "b")) == LATE_MATCHES
