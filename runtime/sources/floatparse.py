"""Decimal → float64, correctly rounded, inside Numba kernels (the Eisel-Lemire algorithm).

JSON numbers must become exactly the float `json.loads` gives (Python's `float()`, which
rounds correctly). Casting the text in Polars does that too, but costs a copy of every
number's text and a second pass; jsonscan.py already walks the digits, so it computes the
value on the way. Eisel-Lemire (as in Go's strconv, Rust's core and fast_float) gives the
correctly rounded result from a 19-digit mantissa and a power of ten with one or two
64×64-bit products, or says it cannot decide (halfway ambiguities, subnormals, overflow):
those few values are left to the caller's exact path. Tests compare it with `float()` on
generated decimals.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

MIN_EXP10, MAX_EXP10 = -348, 347
_MASK64 = (1 << 64) - 1


def _power_table() -> np.ndarray:
    """128-bit mantissas of 10^e, top bit set, rounded down: rows of (low, high) words."""
    rows = []
    for e in range(MIN_EXP10, MAX_EXP10 + 1):
        if e >= 0:
            v = 10**e
            bl = v.bit_length()
            m = v << (128 - bl) if bl <= 128 else v >> (bl - 128)
        else:
            d = 10**-e
            s = 128 + d.bit_length() + 1  # enough quotient bits to keep 128 after normalising
            q = (1 << s) // d
            m = q >> (q.bit_length() - 128)
        rows.append((m & _MASK64, m >> 64))
    return np.array(rows, dtype=np.uint64)


_POW10 = _power_table()
_EXACT10 = np.array([10.0**e for e in range(23)])  # exactly representable


@intrinsic
def _bits(typingctx, v):  # noqa: ANN001, ANN202, ARG001
    """A float64's bits as a uint64 (a bitcast, no memory round trip)."""
    sig = types.uint64(types.float64)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202, ARG001
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _mul64(typingctx, a, b):  # noqa: ANN001, ANN202, ARG001
    """The full 128-bit product of two uint64s as (high, low): one machine multiply."""
    sig = types.UniTuple(types.uint64, 2)(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202, ARG001
        i128 = ir.IntType(128)
        p = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        hi = builder.trunc(builder.lshr(p, ir.Constant(i128, 64)), ir.IntType(64))
        lo = builder.trunc(p, ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, [hi, lo])

    return sig, codegen


@intrinsic
def _clz64(typingctx, x):  # noqa: ANN001, ANN202, ARG001
    """Leading zero bits of a non-zero uint64 (LLVM's ctlz)."""
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202, ARG001
        i64 = ir.IntType(64)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [i64, ir.IntType(1)]), "llvm.ctlz.i64")
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 1)])

    return sig, codegen


@nb.njit(cache=True, nogil=True)
def eisel_lemire(man: np.uint64, exp10: int, neg: bool) -> tuple[np.uint64, bool]:
    """The float64 bits of man × 10^exp10 (negated if `neg`), correctly rounded, or
    (0, False) when undecided. Bits, not a float: kernels store them through a uint64 view."""
    zero = np.uint64(0)
    one = np.uint64(1)
    sign = np.uint64(0x8000000000000000) if neg else zero
    if man == zero:
        return sign, True
    if man <= np.uint64(1 << 53) and -22 <= exp10 <= 22:
        # Clinger's fast path: both factors exact as doubles, so one IEEE operation rounds
        # correctly (Eisel-Lemire alone cannot settle some of these, e.g. 25e-1).
        v = float(man) * _EXACT10[exp10] if exp10 >= 0 else float(man) / _EXACT10[-exp10]
        return _bits(-v if neg else v), True
    if exp10 < MIN_EXP10 or exp10 > MAX_EXP10:
        return zero, False
    clz = _clz64(man)
    man = man << np.uint64(clz)
    ret_exp2 = ((217706 * exp10) >> 16) + 64 + 1023 - clz  # signed here; checked below
    row = exp10 - MIN_EXP10
    x_hi, x_lo = _mul64(man, _POW10[row, 1])
    low9 = np.uint64(0x1FF)
    if (x_hi & low9) == low9 and x_lo + man < man:
        y_hi, y_lo = _mul64(man, _POW10[row, 0])
        merged_hi, merged_lo = x_hi, x_lo + y_hi
        if merged_lo < x_lo:
            merged_hi += one
        if (merged_hi & low9) == low9 and merged_lo + one == zero and y_lo + man < man:
            return zero, False
        x_hi, x_lo = merged_hi, merged_lo
    msb = x_hi >> np.uint64(63)
    mantissa = x_hi >> (msb + np.uint64(9))
    ret_exp2 -= 1 - int(msb)
    if x_lo == zero and (x_hi & low9) == zero and (mantissa & np.uint64(3)) == one:
        return zero, False  # exactly halfway after truncation: cannot tell which way to round
    mantissa += mantissa & one
    mantissa >>= one
    if (mantissa >> np.uint64(53)) > zero:
        mantissa >>= one
        ret_exp2 += 1
    if ret_exp2 <= 0 or ret_exp2 >= 0x7FF:
        return zero, False  # subnormal or infinite: the exact path decides
    bits = (np.uint64(ret_exp2) << np.uint64(52)) | (mantissa & np.uint64(0x000FFFFFFFFFFFFF))
    return bits | sign, True


@nb.njit(cache=True, nogil=True)
def parse_many(mans: np.ndarray, exps: np.ndarray, negs: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`eisel_lemire` over arrays (for tests and bulk use): float64s into `out`; → ok flags."""
    bits = out.view(np.uint64)
    ok = np.empty(mans.shape[0], dtype=np.bool_)
    for i in range(mans.shape[0]):
        bits[i], ok[i] = eisel_lemire(mans[i], exps[i], negs[i])
    return ok
