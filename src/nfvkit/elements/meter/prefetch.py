"""Prefetched flow-table lookups: ``prefetch_row(array, index)`` and :func:`hash_pass`.

Kernels that look many packets up in a large table (hundreds of thousands of flows, tens of
megabytes) stall on one cache miss per packet. Hashing the whole batch first and prefetching
the slot of packet ``i + PREFETCH_AHEAD`` while packet ``i`` is processed overlaps those misses
(as VPP and DPDK graph nodes do). ``prefetch_row`` is :data:`nfvkit.packet.jit.prefetch` (LLVM's
``llvm.prefetch`` of a 1-D array's element). It has no effect on results. :func:`hash_pass`
hashes a batch's flow keys (directional or canonical) and prefetches the first slots.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from nfvkit.packet.flow import hash_words
from nfvkit.packet.jit import prefetch
from nfvkit.packet.parse import kernel
from nfvkit.vnf.state import flow_key
from nfvkit.vnf.state.kernels import Table

PREFETCH_AHEAD = 8
"""How many packets ahead a kernel prefetches (measured flat between 4 and 16)."""

prefetch_row: Any = prefetch
"""``prefetch_row(arr, index)`` inside a kernel: :data:`nfvkit.packet.jit.prefetch`."""


@kernel
def _upper_src(src: NDArray[np.uint32], dst: NDArray[np.uint32], i: int, sp: int, dp: int) -> int:
    """1 when the packet's source is the upper endpoint of its flow, else 0."""
    for k in range(4):
        if src[i, k] != dst[i, k]:
            return 0 if src[i, k] < dst[i, k] else 1
    return 0 if sp <= dp else 1


@kernel
def hash_pass(
    tbl: Table,
    key: NDArray[np.uint32],
    seed: int,
    biflow: int,
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    sport: NDArray[np.uint16],
    dport: NDArray[np.uint16],
    proto: NDArray[np.uint8],
    hashes: NDArray[np.int64],
    sides: NDArray[np.int64],
) -> None:
    """Fill ``hashes[i]`` with the hash of packet ``i``'s flow key -- the canonical key with
    ``biflow``, where ``sides[i]`` = 1 says the packet came from the upper endpoint (key
    reversed) -- and prefetch the slots of the first :data:`PREFETCH_AHEAD` packets."""
    rows = tbl[0]
    mask = int(rows.shape[0]) - 1
    for i in range(src.shape[0]):
        sp, dp, pr = int(sport[i]), int(dport[i]), int(proto[i])
        side = _upper_src(src, dst, i, sp, dp) if biflow else 0
        if side:
            flow_key(key, dst, src, i, dp, sp, pr)
        else:
            flow_key(key, src, dst, i, sp, dp, pr)
        h = int(hash_words(key, seed))
        hashes[i] = h
        sides[i] = side
        if i < PREFETCH_AHEAD:
            prefetch_row(rows, h & mask)
