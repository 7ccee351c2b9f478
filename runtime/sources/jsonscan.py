"""One pass over a block of JSON lines for a flat schema: where each declared field's value is.

Polars' NDJSON reader builds full columns and then needs block-wide checks to agree with
`json.loads` (ndjson.py); for a stream whose fields are all top-level keys this Numba
kernel does both at once. It walks each line with the JSON grammar and records, per
declared field, the kind of its value and the byte span of its text; the values are then
typed column by column in Polars (numbers by Polars' exact string→float cast, strings
gathered into Arrow buffers, times by rfc3339.py).

The kernel only ever *accepts or defers*. A line is accepted when it is a JSON object
that `json.loads` would read the same way: no duplicate declared key, no escape in a key
or in a declared string value, no control character in a string, no NaN/Infinity
literals, nesting only under undeclared keys (validated, up to a modest depth). Anything
else — malformed or merely unusual — is marked, and the caller sends exactly those lines
through the per-line path, which gives the reasons. So the kernel never has to be right
about an error message, only about what it accepts.

The block must be valid UTF-8 (checked by the caller): then every string span between
ASCII quotes is valid UTF-8 as well.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from cepdsl.kernels.borrow import borrow
from runtime.sources import floatparse, rfc3339

# Value kinds, per field and row. SLOW_NUMBER: a number whose value the kernel left to an
# exact cast of its text (more than 19 digits, or a float Eisel-Lemire could not decide).
# TIME: a string of the common RFC 3339 shape, its µs since the epoch in `num`.
MISSING, NULL, STRING, INT, NUMBER, TRUE, FALSE, OTHER, SLOW_NUMBER, TIME = range(10)
#: What the kernel computes for a declared field (`want`): nothing, numbers as int64 or
#: float64, or numbers as float64 and RFC 3339 strings as µs.
SPAN, AS_INT, AS_FLOAT, AS_TIME = 0, 1, 2, 3
#: Integer literals with more digits than this may leave int64: typed as NUMBER.
_INT_DIGITS = 18
#: Number literals longer than this go the per-line way (Python's float() of a huge int
#: literal raises where a string→float cast would say inf).
_MAX_NUMBER = 300
_MAX_DEPTH = 64

_SP, _TAB, _LF, _CR, _VT, _FF = 32, 9, 10, 13, 11, 12
_QUOTE, _BSLASH, _COLON, _COMMA = 34, 92, 58, 44
_LBRACE, _RBRACE, _LBRACK, _RBRACK = 123, 125, 91, 93


@intrinsic
def _load64(typingctx, arr, idx):  # noqa: ANN001, ANN202, ARG001
    """Eight bytes of a uint8 array from byte `idx` as a little-endian uint64 (unaligned load;
    the caller keeps idx + 8 within the array)."""
    sig = types.uint64(arr, idx)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202, ARG001
        ary = context.make_array(signature.args[0])(context, builder, value=args[0])
        ptr = builder.gep(ary.data, [args[1]])
        word = builder.bitcast(ptr, ir.IntType(64).as_pointer())
        load = builder.load(word)
        load.align = 1
        return load

    return sig, codegen


_ONES = np.uint64(0x0101010101010101)
_HIGHS = np.uint64(0x8080808080808080)


@nb.njit(cache=True, nogil=True, inline="always")
def _has_special(w: np.uint64) -> bool:
    """Some byte of `w` is '"', '\\' or below 0x20 (or maybe: false positives are fine)."""
    q = w ^ np.uint64(0x2222222222222222)
    b = w ^ np.uint64(0x5C5C5C5C5C5C5C5C)
    zq = (q - _ONES) & ~q
    zb = (b - _ONES) & ~b
    lo = (w - np.uint64(0x2020202020202020)) & ~w
    return ((zq | zb | lo) & _HIGHS) != np.uint64(0)


@nb.njit(cache=True, nogil=True, inline="always")
def _ws(data: np.ndarray, p: int, end: int) -> int:
    while p < end:
        c = data[p]
        if c != _SP and c != _TAB and c != _CR:
            break
        p += 1
    return p


@nb.njit(cache=True, nogil=True, inline="always")
def _string(data: np.ndarray, p: int, end: int) -> tuple[int, bool]:
    """`p` just past an opening quote → (just past the closing quote or -1, had escapes)."""
    escaped = False
    # Eight bytes at a time while none of them is a quote, a backslash or a control byte
    # (the classic "has zero byte" bit trick; it may flag a clean word, never miss one).
    while p + 8 <= end:
        w = _load64(data, p)
        if _has_special(w):
            break
        p += 8
    while p < end:
        c = data[p]
        if c == _QUOTE:
            return p + 1, escaped
        if c < 32:
            return -1, escaped
        if c == _BSLASH:
            escaped = True
            if p + 1 >= end:
                return -1, escaped
            e = data[p + 1]
            if e == 117:  # \uXXXX
                if p + 6 > end:
                    return -1, escaped
                for k in range(p + 2, p + 6):
                    h = data[k]
                    if not ((48 <= h <= 57) or (65 <= h <= 70) or (97 <= h <= 102)):
                        return -1, escaped
                p += 6
                continue
            if e not in (_QUOTE, _BSLASH, 47, 98, 102, 110, 114, 116):
                return -1, escaped
            p += 2
            continue
        p += 1
    return -1, escaped


@nb.njit(cache=True, nogil=True, inline="always")
def _digit_run(data: np.ndarray, p: int, end: int) -> int:
    """Just past one or more digits at `p`, or -1 when there is none (JSON wants one)."""
    q = p
    while p < end and 48 <= data[p] <= 57:
        p += 1
    return p if p > q else -1


@nb.njit(cache=True, nogil=True, inline="always")
def _number(data: np.ndarray, p: int, end: int) -> tuple[int, int]:
    """A JSON number at `p` → (just past it or -1, INT or NUMBER or OTHER)."""
    start = p
    if p < end and data[p] == 45:  # '-'
        p += 1
    if p >= end:
        return -1, OTHER
    if data[p] == 48:
        p += 1
    elif 49 <= data[p] <= 57:
        while p < end and 48 <= data[p] <= 57:
            p += 1
    else:
        return -1, OTHER
    digits = p - start - (1 if data[start] == 45 else 0)
    kind = INT if digits <= _INT_DIGITS else NUMBER
    if p < end and data[p] == 46:  # '.'
        p = _digit_run(data, p + 1, end)
        if p < 0:
            return -1, OTHER
        kind = NUMBER
    if p < end and (data[p] == 101 or data[p] == 69):  # e E
        p += 1
        if p < end and (data[p] == 43 or data[p] == 45):
            p += 1
        p = _digit_run(data, p, end)
        if p < 0:
            return -1, OTHER
        kind = NUMBER
    if p - start > _MAX_NUMBER:
        kind = OTHER
    return p, kind


@nb.njit(cache=True, nogil=True, inline="always")
def _literal(data: np.ndarray, p: int, end: int) -> tuple[int, int]:
    c = data[p]
    if c == 116 and p + 4 <= end and data[p + 1] == 114 and data[p + 2] == 117 and data[p + 3] == 101:
        return p + 4, TRUE
    if c == 102 and p + 5 <= end and data[p + 1] == 97 and data[p + 2] == 108 and data[p + 3] == 115 and data[p + 4] == 101:
        return p + 5, FALSE
    if c == 110 and p + 4 <= end and data[p + 1] == 117 and data[p + 2] == 108 and data[p + 3] == 108:
        return p + 4, NULL
    return -1, OTHER


@nb.njit(cache=True, nogil=True, inline="always")
def _scalar(data: np.ndarray, p: int, end: int) -> tuple[int, int]:
    """A non-container value at `p` → (just past it or -1, kind)."""
    c = data[p]
    if c == _QUOTE:
        q, escaped = _string(data, p + 1, end)
        return q, (OTHER if escaped else STRING)
    if c == 45 or (48 <= c <= 57):
        return _number(data, p, end)
    return _literal(data, p, end)


@nb.njit(cache=True, nogil=True)
def _container(data: np.ndarray, p: int, end: int) -> int:
    """A whole object or array at `p` (validated, not recorded) → just past it, or -1."""
    stack = np.empty(_MAX_DEPTH, dtype=np.uint8)
    depth = 0
    expect_value = True  # else: expect ',' or a closer
    while True:
        p = _ws(data, p, end)
        if p >= end:
            return -1
        c = data[p]
        if expect_value:
            if c == _LBRACE or c == _LBRACK:
                if depth == _MAX_DEPTH:
                    return -1
                stack[depth] = c
                depth += 1
                p = _ws(data, p + 1, end)
                if p >= end:
                    return -1
                closer = _RBRACE if c == _LBRACE else _RBRACK
                if data[p] == closer:
                    depth -= 1
                    p += 1
                    if depth == 0:
                        return p
                    expect_value = False
                    continue
                if c == _LBRACE:
                    p = _key(data, p, end)
                    if p < 0:
                        return -1
                continue
            p, kind = _scalar(data, p, end)
            if p < 0:
                return -1
            expect_value = False
            continue
        top = stack[depth - 1]
        if c == _COMMA:
            p += 1
            expect_value = True
            if top == _LBRACE:
                p = _key(data, _ws(data, p, end), end)
                if p < 0:
                    return -1
            continue
        if (top == _LBRACE and c == _RBRACE) or (top == _LBRACK and c == _RBRACK):
            depth -= 1
            p += 1
            if depth == 0:
                return p
            continue
        return -1


@nb.njit(cache=True, nogil=True)
def _key(data: np.ndarray, p: int, end: int) -> int:
    """An object key and its colon at `p` → just past the colon (and spaces), or -1."""
    if p >= end or data[p] != _QUOTE:
        return -1
    p, _ = _string(data, p + 1, end)
    if p < 0:
        return -1
    p = _ws(data, p, end)
    if p >= end or data[p] != _COLON:
        return -1
    return p + 1


@nb.njit(cache=True, nogil=True)
def _field_of(data: np.ndarray, a: int, b: int, key_data: np.ndarray, key_off: np.ndarray) -> int:
    n = b - a
    for j in range(key_off.shape[0] - 1):
        ka, kb = key_off[j], key_off[j + 1]
        if kb - ka != n:
            continue
        same = True
        for k in range(n):
            if data[a + k] != key_data[ka + k]:
                same = False
                break
        if same:
            return j
    return -1


@nb.njit(cache=True, nogil=True, inline="always")
def _line(data, p, end, key_data, key_off, accept, want, row, kind, start, stop, num) -> int:  # noqa: ANN001, PLR0911, PLR0913
    """Record the declared fields of the object at `p`; → where its line ends (at the
    newline or `end`), or -1 to defer the line. Nothing here steps over a newline: strings
    refuse control characters and whitespace is only space, tab and CR."""
    p = _ws(data, p, end)
    if p >= end or data[p] != _LBRACE:
        return -1
    p = _ws(data, p + 1, end)
    if p < end and data[p] == _RBRACE:
        return _eol(data, p + 1, end)
    guess = 0  # fields usually come in the same order on every line: try the next one first
    while True:
        if p >= end or data[p] != _QUOTE:
            return -1
        j = -1
        if guess < key_off.shape[0] - 1:
            ka, kb = key_off[guess], key_off[guess + 1]
            q = p + 1 + kb - ka
            if q < end and data[q] == _QUOTE:
                j = guess
                for k in range(kb - ka):
                    if data[p + 1 + k] != key_data[ka + k]:
                        j = -1
                        break
                q += 1
        if j < 0:
            q, escaped = _string(data, p + 1, end)
            if q < 0 or escaped:  # an escaped key might spell a declared name
                return -1
            j = _field_of(data, p + 1, q - 1, key_data, key_off)
        if j >= 0:
            guess = j + 1
        p = _ws(data, q, end)
        if p >= end or data[p] != _COLON:
            return -1
        p = _ws(data, p + 1, end)
        if p >= end:
            return -1
        c = data[p]
        if c == _LBRACE or c == _LBRACK:
            if j >= 0:
                return -1
            p = _container(data, p, end)
            if p < 0:
                return -1
        else:
            q, k = _scalar(data, p, end)
            if q < 0:
                return -1
            if j >= 0:
                if kind[j, row] != MISSING:  # duplicate: json.loads keeps the last
                    return -1
                if (k == INT or k == NUMBER) and want[j] != SPAN:
                    k = _value(data, p, q, k, want[j], num, j, row)
                elif k == STRING and want[j] == AS_TIME:
                    us, ok = rfc3339.parse_span(data, p + 1, q - 1)
                    if ok:
                        k = TIME
                        num[j, row] = us
                if not accept[j, k]:
                    return -1
                kind[j, row] = k
                if k == STRING:
                    start[j, row], stop[j, row] = p + 1, q - 1
                else:
                    start[j, row], stop[j, row] = p, q
            p = q
        p = _ws(data, p, end)
        if p >= end:
            return -1
        if data[p] == _COMMA:
            p = _ws(data, p + 1, end)
            continue
        if data[p] == _RBRACE:
            return _eol(data, p + 1, end)
        return -1


@nb.njit(cache=True, nogil=True, inline="always")
def _value(data, a, b, k, want, num, j, row) -> int:  # noqa: ANN001
    """The number on [a, b) into `num[j, row]`: an int64, or a float64's bits; → its kind."""
    neg = data[a] == 45
    p = a + 1 if neg else a
    man = np.uint64(0)
    digits = 0
    exp10 = 0
    while p < b and 48 <= data[p] <= 57:
        d = data[p] - 48
        if digits or d:
            if digits == 19:
                return k if want == AS_INT else SLOW_NUMBER
            man = man * np.uint64(10) + np.uint64(d)
            digits += 1
        p += 1
    if want == AS_INT:
        if k != INT:
            return k  # refused for an int field unless the per-line path says otherwise
        v = np.int64(man)  # ≤ 18 digits: fits
        num[j, row] = -v if neg else v
        return k
    if p < b and data[p] == 46:
        p += 1
        while p < b and 48 <= data[p] <= 57:
            d = data[p] - 48
            if digits or d:
                if digits == 19:
                    return SLOW_NUMBER
                man = man * np.uint64(10) + np.uint64(d)
                digits += 1
            exp10 -= 1
            p += 1
    if p < b:  # e or E
        p += 1
        eneg = data[p] == 45
        if data[p] == 45 or data[p] == 43:
            p += 1
        e = 0
        while p < b:
            if e < 100_000:
                e = e * 10 + (data[p] - 48)
            p += 1
        exp10 += -e if eneg else e
    # The integer -0 is 0 to json.loads (→ 0.0); only "-0.0" and the like are -0.0.
    bits, ok = floatparse.eisel_lemire(man, exp10, neg and (k != INT or man != np.uint64(0)))
    if not ok:
        return SLOW_NUMBER
    num[j, row] = np.int64(bits)
    return k


