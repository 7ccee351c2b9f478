"""The backtracking matcher: one Numba pass over group-sorted rows, every group.

Generic over rules: the program, the step columns and `within` are arguments, so
one compiled kernel (per dtype signature, cached on disk) serves every pattern rule.

Per group, start rows are tried in order.  From a start, the program runs as a
depth-first search with an explicit stack (branch points and undo records for the
step counters and registers); the first MATCH reached that took at least one row is
the match a backtracking regex engine prefers.  A (pc, row) pair already explored
from the same start failed then and fails again, so it is skipped: each start costs
at most O(program × rows within reach).

Streaming: if the search wants a row past the last buffered one while that row
could still be within `within` of the start (future rows are never earlier than
`bound`), the start is undecided: the group stops there and its rows from that
start on are kept for the next call.

Layout: the group loop, the scan for a row that can start a match, and the search
from one start are three functions, and the search's stack and memo table have a
fixed size inside it (when one is too small the search says so, the caller grows
it and runs that start again from scratch).  With everything in one function,
Numba kept the growable arrays' reference counts up to date on every loop turn,
which cost ~40 ns per row even for rows no search looked at.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from cepdsl.backends.numba.pattern_compile import CHECK, JMP, SAVE, SPLIT, STEP
from cepdsl.kernels.borrow import borrow

_BRANCH, _UNDO_COUNT, _UNDO_REG = 0, 1, 2
_FITS, _STACK_FULL, _SPAN_SHORT = 0, 1, 2


@nb.njit(cache=True, nogil=True)
def _copy(dst: np.ndarray, src: np.ndarray, n: int) -> None:
    """dst[:n] = src[:n] as a loop: Numba's slice assignment compiles a shape-mismatch
    error message (str/join of the shapes), seconds of first-run compile."""
    for k in range(n):
        dst[k] = src[k]


@nb.njit(cache=True, nogil=True)
def _copy_rows(dst: np.ndarray, src: np.ndarray, n: int) -> None:
    for k in range(n):
        for c in range(src.shape[1]):
            dst[k, c] = src[k, c]


@nb.njit(cache=True, nogil=True)
def _argsort_distinct(v: np.ndarray) -> np.ndarray:
    """Indices ordering `v` (distinct values) ascending: heap sort."""
    n = v.shape[0]
    idx = np.empty(n, np.int64)
    for i in range(n):
        idx[i] = i
    for start in range(n // 2 - 1, -1, -1):
        _sift(v, idx, start, n)
    for end in range(n - 1, 0, -1):
        idx[0], idx[end] = idx[end], idx[0]
        _sift(v, idx, np.int64(0), end)
    return idx


@nb.njit(cache=True, nogil=True)
def _sift(v: np.ndarray, idx: np.ndarray, root: int, end: int) -> None:
    while True:
        child = 2 * root + 1
        if child >= end:
            return
        if child + 1 < end and v[idx[child + 1]] > v[idx[child]]:
            child += 1
        if v[idx[root]] >= v[idx[child]]:
            return
        idx[root], idx[child] = idx[child], idx[root]
        root = child


@nb.njit(cache=True, nogil=True)
def _next_start(conds: np.ndarray, first: np.ndarray, s: int, hi: int) -> int:
    """The first row in [s, hi) satisfying a step a match can begin with (hi: none).
    Any other row fails at once: no search set-up for it."""
    n_steps = conds.shape[0]
    while s < hi:
        for k in range(n_steps):
            if first[k] and conds[k, s]:
                return s
        s += 1
    return hi


@nb.njit(cache=True, nogil=True)
def _search(
    t: np.ndarray,
    conds: np.ndarray,
    op: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    memo: np.ndarray,
    within: int,
    bound: int,
    final: bool,
    s: int,  # start row
    hi: int,  # end of the group's rows
    visited: np.ndarray,  # int32[n_prog, span]: stamp of the (pc, row - s) pairs explored
    stamp: int,  # this search's stamp (not in `visited` yet)
    sk: np.ndarray,  # stack: kind, x, y
    sx: np.ndarray,
    sy: np.ndarray,
    counts: np.ndarray,  # out: rows taken per step by the match
    regs: np.ndarray,
) -> tuple[int, bool, int, int]:
    """(end row of the preferred match or -1, whether a path ran out of rows that a
    future row could extend, _FITS or what was too small, the size it needs)."""
    for k in range(counts.shape[0]):
        counts[k] = 0
    span = visited.shape[1]
    cap = sk.shape[0]
    t0 = t[s]
    sk[0] = _BRANCH
    sx[0] = 0
    sy[0] = s
    sp = 1
    end_hit = False
    while sp > 0:
        sp -= 1
        kind = sk[sp]
        if kind == _UNDO_COUNT:
            counts[sx[sp]] -= 1
            continue
        if kind == _UNDO_REG:
            regs[sx[sp]] = sy[sp]
            continue
        pc = sx[sp]
        row = sy[sp]
        while True:
            if memo[pc]:
                off = row - s
                if off >= span:
                    return -1, end_hit, _SPAN_SHORT, off + 1
                if visited[pc, off] == stamp:
                    break
                visited[pc, off] = stamp
            o = op[pc]
            if o == STEP:
                if row >= hi:
                    if not final and (within < 0 or bound - t0 <= within):
                        end_hit = True
                    break
                if within >= 0 and t[row] - t0 > within:
                    break
                k = a[pc]
                if not conds[k, row]:
                    break
                if sp >= cap:
                    return -1, end_hit, _STACK_FULL, sp + 1
                counts[k] += 1
                sk[sp] = _UNDO_COUNT
                sx[sp] = k
                sp += 1
                row += 1
                pc += 1
            elif o == SPLIT:
                if sp >= cap:
                    return -1, end_hit, _STACK_FULL, sp + 1
                sk[sp] = _BRANCH
                sx[sp] = b[pc]
                sy[sp] = row
                sp += 1
                pc = a[pc]
            elif o == JMP:
                pc = a[pc]
            elif o == SAVE:
                if sp >= cap:
                    return -1, end_hit, _STACK_FULL, sp + 1
                r = a[pc]
                sk[sp] = _UNDO_REG
                sx[sp] = r
                sy[sp] = regs[r]
                sp += 1
                regs[r] = row
                pc += 1
            elif o == CHECK:
                if row == regs[a[pc]]:
                    break
                pc += 1
            else:  # MATCH: zero-row matches do not count
                if row > s:
                    return row, end_hit, _FITS, 0
                break
    return -1, end_hit, _FITS, 0


@nb.njit(cache=True, nogil=True)
def match_groups(
    t: np.ndarray,  # int64[n] event times, group-sorted (time order inside a group)
    conds: np.ndarray,  # bool[n_steps, n]: row satisfies step k
    offsets: np.ndarray,  # int64[n_groups + 1]: group g is rows offsets[g]:offsets[g+1]
    op: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    memo: np.ndarray,
    n_registers: int,
    first: np.ndarray,  # bool[n_steps]: steps a match can begin with
    within: int,  # microseconds, or -1 for no limit
    bound: int,  # no future row is earlier than this
    final: bool,  # no future rows at all (end of input)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first row, last row, step counts) of every decided match, and per group the
    first undecided start row (-1: all decided)."""
    # The search's scratch is made here and lent to `_match_all`, which borrows it with
    # the caller's arrays: the per-start calls then skip their atomic reference counting
    # (borrow.py). Scratch grown there is its own (rare: deep or long searches).
    n_steps = conds.shape[0]
    visited = np.zeros((op.shape[0], 64), np.int32)
    sk = np.empty(256, np.int64)
    sx = np.empty(256, np.int64)
    sy = np.empty(256, np.int64)
    counts = np.zeros(n_steps, np.int64)
    regs = np.full(max(n_registers, 1), -1, np.int64)
    regs_at_start = regs.copy()
    return _match_all(t, conds, offsets, op, a, b, memo, first, within, bound, final, visited, sk, sx, sy, counts, regs, regs_at_start)


