"""Which worker Bytewax gives a key partition, so that replay can spread them evenly.

Bytewax 0.21 routes a keyed item of a stateful step to worker `hash(key) % workers`,
where `hash` is Rust's `DefaultHasher` (SipHash-1-3, keys 0, 0) over the key string
as Rust hashes a `str` (its bytes, then 0xFF), and `workers` counts every worker of
every process.  Left to that hash, a handful of key partitions lands unevenly (with
6 grouped rules of one key partition each on 2 workers, 5 on one and 1 on the other
is as likely as 3 and 3), and the slower worker sets the pace.

`placed_key` appends the smallest salt `~N` that sends a key to the worker asked for.
Only replay uses it: a live flow's key names must not depend on the worker count,
since its recovered state is found by key name after a restart on more or fewer
workers.  Correctness never depends on the prediction: a Bytewax that hashed
differently would only place keys less evenly (tests/distributed/test_placement.py
checks it against the real runtime).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

_MASK = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3 (one compression round, three finalisation rounds), as Rust's DefaultHasher."""
    v0, v1 = k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D
    v2, v3 = k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573

    def sip_round() -> None:
        nonlocal v0, v1, v2, v3
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)

    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        sip_round()
        v0 ^= m
    last = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= last
    sip_round()
    v0 ^= last
    v2 ^= 0xFF
    sip_round()
    sip_round()
    sip_round()
    return v0 ^ v1 ^ v2 ^ v3


def worker_of(key: str, workers: int) -> int:
    """The worker Bytewax routes `key` to, among `workers` (all processes' workers)."""
    return siphash13(key.encode() + b"\xff") % workers


@lru_cache(maxsize=4096)
def placed_key(base: str, worker: int, workers: int) -> str:
    """`base`, or `base~N` with the smallest N, such that Bytewax routes it to `worker`."""
    if workers <= 1 or worker_of(base, workers) == worker:
        return base
    salt = 1
    while worker_of(f"{base}~{salt}", workers) != worker:
        salt += 1
    return f"{base}~{salt}"


#: A worker may carry this much more than an even share before the heaviest rule is split.
BALANCE_SLACK = 0.10


def balance(weights: Mapping[str, float], splittable: set[str] | frozenset[str], workers: int) -> dict[str, tuple[int, ...]]:
    """Per rule (by key prefix, weighed by its measured cost): the worker of each of its key
    partitions.  Whole rules, heaviest first onto the least loaded worker (LPT); while the
    busiest worker carries more than an even share + BALANCE_SLACK, the heaviest rule still
    whole that may be split (a grouped rule) gets one key partition per worker instead, as
    long as that lowers the busiest worker's load.  A whole rule costs less than the same
    rule split: its rows need no hashing or gathering by key partition on the reader, and
    one engine runs it, not `workers`."""
    if workers <= 1 or not weights:
        return {k: (0,) for k in weights}
    share = sum(weights.values()) / workers
    split: set[str] = set()
    best, peak = _lpt(weights, split, workers)
    while peak > share * (1 + BALANCE_SLACK):
        whole = [k for k in weights if k not in split and k in splittable]
        if not whole:
            break
        split.add(max(whole, key=lambda k: (weights[k], k)))
        placed, load = _lpt(weights, split, workers)
        if load >= peak:
            break
        best, peak = placed, load
    return best


def _lpt(weights: Mapping[str, float], split: set[str], workers: int) -> tuple[dict[str, tuple[int, ...]], float]:
    """Split rules on every worker, then whole rules heaviest first onto the least loaded."""
    loads = [0.0] * workers
    out: dict[str, tuple[int, ...]] = {}
    for key in sorted(split):
        out[key] = tuple(range(workers))
        loads = [x + weights[key] / workers for x in loads]
    for key in sorted((k for k in weights if k not in split), key=lambda k: (-weights[k], k)):
        w = min(range(workers), key=lambda i: (loads[i], i))
        out[key] = (w,)
        loads[w] += weights[key]
    return out, max(loads)
