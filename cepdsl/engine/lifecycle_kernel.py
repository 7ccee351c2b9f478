"""The episode state machine of §9.3 as one Numba pass over a batch's evaluations.

The same transitions as `cepdsl.engine.lifecycle.Episodes` (which runs schedule rules,
whose cron grid has no closed form), over per-slot arrays instead of a dict of lists:
with many groups and windows the per-evaluation Python loop cost more than the window
kernels themselves.  Phases: 0 none, 1 pending, 2 firing, 3 resolving.  Implicit
evaluations (windows without rows of a group that has an episode) come from the step
grid `kS + D` up to `grid_until`, then from `extras` (the windows the final flush closes).
Imported on first use (by `LifecycleExecutor`), so `cep check` never loads Numba.
"""

from __future__ import annotations

import numba
import numpy as np

NONE = np.iinfo(np.int64).min  # "no such time"
FIRING, RESOLVED = 0, 1


@numba.njit(cache=True, inline="always")  # array arguments cost refcounts per call
def _next_quiet(after, before, at_least, grid):  # type: ignore[no-untyped-def]
    """The first implicit evaluation e with e > after, e ≥ at_least, e < before; else NONE."""
    has_grid, size, every, grid_until, extras = grid
    lo = after + 1
    if at_least > lo:
        lo = at_least
    if has_grid and lo <= grid_until:
        e = lo + (size - lo) % every
        if e <= grid_until and e < before:
            return e
    if extras.shape[0] == 0:
        return NONE
    start = lo if lo > grid_until else grid_until + 1
    k = np.searchsorted(extras, start)
    if k < extras.shape[0] and extras[k] < before:
        return extras[k]
    return NONE


@numba.njit(cache=True, inline="always")  # array arguments cost refcounts per call
def _emit(out, m, kind, s, t, since, row):  # type: ignore[no-untyped-def]
    """Record m of the output columns `out` = (kind, slot, t, since, row); returns m + 1."""
    out_kind, out_slot, out_t, out_since, out_row = out
    out_kind[m] = kind
    out_slot[m] = s
    out_t[m] = t
    out_since[m] = since
    out_row[m] = row
    return m + 1


@numba.njit(cache=True, inline="always")  # array arguments cost refcounts per call
def _quiet(s, before, slot_state, grid, after_us, resolving, out, m):  # type: ignore[no-untyped-def]
    """Implicit (non-holding) evaluations of slot `s` strictly before `before`."""
    phase, t0, t1, last = slot_state
    while True:
        p = phase[s]
        if p == 1:
            if _next_quiet(last[s], before, NONE, grid) != NONE:
                phase[s] = 0
            return m
        if p == 2:
            e = _next_quiet(last[s], before, NONE, grid)
            if e == NONE:
                return m
            t1[s] = e
            last[s] = e
            if after_us < 0:
                phase[s] = 0
                if resolving:
                    m = _emit(out, m, RESOLVED, s, e, t0[s], -1)
                return m
            phase[s] = 3
            continue
        if p == 3:
            e = _next_quiet(last[s], before, t1[s] + after_us, grid)
            if e != NONE:
                phase[s] = 0
                last[s] = e
                if resolving:
                    m = _emit(out, m, RESOLVED, s, e, t0[s], -1)
        return m


@numba.njit(cache=True)
def scan(slots, ts, holds, order, slot_state, grid, for_us, after_us, resolving, out):  # type: ignore[no-untyped-def]
    """Run the evaluations (`slots`, `ts`, `holds` of row i; rows in `order`) through the
    episodes, then the implicit evaluations up to the grid's end.  Grouped arguments (tuples,
    unpacked for free by Numba): `slot_state` = (phase, t0, t1, last), per slot, updated in
    place; `grid` = (has_grid, size, every, grid_until, extras); `out` = the record columns
    (kind, slot, t, since, row), room for every record.  Returns the number of records."""
    phase, t0, t1, last = slot_state
    has_grid, _, every, grid_until, extras = grid
    m = 0
    quiet = has_grid or extras.shape[0] > 0
    for j in range(order.shape[0]):
        i = order[j]
        s = slots[i]
        t = ts[i]
        h = holds[i]
        # The next window of the group (t − last = S) leaves no window between: no implicit
        # evaluation to look for (both are grid points), the common case of a busy group.
        if quiet and phase[s] != 0 and not (has_grid and t - last[s] == every):
            m = _quiet(s, t, slot_state, grid, after_us, resolving, out, m)
        p = phase[s]
        if p == 0:
            if h:
                t0[s] = t
                last[s] = t
                if for_us < 0:
                    phase[s] = 2
                    m = _emit(out, m, FIRING, s, t, t, i)
                else:
                    phase[s] = 1
            continue
        last[s] = t
        if p == 1:
            if not h:
                phase[s] = 0
            elif t - t0[s] >= for_us:
                phase[s] = 2
                m = _emit(out, m, FIRING, s, t, t0[s], i)
        elif p == 2:
            if not h:
                t1[s] = t
                if after_us < 0:
                    phase[s] = 0
                    if resolving:
                        m = _emit(out, m, RESOLVED, s, t, t0[s], i)
                else:
                    phase[s] = 3
        elif h:
            phase[s] = 2
        elif t - t1[s] >= after_us:
            phase[s] = 0
            if resolving:
                m = _emit(out, m, RESOLVED, s, t, t0[s], i)
    if quiet:
        until = grid_until if has_grid else NONE
        if extras.shape[0] > 0 and extras[extras.shape[0] - 1] > until:
            until = extras[extras.shape[0] - 1]
        for s in range(phase.shape[0]):
            if phase[s] != 0:
                m = _quiet(s, until + 1, slot_state, grid, after_us, resolving, out, m)
                if phase[s] != 0 and last[s] < until:
                    last[s] = until
    return m