@nb.njit(cache=True, nogil=True)
def _match_all(t, conds, offsets, op, a, b, memo, first, within, bound, final, visited, sk, sx, sy, counts, regs, regs_at_start):  # noqa: ANN001, ANN202, PLR0913
    t, conds, offsets, op, a, b, memo, first = (
        borrow(t),
        borrow(conds),
        borrow(offsets),
        borrow(op),
        borrow(a),
        borrow(b),
        borrow(memo),
        borrow(first),
    )
    visited, sk, sx, sy = borrow(visited), borrow(sk), borrow(sx), borrow(sy)
    counts, regs, regs_at_start = borrow(counts), borrow(regs), borrow(regs_at_start)
    n_steps = conds.shape[0]
    n_groups = offsets.shape[0] - 1
    n_prog = op.shape[0]

    cap = 16
    m_first = np.empty(cap, np.int64)
    m_last = np.empty(cap, np.int64)
    m_counts = np.empty((cap, n_steps), np.int64)
    n_matches = 0
    undecided = np.full(n_groups, -1, np.int64)
    stamp = 0

    for g in range(n_groups):
        hi = offsets[g + 1]
        s = offsets[g]
        while True:
            s = _next_start(conds, first, s, hi)
            if s >= hi:
                break
            _copy(regs_at_start, regs, regs.shape[0])
            while True:
                stamp += 1  # a fresh stamp also forgets what a cut-short try explored
                if stamp == 2147483647:  # int32 stamps wrap: start the memo afresh
                    visited[:, :] = 0
                    stamp = 1
                found, end_hit, short, need = _search(
                    t, conds, op, a, b, memo, within, bound, final, s, hi, visited, stamp, sk, sx, sy, counts, regs
                )
                if short == _FITS:
                    break
                _copy(regs, regs_at_start, regs.shape[0])
                if short == _STACK_FULL:
                    size = max(need, 2 * sk.shape[0])
                    sk = np.empty(size, np.int64)
                    sx = np.empty(size, np.int64)
                    sy = np.empty(size, np.int64)
                else:
                    visited = np.zeros((n_prog, max(need, 2 * visited.shape[1])), np.int32)
                    stamp = 0
            if end_hit:
                # A preferred path ran out of rows while a future row could still join it.
                undecided[g] = s
                break
            if found < 0:
                s += 1
                continue
            if n_matches == cap:
                cap *= 2
                grown = np.empty(cap, np.int64)
                _copy(grown, m_first, n_matches)
                m_first = grown
                grown = np.empty(cap, np.int64)
                _copy(grown, m_last, n_matches)
                m_last = grown
                grown_counts = np.empty((cap, n_steps), np.int64)
                _copy_rows(grown_counts, m_counts, n_matches)
                m_counts = grown_counts
            m_first[n_matches] = s
            m_last[n_matches] = found - 1
            for c in range(n_steps):  # not a row assignment: see _copy
                m_counts[n_matches, c] = counts[c]
            n_matches += 1
            s = found  # AFTER MATCH SKIP PAST LAST ROW
    return m_first[:n_matches].copy(), m_last[:n_matches].copy(), m_counts[:n_matches].copy(), undecided


