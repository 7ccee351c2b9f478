"""Filter rules (LANGUAGE.md §5.1): one match per event for which `where` is true."""

from __future__ import annotations

from cepdsl.interpret.rows import SEQ, TIME, Match, Row, group_key
from cepdsl.plan import RulePlan


def filter_matches(rule: RulePlan, rows: list[Row]) -> list[Match]:
    out: list[Match] = []
    keys = rule.group_keys
    for row in rows:  # already filtered by `where`
        record = {k: v for k, v in row.items() if k not in (SEQ, TIME)}
        record["ts"] = row[TIME]  # null when the stream has no time field
        out.append(Match((row[TIME] if row[TIME] is not None else 0, row[SEQ]), group_key(row, keys), record))
    return out
