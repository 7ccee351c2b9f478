"""`prefetch(array, index)`: ask the CPU to start loading `array[index]` now.

The per-group kernels touch state at random slots (hash tables, baselines of
100k groups: megabytes, L3 at best).  Iterations are independent, so asking for
the slot of row i + D while working on row i overlaps those cache misses instead
of paying them one after the other.  It is only a hint: no effect on results.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: How many rows ahead the kernels prefetch (enough to cover a memory latency).
AHEAD = 16


@intrinsic
def prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:  # noqa: ARG001 - numba's intrinsic signature
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None
    sig = types.void(arr, idx)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        # Flat address (no bounds check: a prefetch of a bad address is harmless).
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False, boundscheck=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8")
        # read, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen
