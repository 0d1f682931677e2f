"""Byte-level helpers for Numba kernels: read and write 16/32-bit integers in either byte order.

All values are returned as ``int64`` so kernels never mix signed and unsigned integers (Numba
turns ``uint64 op int64`` into a float).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

# ``np.int64`` typed as Any: kernels call it to widen bytes, which mypy would type as numpy
# scalars rather than ints.
i64: Any = np.int64


@njit(cache=True, nogil=True, inline="always")
def rd_u16(buf: NDArray[np.uint8], p: int, swap: bool) -> int:
    """The unsigned 16-bit integer at ``buf[p]``: little-endian, big-endian if ``swap``."""
    a: int = i64(buf[p])
    b: int = i64(buf[p + 1])
    if swap:
        return (a << 8) | b
    return a | (b << 8)


@njit(cache=True, nogil=True, inline="always")
def rd_u32(buf: NDArray[np.uint8], p: int, swap: bool) -> int:
    """The unsigned 32-bit integer at ``buf[p]``: little-endian, big-endian if ``swap``."""
    a: int = i64(buf[p])
    b: int = i64(buf[p + 1])
    c: int = i64(buf[p + 2])
    d: int = i64(buf[p + 3])
    if swap:
        return (a << 24) | (b << 16) | (c << 8) | d
    return a | (b << 8) | (c << 16) | (d << 24)


@njit(cache=True, nogil=True, inline="always")
def wr_le32(buf: NDArray[np.uint8], p: int, v: int) -> None:
    """Write ``v`` as a little-endian 32-bit integer at ``buf[p]``."""
    buf[p] = v & 0xFF
    buf[p + 1] = (v >> 8) & 0xFF
    buf[p + 2] = (v >> 16) & 0xFF
    buf[p + 3] = (v >> 24) & 0xFF


@njit(cache=True, nogil=True, inline="always")
def wr_be16(buf: NDArray[np.uint8], p: int, v: int) -> None:
    """Write ``v`` as a big-endian (network order) 16-bit integer at ``buf[p]``."""
    buf[p] = (v >> 8) & 0xFF
    buf[p + 1] = v & 0xFF


@njit(cache=True, nogil=True, inline="always")
def wr_be32(buf: NDArray[np.uint8], p: int, v: int) -> None:
    """Write ``v`` as a big-endian (network order) 32-bit integer at ``buf[p]``."""
    buf[p] = (v >> 24) & 0xFF
    buf[p + 1] = (v >> 16) & 0xFF
    buf[p + 2] = (v >> 8) & 0xFF
    buf[p + 3] = v & 0xFF
