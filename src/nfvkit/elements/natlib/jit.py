"""Compilation helpers of ``nat``'s kernels: :data:`inline_kernel` and ``prefetch``.

:data:`inline_kernel` is :func:`~nfvkit.packet.parse.kernel` (no reference counting) with
Numba's ``inline="always"``: the per-packet steps take the tables, pools and batch columns as
tuples of dozens of arrays, and a real call would copy them all onto the stack; inlined, the
batch kernel compiles into one function (twice as fast, measured).

``prefetch(array, index)``: the mapping tables of a busy NAT are tens of megabytes, so a
lookup per packet is a cache miss per packet. The kernels hash a whole batch first and
prefetch the slots the batch will need (as VPP's and DPDK's graph nodes do), overlapping the
misses. ``prefetch`` emits LLVM's ``llvm.prefetch`` (write intent, keep in cache) for the
first and the last byte of element ``index`` of a 1-D array, so a record spanning two cache
lines arrives whole. It never faults and has no effect on results.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from llvmlite import binding, ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def inline_kernel(fn: _Fn) -> _Fn:
    """Decorator: an allocation-free kernel that Numba inlines into its callers."""
    return cast(_Fn, njit(cache=True, nogil=True, _nrt=False, inline="always")(fn))  # type: ignore[call-overload]


_NAME = "llvm.prefetch.p0" if binding.llvm_version_info[0] >= 15 else "llvm.prefetch.p0i8"


@intrinsic
def _prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:
    """Prefetch element ``idx`` of the 1-D array ``arr`` (no bounds check)."""
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
        builder.call(fn, [first, *hints])
        builder.call(fn, [last, *hints])
        return context.get_dummy_value()

    return sig, codegen


prefetch: Any = _prefetch
"""``prefetch(arr, index)`` inside a kernel (typed ``Any``: a Numba intrinsic)."""
