"""Numba kernels that lay out the generator's Ethernet frames and compute their checksums.

One call builds a whole chunk of frames from per-packet plan columns (flow, direction, TCP
flags, payload and frame length, sequence numbers, malformation) and per-flow columns
(protocol, address family, VLAN, addresses, ports). Checksums are the Internet checksum
(RFC 1071) with the IPv4 (RFC 768/793) or IPv6 (RFC 8200 section 8.1) pseudo-header.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from nfvkit.io._binary import i64, wr_be16, wr_be32
from nfvkit.packet.checksum import ipv4_header_checksum, l4_checksum

TCP, UDP, ICMP = 6, 17, 1
ICMPV6 = 58
FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10
ETH_MIN = 60  # minimum Ethernet frame without FCS

# malformation codes (index + 1 into nfvkit.gen.profile.MALFORMED_KINDS)
BAD_NONE, BAD_TRUNCATED, BAD_IHL, BAD_IP_LENGTH, BAD_UDP_LENGTH, BAD_IP_CSUM = range(6)


@njit(cache=True, nogil=True)
def _ipv4_header_checksum(buf: NDArray[np.uint8], l3: int) -> None:
    wr_be16(buf, l3 + 10, ipv4_header_checksum(buf, l3, 20))


@njit(cache=True, nogil=True, inline="always")
def _mac(buf: NDArray[np.uint8], p: int, role: int, host: int) -> None:
    """A locally administered unicast MAC: 02:<role>:<host, 4 bytes>."""
    buf[p] = 0x02
    buf[p + 1] = role
    wr_be32(buf, p + 2, host)


@njit(cache=True, nogil=True)
def _ipv6_addr(buf: NDArray[np.uint8], p: int, prefix: NDArray[np.uint8], host: int) -> None:
    for k in range(12):
        buf[p + k] = prefix[k]
    wr_be32(buf, p + 12, host)  # prefixes are /96 or shorter


@njit(cache=True, nogil=True)
def _l4(
    out: NDArray[np.uint8],
    l4: int,
    proto: int,
    v6: bool,
    src_port: int,
    dst_port: int,
    flags: int,
    seq: int,
    ack: int,
    direction: int,
    payload: int,
) -> int:
    """Write the transport header at ``l4`` (checksum zero); return its length."""
    if proto == TCP:
        wr_be16(out, l4, src_port)
        wr_be16(out, l4 + 2, dst_port)
        wr_be32(out, l4 + 4, seq)
        wr_be32(out, l4 + 8, ack)
        out[l4 + 12] = 5 << 4
        out[l4 + 13] = flags
        wr_be16(out, l4 + 14, 64240)
        wr_be32(out, l4 + 16, 0)
        return 20
    if proto == UDP:
        wr_be16(out, l4, src_port)
        wr_be16(out, l4 + 2, dst_port)
        wr_be16(out, l4 + 4, 8 + payload)
        wr_be16(out, l4 + 6, 0)
        return 8
    if v6:
        out[l4] = 128 if direction == 0 else 129
    else:
        out[l4] = 8 if direction == 0 else 0
    out[l4 + 1] = 0
    wr_be16(out, l4 + 2, 0)
    wr_be16(out, l4 + 4, src_port)  # echo identifier: the client's "port"
    wr_be16(out, l4 + 6, seq & 0xFFFF)
    return 8


@njit(cache=True, nogil=True)
def _l4_checksum(out: NDArray[np.uint8], l3: int, l4: int, seg: int, proto: int, v6: bool) -> None:
    """Fill the TCP/UDP/ICMP checksum of the ``seg``-byte segment at ``l4``."""
    csum = l4_checksum(out, l3, l4, l4 + seg, ICMPV6 if v6 and proto == ICMP else proto, v6)
    if proto == UDP and csum == 0:
        csum = 0xFFFF
    field = 16 if proto == TCP else (6 if proto == UDP else 2)
    wr_be16(out, l4 + field, csum)


@njit(cache=True, nogil=True)
def _malform(out: NDArray[np.uint8], l3: int, l4: int, kind: int, aux: int) -> None:
    """Damage the IPv4/UDP frame whose L3 header is at ``l3`` (truncation is done by length)."""
    if kind == BAD_IHL:
        out[l3] = 0x40 | (aux & 0x0F)
        _ipv4_header_checksum(out, l3)
    elif kind == BAD_IP_LENGTH:
        total = (i64(out[l3 + 2]) << 8 | i64(out[l3 + 3])) + aux
        wr_be16(out, l3 + 2, total)
        _ipv4_header_checksum(out, l3)
    elif kind == BAD_UDP_LENGTH:
        size = (i64(out[l4 + 4]) << 8 | i64(out[l4 + 5])) + aux
        wr_be16(out, l4 + 4, size)
    elif kind == BAD_IP_CSUM:
        old = i64(out[l3 + 10]) << 8 | i64(out[l3 + 11])
        new = old ^ aux
        if (new == 0 or new == 0xFFFF) and (old == 0 or old == 0xFFFF):  # noqa: PLR1714
            new = old ^ 0x0101
        wr_be16(out, l3 + 10, new)


@njit(cache=True, nogil=True)
def build_frames(
    out: NDArray[np.uint8],
    out_off: NDArray[np.int64],
    out_len: NDArray[np.int32],
    pkt_flow: NDArray[np.int64],
    pkt_dir: NDArray[np.uint8],
    pkt_flags: NDArray[np.uint8],
    pkt_payload: NDArray[np.int32],
    pkt_frame: NDArray[np.int32],
    pkt_seq: NDArray[np.int64],
    pkt_ack: NDArray[np.int64],
    pkt_bad: NDArray[np.uint8],
    pkt_aux: NDArray[np.int32],
    first_index: int,
    f_proto: NDArray[np.uint8],
    f_v6: NDArray[np.bool_],
    f_vlan: NDArray[np.int32],
    f_caddr: NDArray[np.int64],
    f_saddr: NDArray[np.int64],
    f_cport: NDArray[np.int32],
    f_sport: NDArray[np.int32],
    c6: NDArray[np.uint8],
    s6: NDArray[np.uint8],
) -> None:
    """Build frame ``i`` of the chunk at ``out[out_off[i]:]``; set ``out_len[i]``.

    ``f_caddr``/``f_saddr`` hold the IPv4 address, or for IPv6 the host number placed in the
    low 32 bits of the ``c6``/``s6`` prefix.
    """
    for i in range(out_off.shape[0]):
        p = out_off[i]
        f = pkt_flow[i]
        d = pkt_dir[i]
        v6 = f_v6[f]
        proto = i64(f_proto[f])
        payload = i64(pkt_payload[i])
        size = i64(pkt_frame[i])
        cli, srv = f_caddr[f], f_saddr[f]
        _mac(out, p, 0x01 if d == 0 else 0x00, srv if d == 0 else cli)
        _mac(out, p + 6, 0x00 if d == 0 else 0x01, cli if d == 0 else srv)
        q = p + 12
        if f_vlan[f] >= 0:
            wr_be16(out, q, 0x8100)
            wr_be16(out, q + 2, f_vlan[f])
            q += 4
        wr_be16(out, q, 0x86DD if v6 else 0x0800)
        l3 = q + 2
        l4 = l3 + (40 if v6 else 20)
        sp, dp = f_cport[f], f_sport[f]
        if d == 1 and proto != ICMP:
            sp, dp = dp, sp
        hl = _l4(out, l4, proto, v6, sp, dp, pkt_flags[i], pkt_seq[i], pkt_ack[i], d, payload)
        seg = hl + payload
        if v6:
            wr_be32(out, l3, (6 << 28) | (f & 0xFFFFF))
            wr_be16(out, l3 + 4, seg)
            out[l3 + 6] = ICMPV6 if proto == ICMP else proto
            out[l3 + 7] = 64
            _ipv6_addr(out, l3 + 8, c6 if d == 0 else s6, cli if d == 0 else srv)
            _ipv6_addr(out, l3 + 24, s6 if d == 0 else c6, srv if d == 0 else cli)
        else:
            wr_be32(out, l3, (0x45 << 24) | (20 + seg))
            wr_be32(out, l3 + 4, (((first_index + i) & 0xFFFF) << 16) | 0x4000)
            out[l3 + 8] = 64
            out[l3 + 9] = proto
            wr_be32(out, l3 + 12, cli if d == 0 else srv)
            wr_be32(out, l3 + 16, srv if d == 0 else cli)
            _ipv4_header_checksum(out, l3)
        pat = pkt_seq[i]
        start = l4 + hl
        for k in range(payload):
            out[start + k] = (k + pat) & 0xFF
        for k in range(start + payload, p + size):
            out[k] = 0
        _l4_checksum(out, l3, l4, seg, proto, v6)
        out_len[i] = size
        bad = pkt_bad[i]
        if bad == BAD_TRUNCATED:
            out_len[i] = pkt_aux[i]
        elif bad != BAD_NONE:
            _malform(out, l3, l4, bad, pkt_aux[i])


@njit(cache=True, nogil=True)
def plan_packets(
    counts: NDArray[np.int64],
    proto: NDArray[np.uint8],
    hdr: NDArray[np.int32],
    isn_c: NDArray[np.int64],
    isn_s: NDArray[np.int64],
    sizes: NDArray[np.int32],
    pkt_dir: NDArray[np.uint8],
    pkt_flags: NDArray[np.uint8],
    pkt_payload: NDArray[np.int32],
    pkt_frame: NDArray[np.int32],
    pkt_seq: NDArray[np.int64],
    pkt_ack: NDArray[np.int64],
) -> None:
    """Lay out each flow's packets in flow order (see :mod:`nfvkit.gen.traffic`).

    ``sizes`` holds a sampled frame length (no FCS) per packet; control segments ignore it.
    """
    i = 0
    for f in range(counts.shape[0]):
        k = counts[f]
        h = i64(hdr[f])
        if proto[f] == TCP:
            _plan_tcp(i, k, h, isn_c[f], isn_s[f], sizes, pkt_dir, pkt_flags, pkt_payload,
                      pkt_frame, pkt_seq, pkt_ack)  # fmt: skip
        else:
            for j in range(k):
                n = i + j
                pkt_dir[n] = j & 1
                pkt_flags[n] = 0
                pkt_ack[n] = 0
                if proto[f] == ICMP and j & 1:  # the echo reply mirrors its request
                    pkt_frame[n] = pkt_frame[n - 1]
                    pkt_payload[n] = pkt_payload[n - 1]
                    pkt_seq[n] = pkt_seq[n - 1]
                    continue
                size = max(i64(sizes[n]), h)
                pkt_frame[n] = max(size, ETH_MIN)
                pkt_payload[n] = size - h
                pkt_seq[n] = j // 2 + 1 if proto[f] == ICMP else j
        i += k


@njit(cache=True, nogil=True)
def _plan_tcp(
    i: int,
    k: int,
    h: int,
    isn_c: int,
    isn_s: int,
    sizes: NDArray[np.int32],
    pkt_dir: NDArray[np.uint8],
    pkt_flags: NDArray[np.uint8],
    pkt_payload: NDArray[np.int32],
    pkt_frame: NDArray[np.int32],
    pkt_seq: NDArray[np.int64],
    pkt_ack: NDArray[np.int64],
) -> None:
    """SYN, SYN-ACK, ACK; ``k - 7`` data segments alternating client/server; FIN, ACK, FIN, ACK."""
    nxt = np.empty(2, np.int64)  # next sequence number: client, server
    nxt[0] = isn_c
    nxt[1] = isn_s
    control = max(h, ETH_MIN)
    for j in range(k):
        n = i + j
        payload = 0
        if j == 0:
            d, fl = 0, SYN
        elif j == 1:
            d, fl = 1, SYN | ACK
        elif j == 2:
            d, fl = 0, ACK
        elif j < k - 4:
            d, fl = (j - 3) & 1, PSH | ACK
            payload = max(i64(sizes[n]), h + 1) - h
        elif j == k - 4:
            d, fl = 0, FIN | ACK
        elif j == k - 3:
            d, fl = 1, ACK
        elif j == k - 2:
            d, fl = 1, FIN | ACK
        else:
            d, fl = 0, ACK
        pkt_dir[n] = d
        pkt_flags[n] = fl
        pkt_payload[n] = payload
        pkt_frame[n] = max(h + payload, control)
        pkt_seq[n] = nxt[d] & 0xFFFFFFFF
        pkt_ack[n] = 0 if j == 0 else nxt[1 - d] & 0xFFFFFFFF
        nxt[d] += payload + (1 if fl & (SYN | FIN) else 0)
