"""ICMP error messages through ``nat`` (RFC 5508 section 4): the packet embedded in a
destination-unreachable, source-quench, time-exceeded or parameter-problem message is
translated with the mapping of the flow it belongs to.

* **Inbound** (to an external address): the embedded packet is one the NAT sent out, so its
  *source* is an external endpoint. Its mapping is looked up as for an inbound packet,
  filtering applies to the embedded destination (the remote the flow talks to), and the outer
  destination, the embedded source address and port (identifier for echo) go back to the
  inside endpoint.
* **Outbound** (from inside): the embedded packet is one the inside host received, so its
  *destination* is the inside endpoint; the outer source (which must be that host) and the
  embedded destination become the external endpoint.

Every checksum stays valid: the outer IPv4 header's, the embedded IPv4 header's, the embedded
TCP/UDP/ICMP checksum when the quoted bytes include it (a zero UDP checksum stays zero), and
the ICMP checksum over it all (RFC 1624 updates for every changed word). Errors do not
refresh mappings. An error whose embedded packet is not an unfragmented IPv4 TCP, UDP or ICMP
echo with 8 bytes of its transport header is ``nat_unsupported``; one without a mapping,
``nat_no_mapping``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.natlib import kernels as NK
from nfvkit.elements.natlib.rewrite import adjust, d32, load16, store16
from nfvkit.elements.natlib.tables import F_ONE2ONE, F_STATIC
from nfvkit.packet.flow import hash_words
from nfvkit.packet.jit import inlined
from nfvkit.packet.parse import i64


@inlined
def is_error(data: NDArray[np.uint8], l4: int) -> bool:
    """The ICMP message at ``data[l4]`` is an error this module translates."""
    t = data[l4]
    return t in (3, 4, 11, 12)


@inlined
def _load32(data: NDArray[np.uint8], p: int) -> int:
    return (load16(data, p) << 16) | load16(data, p + 2)


@inlined
def _embedded(data: NDArray[np.uint8], l4: int, end: int) -> tuple[int, int, int]:
    """(embedded IPv4 header, its transport header, protocol) of the error at ``data[l4]``
    whose IP packet ends at ``end``; (-1, -1, -1) if it cannot be translated."""
    e = l4 + 8
    if e + 20 > end or (data[e] >> 4) != 4 or (data[e] & 15) < 5:
        return -1, -1, -1
    el4 = e + (i64(data[e]) & 15) * 4
    pr = i64(data[e + 9])
    fragment_offset = load16(data, e + 6) & 0x1FFF
    if el4 + 8 > end or fragment_offset != 0:
        return -1, -1, -1
    if pr == 1 and data[el4] not in (0, 8):
        return -1, -1, -1
    if pr not in (1, 6, 17):
        return -1, -1, -1
    return e, el4, pr


@inlined
def _put16(data: NDArray[np.uint8], p: int, new: int) -> int:
    """Store a word; return its RFC 1624 terms ``~old + new`` for the enclosing checksum."""
    old = load16(data, p)
    store16(data, p, new)
    return (~old & 0xFFFF) + (new & 0xFFFF)


@inlined
def _rewrite_embedded(
    data: NDArray[np.uint8], e: int, el4: int, end: int, pr: int, dst_side: bool,
    old_a: int, new_a: int, old_p: int, new_p: int,
) -> int:  # fmt: skip
    """Rewrite the embedded packet's address and port; return the ICMP checksum terms."""
    at = e + (16 if dst_side else 12)
    acc = _put16(data, at, new_a >> 16) + _put16(data, at + 2, new_a & 0xFFFF)
    acc += _put16(data, e + 10, adjust(load16(data, e + 10), d32(old_a, new_a)))
    if pr == 1:
        acc += _put16(data, el4 + 4, new_p)
        return acc + _put16(data, el4 + 2, adjust(load16(data, el4 + 2), (~old_p & 0xFFFF) + new_p))
    acc += _put16(data, el4 + (2 if dst_side else 0), new_p)
    c_at = el4 + (16 if pr == 6 else 6)
    if c_at + 2 > end or (pr == 17 and load16(data, c_at) == 0):
        return acc
    hc = adjust(load16(data, c_at), d32(old_a, new_a) + (~old_p & 0xFFFF) + new_p)
    return acc + _put16(data, c_at, 0xFFFF if pr == 17 and hc == 0 else hc)


