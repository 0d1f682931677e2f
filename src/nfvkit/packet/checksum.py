"""Internet checksums (RFC 1071): IPv4 header, TCP, UDP, ICMP and ICMPv6, full and incremental.

Batch functions work on a parsed batch (:func:`nfvkit.packet.parse.parse_batch` first):

* :func:`verify_checksums` -- per packet, whether every checksum present is valid. It sums the
  covered bytes *including* the checksum field and expects ``0xFFFF``, as end systems do
  (RFC 1624 section 5), so both representations of zero are accepted. Non-IP packets have no
  checksums (valid); malformed packets are invalid. The L4 checksum of a fragment (any packet
  with the ``FRAGMENT`` flag) covers the reassembled datagram and is not checked. A zero UDP
  checksum over IPv4 means "none" (valid); over IPv6 it is invalid (RFC 8200 section 8.1).
* :func:`fix_checksums` -- recompute every checksum in place (a computed UDP checksum of 0 is
  sent as 0xFFFF, RFC 768); skips malformed packets, non-IP packets and L4 of fragments.

Limitation: the IPv6 pseudo-header uses the destination of the IPv6 header, not the final
destination of a routing header with segments left.

Scalar helpers are ``@njit`` functions for other kernels: :func:`csum_add`, :func:`csum_fold`,
:func:`ipv4_header_checksum`, :func:`l4_checksum`, and the RFC 1624 incremental updates
:func:`csum_update16` and :func:`csum_update32` (eqn. 3, ``HC' = ~(~HC + ~m + m')``), which give
the same value as a full recomputation whenever the covered data are not all zero. Callers
updating a UDP-over-IPv4 checksum must leave a zero (absent) checksum alone.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from nfvkit.packet import flags as F
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import i64, kernel

_L4_BITS = F.TCP | F.UDP | F.ICMP


@kernel
def csum_add(data: NDArray[np.uint8], start: int, end: int, acc: int) -> int:
    """Add the big-endian 16-bit words of ``data[start:end]`` to ``acc`` (an odd last byte is
    padded with zero); the result is not folded."""
    p = start
    while p + 1 < end:
        acc += (i64(data[p]) << 8) | i64(data[p + 1])
        p += 2
    if p < end:
        acc += i64(data[p]) << 8
    return acc


@kernel
def csum_fold(acc: int) -> int:
    """Fold a sum to 16 bits with end-around carry (the one's complement sum)."""
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return acc


@kernel
def csum_update16(hc: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: the checksum after a 16-bit field changes from ``old`` to ``new``."""
    acc = (~hc & 0xFFFF) + (~old & 0xFFFF) + (new & 0xFFFF)
    return ~csum_fold(acc) & 0xFFFF


@kernel
def csum_update32(hc: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3 for a 32-bit field (an IPv4 address) changing from ``old`` to ``new``."""
    acc = (~hc & 0xFFFF) + (~(old >> 16) & 0xFFFF) + (~old & 0xFFFF)
    acc += ((new >> 16) & 0xFFFF) + (new & 0xFFFF)
    return ~csum_fold(acc) & 0xFFFF


@kernel
def ipv4_header_checksum(data: NDArray[np.uint8], p: int, hlen: int) -> int:
    """Checksum of the IPv4 header at ``data[p:p+hlen]``, its checksum field taken as zero."""
    acc = csum_add(data, p, p + 10, 0)
    acc = csum_add(data, p + 12, p + hlen, acc)
    return ~csum_fold(acc) & 0xFFFF


@kernel
def _csum_field(proto: int) -> int:
    """Offset of the checksum field in the L4 header of ``proto`` (-1 if it has none)."""
    if proto == 6:
        return 16
    if proto == 17:
        return 6
    if proto in (1, 58):
        return 2
    return -1


@kernel
def _l4_sum(data: NDArray[np.uint8], l3: int, l4: int, end: int, proto: int, v6: bool) -> int:
    """Unfolded sum of the pseudo-header (none for ICMP over IPv4) and ``data[l4:end]``."""
    seg = end - l4
    acc = 0
    if v6:
        acc = csum_add(data, l3 + 8, l3 + 40, seg + proto)
    elif proto != 1:
        acc = csum_add(data, l3 + 12, l3 + 20, seg + proto)
    return csum_add(data, l4, end, acc)


@kernel
def l4_checksum(data: NDArray[np.uint8], l3: int, l4: int, end: int, proto: int, v6: bool) -> int:
    """Checksum of the L4 segment ``data[l4:end]`` of ``proto`` (6, 17, 1 or 58) with its
    pseudo-header taken from the IP header at ``l3`` and the checksum field taken as zero."""
    field = l4 + _csum_field(proto)
    acc = _l4_sum(data, l3, l4, end, proto, v6)
    acc -= (i64(data[field]) << 8) | i64(data[field + 1])
    return ~csum_fold(acc) & 0xFFFF


@kernel
def _segment_end(data: NDArray[np.uint8], l4: int, end: int, proto: int) -> int:
    """End of the L4 segment: the UDP length for UDP, else the end of the IP packet."""
    if proto == 17:
        return l4 + ((i64(data[l4 + 4]) << 8) | i64(data[l4 + 5]))
    return end


@kernel
def _verify_one(
    data: NDArray[np.uint8], b: int, l3: int, l4: int, ipl: int, pr: int, fl: int
) -> bool:
    v6 = (fl & F.IPV6) != 0
    if not v6:
        hlen = (i64(data[b + l3]) & 15) * 4
        if csum_fold(csum_add(data, b + l3, b + l3 + hlen, 0)) != 0xFFFF:
            return False
    if (fl & _L4_BITS) == 0 or (fl & F.FRAGMENT) != 0 or l4 < 0:
        return True
    start = b + l4
    if pr == 17 and data[start + 6] == 0 and data[start + 7] == 0:
        return not v6
    end = _segment_end(data, start, b + l3 + ipl, pr)
    return csum_fold(_l4_sum(data, b + l3, start, end, pr, v6)) == 0xFFFF


@kernel
def _verify_kernel(
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    l3_off: NDArray[np.int16],
    l4_off: NDArray[np.int16],
    ip_len: NDArray[np.int32],
    proto: NDArray[np.uint8],
    flags: NDArray[np.uint16],
    out: NDArray[np.bool_],
) -> None:
    for i in range(offset.shape[0]):
        fl = i64(flags[i])
        if fl & F.MALFORMED:
            out[i] = False
        elif fl & (F.IPV4 | F.IPV6):
            out[i] = _verify_one(data, offset[i], l3_off[i], l4_off[i], ip_len[i], proto[i], fl)
        else:
            out[i] = True


@kernel
def _store16(data: NDArray[np.uint8], p: int, value: int) -> None:
    data[p] = (value >> 8) & 0xFF
    data[p + 1] = value & 0xFF


@kernel
def _fix_one(data: NDArray[np.uint8], b: int, l3: int, l4: int, ipl: int, pr: int, fl: int) -> None:
    v6 = (fl & F.IPV6) != 0
    if not v6:
        hlen = (i64(data[b + l3]) & 15) * 4
        _store16(data, b + l3 + 10, ipv4_header_checksum(data, b + l3, hlen))
    if (fl & _L4_BITS) == 0 or (fl & F.FRAGMENT) != 0 or l4 < 0:
        return
    start = b + l4
    end = _segment_end(data, start, b + l3 + ipl, pr)
    value = l4_checksum(data, b + l3, start, end, pr, v6)
    if pr == 17 and value == 0:
        value = 0xFFFF
    _store16(data, start + _csum_field(pr), value)


@kernel
def _fix_kernel(
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    l3_off: NDArray[np.int16],
    l4_off: NDArray[np.int16],
    ip_len: NDArray[np.int32],
    proto: NDArray[np.uint8],
    flags: NDArray[np.uint16],
) -> None:
    for i in range(offset.shape[0]):
        fl = i64(flags[i])
        if (fl & F.MALFORMED) == 0 and (fl & (F.IPV4 | F.IPV6)) != 0:
            _fix_one(data, offset[i], l3_off[i], l4_off[i], ip_len[i], proto[i], fl)


def verify_checksums(batch: PacketBatch) -> NDArray[np.bool_]:
    """Per packet of a parsed ``batch``: every checksum present is valid."""
    out = np.empty(len(batch), dtype=np.bool_)
    _verify_kernel(
        batch.data,
        batch.offset,
        batch.l3_off,
        batch.l4_off,
        batch.ip_len,
        batch.proto,
        batch.flags,
        out,
    )
    return out


def fix_checksums(batch: PacketBatch) -> None:
    """Recompute every checksum of a parsed ``batch`` in place."""
    _fix_kernel(
        batch.data,
        batch.offset,
        batch.l3_off,
        batch.l4_off,
        batch.ip_len,
        batch.proto,
        batch.flags,
    )
