"""External port allocation for ``nat``: one bitmap of used ports per (pool address, protocol).

A pool covers ``port_range`` ``[lo, hi]``; bit ``k`` of the pool's ``int64`` words stands for
port ``lo + k``. Allocation is next-fit: it scans from the port after the one allocated last,
so a released port is handed out again only after the cursor has come round the whole range
(the longest reuse delay a bitmap gives). With ``parity`` it looks for a free port of the
inside port's parity first (RFC 4787 REQ-4) and falls back to the other parity. Free ports
are counted per parity, so exhaustion is an O(1) test.

``base`` holds the bits that are never allocatable: past the end of the range, and ports that
static entries reserve. Rebuilding (after an import) starts from ``base``.

Protocols: TCP, UDP and ICMP (query identifiers) have separate pools, so one external address
offers ``hi - lo + 1`` of each. Pool index = ``address_index * 3 + class`` (see
:func:`proto_class`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

from nfvkit.packet.parse import kernel

CLASSES = ("tcp", "udp", "icmp")
_EVEN = 0x5555555555555555  # bits 0, 2, 4...: even offsets from lo
_ALL = -1

Pools = tuple[
    NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]
]
"""(used, free, cursor, base, params) as kernels take them; params = lo, size, words, parity."""


@kernel
def proto_class(proto: int) -> int:
    """0 TCP, 1 UDP, 2 ICMP."""
    if proto == 6:
        return 0
    if proto == 17:
        return 1
    return 2


@kernel
def _lowest_bit(x: int) -> int:
    """Index of the lowest set bit of a non-zero int64."""
    x = x & -x
    n = 0
    if (x & 0xFFFFFFFF) == 0:
        n += 32
        x >>= 32
    if (x & 0xFFFF) == 0:
        n += 16
        x >>= 16
    if (x & 0xFF) == 0:
        n += 8
        x >>= 8
    if (x & 0xF) == 0:
        n += 4
        x >>= 4
    if (x & 0x3) == 0:
        n += 2
        x >>= 2
    if (x & 0x1) == 0:
        n += 1
    return n


@njit(cache=True, nogil=True)
def alloc_port(pools: Any, pool: int, parity: int) -> int:
    """A free port of ``pool`` (marked used), of ``parity`` when the pools keep parity and
    one is free; -1 when the pool is exhausted."""
    used, free, cursor, params = pools[0], pools[1], pools[2], pools[4]
    lo, nwords = params[0], params[2]
    if params[3]:
        q = (parity ^ lo) & 1
        if free[pool, q] == 0:
            q ^= 1
        if free[pool, q] == 0:
            return -1
        mask = _EVEN if q == 0 else ~np.int64(_EVEN)
    else:
        q = -1
        if free[pool, 0] + free[pool, 1] == 0:
            return -1
        mask = _ALL
    start = cursor[pool] + 1
    if start >= params[1]:
        start = 0
    w = start >> 6
    first = ~((np.int64(1) << (start & 63)) - 1)  # the first word from ``start`` on
    for k in range(nwords + 1):  # the first word is visited again, whole, at the end
        avail = ~used[pool, w] & mask & (first if k == 0 else _ALL)
        if avail != 0:
            bit = _lowest_bit(avail)
            used[pool, w] |= np.int64(1) << bit
            idx = w * 64 + bit
            free[pool, idx & 1] -= 1
            cursor[pool] = idx
            return int(lo + idx)
        w += 1
        if w == nwords:
            w = 0
    return -1


@njit(cache=True, nogil=True)
def release_port(pools: Any, pool: int, port: int) -> bool:
    """Return ``port`` to ``pool``; False (nothing done) if it was not allocated."""
    used, free, base, params = pools[0], pools[1], pools[3], pools[4]
    idx = port - params[0]
    if pool < 0 or idx < 0 or idx >= params[1]:
        return False
    w, bit = idx >> 6, np.int64(1) << (idx & 63)
    if (used[pool, w] & bit) == 0 or (base[pool, w] & bit) != 0:
        return False
    used[pool, w] &= ~bit
    free[pool, idx & 1] += 1
    return True


class PortPools:
    """The bitmaps of every pool (see the module docstring)."""

    def __init__(self, addresses: int, lo: int, hi: int, parity: bool) -> None:
        self.addresses = addresses
        self.lo, self.hi = lo, hi
        self.size = hi - lo + 1
        self.words = (self.size + 63) // 64
        npools = addresses * len(CLASSES)
        self.base = np.zeros((npools, self.words), dtype=np.int64)
        tail = self.size % 64
        if tail:
            self.base[:, -1] = np.int64(-1) << tail  # bits past hi
        self.used = self.base.copy()
        self.free = np.zeros((npools, 2), dtype=np.int64)
        self.cursor = np.full(npools, -1, dtype=np.int64)  # the last port allocated (index)
        self.params = np.array([lo, self.size, self.words, int(parity)], dtype=np.int64)
        self.recount()

    @property
    def arrays(self) -> Pools:
        return (self.used, self.free, self.cursor, self.base, self.params)

    def in_range(self, port: int) -> bool:
        return self.lo <= port <= self.hi

    def reserve(self, pool: int, port: int) -> None:
        """Take ``port`` out of ``pool`` for good (a static entry's external port)."""
        idx = port - self.lo
        self.base[pool, idx >> 6] |= np.int64(1) << (idx & 63)
        self.used[pool, idx >> 6] |= np.int64(1) << (idx & 63)
        self.recount()

    def rebuild(self, pools: NDArray[np.int64], ports: NDArray[np.int64]) -> None:
        """Start again from ``base`` with exactly ``ports`` (in ``pools``) in use (the
        allocation cursors stay where they are)."""
        self.used[:] = self.base
        idx = ports - self.lo
        ok = (pools >= 0) & (idx >= 0) & (idx < self.size)
        bits = np.left_shift(np.int64(1), (idx[ok] & 63).astype(np.int64))
        np.bitwise_or.at(self.used, (pools[ok], idx[ok] >> 6), bits)
        self.recount()

    def recount(self) -> None:
        """Recompute the free counts per pool and parity from the bitmaps."""
        free = ~self.used.view(np.uint64)
        even = np.uint64(_EVEN)
        self.free[:, 0] = np.bitwise_count(free & even).sum(axis=1)
        self.free[:, 1] = np.bitwise_count(free & ~even).sum(axis=1)

    def free_ports(self) -> NDArray[np.int64]:
        """Free ports per pool, shape ``(addresses, 3)`` (TCP, UDP, ICMP)."""
        out: NDArray[np.int64] = self.free.sum(axis=1).reshape(self.addresses, len(CLASSES))
        return out

    def in_use(self) -> int:
        """Ports allocated dynamically, over every pool."""
        return int(self.size * self.free.shape[0] - self.free.sum()) - self._reserved()

    def _reserved(self) -> int:
        return int(np.bitwise_count(self.base.view(np.uint64)).sum()) - (
            self.words * 64 - self.size
        ) * int(self.free.shape[0])
