"""Flow keys and flow hashes over a parsed batch's 5-tuple columns.

The flow key is 37 bytes in network order: ``src`` (16), ``dst`` (16), ``sport`` (2), ``dport``
(2), ``proto`` (1), with IPv4 addresses IPv4-mapped as in the batch columns. The hash is
MurmurHash3 x86_32 of exactly those bytes with a 32-bit seed, so it can be reproduced anywhere.

* Directional: ``hash(a->b)`` and ``hash(b->a)`` differ.
* Symmetric: the endpoints are put in canonical order first -- the ``(address, port)`` pair
  that compares lower is hashed as the source -- so ``hash(a->b) == hash(b->a)``.
* Non-IP frames (ARP, LLDP...) hash an L2 key of the same shape: source MAC as ``src``,
  destination MAC as ``dst`` (each in words 2-3 as a 48-bit value), ``sport = dport =
  ethertype``, ``proto = 0``. Malformed packets hash to 0.

:func:`hash_row` and :func:`hash_row_symmetric` are ``@njit`` functions that hash row ``i`` of
any pair of ``(n, 4)`` address arrays, so stateful tables can hash stored keys inside kernels.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from nfvkit.packet import flags as F
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import i64, kernel

FLOW_KEY_DTYPE = np.dtype(
    [
        ("src", np.uint32, (4,)),
        ("dst", np.uint32, (4,)),
        ("sport", np.uint16),
        ("dport", np.uint16),
        ("proto", np.uint8),
    ]
)
"""A flow key as :func:`flow_keys` returns it."""

DEFAULT_SEED = 0

_M32 = 0xFFFFFFFF
_C1 = 0xCC9E2D51
_C2 = 0x1B873593


@kernel
def _bswap32(x: int) -> int:
    return ((x & 0xFF) << 24) | ((x & 0xFF00) << 8) | ((x >> 8) & 0xFF00) | ((x >> 24) & 0xFF)


@kernel
def _mix_k(k: int) -> int:
    k = (k * _C1) & _M32
    k = ((k << 15) | (k >> 17)) & _M32
    return (k * _C2) & _M32


@kernel
def _block(h: int, word: int) -> int:
    """One MurmurHash3 round on a big-endian word (its bytes read little-endian)."""
    h ^= _mix_k(_bswap32(word))
    h = ((h << 13) | (h >> 19)) & _M32
    return (h * 5 + 0xE6546B64) & _M32


@kernel
def _fmix(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    return h ^ (h >> 16)


@kernel
def _hash(
    a: NDArray[np.uint32],
    i: int,
    c: NDArray[np.uint32],
    j: int,
    sport: int,
    dport: int,
    proto: int,
    seed: int,
) -> int:
    """MurmurHash3 of the key (a[i], c[j], sport, dport, proto)."""
    h = seed & _M32
    for w in range(4):
        h = _block(h, i64(a[i, w]))
    for w in range(4):
        h = _block(h, i64(c[j, w]))
    h = _block(h, (sport << 16) | dport)
    h ^= _mix_k(proto)
    return _fmix(h ^ 37)


@kernel
def _hash_sym(
    a: NDArray[np.uint32],
    i: int,
    c: NDArray[np.uint32],
    j: int,
    sport: int,
    dport: int,
    proto: int,
    seed: int,
) -> int:
    """MurmurHash3 of the key with endpoints ``(a[i], sport)``, ``(c[j], dport)`` in order."""
    for w in range(4):
        if a[i, w] != c[j, w]:
            if a[i, w] < c[j, w]:
                return _hash(a, i, c, j, sport, dport, proto, seed)
            return _hash(c, j, a, i, dport, sport, proto, seed)
    if sport <= dport:
        return _hash(a, i, c, j, sport, dport, proto, seed)
    return _hash(c, j, a, i, dport, sport, proto, seed)


@kernel
def hash_row(
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    i: int,
    sport: int,
    dport: int,
    proto: int,
    seed: int,
) -> np.uint32:
    """Directional hash of the flow key (src[i], dst[i], sport, dport, proto)."""
    return np.uint32(_hash(src, i, dst, i, i64(sport), i64(dport), i64(proto), i64(seed)))


@kernel
def hash_row_symmetric(
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    i: int,
    sport: int,
    dport: int,
    proto: int,
    seed: int,
) -> np.uint32:
    """Symmetric hash of the flow key: the same for both directions of the flow."""
    return np.uint32(_hash_sym(src, i, dst, i, i64(sport), i64(dport), i64(proto), i64(seed)))


@kernel
def hash_words(words: NDArray[np.uint32], seed: int) -> np.uint32:
    """MurmurHash3 x86_32 of the big-endian bytes of ``words`` (a 1-D key of any width)."""
    h = i64(seed) & _M32
    for w in range(words.shape[0]):
        h = _block(h, i64(words[w]))
    return np.uint32(_fmix(h ^ (4 * words.shape[0])))


@kernel
def _l2_key(data: NDArray[np.uint8], b: int, key: NDArray[np.uint32]) -> int:
    """Fill ``key`` rows 0 (source MAC) and 1 (destination MAC); return the ethertype."""
    for r in range(2):
        p = b + 6 - 6 * r
        key[r, 0] = 0
        key[r, 1] = 0
        key[r, 2] = (i64(data[p]) << 8) | i64(data[p + 1])
        key[r, 3] = (
            (i64(data[p + 2]) << 24)
            | (i64(data[p + 3]) << 16)
            | (i64(data[p + 4]) << 8)
            | i64(data[p + 5])
        )
    return (i64(data[b + 12]) << 8) | i64(data[b + 13])


@kernel
def _flow_hash_kernel(
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    flags: NDArray[np.uint16],
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    sport: NDArray[np.uint16],
    dport: NDArray[np.uint16],
    proto: NDArray[np.uint8],
    symmetric: bool,
    seed: int,
    key: NDArray[np.uint32],
    out: NDArray[np.uint32],
) -> None:
    for i in range(offset.shape[0]):
        fl = flags[i]
        if fl & F.MALFORMED or length[i] < 14:
            out[i] = 0
        elif fl & (F.IPV4 | F.IPV6):
            sp = i64(sport[i])
            dp = i64(dport[i])
            pr = i64(proto[i])
            if symmetric:
                out[i] = hash_row_symmetric(src, dst, i, sp, dp, pr, seed)
            else:
                out[i] = hash_row(src, dst, i, sp, dp, pr, seed)
        else:
            et = _l2_key(data, offset[i], key)
            if symmetric:
                out[i] = _hash_sym(key, 0, key, 1, et, et, 0, seed)
            else:
                out[i] = _hash(key, 0, key, 1, et, et, 0, seed)


def flow_hash(
    batch: PacketBatch, symmetric: bool = False, seed: int = DEFAULT_SEED
) -> NDArray[np.uint32]:
    """Hash every packet's flow key into ``batch.hash`` and return that column."""
    key = np.zeros((2, 4), dtype=np.uint32)
    _flow_hash_kernel(
        batch.data,
        batch.offset,
        batch.length,
        batch.flags,
        batch.src,
        batch.dst,
        batch.sport,
        batch.dport,
        batch.proto,
        symmetric,
        seed & 0xFFFFFFFF,
        key,
        batch.hash,
    )
    return batch.hash


def flow_keys(batch: PacketBatch) -> NDArray[np.void]:
    """The 5-tuple of every packet as a :data:`FLOW_KEY_DTYPE` array (copies the columns)."""
    keys = np.zeros(len(batch), dtype=FLOW_KEY_DTYPE)
    keys["src"] = batch.src
    keys["dst"] = batch.dst
    keys["sport"] = batch.sport
    keys["dport"] = batch.dport
    keys["proto"] = batch.proto
    return keys
