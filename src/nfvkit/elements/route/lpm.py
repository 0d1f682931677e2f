"""Longest-prefix match: multibit tries with leaf pushing, built with NumPy and Numba.

A trie is a root table of ``2**strides[0]`` entries and a pool of 256-entry nodes (every
stride after the first is 8 bits). An entry is a ``uint32``:

* ``0`` -- no route covers these addresses;
* bit 31 set -- the low 31 bits index a child node, read with the next 8 address bits;
* otherwise -- route index + 1.

IPv4 uses strides (24, 8): DIR-24-8 (Gupta et al., "Routing lookups in hardware at memory
access speeds", 1998; DPDK's ``rte_lpm``). A prefix of up to /24 fills a range of the 2^24
root entries, a longer one gets a node (DPDK's "tbl8 group") for its /24, so any lookup is one
read, or two for addresses under a prefix longer than /24. The root is 64 MiB of virtual
memory allocated zeroed: only the pages that routes fill are committed (a default route
commits all of it; transparent huge pages keep the TLB misses of lookups down). DIR-16-8-8
would save that memory at the price of a second dependent read for every /17../24 route,
which are most of a real table.

IPv6 uses strides (16, 8, 8, ..., 8) (16 + 14 x 8 = 128 bits): one read for prefixes up to
/16, one more per started byte after that.

Building inserts the routes in order of increasing length, so a prefix only ever overwrites
entries that shorter prefixes set (never a child pointer), and a node created under an entry
starts as 256 copies of it ("leaf pushing"): a lookup stops at the first non-child entry.
The number of nodes is counted with NumPy first (distinct ``(depth, prefix bits)`` pairs of
the routes longer than each stride boundary) so the build kernel allocates nothing.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nfvkit.packet.parse import i64, kernel

CHILD = 0x80000000
INDEX = 0x7FFFFFFF
NODE_BITS = 8
V4_STRIDES = (24, 8)
V6_STRIDES = (16,) + (8,) * 14

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@kernel
def _bits(keys: NDArray[np.uint32], r: int, pos: int, width: int) -> int:
    """Bits ``[pos, pos + width)`` of the 128-bit key ``keys[r]`` (four big-endian words)."""
    w = pos >> 5
    win = i64(keys[r, w]) << 32
    if w + 1 < 4:
        win |= i64(keys[r, w + 1])
    return (win >> (64 - (pos & 31) - width)) & ((1 << width) - 1)


@kernel
def _build(
    keys: NDArray[np.uint32],
    lens: NDArray[np.int32],
    ids: NDArray[np.int32],
    strides: NDArray[np.int64],
    root: NDArray[np.uint32],
    nodes: NDArray[np.uint32],
) -> int:
    """Insert routes (sorted by increasing length); return the nodes used, -1 if too few."""
    used = 0
    for r in range(keys.shape[0]):
        plen = i64(lens[r])
        value = i64(ids[r]) + 1
        node = -1
        pos = 0
        for level in range(strides.shape[0]):
            s = strides[level]
            idx = _bits(keys, r, pos, s)
            if plen <= pos + s:
                span = 1 << (pos + s - plen)
                base = idx & ~(span - 1)
                for j in range(base, base + span):
                    if node < 0:
                        root[j] = value
                    else:
                        nodes[node, j] = value
                break
            e = i64(root[idx]) if node < 0 else i64(nodes[node, idx])
            if e & CHILD:
                child = e & INDEX
            else:
                if used >= nodes.shape[0]:
                    return -1
                child = used
                used += 1
                for j in range(1 << NODE_BITS):
                    nodes[child, j] = e
                if node < 0:
                    root[idx] = CHILD | child
                else:
                    nodes[node, idx] = CHILD | child
            node = child
            pos += s
    return used


@kernel
def lookup4(root: NDArray[np.uint32], nodes: NDArray[np.uint32], addr: int) -> int:
    """The route index of IPv4 address ``addr`` in a (24, 8) trie; -1 if none."""
    e = i64(root[addr >> 8])
    if e & CHILD:
        e = i64(nodes[e & INDEX, addr & 0xFF])
    return e - 1


@kernel
def lookup6(
    root: NDArray[np.uint32], nodes: NDArray[np.uint32], key: NDArray[np.uint32], i: int
) -> int:
    """The route index of the IPv6 address ``key[i]`` (four words) in a (16, 8...) trie."""
    e = i64(root[i64(key[i, 0]) >> 16])
    pos = 16
    while e & CHILD:
        word = i64(key[i, pos >> 5])
        e = i64(nodes[e & INDEX, (word >> (24 - (pos & 31))) & 0xFF])
        pos += 8
    return e - 1


@kernel
def _lookup_many(
    root: NDArray[np.uint32],
    nodes: NDArray[np.uint32],
    keys: NDArray[np.uint32],
    v6: bool,
    out: NDArray[np.int32],
) -> None:
    for i in range(keys.shape[0]):
        out[i] = lookup6(root, nodes, keys, i) if v6 else lookup4(root, nodes, i64(keys[i, 3]))


def network_keys(prefixes: Sequence[IPNetwork]) -> tuple[NDArray[np.uint32], NDArray[np.int32]]:
    """Left-aligned 128-bit keys (four words; IPv4 in word 0) and lengths of ``prefixes``."""
    n = len(prefixes)
    keys = np.zeros((n, 4), dtype=np.uint32)
    lens = np.zeros(n, dtype=np.int32)
    for i, net in enumerate(prefixes):
        value = int(net.network_address) << (128 - net.max_prefixlen)
        keys[i] = [(value >> s) & 0xFFFFFFFF for s in (96, 64, 32, 0)]
        lens[i] = net.prefixlen
    return keys, lens


def _count_nodes(keys: NDArray[np.uint32], lens: NDArray[np.int32], strides: Sequence[int]) -> int:
    """Distinct ``(boundary, first boundary bits)`` over routes longer than each boundary."""
    k = keys.astype(np.uint64)
    hi, lo = (k[:, 0] << np.uint64(32)) | k[:, 1], (k[:, 2] << np.uint64(32)) | k[:, 3]
    total, boundary = 0, 0
    for s in strides[:-1]:
        boundary += s
        deeper = lens > boundary
        if not deeper.any():
            break
        h, low = hi[deeper], lo[deeper]
        if boundary < 64:
            h = h & np.uint64(((1 << boundary) - 1) << (64 - boundary))
            low = np.zeros_like(low)
        else:
            low = low & np.uint64((((1 << (boundary - 64)) - 1) << (128 - boundary)) & (2**64 - 1))
        total += int(np.unique(np.stack([h, low], axis=1), axis=0).shape[0])
    return total


@dataclass
class Trie:
    """A compiled multibit trie (see the module docstring)."""

    strides: tuple[int, ...]
    root: NDArray[np.uint32]
    nodes: NDArray[np.uint32]
    routes: int
    build_seconds: float

    @property
    def nbytes(self) -> int:
        """Bytes allocated (the root of an IPv4 trie is committed only where routes fill it)."""
        return int(self.root.nbytes + self.nodes.nbytes)

    def lookup(self, keys: NDArray[np.uint32]) -> NDArray[np.int32]:
        """Route index per key (rows of four words as in a batch's ``dst``; -1: no route)."""
        keys = np.ascontiguousarray(keys, dtype=np.uint32).reshape(-1, 4)
        out = np.empty(keys.shape[0], dtype=np.int32)
        _lookup_many(self.root, self.nodes, keys, len(self.strides) > 2, out)
        return out

    def stats(self) -> dict[str, Any]:
        return {
            "routes": self.routes,
            "strides": list(self.strides),
            "nodes": int(self.nodes.shape[0]),
            "bytes": self.nbytes,
            "build_seconds": round(self.build_seconds, 6),
        }


def build_trie(prefixes: Sequence[IPNetwork], ids: Sequence[int], strides: tuple[int, ...]) -> Trie:
    """Compile ``prefixes`` (one family, distinct) into a trie whose leaves hold ``ids``."""
    if any(s != NODE_BITS for s in strides[1:]) or sum(strides) not in (32, 128):
        raise ValueError(f"unsupported strides {strides}")
    t0 = time.perf_counter()
    keys, lens = network_keys(prefixes)
    order = np.argsort(lens, kind="stable")
    keys, lens = np.ascontiguousarray(keys[order]), lens[order]
    id_arr = np.asarray(ids, dtype=np.int32)[order]
    count = _count_nodes(keys, lens, strides)
    root = np.zeros(1 << strides[0], dtype=np.uint32)
    nodes = np.zeros((count, 1 << NODE_BITS), dtype=np.uint32)
    used = _build(keys, lens, id_arr, np.asarray(strides, dtype=np.int64), root, nodes)
    if used != count:
        raise RuntimeError(f"trie build used {used} nodes, {count} counted")
    return Trie(strides, root, nodes, len(prefixes), time.perf_counter() - t0)
