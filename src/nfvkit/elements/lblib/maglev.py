"""Maglev consistent hashing: the lookup table of Eisenbud et al., "Maglev: A Fast and Reliable
Software Network Load Balancer" (NSDI 2016), section 3.4, Pseudocode 1.

Each backend ``i`` has a permutation of the ``M`` table positions (``M`` prime)::

    offset = h1(name) mod M
    skip   = h2(name) mod (M - 1) + 1
    permutation[i][j] = (offset + j * skip) mod M

and the table is filled round-robin: in each round every backend, in turn, claims the next
position of its permutation that no backend holds yet, until all ``M`` positions are held. A
flow goes to ``table[hash(5-tuple) mod M]``.

Decisions:

* **h1, h2**: the two big-endian 64-bit halves of BLAKE2b-128 of the backend's UTF-8 name --
  stable across processes and hosts, so every load balancer with the same backend set builds the
  same table and a flow lands on the same backend whichever instance sees it.
* **Order**: the round-robin visits backends sorted by name (the paper's ``i < N``), so the
  table depends on the backend *set*, not on the order of a configuration list.
* **Weights** (the paper leaves them open): a credit scheme. Each round, backend ``i`` adds its
  weight ``w_i`` to its credit; when the credit reaches ``w_max`` (the largest weight) it takes a
  turn and pays ``w_max``. The heaviest backends take a turn every round and backend ``i`` one
  every ``w_max / w_i`` rounds on average, so the number of positions is proportional to the
  weight, and turns stay interleaved (no backend takes long runs). With equal weights every
  backend takes a turn every round: exactly Pseudocode 1.
* **Speed**: the permutation parameters are computed with NumPy for all backends at once; the
  permutation itself is never materialised (it would take ``N × M`` entries: 262 MB for 1,000
  backends at ``M = 65537``) -- each backend's position advances by ``skip`` modulo ``M``. The
  filling is sequential by definition (each claim depends on every earlier one), so it is one
  Numba loop: about ``M ln M`` probes, a few milliseconds at ``M = 65537``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
from numba import njit
from numpy.typing import NDArray

MAX_TABLE_SIZE = 1 << 24
"""Largest lookup table accepted (entries)."""


def is_prime(n: int) -> bool:
    """Whether ``n`` is prime (trial division; tables are at most :data:`MAX_TABLE_SIZE`)."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    return all(n % d for d in range(3, math.isqrt(n) + 1, 2))


def next_prime(n: int) -> int:
    """The smallest prime ``>= n``."""
    while not is_prime(n):
        n += 1
    return n


def name_hashes(names: Sequence[str]) -> NDArray[np.uint64]:
    """``(N, 2)`` array: h1 and h2 of each name (the halves of its BLAKE2b-128 digest)."""
    digests = b"".join(hashlib.blake2b(n.encode(), digest_size=16).digest() for n in names)
    return np.frombuffer(digests, dtype=">u8").reshape(-1, 2).astype(np.uint64)


def permutation_params(
    names: Sequence[str], size: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(offset, skip)`` of each backend's permutation for a table of ``size`` entries."""
    h = name_hashes(names)
    m = np.uint64(size)
    offset = (h[:, 0] % m).astype(np.int64)
    skip = (h[:, 1] % (m - np.uint64(1)) + np.uint64(1)).astype(np.int64)
    return offset, skip


@njit(cache=True, nogil=True)
def populate(
    offset: NDArray[np.int64], skip: NDArray[np.int64], weight: NDArray[np.int64], size: int
) -> NDArray[np.int32]:
    """Pseudocode 1 with the weight credits: the table of ``size`` entries, each the index of
    the backend holding it (-1 everywhere when there is no backend)."""
    n = offset.shape[0]
    entry = np.full(size, -1, dtype=np.int32)
    if n == 0:
        return entry
    pos = offset.copy()  # permutation[i][next[i]], advanced incrementally
    credit = np.zeros(n, dtype=np.int64)
    wmax = weight.max()
    filled = 0
    while True:
        for i in range(n):
            credit[i] += weight[i]
            if credit[i] < wmax:
                continue
            credit[i] -= wmax
            c = pos[i]
            while entry[c] >= 0:
                c += skip[i]
                if c >= size:
                    c -= size
            entry[c] = i
            c += skip[i]
            pos[i] = c - size if c >= size else c
            filled += 1
            if filled == size:
                return entry


def build_table(
    names: Sequence[str], weights: Sequence[int], size: int
) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
    """The Maglev table over ``names`` (any order) and the order it used.

    Returns ``(table, order)``: ``table[k]`` is an index into ``names`` (-1 when there are
    none); ``order`` lists the indices of ``names`` sorted by name (the round-robin order).
    """
    if not is_prime(size):
        raise ValueError(f"Maglev table size {size} is not prime")
    if not names:
        return np.full(size, -1, dtype=np.int32), np.zeros(0, dtype=np.int64)
    order = np.array(sorted(range(len(names)), key=lambda k: names[k]), dtype=np.int64)
    sorted_names = [names[k] for k in order]
    offset, skip = permutation_params(sorted_names, size)
    w = np.array([weights[k] for k in order], dtype=np.int64)
    local = populate(offset, skip, w, size)
    table = np.where(local >= 0, order[np.maximum(local, 0)], -1).astype(np.int32)
    return table, order


def lookup(table: NDArray[np.int32], hashes: NDArray[np.uint32]) -> NDArray[np.int32]:
    """The table entries for flow hashes: ``table[hash mod M]``."""
    out: NDArray[np.int32] = table[hashes.astype(np.int64) % table.shape[0]]
    return out
