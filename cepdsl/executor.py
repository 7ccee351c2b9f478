"""The contract between the engine and the per-rule executors.

The engine (`cepdsl.engine`) owns ordering, watermarks, `where` and throttle;
an executor owns one rule's state machine (windows, pattern runs, baselines,
deadlines) and turns released rows into match records.  Keeping that split
means every executor sees the same simple world: rows that already passed
`where`, in event-time order (ties in arrival order), never older than what
it has already been given, except where `late_mask` says it can still take them.

This module is the whole of what the engine and the backends share about records:
the executor protocol, `Progress`, the `TIME`/`SEQ` columns, match record shaping
(`finalize`) and the frame codec executors keep state in.  The reference interpreter
(`cepdsl.interpret`) does not import it: it shapes its own records, so the oracle
shares no output code with the executors it checks (tests/test_layering.py).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from cepdsl.plan import RulePlan
from cepdsl.state_format import StateFormatError, decode_state, encode_state

#: Column the engine adds to every released frame: the row's arrival index on its
#: stream (int64, increasing across batches). Ties in time are broken by it.
SEQ = "__seq"
#: The event-time column the engine adds (int64 microseconds since the epoch, UTC),
#: whatever the stream's time field is called.
TIME = "__t"


@dataclass(frozen=True)
class Progress:
    """How far a stream has got, in microseconds since the epoch (UTC)."""

    watermark_us: int  # max event time seen - lateness (streaming: may also follow the wall clock)
    first_ts_us: int | None  # first (smallest) event time seen on the stream, before `where`
    max_ts_us: int | None  # largest event time seen on the stream, before `where`


class Executor:
    """One rule's executor. Subclasses implement the kind-specific parts."""

    #: Bumped when the snapshot layout changes, so an old checkpoint is not misread.
    STATE_VERSION = 1

    def __init__(self, rule: RulePlan) -> None:
        self.rule = rule

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        """Take released rows (after `where`, sorted by (TIME, SEQ)) and return the
        matches now due, with exactly `rule.output` columns (see `finalize`)."""
        raise NotImplementedError

    def advance(self, progress: Progress) -> pl.DataFrame:
        """Fire what the watermark has reached with no new rows (windows, ticks, deadlines)."""
        return self.rule.empty_output()

    def finish(self, progress: Progress) -> pl.DataFrame:
        """End of replay input: close open windows and sessions; schedule ticks and
        absence deadlines only up to `progress.max_ts_us`."""
        return self.advance(progress)

    def late_mask(self, ts_us: np.ndarray, released_us: int) -> np.ndarray:
        """Which of these rows (arriving after rows up to `released_us` were processed)
        are too late for this rule. Order-sensitive rules refuse anything older than
        what they have seen; window rules override this to accept rows whose windows
        have not fired yet."""
        return ts_us < released_us

    # -- state ---------------------------------------------------------------------
    def state(self) -> Any:
        """Everything this rule remembers between batches, as plain data
        (dicts, lists, numbers, strings, numpy arrays)."""
        return None

    def load_state(self, state: Any) -> None:
        pass

    def snapshot_data(self) -> tuple[int, Any]:
        """`(STATE_VERSION, state())`: what a checkpoint holds for this rule (the session
        embeds it in its own entry; `snapshot` encodes it alone)."""
        return (self.STATE_VERSION, self.state())

    def restore_data(self, data: Any) -> None:
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise StateFormatError(f"rule {self.rule.id}: not an executor checkpoint")
        version, state = data
        if version != self.STATE_VERSION:
            raise ValueError(f"rule {self.rule.id}: state version {version}, expected {self.STATE_VERSION}")
        self.load_state(state)

    def snapshot(self) -> bytes:
        """`state()` as typed data (cepdsl/state_format.py), never pickle."""
        return encode_state(self.snapshot_data())

    def restore(self, payload: bytes) -> None:
        self.restore_data(decode_state(payload))


def frame_state(frame: pl.DataFrame | None) -> bytes | None:
    """A frame an executor keeps as `state()` data: Arrow IPC bytes, exact about dtypes
    (unlike dicts of lists); lz4 because pane and pattern buffers compress well and
    reading detects it (checkpoints written uncompressed still load)."""
    if frame is None:
        return None
    buf = io.BytesIO()
    frame.write_ipc(buf, compression="lz4")
    return buf.getvalue()


def frame_from_state(payload: bytes | None) -> pl.DataFrame | None:
    return None if payload is None else pl.read_ipc(io.BytesIO(payload))


def finalize(rule: RulePlan, frame: pl.DataFrame, sources: dict[str, str] | None = None) -> pl.DataFrame:
    """Add `rule` and `severity`, and cast/order to the rule's match record schema.
    `ts` and the other timestamps may be given as int64 microseconds.  `sources` maps
    an output column to the frame column holding it (`{"ts": TIME}`), as if it had
    been copied under that name first.

    Series by Series, not as a `select`: a Polars query costs ~0.1–0.5 ms of planning
    whatever the height, which dominated small batches; casting a Series to the dtype
    it already has is skipped."""
    n = frame.height
    have = dict(zip(frame.columns, frame.dtypes, strict=True))
    cols = []
    for name, dtype, const, null in _output_plan(rule):
        if const is not None:
            s = const.new_from_index(0, n)
        else:
            src = sources.get(name, name) if sources else name
            if src not in have:
                s = null.new_from_index(0, n)
            else:
                s = frame.get_column(src)
                if src != name:
                    s = s.alias(name)
                if have[src] != dtype:
                    s = s.cast(dtype)
        cols.append(s)
    return cols[0].to_frame().hstack(cols[1:]) if cols else pl.DataFrame()


_Plan = tuple[tuple[str, pl.DataType, pl.Series | None, pl.Series], ...]
#: id(rule) -> (rule, ((name, dtype, constant column or None, one null), ...)); the rule is
#: kept to tell a reused id apart.  Rebuilt per call it cost more than the casts it describes.
_PLANS: dict[int, tuple[RulePlan, _Plan]] = {}


def _output_plan(rule: RulePlan) -> _Plan:
    hit = _PLANS.get(id(rule))
    if hit is not None and hit[0] is rule:
        return hit[1]
    consts = {"rule": rule.id, "severity": rule.severity}
    plan = tuple(
        (
            f.name,
            f.dtype,
            pl.Series(f.name, [consts[f.name]], dtype=pl.String).cast(f.dtype) if f.name in consts else None,
            pl.Series(f.name, [None], dtype=f.dtype),
        )
        for f in rule.output
    )
    if len(_PLANS) >= 4096:  # sessions come and go (tests build thousands of rules)
        _PLANS.clear()
    _PLANS[id(rule)] = (rule, plan)
    return plan
