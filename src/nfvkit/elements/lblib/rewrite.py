"""Header rewrites of the ``lb`` element with incremental checksums (RFC 1624 eqn. 3).

Addresses and ports are rewritten in place, their checksum deltas (the sum of ~old and new
16-bit words) summed, and the checksums updated once: the IPv4 header checksum for addresses,
the TCP/UDP checksum for addresses (its pseudo-header) and ports. A zero UDP checksum (none,
over IPv4) stays zero; an updated UDP checksum of 0 is sent as 0xFFFF (RFC 768). The batch's
address and port columns follow the bytes.
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

from nfvkit.packet.checksum import csum_fold
from nfvkit.packet.jit import inlined
from nfvkit.packet.parse import i64

Arr = NDArray[Any]


@inlined
def _load16(data: Arr, p: int) -> int:
    return (i64(data[p]) << 8) | i64(data[p + 1])


@inlined
def _store16(data: Arr, p: int, v: int) -> None:
    data[p] = (v >> 8) & 0xFF
    data[p + 1] = v & 0xFF


@inlined
def _swap_addr(data: Arr, p: int, words: Arr, row: int, v6: bool) -> int:
    """Write address ``words[row]`` (4 column words) at ``data[p:]``; return the checksum
    delta: the sum of ~old and new 16-bit words."""
    first = 0 if v6 else 3
    acc = 0
    for w in range(first, 4):
        q = p + 4 * (w - first)
        old = (_load16(data, q) << 16) | _load16(data, q + 2)
        new = i64(words[row, w])
        acc += (~(old >> 16) & 0xFFFF) + (~old & 0xFFFF) + ((new >> 16) & 0xFFFF) + (new & 0xFFFF)
        _store16(data, q, new >> 16)
        _store16(data, q + 2, new)
    return acc


@inlined
def _copy_row(out: Arr, i: int, words: Arr, row: int) -> None:
    for w in range(4):
        out[i, w] = words[row, w]


@inlined
def _swap_port(data: Arr, p: int, new: int) -> int:
    old = _load16(data, p)
    _store16(data, p, new)
    return (~old & 0xFFFF) + new


@inlined
def _apply(data: Arr, p: int, acc: int) -> int:
    """RFC 1624 eqn. 3 on the checksum at ``data[p:]``: HC' = ~(~HC + acc)."""
    v = ~csum_fold((~_load16(data, p) & 0xFFFF) + acc) & 0xFFFF
    _store16(data, p, v)
    return v


@inlined
def _fix_sums(data: Arr, b: int, l3: int, l4: int, pr: int, v6: bool, ip: int, l4acc: int) -> None:
    if not v6 and ip:
        _apply(data, b + l3 + 10, ip)
    if pr == 6:
        _apply(data, b + l4 + 16, l4acc)
    elif pr == 17 and _load16(data, b + l4 + 6) != 0 and _apply(data, b + l4 + 6, l4acc) == 0:
        _store16(data, b + l4 + 6, 0xFFFF)


@inlined
def rewrite_forward(
    data: Arr, b: int, l3: int, l4: int, pr: int, v6: bool, i: int, cols: tuple[Arr, Arr, Arr, Arr],
    baddr: Arr, bport: Arr, slot: int, snat: Arr, snat_on: bool, xp: int,
) -> None:  # fmt: skip
    """Destination → the backend (address, and port if it has one); with SNAT, source → the
    SNAT address and port ``xp``. Columns follow the bytes."""
    src, dst, sport, dport = cols
    acc = _swap_addr(data, b + l3 + (24 if v6 else 16), baddr, slot, v6)
    _copy_row(dst, i, baddr, slot)
    pacc = 0
    if bport[slot] >= 0:
        pacc += _swap_port(data, b + l4 + 2, i64(bport[slot]))
        dport[i] = bport[slot]
    if snat_on:
        acc += _swap_addr(data, b + l3 + (8 if v6 else 12), snat, 0, v6)
        _copy_row(src, i, snat, 0)
        pacc += _swap_port(data, b + l4, xp)
        sport[i] = xp
    _fix_sums(data, b, l3, l4, pr, v6, acc, acc + pacc)


@inlined
def rewrite_reply(
    data: Arr, b: int, l3: int, l4: int, pr: int, v6: bool, i: int, cols: tuple[Arr, Arr, Arr, Arr],
    vaddr: Arr, vip: int, vport: int, client: Arr, cport: int, snat_on: bool,
) -> None:  # fmt: skip
    """Source → the VIP and its port; with SNAT, destination → the client and its port."""
    src, dst, sport, dport = cols
    acc = _swap_addr(data, b + l3 + (8 if v6 else 12), vaddr, vip, v6)
    _copy_row(src, i, vaddr, vip)
    pacc = _swap_port(data, b + l4, vport)
    sport[i] = vport
    if snat_on:
        acc += _swap_addr(data, b + l3 + (24 if v6 else 16), client, 0, v6)
        _copy_row(dst, i, client, 0)
        pacc += _swap_port(data, b + l4 + 2, cport)
        dport[i] = cport
    _fix_sums(data, b, l3, l4, pr, v6, acc, acc + pacc)
