"""What travels between a reader and a key partition, and how frames become bytes.

A `Slice` is one input partition's news for one key partition of one rule: the
rows of that key partition in one micro-batch (or none), and how far the input
partition has got.  Every micro-batch of every input partition sends one Slice
to every key partition of every rule of its stream, rows or not: that is how
time advances in a key partition that gets no rows, and, numbered per (input
partition, rule), how a key partition knows it has everything up to a point
whatever order the exchange delivers them in.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import polars as pl

from cepdsl.plan import RulePlan

#: Columns the reader adds: the row's input partition (ordinal within its stream) and its
#: offset there.  Equal event times are ordered by them: (partition, offset) is input order,
#: since the partitions of a file are contiguous row ranges in file order.
PART = "__part"
OFFSET = "__off"
#: Past every event time: the horizon of an input partition that has ended.
END = 2**63 - 1


@dataclass
class Slice:
    part: int  # input partition ordinal within the stream
    parts: int  # how many input partitions the stream has
    seq: int  # numbered per (input partition, rule) from 0
    horizon: int  # every row of this partition with TIME < horizon has been sent (END: ended)
    lo: int | None  # smallest and largest event time the partition has read (before `where`)
    hi: int | None
    rows: pl.DataFrame | None  # this key partition's rows (declared fields + TIME, PART, OFFSET)
    enabled: bool  # the rule's state in the control feed as this reader last read it
    rule: RulePlan | None = None  # sent with seq 0: a key partition builds its engine from it
    gone: bool = False  # the rule was deleted or changed: this partition sends nothing more
    silences: tuple = ()  # with seq 0: the program's silences (§9.4), applied by the key partition's session


def frame_bytes(frame: pl.DataFrame | None) -> bytes | None:
    """Arrow IPC: typed, not executable (what the engine's own snapshots use for rows)."""
    if frame is None:
        return None
    sink = io.BytesIO()
    frame.write_ipc(sink)
    return sink.getvalue()


def frame_of(data: bytes | None) -> pl.DataFrame | None:
    return None if data is None else pl.read_ipc(io.BytesIO(data))
