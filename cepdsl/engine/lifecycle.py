"""The alert lifecycle (LANGUAGE.md §9.3): `for` and `resolve`, after the rule's executor.

A rule with `for` or `resolve` does not emit a record per holding evaluation but
one per *episode*: `firing` once the condition has held at every evaluation for
`for`, `resolved` once it has failed at every evaluation for `resolve after`.
`LifecycleExecutor` wraps the rule's own executor, built for the same rule
without `having` and told to emit every evaluation (every non-empty window,
every scored row), and runs the episode state machine over the evaluations:

* window and schedule rules: each window end / tick ≤ the watermark, for every
  group that has had a row.  A window with no rows of a group is not in the
  executor's output; it is an *implicit* non-holding evaluation, generated only
  for groups with an episode under way (for the others it changes nothing).
  At the end of input the evaluations are the grid up to the largest event time
  seen on the stream and then the ends of the windows the final flush closes
  (the same in streaming as in replay, whatever the lateness: §6).
* anomaly rules: each scored row, holding iff it is an anomaly.
* absence rules: each deadline firing holds; each row (after `where`) does not.

Evaluations of one group arrive in time order (the engine releases rows only
up to the watermark, and windows fire only once it passes them), so the state
machine needs only each group's episode, kept in this executor's serialisable
state.  Non-holding evaluations of groups without an episode are dropped in one
vectorised pass before the per-evaluation loop: that loop sees only holding
evaluations and those of groups with an episode.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from cepdsl.executor import TIME, Executor, Progress, finalize
from cepdsl.plan import LIFECYCLE_COLUMNS, RuleKind, RulePlan

FIRING, RESOLVED = "firing", "resolved"
#: Episode phases: pending (held for less than `for`), firing, and resolving (firing,
#: but not holding since `t1`, for less than `resolve after`).
PENDING, FIRING_PHASE, RESOLVING = 1, 2, 3
_FAR = np.iinfo(np.int64).max
_LIFE = {c.name for c in LIFECYCLE_COLUMNS} | {"silenced"}


def inner_plan(rule: RulePlan) -> RulePlan:
    """The rule as its own executor runs it for the lifecycle: no `having` (every window is
    an evaluation), no lifecycle, no throttle, and the record without the lifecycle columns."""
    return dataclasses.replace(
        rule,
        having=None,
        for_us=None,
        resolve=None,
        throttle_us=None,
        output=tuple(f for f in rule.output if f.name not in _LIFE),
    )


class _Grid:
    """Evaluation times of window and schedule rules: `ceil(t)` is the first one ≥ t."""

    def ceil(self, t: int) -> int:
        raise NotImplementedError

    def span(self, end: int) -> int:
        """end − window_start of the window ending at `end`."""
        raise NotImplementedError


class _StepGrid(_Grid):
    """Tumbling and sliding windows: ends are `kS + D` for every integer k."""

    def __init__(self, size: int, every: int) -> None:
        self.size, self.every = size, every

    def ceil(self, t: int) -> int:
        return t + (self.size - t) % self.every

    def span(self, end: int) -> int:
        return self.size


class _CronGrid(_Grid):
    def __init__(self, cron: str, over: int) -> None:
        self.cron, self.over = cron, over

    def ceil(self, t: int) -> int:
        from cepdsl.backends.polars.schedule import next_tick_after

        return next_tick_after(self.cron, t - 1)

    def span(self, end: int) -> int:
        return self.over


def grid_of(rule: RulePlan) -> _Grid | None:
    if rule.kind is RuleKind.WINDOW and rule.window is not None and rule.window.kind in ("tumbling", "sliding"):
        size = int(rule.window.size_us or 0)
        return _StepGrid(size, int(rule.window.every_us or size))
    if rule.kind is RuleKind.SCHEDULE and rule.schedule is not None:
        return _CronGrid(rule.schedule.cron, rule.schedule.over_us)
    return None


class Episodes:
    """Per-group episodes and the transitions of §9.3, independent of how evaluations are made.

    `step(key, t, holds)` applies one evaluation; `quiet(key, before)` applies the implicit
    non-holding evaluations of a grid rule strictly before `before`.  Both call
    `emit(kind, key, t, firing_since, row)` for each record (row None: an implicit evaluation).
    """

    def __init__(self, rule: RulePlan, grid: _Grid | None) -> None:
        self.for_us = rule.for_us
        self.resolving = rule.resolve is not None
        self.after = rule.resolve.after_us if rule.resolve is not None else None
        self.grid = grid
        #: key -> [phase, t0, t1, last evaluation time]
        self.open: dict[tuple, list[int]] = {}
        #: implicit evaluation times: the grid up to `grid_until`, then `extra` (sorted)
        self.grid_until = -_FAR
        self.extra: list[int] = []

    # ---------------------------------------------------------------- implicit evaluations
    def _next_quiet(self, after: int, before: int, at_least: int) -> int | None:
        """The first implicit evaluation time e with e > after, e ≥ at_least, e < before."""
        lo = max(after + 1, at_least)
        best = None
        if self.grid is not None and lo <= self.grid_until:
            e = self.grid.ceil(lo)
            if e <= self.grid_until and e < before:
                best = e
        if best is None and self.extra:
            i = bisect.bisect_left(self.extra, max(lo, self.grid_until + 1))
            if i < len(self.extra) and self.extra[i] < before:
                best = self.extra[i]
        return best

    def quiet(self, key: tuple, before: int, emit: Callable[..., None]) -> None:
        ep = self.open.get(key)
        if ep is None or (self.grid is None and not self.extra):
            return
        while True:
            phase, t0, t1, last = ep
            if phase == PENDING:
                e = self._next_quiet(last, before, -_FAR)
                if e is not None:
                    del self.open[key]
                return
            if phase == FIRING_PHASE:
                e = self._next_quiet(last, before, -_FAR)
                if e is None:
                    return
                ep[2], ep[3] = e, e
                if self.after is None:
                    self._end(key, e, emit, None)
                    return
                ep[0] = RESOLVING
                continue
            e = self._next_quiet(last, before, t1 + self.after)  # RESOLVING
            if e is not None:
                self._end(key, e, emit, None)
            return

    # ---------------------------------------------------------------- one evaluation
    def step(self, key: tuple, t: int, holds: bool, row: int | None, emit: Callable[..., None]) -> None:
        ep = self.open.get(key)
        if ep is None:
            if not holds:
                return
            ep = self.open[key] = [PENDING, t, 0, t]
            if self.for_us is None:
                ep[0] = FIRING_PHASE
                emit(FIRING, key, t, t, row)
            return
        phase = ep[0]
        ep[3] = t
        if phase == PENDING:
            if not holds:
                del self.open[key]
            elif t - ep[1] >= (self.for_us or 0):
                ep[0] = FIRING_PHASE
                emit(FIRING, key, t, ep[1], row)
        elif phase == FIRING_PHASE:
            if not holds:
                ep[2] = t
                if self.after is None:
                    self._end(key, t, emit, row)
                else:
                    ep[0] = RESOLVING
        elif holds:  # RESOLVING, holding again: the episode goes on
            ep[0] = FIRING_PHASE
        elif t - ep[2] >= (self.after or 0):
            self._end(key, t, emit, row)

    def _end(self, key: tuple, t: int, emit: Callable[..., None], row: int | None) -> None:
        ep = self.open.pop(key)
        if self.resolving:
            emit(RESOLVED, key, t, ep[1], row)

    def firing(self) -> list[tuple[tuple, int, int]]:
        """(key, firing_since, last evaluation) of every episode that has fired and not resolved."""
        return [(k, ep[1], ep[3]) for k, ep in self.open.items() if ep[0] in (FIRING_PHASE, RESOLVING)]

    def state(self) -> dict[str, Any]:
        return {"open": [(list(k), v) for k, v in self.open.items()], "grid_until": self.grid_until}

    def load_state(self, state: dict[str, Any]) -> None:
        self.open = {tuple(k): list(v) for k, v in state["open"]}
        self.grid_until = int(state["grid_until"])


class LifecycleExecutor(Executor):
    """A rule with `for`/`resolve`: its own executor's evaluations through the episodes.

    Tumbling/sliding windows, anomaly and absence rules run the episodes in one Numba
    pass over per-slot arrays (`lifecycle_kernel`); schedule rules, whose cron grid has
    no closed form, through `Episodes` (few evaluations: one per tick and group)."""

    STATE_VERSION = 1

    def __init__(self, rule: RulePlan, make_inner: Callable[[RulePlan], Executor]) -> None:
        super().__init__(rule)
        self.inner_rule = inner_plan(rule)
        self.inner = self._window_kernel(rule, make_inner) or make_inner(self.inner_rule)
        if rule.kind is RuleKind.ANOMALY:
            self.inner.emit_all = True  # type: ignore[attr-defined]
        self.keys = rule.group_keys
        self.grid = grid_of(rule)
        self.fast = not isinstance(self.grid, _CronGrid)
        if self.fast:
            from cepdsl.kernels.groups import GroupTable

            self.groups = GroupTable({f.name: f.dtype for f in rule.group_by})
            self.phase = np.zeros(0, np.int8)
            self.t0 = np.zeros(0, np.int64)
            self.t1 = np.zeros(0, np.int64)
            self.last = np.zeros(0, np.int64)
            self.grid_until = -_FAR
        else:
            self.episodes = Episodes(rule, self.grid)
        self._having = None
        if rule.having is not None:
            from cepdsl.kernels.polars_expressions import compile_predicate

            self._having = compile_predicate(rule.having)
        #: (group key, firing_since) -> (suppressed, silenced) of firing records not yet resolved
        self.flags: dict[tuple, tuple[bool, str | None]] = {}
        self._flushing: int | None = None
        self._held: list[tuple[pl.DataFrame, np.ndarray]] = []

    def _window_kernel(self, rule: RulePlan, make_inner: Callable[[RulePlan], Executor]) -> Executor | None:
        """A window rule whose pane kernel applies `having` before building records keeps its
        `having`, and is told to emit the other windows only of groups with an episode: a
        rule that rarely holds then builds few records, as it does without the lifecycle."""
        if rule.kind is not RuleKind.WINDOW or rule.having is None:
            return None
        from cepdsl.backends.numba.window_kernels import KernelPaneExecutor

        inner = make_inner(dataclasses.replace(self.inner_rule, having=rule.having))
        if not isinstance(inner, KernelPaneExecutor) or not inner._having_on_aggregates:
            return None
        inner.keep_windows = self._keep_windows
        return inner

    def _keep_windows(self, table: pl.DataFrame, slots: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Windows to emit: holding ones, and all of groups that hold in this emission or have
        an episode under way.  At the final flush every window (its end may be an evaluation)."""
        if self._flushing is not None or not self.fast:
            return np.ones(ok.shape[0], np.bool_)
        want = np.zeros(max(int(slots.max()) + 1 if slots.shape[0] else 1, table.height, 1), np.bool_)
        want[slots[ok]] = True
        active = np.flatnonzero(self.phase[: len(self.groups)] != 0) if self.phase.shape[0] else np.zeros(0, np.int64)
        if active.shape[0]:
            if not self.keys:
                want[:] = True
            else:
                idx = (
                    table.with_row_index("__slot")
                    .join(self.groups.table[active.tolist()], on=list(self.keys), how="semi", nulls_equal=True)["__slot"]
                    .to_numpy()
                )
                want[idx] = True
        return ok | want[slots]

    # ---------------------------------------------------------------- evaluations
    def _holds(self, evals: pl.DataFrame) -> np.ndarray:
        rule = self.rule
        if evals.height == 0:
            return np.zeros(0, np.bool_)
        if rule.kind is RuleKind.ANOMALY:
            score = evals["score"].to_numpy()
            assert rule.anomaly is not None
            limit = 0.0 if rule.anomaly.method == "iqr" else float(rule.anomaly.threshold)
            return score > limit
        if self._having is None:
            return np.ones(evals.height, np.bool_)
        return evals.select(self._having).to_series().to_numpy().astype(np.bool_)

    def _row_evaluations(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Absence: every row is a non-holding evaluation at its time (`last_seen` = its time)."""
        cols = {k: rows.get_column(k) for k in self.keys}
        return finalize(self.inner_rule, pl.DataFrame({**cols, "ts": rows[TIME], "last_seen": rows[TIME]}))

    def _evaluations(self, rows: pl.DataFrame | None, out: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
        holds = self._holds(out)
        if self.rule.kind is RuleKind.ABSENT:
            holds = np.ones(out.height, np.bool_)
            if rows is not None and rows.height:
                extra = self._row_evaluations(rows)
                out = pl.concat([out, extra], how="vertical") if out.height else extra
                holds = np.concatenate([holds, np.zeros(extra.height, np.bool_)])
        return out, holds

    # ---------------------------------------------------------------- executor contract
    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        evals, holds = self._evaluations(rows, self.inner.process(rows, progress))
        if self._flushing is not None:
            self._held.append((evals, holds))
            return self.rule.empty_output()
        return self._step(evals, holds, progress.watermark_us)

    def advance(self, progress: Progress) -> pl.DataFrame:
        evals, holds = self._evaluations(None, self.inner.advance(progress))
        if self._flushing is not None:
            self._held.append((evals, holds))
            return self.rule.empty_output()
        return self._step(evals, holds, progress.watermark_us)

    def before_flush(self, grid_until: int) -> None:
        """End of input comes next: the grid runs to `grid_until`; beyond it only the
        windows the flush closes are evaluations (§9.3)."""
        self._flushing = grid_until

    def finish(self, progress: Progress) -> pl.DataFrame:
        evals, holds = self._evaluations(None, self.inner.finish(progress))
        held, self._held = self._held + [(evals, holds)], []
        parts = [(e, h) for e, h in held if e.height]
        if parts:
            evals = pl.concat([e for e, _ in parts], how="vertical")
            holds = np.concatenate([h for _, h in parts])
        grid_until = self._flushing if self._flushing is not None else progress.watermark_us
        self._flushing = None
        extra: list[int] = []
        if self.rule.kind is RuleKind.SCHEDULE:
            grid_until = max(grid_until, progress.max_ts_us if progress.max_ts_us is not None else grid_until)
        elif self.grid is not None and evals.height:
            ends = evals["window_end"].dt.epoch("us").unique().sort().to_numpy()
            extra = [int(e) for e in ends if e > grid_until]
        return self._step(evals, holds, grid_until, extra)

    def late_mask(self, ts_us: np.ndarray, released_us: int) -> np.ndarray:
        return self.inner.late_mask(ts_us, released_us)

    # ---------------------------------------------------------------- the episodes
    def _step(self, evals: pl.DataFrame, holds: np.ndarray, grid_until: int, extra: list[int] | None = None) -> pl.DataFrame:
        if self.fast:
            return self._fast_step(evals, holds, grid_until, extra or [])
        return self._py_step(evals, holds, grid_until, extra or [])

    def _grow(self, n: int) -> None:
        have = self.phase.shape[0]
        if n <= have:
            return
        size = max(n, 2 * have, 16)
        for name, dtype in (("phase", np.int8), ("t0", np.int64), ("t1", np.int64), ("last", np.int64)):
            grown = np.zeros(size, dtype)
            grown[:have] = getattr(self, name)
            setattr(self, name, grown)

    def _fast_step(self, evals: pl.DataFrame, holds: np.ndarray, grid_until: int, extra: list[int]) -> pl.DataFrame:
        from cepdsl.engine.lifecycle_kernel import scan

        n = evals.height
        if n == 0 and not (self.phase.shape[0] and self.phase.any()):
            if self.grid is not None:
                self.grid_until = max(self.grid_until, grid_until)
            return self.rule.empty_output()
        slots = self.groups.slots(evals) if n else np.zeros(0, np.int64)
        self._grow(len(self.groups))
        grid = self.grid if isinstance(self.grid, _StepGrid) else None
        if grid is not None:
            self.grid_until = max(self.grid_until, grid_until)
        ts = evals["ts"].dt.epoch("us").to_numpy().astype(np.int64) if n else np.zeros(0, np.int64)
        order = np.argsort(ts, kind="stable").astype(np.int64)
        cap = 2 * n + self.phase.shape[0] + 1
        # The record columns kind, slot, t, since, row (room for every record the scan can make).
        out: tuple[np.ndarray, ...] = (np.empty(cap, np.int8), *(np.empty(cap, np.int64) for _ in range(4)))
        m = scan(
            np.ascontiguousarray(slots, np.int64),
            ts,
            np.ascontiguousarray(holds, np.bool_),
            order,
            (self.phase, self.t0, self.t1, self.last),
            (grid is not None, grid.size if grid else 1, grid.every if grid else 1, self.grid_until, np.asarray(extra, np.int64)),
            -1 if self.rule.for_us is None else int(self.rule.for_us),
            -1 if self.rule.resolve is None or self.rule.resolve.after_us is None else int(self.rule.resolve.after_us),
            self.rule.resolve is not None,
            out,
        )
        if m == 0:
            return self.rule.empty_output()
        kind, slot, t, since, row = (column[:m] for column in out)
        implicit = row < 0
        keys = self.groups.table[slot[implicit].tolist()] if self.keys and implicit.any() else None
        return self._records(evals, kind, t, since, row, keys)

    def _py_step(self, evals: pl.DataFrame, holds: np.ndarray, grid_until: int, extra: list[int]) -> pl.DataFrame:
        ep = self.episodes
        if self.grid is not None:
            ep.grid_until = max(ep.grid_until, grid_until)
        ep.extra = extra
        records: list[tuple[str, tuple, int, int, int | None]] = []

        def emit(kind: str, key: tuple, t: int, since: int, row: int | None) -> None:
            records.append((kind, key, t, since, row))

        if evals.height:
            ts = evals["ts"].dt.epoch("us").to_numpy()
            order = np.argsort(ts, kind="stable")
            keys = evals.select(self.keys).rows() if self.keys else [()] * evals.height
            for i in order.tolist():
                key, t = keys[i], int(ts[i])
                ep.quiet(key, t, emit)
                ep.step(key, t, bool(holds[i]), i, emit)
        until = max(ep.grid_until, ep.extra[-1] if ep.extra else -_FAR) + 1
        for key in list(ep.open):
            ep.quiet(key, until, emit)
        for v in ep.open.values():
            v[3] = max(v[3], until - 1)
        ep.extra = []
        if not records:
            return self.rule.empty_output()
        kind = np.array([0 if r[0] == FIRING else 1 for r in records], np.int8)
        row = np.array([-1 if r[4] is None else r[4] for r in records], np.int64)
        keys = self._key_frame([r[1] for r in records if r[4] is None])
        return self._records(
            evals, kind, np.array([r[2] for r in records], np.int64), np.array([r[3] for r in records], np.int64), row, keys
        )

    def _records(
        self,
        evals: pl.DataFrame,
        kind: np.ndarray,
        t: np.ndarray,
        since: np.ndarray,
        row: np.ndarray,
        implicit_keys: pl.DataFrame | None,
    ) -> pl.DataFrame:
        """Records of `kind` (0 firing, 1 resolved) at `t`: of evaluation `row`, or (row −1) of
        a window without rows of the group, whose keys are `implicit_keys` in order."""
        is_resolved = pl.Series(kind == 1)
        # Built by Polars from the flags: a numpy string array costs ~1 µs a value to convert.
        state, resolved_at = pl.select(
            pl.when(is_resolved).then(pl.lit(RESOLVED)).otherwise(pl.lit(FIRING)).alias("state"),
            pl.when(is_resolved).then(pl.Series(t)).alias("resolved_at"),
        ).get_columns()
        explicit = row >= 0
        parts = []
        if explicit.any():
            mask = pl.Series(explicit)
            all_explicit = bool(explicit.all())
            f = evals.select(pl.all().gather(row if all_explicit else row[explicit]))
            parts.append(
                finalize(
                    self.rule,
                    f.with_columns(
                        state if all_explicit else state.filter(mask),
                        pl.Series("firing_since", since[explicit], dtype=pl.Int64),
                        resolved_at if all_explicit else resolved_at.filter(mask),
                    ),
                )
            )
        if not explicit.all():
            assert self.grid is not None
            q = ~explicit
            tq = t[q]
            span = (
                np.array([self.grid.span(int(e)) for e in tq], np.int64)
                if isinstance(self.grid, _CronGrid)
                else np.full(tq.shape[0], self.grid.span(0), np.int64)
            )
            data = {k: implicit_keys.get_column(k) for k in self.keys} if implicit_keys is not None else {}
            data.update(
                {
                    "ts": pl.Series("ts", tq, dtype=pl.Int64),
                    "window_start": pl.Series("window_start", tq - span, dtype=pl.Int64),
                    "window_end": pl.Series("window_end", tq, dtype=pl.Int64),
                    "state": state.filter(pl.Series(q)),
                    "firing_since": pl.Series("firing_since", since[q], dtype=pl.Int64),
                    "resolved_at": pl.Series("resolved_at", tq, dtype=pl.Int64),
                }
            )
            parts.append(finalize(self.rule, pl.DataFrame(data)))
        out = parts[0] if len(parts) == 1 else pl.concat(parts, how="vertical")
        return out.with_columns(pl.lit(False).alias("suppressed")) if "suppressed" in out.columns else out

    # ---------------------------------------------------------------- run-time changes
    def _firing(self) -> tuple[pl.DataFrame | None, list[int], list[int]]:
        """(keys, firing_since, last evaluation) of the episodes that fired and are not resolved."""
        if self.fast:
            idx = np.flatnonzero(self.phase >= 2)
            keys = self.groups.table[idx.tolist()] if self.keys else None
            return keys, self.t0[idx].tolist(), self.last[idx].tolist()
        firing = self.episodes.firing()
        return self._key_frame([f[0] for f in firing]), [f[1] for f in firing], [f[2] for f in firing]

    def _key_frame(self, keys: list[tuple]) -> pl.DataFrame | None:
        """Group keys (tuples, from `Episodes`) as a frame of the key columns; None without any."""
        if not self.keys or not keys:
            return None
        return pl.DataFrame([list(k) for k in keys], schema={k: self.rule.output_schema[k] for k in self.keys}, orient="row")

    def resolve_all(self, t: int) -> pl.DataFrame:
        """Resolved records for every firing episode (the rule is changed, disabled or removed)."""
        keys, since, last = self._firing()
        if self.fast:
            self.phase[:] = 0
        else:
            self.episodes.open.clear()
        if not since or self.rule.resolve is None:  # `for` alone: no resolved records (§9.3)
            return self.rule.empty_output()
        data = {k: keys.get_column(k) for k in self.keys} if keys is not None else {}
        times = [max(t, x) for x in last]
        data.update(
            {
                "ts": pl.Series("ts", times, dtype=pl.Int64),
                "state": pl.Series("state", [RESOLVED] * len(since), dtype=pl.String),
                "firing_since": pl.Series("firing_since", since, dtype=pl.Int64),
                "resolved_at": pl.Series("resolved_at", times, dtype=pl.Int64),
                "suppressed": pl.Series("suppressed", [False] * len(since), dtype=pl.Boolean),
            }
        )
        return self.annotate(finalize(self.rule, pl.DataFrame(data)))

    def annotate(self, out: pl.DataFrame) -> pl.DataFrame:
        """A resolved record is notified iff its firing record was (§9.3): it takes over the
        firing record's `suppressed` and `silenced`.  `out` is in ts order.  Only episodes
        whose firing was held back are remembered, so the common case is two column scans."""
        if out.height == 0 or "state" not in out.columns:
            return out
        held = out["suppressed"].fill_null(False) if "suppressed" in out.columns else pl.repeat(False, out.height, eager=True)
        if "silenced" in out.columns:
            held = held | out["silenced"].is_not_null()
        if not self.flags and not held.any():
            return out
        episodes, states, supp = self._by_episode(out)
        sil = out["silenced"].to_list() if "silenced" in out.columns else None
        changed = False
        for i, (k, state) in enumerate(zip(episodes, states, strict=True)):
            if state == FIRING:
                if supp[i] or (sil is not None and sil[i] is not None):
                    self.flags[k] = (bool(supp[i]), sil[i] if sil is not None else None)
            else:
                flag = self.flags.pop(k, None)
                if flag is not None and flag[1] is not None and sil is None:
                    # Silenced at run time (no silence in the file): the column comes with it.
                    sil = [None] * out.height
                if flag is not None or supp[i] or (sil is not None and sil[i] is not None):
                    # Notified firing → notified resolved, whatever silences its own time.
                    supp[i] = flag[0] if flag is not None else False
                    if sil is not None:
                        sil[i] = flag[1] if flag is not None else None
                    changed = True
        if not changed:
            return out
        cols = [pl.Series("suppressed", supp, dtype=pl.Boolean)]
        if sil is not None:
            cols.append(pl.Series("silenced", sil, dtype=pl.String))
        return out.with_columns(cols)

    def _by_episode(self, out: pl.DataFrame) -> tuple[list[tuple[tuple, int]], list[str], list[bool]]:
        """Per record of `out`: its episode (group key, firing_since) as `flags` keys it, its
        state and its `suppressed`, as lists for `annotate`'s and `carry_holds`' record loops."""
        keys = out.select(self.keys).rows() if self.keys else [()] * out.height
        since = out["firing_since"].dt.epoch("us").to_list()
        supp = out["suppressed"].to_list() if "suppressed" in out.columns else [False] * out.height
        return list(zip(keys, since, strict=True)), out["state"].to_list(), supp

    def carry_holds(self, out: pl.DataFrame) -> pl.DataFrame:
        """`annotate` again after the runtime silenced firing records (run-time silences):
        a firing record now held is remembered, and a resolved record of a held episode is
        held too.  Only adds holds: what `annotate` decided for the rest stands."""
        if out.height == 0 or "state" not in out.columns or "silenced" not in out.columns:
            return out
        firing_held = ((out["state"] == FIRING) & out["silenced"].is_not_null()).fill_null(False)
        if not self.flags and not firing_held.any():
            return out
        episodes, states, supp = self._by_episode(out)
        sil = out["silenced"].to_list()
        changed = False
        for i, (k, state) in enumerate(zip(episodes, states, strict=True)):
            if state == FIRING:
                if sil[i] is not None:
                    self.flags[k] = (bool(supp[i]), sil[i])
            elif k in self.flags:
                supp[i], sil[i] = self.flags.pop(k)
                changed = True
        if not changed:
            return out
        return out.with_columns(pl.Series("suppressed", supp, dtype=pl.Boolean), pl.Series("silenced", sil, dtype=pl.String))

    # ---------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "inner": self.inner.snapshot(),
            "flags": [(list(k[0]), k[1], v[0], v[1]) for k, v in self.flags.items()],
        }
        if self.fast:
            n = len(self.groups) if self.keys else min(1, self.phase.shape[0])
            out["groups"] = self.groups.state()
            out["slots"] = {name: getattr(self, name)[:n].copy() for name in ("phase", "t0", "t1", "last")}
            out["grid_until"] = self.grid_until
        else:
            out["episodes"] = self.episodes.state()
        return out

    def load_state(self, state: dict[str, Any]) -> None:
        self.inner.restore(state["inner"])
        self.flags = {(tuple(k), int(s)): (bool(a), b) for k, s, a, b in state["flags"]}
        if self.fast:
            self.groups.load_state(state["groups"])
            for name, values in state["slots"].items():
                setattr(self, name, np.array(values, np.int8 if name == "phase" else np.int64))
            self.grid_until = int(state["grid_until"])
        else:
            self.episodes.load_state(state["episodes"])