@inlined
def _apply(
    data: NDArray[np.uint8], ip: int, l4: int, end: int, e: int, el4: int, pr: int,
    inbound: bool, old_a: int, new_a: int, old_p: int, new_p: int,
) -> None:  # fmt: skip
    """Outer address (destination inbound, source outbound) and the embedded packet."""
    at = ip + (16 if inbound else 12)
    store16(data, at, new_a >> 16)
    store16(data, at + 2, new_a & 0xFFFF)
    store16(data, ip + 10, adjust(load16(data, ip + 10), d32(old_a, new_a)))
    acc = _rewrite_embedded(data, e, el4, end, pr, not inbound, old_a, new_a, old_p, new_p)
    store16(data, l4 + 2, adjust(load16(data, l4 + 2), acc))


@inlined
def error_inbound(st: Any, cfg: NDArray[np.int64], keys: Any, data: NDArray[np.uint8],
                  ip: int, l4: int, end: int, now: int) -> tuple[int, int]:  # fmt: skip
    """Translate an inbound ICMP error; (reason or OK, new outer destination)."""
    e, el4, pr = _embedded(data, l4, end)
    if e < 0:
        return NK.X_UNSUPPORTED, 0
    ext = _load32(data, e + 12)
    if ext != _load32(data, ip + 16):
        return NK.X_NO_MAPPING, 0
    ep = load16(data, el4 + (4 if pr == 1 else 0))
    s = NK.find_mapping(st, cfg, keys, ext, pr, ep, -1, now)
    if s < 0:
        return NK.X_NO_MAPPING, 0
    fl = i64(st[0][0][s].flags)
    kf = keys[0]
    if (fl & F_STATIC) == 0:
        rem, rp = _load32(data, e + 16), 0 if pr == 1 else load16(data, el4 + 2)
        if NK.admitted(st, cfg, keys, s, rem, rp, now) == -2:
            return NK.X_FILTERED, 0
    new_a = i64(kf[0])
    new_p = ep if fl & F_ONE2ONE else i64(kf[1]) & 0xFFFF
    _apply(data, ip, l4, end, e, el4, pr, True, ext, new_a, ep, new_p)
    return NK.OK, new_a


@inlined
def error_outbound(st: Any, cfg: NDArray[np.int64], keys: Any, data: NDArray[np.uint8],
                   ip: int, l4: int, end: int, now: int) -> tuple[int, int]:  # fmt: skip
    """Translate an outbound ICMP error; (reason or OK, new outer source)."""
    e, el4, pr = _embedded(data, l4, end)
    if e < 0:
        return NK.X_UNSUPPORTED, 0
    inside = _load32(data, e + 16)
    if inside != _load32(data, ip + 12):
        return NK.X_UNSUPPORTED, 0
    in_p = load16(data, el4 + (4 if pr == 1 else 2))
    rem, rp = _load32(data, e + 12), 0 if pr == 1 else load16(data, el4)
    kf = keys[0]
    NK.out_key(cfg, kf, inside, pr, in_p, rem, rp)
    s = NK.find_outbound(st[0], cfg, keys, int(hash_words(kf, cfg[NK.G_SEED_F])), now)
    if s < 0:
        return NK.X_NO_MAPPING, 0
    rows = st[0][0]
    new_a = i64(rows[s].external)
    new_p = in_p if rows[s].flags & F_ONE2ONE else i64(rows[s].ext_port)
    _apply(data, ip, l4, end, e, el4, pr, False, inside, new_a, in_p, new_p)
    return NK.OK, new_a