@nb.njit(cache=True, nogil=True, inline="always")
def _eol(data: np.ndarray, p: int, end: int) -> int:
    """After a line's object: only whitespace may follow up to the newline."""
    p = _ws(data, p, end)
    if p < end and data[p] != _LF:
        return -1
    return p


@nb.njit(cache=True, nogil=True)
def scan(data, key_data, key_off, accept, want, kind, start, stop, num, deferred) -> int:  # noqa: ANN001, PLR0913
    """Walk every non-blank line of `data` (blank: only spaces, \\t, \\r, \\v, \\f, as
    `bytes.strip` sees it). Row r gets `kind[:, r]`, spans, numbers (`want`) and
    `deferred[r]`; a line holding a kind its field does not `accept` is deferred. Returns
    the row count. Arrays must have room for one row per newline plus one."""
    data, key_data, key_off, accept, want = borrow(data), borrow(key_data), borrow(key_off), borrow(accept), borrow(want)
    kind, start, stop, num, deferred = borrow(kind), borrow(start), borrow(stop), borrow(num), borrow(deferred)
    n = data.shape[0]
    nf = kind.shape[0]
    row = 0
    a = 0
    while a < n:
        p = a
        while p < n:
            c = data[p]
            if c != _SP and c != _TAB and c != _CR and c != _VT and c != _FF:
                break
            p += 1
        if p == n or data[p] == _LF:  # blank
            a = p + 1
            continue
        for j in range(nf):
            kind[j, row] = MISSING
        e = _line(data, a, n, key_data, key_off, accept, want, row, kind, start, stop, num)  # \v, \f are not JSON spaces
        if e < 0:
            deferred[row] = True
            for j in range(nf):
                kind[j, row] = MISSING
            e = p
            while e < n and data[e] != _LF:
                e += 1
        else:
            deferred[row] = False
        row += 1
        a = e + 1
    return row


@nb.njit(cache=True, nogil=True)
def gather(data: np.ndarray, start: np.ndarray, stop: np.ndarray, take: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The spans of the rows in `take` copied end to end: (Arrow large offsets, bytes); rows
    not taken are empty."""
    n = start.shape[0]
    offsets = np.empty(n + 1, dtype=np.int64)
    total = 0
    for i in range(n):
        offsets[i] = total
        if take[i]:
            total += stop[i] - start[i]
    offsets[n] = total
    out = np.empty(total, dtype=np.uint8)
    for i in range(n):
        if take[i]:
            o = offsets[i]
            for k in range(stop[i] - start[i]):
                out[o + k] = data[start[i] + k]
    return offsets, out
