"""`borrow(array)`: the same array without its owner, for the hot loops of a kernel.

Numba increfs and decrefs every array it passes to a function it calls, inlined or not,
and its pruning pass does not remove those pairs inside loops. Each is an atomic update of
the array's meminfo: on per-byte and per-row paths (jsonscan.py found it with perf) they
were over half the kernel's time. A borrowed array has a null meminfo, and Numba's incref
and decref of a null meminfo do nothing. Only for arrays the caller keeps alive for the
whole call and that the kernel neither returns nor stores.
"""

from __future__ import annotations

from typing import Any

from numba import types
from numba.extending import intrinsic


@intrinsic
def borrow(typingctx: Any, arr: Any) -> Any:  # noqa: ARG001 - numba's intrinsic signature
    if not isinstance(arr, types.Array):
        return None
    sig = arr(arr)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        src = context.make_array(signature.args[0])(context, builder, value=args[0])
        dst = context.make_array(signature.return_type)(context, builder)
        context.populate_array(
            dst, data=src.data, shape=src.shape, strides=src.strides, itemsize=src.itemsize, meminfo=None, parent=None
        )
        return dst._getvalue()

    return sig, codegen
