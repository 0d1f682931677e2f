"""Header parsing: one Numba kernel fills a batch's header columns (see :mod:`.batch`).

:func:`parse_batch` walks every packet once, from the Ethernet header to the transport header,
and writes ``l3_off``, ``l4_off``, ``l7_off``, ``ip_len``, ``ethertype``, ``proto``, ``flags``,
``vlan``, ``src``, ``dst``, ``sport``, ``dport`` and ``fate``. A packet that parses sets
``fate = 0``; a malformed one gets the negated code of one of :data:`PARSE_DROP_REASONS` and
the ``MALFORMED`` flag, and its columns keep what was parsed before the fault. The parser never
raises and never reads a byte beyond ``length[i]``.

Decisions where the standards leave room:

* **VLAN**: up to two tags with TPID 0x8100 or 0x88a8 are decoded (``vlan[0]`` outer TCI,
  ``vlan[1]`` inner). A third tag is not decoded: the frame passes as a non-IP frame whose
  ``ethertype`` is the third TPID, with ``l3_off = -1``. Ethertypes below 0x0600 (802.3 length
  fields) pass the same way.
* **Non-IP** ethertypes other than ARP (LLDP, MPLS, ...) pass with ``l3_off = -1``.
* **ARP** sets ``l3_off`` to the ARP header and checks its length only: the 8 fixed bytes plus
  two hardware and two protocol addresses (28 bytes for Ethernet/IPv4).
* **IPv4**: Ethernet padding beyond the total length is normal. Fragments set ``FRAGMENT``;
  offset 0 also sets ``FIRST_FRAGMENT`` and the L4 header is parsed (a first fragment too short
  for its TCP header is dropped, RFC 1858); a UDP length larger than a first fragment's payload
  is accepted (it covers the whole datagram). Non-first fragments have ``l4_off = -1``.
  IPv4 AH (51) is not walked: it is an unknown L4.
* **IPv6** extension headers: hop-by-hop (only first), routing, fragment, destination options
  and AH are skipped, at most :data:`MAX_IPV6_EXT` of them. A fragment header sets ``FRAGMENT``;
  offset 0 (an atomic fragment too) sets ``FIRST_FRAGMENT`` and parsing continues, otherwise
  parsing stops with ``proto`` = the fragment's next header and ``l4_off = -1``.
* **ESP (50) and No Next Header (59)** are an L4 without ports: ``l4_off`` points at them,
  ``l7_off = -1``, the ``L4`` flag is not set. Other unknown protocols have ``l4_off = -1``.
* **ICMP/ICMPv6** (ICMP only over IPv4, ICMPv6 only over IPv6) need 4 bytes (type, code,
  checksum), ``l7_off = l4_off + 4``; echo request/reply need 8, set ``ECHO``, ``sport = dport =
  identifier`` and ``l7_off = l4_off + 8``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit
from numpy.typing import NDArray

from nfvkit.packet import flags as F
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import DropReason, drop_reason

_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def kernel(fn: _Fn) -> _Fn:
    """``@njit(cache=True, nogil=True)`` without reference counting (``_nrt=False``).

    Packet kernels and their helpers allocate nothing. With the NRT on, every array handed to
    a helper costs an atomic incref/decref pair per call, which doubled the parser's cycles per
    packet; without it, LLVM inlines the helpers into one tight loop. Use it only for functions
    that never allocate arrays.
    """
    return cast(_Fn, njit(cache=True, nogil=True, _nrt=False)(fn))  # type: ignore[call-overload]


@kernel
def i64(x: Any) -> int:
    """``x`` as a signed 64-bit integer, to keep kernel arithmetic in int64 (Numba's ``int()``
    of an unsigned value is uint64, and uint64 mixed with int64 gives float64)."""
    return int(np.int64(x))


MAX_IPV6_EXT = 8
"""Most IPv6 extension headers the parser walks before dropping the packet."""

ETH_IPV4 = 0x0800
ETH_ARP = 0x0806
ETH_IPV6 = 0x86DD
ETH_VLAN = 0x8100
ETH_QINQ = 0x88A8

# Positions of the reasons in PARSE_DROP_REASONS (and so in the code array the kernel gets).
_R_EMPTY = 0
_R_ETH_TRUNC = 1
_R_VLAN_TRUNC = 2
_R_ARP_TRUNC = 3
_R_V4_TRUNC = 4
_R_V4_VERSION = 5
_R_V4_IHL = 6
_R_V4_TOTLEN = 7
_R_V6_TRUNC = 8
_R_V6_VERSION = 9
_R_V6_PAYLEN = 10
_R_EXT_TRUNC = 11
_R_EXT_ORDER = 12
_R_EXT_LONG = 13
_R_TCP_TRUNC = 14
_R_TCP_DOFF = 15
_R_UDP_TRUNC = 16
_R_UDP_LEN = 17
_R_ICMP_TRUNC = 18
_R_BUFFER = 19
_OK = -1

ETH_EMPTY = drop_reason("eth_empty", "zero-length frame")
ETH_TRUNCATED = drop_reason("eth_truncated", "frame shorter than an Ethernet header (14 bytes)")
VLAN_TRUNCATED = drop_reason("vlan_truncated", "frame ends inside a VLAN tag")
ARP_TRUNCATED = drop_reason("arp_truncated", "ARP message shorter than its address lengths say")
IPV4_TRUNCATED = drop_reason("ipv4_truncated", "fewer than 20 bytes after the IPv4 ethertype")
IPV4_BAD_VERSION = drop_reason("ipv4_bad_version", "IPv4 ethertype but IP version is not 4")
IPV4_BAD_IHL = drop_reason("ipv4_bad_ihl", "IPv4 header length (IHL) below 5 words")
IPV4_BAD_TOTAL_LENGTH = drop_reason(
    "ipv4_bad_total_length",
    "IPv4 total length below the header length or beyond the bytes received",
)
IPV6_TRUNCATED = drop_reason("ipv6_truncated", "fewer than 40 bytes after the IPv6 ethertype")
IPV6_BAD_VERSION = drop_reason("ipv6_bad_version", "IPv6 ethertype but IP version is not 6")
IPV6_BAD_PAYLOAD_LENGTH = drop_reason(
    "ipv6_bad_payload_length", "IPv6 payload length beyond the bytes received"
)
IPV6_EXT_TRUNCATED = drop_reason(
    "ipv6_ext_truncated", "IPv6 extension header runs past the IPv6 payload"
)
IPV6_EXT_BAD_ORDER = drop_reason(
    "ipv6_ext_bad_order", "IPv6 hop-by-hop options header not directly after the IPv6 header"
)
IPV6_EXT_CHAIN_TOO_LONG = drop_reason(
    "ipv6_ext_chain_too_long", f"more than {MAX_IPV6_EXT} IPv6 extension headers"
)
TCP_TRUNCATED = drop_reason("tcp_truncated", "IP payload shorter than a TCP header (20 bytes)")
TCP_BAD_DATA_OFFSET = drop_reason(
    "tcp_bad_data_offset", "TCP data offset below 5 words or beyond the IP payload"
)
UDP_TRUNCATED = drop_reason("udp_truncated", "IP payload shorter than a UDP header (8 bytes)")
UDP_BAD_LENGTH = drop_reason("udp_bad_length", "UDP length below 8 or beyond the IP payload")
ICMP_TRUNCATED = drop_reason(
    "icmp_truncated", "ICMP/ICMPv6 message shorter than 4 bytes (8 for echo)"
)
PACKET_OUT_OF_BUFFER = drop_reason(
    "packet_out_of_buffer", "packet offset/length point outside the batch's data buffer"
)

PARSE_DROP_REASONS: tuple[DropReason, ...] = (
    ETH_EMPTY,
    ETH_TRUNCATED,
    VLAN_TRUNCATED,
    ARP_TRUNCATED,
    IPV4_TRUNCATED,
    IPV4_BAD_VERSION,
    IPV4_BAD_IHL,
    IPV4_BAD_TOTAL_LENGTH,
    IPV6_TRUNCATED,
    IPV6_BAD_VERSION,
    IPV6_BAD_PAYLOAD_LENGTH,
    IPV6_EXT_TRUNCATED,
    IPV6_EXT_BAD_ORDER,
    IPV6_EXT_CHAIN_TOO_LONG,
    TCP_TRUNCATED,
    TCP_BAD_DATA_OFFSET,
    UDP_TRUNCATED,
    UDP_BAD_LENGTH,
    ICMP_TRUNCATED,
    PACKET_OUT_OF_BUFFER,
)
"""Every reason :func:`parse_batch` drops for, in kernel order."""


def _codes() -> NDArray[np.int16]:
    return np.array([r.fate for r in PARSE_DROP_REASONS], dtype=np.int16)


_FATES = _codes()


# scalar readers -------------------------------------------------------------------------------


@kernel
def _u16(data: NDArray[np.uint8], p: int) -> int:
    return (i64(data[p]) << 8) | i64(data[p + 1])


@kernel
def _u32(data: NDArray[np.uint8], p: int) -> int:
    return (
        (i64(data[p]) << 24) | (i64(data[p + 1]) << 16) | (i64(data[p + 2]) << 8) | i64(data[p + 3])
    )


# layers -------------------------------------------------------------------------------------


@kernel
def _l2(data: NDArray[np.uint8], b: int, n: int) -> tuple[int, int, int, int, int, int]:
    """Ethernet and VLAN tags -> (reason, l3_off, ethertype, flags, outer TCI, inner TCI)."""
    if n == 0:
        return _R_EMPTY, -1, 0, 0, 0, 0
    if n < 14:
        return _R_ETH_TRUNC, -1, 0, 0, 0, 0
    et = _u16(data, b + 12)
    p = 14
    fl = 0
    v0 = 0
    v1 = 0
    if et in (ETH_VLAN, ETH_QINQ):
        if n < 18:
            return _R_VLAN_TRUNC, -1, 0, F.VLAN, 0, 0
        v0 = _u16(data, b + 14)
        et = _u16(data, b + 16)
        p = 18
        fl = F.VLAN
        if et in (ETH_VLAN, ETH_QINQ):
            if n < 22:
                return _R_VLAN_TRUNC, -1, 0, F.VLAN | F.QINQ, v0, 0
            v1 = _u16(data, b + 18)
            et = _u16(data, b + 20)
            p = 22
            fl = F.VLAN | F.QINQ
    return _OK, p, et, fl, v0, v1


@kernel
def _arp(data: NDArray[np.uint8], b: int, l3: int, n: int) -> int:
    """Length check of an ARP message -> reason."""
    if l3 + 8 > n:
        return _R_ARP_TRUNC
    need = 8 + 2 * i64(data[b + l3 + 4]) + 2 * i64(data[b + l3 + 5])
    if l3 + need > n:
        return _R_ARP_TRUNC
    return _OK


@kernel
def _ipv4(data: NDArray[np.uint8], b: int, l3: int, n: int) -> tuple[int, int, int, int, int]:
    """IPv4 header -> (reason, total length, proto, flags, l4_off or -1 past a non-first
    fragment)."""
    if l3 + 20 > n:
        return _R_V4_TRUNC, 0, 0, F.IPV4, -1
    vi = i64(data[b + l3])
    if vi >> 4 != 4:
        return _R_V4_VERSION, 0, 0, F.IPV4, -1
    hl = (vi & 15) * 4
    if hl < 20:
        return _R_V4_IHL, 0, 0, F.IPV4, -1
    tot = _u16(data, b + l3 + 2)
    proto = i64(data[b + l3 + 9])
    if tot < hl or l3 + tot > n:
        return _R_V4_TOTLEN, tot, proto, F.IPV4, -1
    fl = F.IPV4
    if hl > 20:
        fl |= F.IP_OPTIONS
    frag = _u16(data, b + l3 + 6) & 0x3FFF
    l4 = l3 + hl
    if frag != 0:
        fl |= F.FRAGMENT
        if frag & 0x1FFF:
            l4 = -1
        else:
            fl |= F.FIRST_FRAGMENT
    return _OK, tot, proto, fl, l4


@kernel
def _ipv6(data: NDArray[np.uint8], b: int, l3: int, n: int) -> tuple[int, int, int, int, int]:
    """IPv6 header and extension chain -> (reason, ip_len, proto, flags, l4_off or -1)."""
    if l3 + 40 > n:
        return _R_V6_TRUNC, 0, 0, F.IPV6, -1
    if data[b + l3] >> 4 != 6:
        return _R_V6_VERSION, 0, 0, F.IPV6, -1
    ip_len = 40 + _u16(data, b + l3 + 4)
    nh = i64(data[b + l3 + 6])
    if l3 + ip_len > n:
        return _R_V6_PAYLEN, ip_len, nh, F.IPV6, -1
    end = l3 + ip_len
    p = l3 + 40
    fl = F.IPV6
    count = 0
    while nh in (0, 43, 44, 51, 60):
        if nh == 0 and count > 0:
            return _R_EXT_ORDER, ip_len, nh, fl, -1
        if count == MAX_IPV6_EXT:
            return _R_EXT_LONG, ip_len, nh, fl, -1
        count += 1
        fl |= F.IPV6_EXT
        if p + 8 > end:
            return _R_EXT_TRUNC, ip_len, nh, fl, -1
        nxt = i64(data[b + p])
        if nh == 44:
            fl |= F.FRAGMENT
            if _u16(data, b + p + 2) & 0xFFF8:
                return _OK, ip_len, nxt, fl, -1
            fl |= F.FIRST_FRAGMENT
            hl = 8
        elif nh == 51:
            hl = (i64(data[b + p + 1]) + 2) * 4
        else:
            hl = (i64(data[b + p + 1]) + 1) * 8
        if p + hl > end:
            return _R_EXT_TRUNC, ip_len, nh, fl, -1
        p += hl
        nh = nxt
    return _OK, ip_len, nh, fl, p


@kernel
def _l4(
    data: NDArray[np.uint8], b: int, l4: int, end: int, proto: int, v6: bool, frag: bool
) -> tuple[int, int, int, int, int, int]:
    """Transport header -> (reason, l4_off, l7_off, flags, sport, dport)."""
    room = end - l4
    if proto == 6:
        if room < 20:
            return _R_TCP_TRUNC, l4, -1, 0, 0, 0
        doff = (i64(data[b + l4 + 12]) >> 4) * 4
        if doff < 20 or doff > room:
            return _R_TCP_DOFF, l4, -1, 0, 0, 0
        return _OK, l4, l4 + doff, F.TCP | F.L4, _u16(data, b + l4), _u16(data, b + l4 + 2)
    if proto == 17:
        if room < 8:
            return _R_UDP_TRUNC, l4, -1, 0, 0, 0
        ulen = _u16(data, b + l4 + 4)
        if ulen < 8 or (ulen > room and not frag):
            return _R_UDP_LEN, l4, -1, 0, 0, 0
        return _OK, l4, l4 + 8, F.UDP | F.L4, _u16(data, b + l4), _u16(data, b + l4 + 2)
    if (proto == 58) if v6 else (proto == 1):
        if room < 4:
            return _R_ICMP_TRUNC, l4, -1, 0, 0, 0
        t = data[b + l4]
        echo = t in (128, 129) if v6 else t in (0, 8)
        if not echo:
            return _OK, l4, l4 + 4, F.ICMP | F.L4, 0, 0
        if room < 8:
            return _R_ICMP_TRUNC, l4, -1, 0, 0, 0
        ident = _u16(data, b + l4 + 4)
        return _OK, l4, l4 + 8, F.ICMP | F.L4 | F.ECHO, ident, ident
    if proto in (50, 59):
        return _OK, l4, -1, 0, 0, 0
    return _OK, -1, -1, 0, 0, 0


# addresses ----------------------------------------------------------------------------------


@kernel
def _addrs(
    data: NDArray[np.uint8],
    p: int,
    v6: bool,
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    i: int,
) -> None:
    """Write ``src[i]``, ``dst[i]`` from the IP header at ``p`` (IPv4 stored IPv4-mapped)."""
    if v6:
        for w in range(4):
            src[i, w] = _u32(data, p + 8 + 4 * w)
            dst[i, w] = _u32(data, p + 24 + 4 * w)
    else:
        src[i, 0] = 0
        src[i, 1] = 0
        src[i, 2] = 0xFFFF
        src[i, 3] = _u32(data, p + 12)
        dst[i, 0] = 0
        dst[i, 1] = 0
        dst[i, 2] = 0xFFFF
        dst[i, 3] = _u32(data, p + 16)


@kernel
def _no_addrs(src: NDArray[np.uint32], dst: NDArray[np.uint32], i: int) -> None:
    for w in range(4):
        src[i, w] = 0
        dst[i, w] = 0


# kernel -------------------------------------------------------------------------------------


@kernel
def _parse_kernel(
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    fates: NDArray[np.int16],
    fate: NDArray[np.int16],
    l3_off: NDArray[np.int16],
    l4_off: NDArray[np.int16],
    l7_off: NDArray[np.int16],
    ip_len: NDArray[np.int32],
    ethertype: NDArray[np.uint16],
    proto: NDArray[np.uint8],
    flags: NDArray[np.uint16],
    vlan: NDArray[np.uint16],
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    sport: NDArray[np.uint16],
    dport: NDArray[np.uint16],
) -> None:
    size = data.shape[0]
    for i in range(offset.shape[0]):
        b = offset[i]
        n = i64(length[i])
        r, l3, et, fl, v0, v1 = _R_BUFFER, -1, 0, 0, 0, 0
        if b >= 0 and n >= 0 and b + n <= size:
            r, l3, et, fl, v0, v1 = _l2(data, b, n)
        l4, l7, ipl, pr, sp, dp = -1, -1, 0, 0, 0, 0
        ip = False
        if r == _OK:
            if et == ETH_IPV4:
                r, ipl, pr, fl3, l4 = _ipv4(data, b, l3, n)
                ip = r in (_OK, _R_V4_TOTLEN)
            elif et == ETH_IPV6:
                r, ipl, pr, fl3, l4 = _ipv6(data, b, l3, n)
                ip = r not in (_R_V6_TRUNC, _R_V6_VERSION)
            elif et == ETH_ARP:
                r, fl3 = _arp(data, b, l3, n), F.ARP
            else:
                l3, fl3 = -1, 0
            fl |= fl3
            if r == _OK and l4 >= 0:
                frag = (fl & F.FRAGMENT) != 0
                r, l4, l7, fl4, sp, dp = _l4(data, b, l4, l3 + ipl, pr, et == ETH_IPV6, frag)
                fl |= fl4
        if ip:
            _addrs(data, b + l3, et == ETH_IPV6, src, dst, i)
        else:
            _no_addrs(src, dst, i)
        if r == _OK:
            fate[i] = 0
        else:
            fate[i] = fates[r]
            fl |= F.MALFORMED
        l3_off[i] = l3
        l4_off[i] = l4
        l7_off[i] = l7
        ip_len[i] = ipl
        ethertype[i] = et
        proto[i] = pr
        flags[i] = fl
        vlan[i, 0] = v0
        vlan[i, 1] = v1
        sport[i] = sp
        dport[i] = dp


def parse_batch(batch: PacketBatch) -> None:
    """Parse every packet of ``batch`` in place (see the module docstring)."""
    _parse_kernel(
        batch.data,
        batch.offset,
        batch.length,
        _FATES,
        batch.fate,
        batch.l3_off,
        batch.l4_off,
        batch.l7_off,
        batch.ip_len,
        batch.ethertype,
        batch.proto,
        batch.flags,
        batch.vlan,
        batch.src,
        batch.dst,
        batch.sport,
        batch.dport,
    )