@nb.njit(cache=True, nogil=True)
def kept_rows(ids: np.ndarray, perm: np.ndarray, undecided: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, int]:
    """The rows to keep for the next call (frame order): each open group's rows from
    its undecided start on; and the earliest such start's time (int64 max: none).
    Sorting is stable, so those are the group's rows at or after the start's row."""
    n = ids.shape[0]
    start = np.empty(undecided.shape[0], np.int64)
    earliest = np.iinfo(np.int64).max
    for g in range(undecided.shape[0]):
        if undecided[g] >= 0:
            start[g] = perm[undecided[g]]
            earliest = min(earliest, t[start[g]])
        else:
            start[g] = n
    keep = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if i >= start[ids[i]]:
            keep[m] = i
            m += 1
    return keep[:m], earliest


@nb.njit(cache=True, nogil=True)
def dense_ids(codes: np.ndarray, scratch: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes (group codes kept across calls) → ids 0, 1, ... in order of first
    appearance, and how many.  `scratch` (-1 everywhere, longer than the largest code)
    is left as it was found: only the entries of codes present are touched."""
    n = codes.shape[0]
    ids = np.empty(n, np.int64)
    n_ids = 0
    for i in range(n):
        c = codes[i]
        if scratch[c] < 0:
            scratch[c] = n_ids
            n_ids += 1
        ids[i] = scratch[c]
    for i in range(n):
        scratch[codes[i]] = -1
    return ids, n_ids


@nb.njit(cache=True, nogil=True)
def take_columns(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """a[:, idx], C-contiguous (what the kernels are compiled for)."""
    out = np.empty((a.shape[0], idx.shape[0]), a.dtype)
    for k in range(a.shape[0]):
        for i in range(idx.shape[0]):
            out[k, i] = a[k, idx[i]]
    return out


@nb.njit(cache=True, nogil=True)
def match_rows(
    t: np.ndarray,  # int64[n] event times of rows in (TIME, SEQ) order
    conds: np.ndarray,  # bool[n_steps, n]
    codes: np.ndarray,  # int64[n] group codes (any numbering)
    scratch: np.ndarray,  # for `dense_ids`
    op: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    memo: np.ndarray,
    n_registers: int,
    first: np.ndarray,
    within: int,
    bound: int,
    final: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """`match_groups` over rows in arrival order: rows are put group by group (stable
    counting sort) and the results mapped back, all in one call (each call from Python
    costs its argument checks).  Returns, for the decided matches in output order (by
    their last row): that row, the first row's time, the step counts; then the rows to
    keep and the earliest undecided start's time (see `kept_rows`)."""
    n = t.shape[0]
    ids, n_groups = dense_ids(codes, scratch)
    offsets = np.zeros(n_groups + 1, np.int64)
    for i in range(n):
        offsets[ids[i] + 1] += 1
    for g in range(n_groups):
        offsets[g + 1] += offsets[g]
    perm = np.empty(n, np.int64)
    fill = offsets[:-1].copy()
    for i in range(n):
        perm[fill[ids[i]]] = i
        fill[ids[i]] += 1
    t_sorted = np.empty(n, np.int64)
    for i in range(n):
        t_sorted[i] = t[perm[i]]
    m_first, m_last, m_counts, undecided = match_groups(
        t_sorted, take_columns(conds, perm), offsets, op, a, b, memo, n_registers, first, within, bound, final
    )
    keep, earliest = kept_rows(ids, perm, undecided, t)
    n_matches = m_first.shape[0]
    last = np.empty(n_matches, np.int64)
    for j in range(n_matches):
        last[j] = perm[m_last[j]]
    # Rows are in (TIME, SEQ) order, so ordering matches by their last row orders
    # them for output (last rows are distinct: no stability needed). A heap sort by hand:
    # np.argsort compiled Numba's merge sort, ~1.5 s of a first run's compile.
    order = _argsort_distinct(last)
    last_out = np.empty(n_matches, np.int64)
    start_t = np.empty(n_matches, np.int64)
    counts = np.empty_like(m_counts)
    for j in range(n_matches):
        o = order[j]
        last_out[j] = last[o]
        start_t[j] = t_sorted[m_first[o]]
        for c in range(m_counts.shape[1]):  # not a row assignment: see _copy
            counts[j, c] = m_counts[o, c]
    return last_out, start_t, counts, keep, earliest
