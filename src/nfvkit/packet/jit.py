"""Compilation helpers for data-plane kernels: :func:`inlined` and ``prefetch``.

:func:`inlined` is :func:`~nfvkit.packet.parse.kernel` (no reference counting) with Numba's
``inline="always"``: per-packet steps that take tables and batch columns as tuples of many
arrays cost about 150 cycles per packet as real calls (measured in the ``lb`` kernels);
inlined, the batch kernel compiles into one function.

``prefetch(array, index)``: a software prefetch (LLVM ``llvm.prefetch``, write intent, keep
in all cache levels) of one element of a 1-D array -- its first and its last byte, so both
cache lines of an element that straddles two are fetched -- for Numba kernels.

A plain load that misses the cache holds its place in the CPU's reorder buffer until the data
arrive, so a loop of loads keeps only a few misses in flight; a prefetch retires at once, so a
first pass can request a whole batch's table lines before the second pass uses them. At 100k
flows a connection table is many megabytes, and this hides most of its latency. A record that
straddles two cache lines has both prefetched (state table rows are 64-byte aligned, so theirs
do not). It never faults and has no effect on results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from llvmlite import binding, ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def inlined(fn: _Fn) -> _Fn:
    """An allocation-free kernel that Numba inlines into its callers."""
    jit = njit(cache=True, nogil=True, _nrt=False, inline="always")  # type: ignore[call-overload]
    return cast(_Fn, jit(fn))


_NAME = "llvm.prefetch.p0" if binding.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"


@intrinsic
def _prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:
    """Prefetch ``arr[idx]`` (1-D array, integer index; not bounds-checked)."""
    if not isinstance(arr, types.Array) or arr.ndim != 1 or not isinstance(idx, types.Integer):
        return None
    sig = types.void(arr, idx)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(  # type: ignore[no-untyped-call]
            context, builder, aryty, ary, [args[1]], wraparound=False
        )
        first = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        size = context.get_abi_sizeof(context.get_data_type(aryty.dtype))
        last = builder.gep(first, [ir.Constant(ir.IntType(64), size - 1)])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [first.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _NAME)  # type: ignore[no-untyped-call]
        hints = [ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)]
        for p in (first, last):
            builder.call(fn, [p, *hints])
        return context.get_dummy_value()

    return sig, codegen


prefetch: Any = _prefetch
"""``prefetch(arr, index)`` inside a kernel (typed ``Any``: a Numba intrinsic)."""
