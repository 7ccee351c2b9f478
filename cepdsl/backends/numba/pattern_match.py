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
"""

from __future__ import annotations

import numba as nb
import numpy as np

from cepdsl.backends.numba.pattern_compile import CHECK, JMP, MATCH, SAVE, SPLIT, STEP

_BRANCH, _UNDO_COUNT, _UNDO_REG = 0, 1, 2


@nb.njit(cache=True)
def _grow1(arr: np.ndarray, need: int) -> np.ndarray:
    if need <= arr.shape[0]:
        return arr
    out = np.empty(max(need, 2 * arr.shape[0]), arr.dtype)
    out[: arr.shape[0]] = arr
    return out


@nb.njit(cache=True)
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
    n_steps = conds.shape[0]
    n_groups = offsets.shape[0] - 1
    n_prog = op.shape[0]

    cap = 16
    m_first = np.empty(cap, np.int64)
    m_last = np.empty(cap, np.int64)
    m_counts = np.empty((cap, n_steps), np.int64)
    n_matches = 0
    undecided = np.full(n_groups, -1, np.int64)

    span = 64
    visited = np.zeros((n_prog, span), np.int32)
    stamp = 0
    sk = np.empty(256, np.int64)  # stack: kind, x, y
    sx = np.empty(256, np.int64)
    sy = np.empty(256, np.int64)
    counts = np.zeros(n_steps, np.int64)
    regs = np.full(max(n_registers, 1), -1, np.int64)

    for g in range(n_groups):
        lo = offsets[g]
        hi = offsets[g + 1]
        s = lo
        while s < hi:
            # A row that satisfies no first step fails at once: skip the search set-up.
            can_start = False
            for k in range(n_steps):
                if first[k] and conds[k, s]:
                    can_start = True
                    break
            if not can_start:
                s += 1
                continue
            stamp += 1
            if stamp == 2147483647:  # int32 stamps wrap: start the memo afresh
                visited[:, :] = 0
                stamp = 1
            counts[:] = 0
            t0 = t[s]
            sp = 0
            sk[0] = _BRANCH
            sx[0] = 0
            sy[0] = s
            sp = 1
            end_hit = False
            found = -1
            while sp > 0 and found < 0:
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
                            nspan = max(2 * span, off + 1)
                            nv = np.zeros((n_prog, nspan), np.int32)
                            nv[:, :span] = visited
                            visited = nv
                            span = nspan
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
                        counts[k] += 1
                        if sp >= sk.shape[0]:
                            sk = _grow1(sk, sp + 1)
                            sx = _grow1(sx, sp + 1)
                            sy = _grow1(sy, sp + 1)
                        sk[sp] = _UNDO_COUNT
                        sx[sp] = k
                        sp += 1
                        row += 1
                        pc += 1
                    elif o == SPLIT:
                        if sp >= sk.shape[0]:
                            sk = _grow1(sk, sp + 1)
                            sx = _grow1(sx, sp + 1)
                            sy = _grow1(sy, sp + 1)
                        sk[sp] = _BRANCH
                        sx[sp] = b[pc]
                        sy[sp] = row
                        sp += 1
                        pc = a[pc]
                    elif o == JMP:
                        pc = a[pc]
                    elif o == SAVE:
                        r = a[pc]
                        if sp >= sk.shape[0]:
                            sk = _grow1(sk, sp + 1)
                            sx = _grow1(sx, sp + 1)
                            sy = _grow1(sy, sp + 1)
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
                            found = row
                        break
            if end_hit:
                # A preferred path ran out of rows while a future row could still join it.
                undecided[g] = s
                break
            if found < 0:
                s += 1
                continue
            if n_matches == cap:
                cap *= 2
                m_first = _grow1(m_first, cap)
                m_last = _grow1(m_last, cap)
                nc = np.empty((cap, n_steps), np.int64)
                nc[:n_matches] = m_counts[:n_matches]
                m_counts = nc
            m_first[n_matches] = s
            m_last[n_matches] = found - 1
            m_counts[n_matches] = counts
            n_matches += 1
            s = found  # AFTER MATCH SKIP PAST LAST ROW
    return m_first[:n_matches].copy(), m_last[:n_matches].copy(), m_counts[:n_matches].copy(), undecided
