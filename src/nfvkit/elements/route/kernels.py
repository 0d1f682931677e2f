"""The ``router``'s data path: one Numba kernel per batch.

Per packet (already-dropped and ``MALFORMED`` packets are left as they are):

1. not IPv4/IPv6: ARP goes to the ARP port if one is configured; everything else is dropped
   as ``not_ip``;
2. longest-prefix match of the destination (:mod:`.lpm`); no route -> ``no_route``;
3. TTL / hop limit <= 1 on arrival -> ``ttl_expired``;
4. next hop: the route's neighbour, or for a connected route the neighbour whose address is
   the packet's destination (open-addressing table) -> ``no_neighbour`` if there is none;
5. rewrite: TTL - 1 with the IPv4 header checksum updated incrementally (RFC 1624), or hop
   limit - 1; destination MAC = the next hop's, source MAC = the output port's; fate = port.

The lookups of step 2 run first, for the whole batch, in a loop of their own: its table reads
are independent, so the CPU keeps many cache misses in flight (twice the packet rate of one
fused loop when the packets are cache-resident).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.route.lpm import lookup4, lookup6
from nfvkit.packet import flags as F
from nfvkit.packet.checksum import csum_update16
from nfvkit.packet.parse import i64, kernel

# Positions of the drop fates in the ``codes`` array the kernel receives.
R_NO_ROUTE = 0
R_TTL_EXPIRED = 1
R_NO_NEIGHBOUR = 2
R_NOT_IP = 3


@kernel
def mix32(x: int) -> int:
    """A 32-bit integer hash (low bits of the products are exact under int64 wrap-around)."""
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    return x ^ (x >> 16)


@kernel
def neighbour_hash(w0: int, w1: int, w2: int, w3: int) -> int:
    """Hash of an address given as four words (IPv4: 0, 0, 0xffff, address)."""
    return mix32(mix32(mix32(w0 ^ 0x2545F491) ^ w1) ^ w2 ^ mix32(w3))


@kernel
def find_neighbour(
    keys: NDArray[np.uint32], vals: NDArray[np.int32], addr: NDArray[np.uint32], i: int
) -> int:
    """Neighbour index for address ``addr[i]`` in the open-addressing table; -1 if none."""
    mask = vals.shape[0] - 1
    w0, w1, w2, w3 = i64(addr[i, 0]), i64(addr[i, 1]), i64(addr[i, 2]), i64(addr[i, 3])
    h = neighbour_hash(w0, w1, w2, w3) & mask
    while vals[h] >= 0:
        if keys[h, 3] == w3 and keys[h, 2] == w2 and keys[h, 1] == w1 and keys[h, 0] == w0:
            return i64(vals[h])
        h = (h + 1) & mask
    return -1


@kernel
def _rewrite(
    data: NDArray[np.uint8],
    b: int,
    p: int,
    v6: bool,
    dmac: NDArray[np.uint8],
    nh: int,
    smac: NDArray[np.uint8],
    port: int,
) -> None:
    """Decrement TTL / hop limit (IPv4 checksum updated) and write both MAC addresses."""
    if v6:
        data[p + 7] -= 1
    else:
        ttl = i64(data[p + 8])
        word = (ttl << 8) | i64(data[p + 9])
        hc = (i64(data[p + 10]) << 8) | i64(data[p + 11])
        hc = csum_update16(hc, word, word - 256)
        data[p + 8] = ttl - 1
        data[p + 10] = hc >> 8
        data[p + 11] = hc & 0xFF
    for k in range(6):
        data[b + k] = dmac[nh, k]
        data[b + 6 + k] = smac[port, k]


@kernel
def _lookup_all(
    flags: NDArray[np.uint16],
    dst: NDArray[np.uint32],
    v4_root: NDArray[np.uint32],
    v4_nodes: NDArray[np.uint32],
    v6_root: NDArray[np.uint32],
    v6_nodes: NDArray[np.uint32],
    matched: NDArray[np.int32],
) -> None:
    """Route index per packet (-1: none or not IP). A loop of lookups only: independent
    table reads that the CPU overlaps, where the full per-packet work would serialize them."""
    for i in range(flags.shape[0]):
        fl = flags[i]
        r = -1
        if fl & F.IPV4:
            r = lookup4(v4_root, v4_nodes, i64(dst[i, 3]))
        elif fl & F.IPV6:
            r = lookup6(v6_root, v6_nodes, dst, i)
        matched[i] = r


@kernel
def route_batch(
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    l3_off: NDArray[np.int16],
    flags: NDArray[np.uint16],
    fate: NDArray[np.int16],
    dst: NDArray[np.uint32],
    v4_root: NDArray[np.uint32],
    v4_nodes: NDArray[np.uint32],
    v6_root: NDArray[np.uint32],
    v6_nodes: NDArray[np.uint32],
    route_port: NDArray[np.int16],
    route_nh: NDArray[np.int32],
    hits: NDArray[np.int64],
    nh_mac: NDArray[np.uint8],
    port_mac: NDArray[np.uint8],
    nb_keys: NDArray[np.uint32],
    nb_vals: NDArray[np.int32],
    codes: NDArray[np.int16],
    arp_port: int,
    matched: NDArray[np.int32],
) -> None:
    """Route every packet of a parsed batch (see the module docstring); ``matched`` is
    scratch space for one route index per packet."""
    _lookup_all(flags, dst, v4_root, v4_nodes, v6_root, v6_nodes, matched)
    for i in range(offset.shape[0]):
        fl = i64(flags[i])
        if fate[i] < 0 or fl & F.MALFORMED:
            continue
        v6 = (fl & F.IPV6) != 0
        if not v6 and (fl & F.IPV4) == 0:
            fate[i] = arp_port if (fl & F.ARP) != 0 and arp_port >= 0 else codes[R_NOT_IP]
            continue
        r = i64(matched[i])
        if r < 0:
            fate[i] = codes[R_NO_ROUTE]
            continue
        hits[r] += 1
        b = offset[i]
        p = b + l3_off[i]
        if data[p + 7 if v6 else p + 8] <= 1:
            fate[i] = codes[R_TTL_EXPIRED]
            continue
        nh = i64(route_nh[r])
        if nh < 0:
            nh = find_neighbour(nb_keys, nb_vals, dst, i)
            if nh < 0:
                fate[i] = codes[R_NO_NEIGHBOUR]
                continue
        port = i64(route_port[r])
        _rewrite(data, b, p, v6, nh_mac, nh, port_mac, port)
        fate[i] = port
