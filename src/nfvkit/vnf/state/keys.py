"""Flow keys for state tables: the 5-tuple packed into ``uint32`` words, and its decoding.

:data:`FLOW_KEY` is the layout most stateful elements use: ``src`` (4 words), ``dst`` (4),
``ports`` (``sport << 16 | dport``) and ``proto`` -- ten words, IPv4 addresses IPv4-mapped as
in the batch columns. Kernels fill a scratch key with :func:`flow_key` (or the reverse
direction with :func:`reverse_flow_key`); :func:`decode_keys` turns exported keys back into
readable columns.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

KeyLayout = tuple[tuple[str, int], ...]
"""Named fields of a key and their width in words, in order."""

FLOW_KEY: KeyLayout = (("src", 4), ("dst", 4), ("ports", 1), ("proto", 1))
FLOW_KEY_WORDS = 10
_V4_MAPPED = 0xFFFF


@njit(cache=True, nogil=True, inline="always")
def flow_key(
    key: NDArray[np.uint32],
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    i: int,
    sport: int,
    dport: int,
    proto: int,
) -> None:
    """Fill ``key`` with the :data:`FLOW_KEY` of packet ``i`` as it travels."""
    for w in range(4):
        key[w] = src[i, w]
        key[4 + w] = dst[i, w]
    key[8] = (sport << 16) | dport
    key[9] = proto


@njit(cache=True, nogil=True, inline="always")
def reverse_flow_key(
    key: NDArray[np.uint32],
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    i: int,
    sport: int,
    dport: int,
    proto: int,
) -> None:
    """Fill ``key`` with the :data:`FLOW_KEY` of the reply direction of packet ``i``."""
    flow_key(key, dst, src, i, dport, sport, proto)


def address_text(words: NDArray[np.uint32]) -> str:
    """An address column row (4 words) as text; IPv4-mapped addresses as dotted quads."""
    w = [int(x) for x in words]
    if w[0] == 0 and w[1] == 0 and w[2] == _V4_MAPPED:
        return str(ipaddress.IPv4Address(w[3]))
    return str(ipaddress.IPv6Address((w[0] << 96) | (w[1] << 64) | (w[2] << 32) | w[3]))


def address_words(text: str) -> NDArray[np.uint32]:
    """The 4-word column form of an IPv4 or IPv6 address."""
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return np.array([0, 0, _V4_MAPPED, int(ip)], dtype=np.uint32)
    v = int(ip)
    return np.array([(v >> s) & 0xFFFFFFFF for s in (96, 64, 32, 0)], dtype=np.uint32)


def decode_flow_key(key: NDArray[np.uint32]) -> dict[str, Any]:
    """A :data:`FLOW_KEY` as ``{src, dst, sport, dport, proto}``."""
    ports = int(key[8])
    return {
        "src": address_text(key[0:4]),
        "dst": address_text(key[4:8]),
        "sport": ports >> 16,
        "dport": ports & 0xFFFF,
        "proto": int(key[9]),
    }


def decode_keys(layout: KeyLayout, key: NDArray[np.uint32]) -> dict[str, Any]:
    """One key as named fields: the flow layout decoded, others as ints or word lists."""
    if layout == FLOW_KEY:
        return decode_flow_key(key)
    out: dict[str, Any] = {}
    at = 0
    for name, width in layout:
        part = key[at : at + width]
        out[name] = int(part[0]) if width == 1 else [int(x) for x in part]
        at += width
    return out


def flow_columns(records: NDArray[Any]) -> dict[str, NDArray[Any]]:
    """Vectorized columns of records keyed by :data:`FLOW_KEY`, for export selectors:
    ``src``/``dst`` ``(n, 4)`` words, ``sport``, ``dport``, ``proto``."""
    key = records["key"]
    return {
        "src": key[:, 0:4],
        "dst": key[:, 4:8],
        "sport": (key[:, 8] >> 16).astype(np.uint16),
        "dport": (key[:, 8] & 0xFFFF).astype(np.uint16),
        "proto": key[:, 9].astype(np.uint8),
    }
