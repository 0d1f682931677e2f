"""Numba kernels that look packets up in compiled rule :class:`~.compiler.Tables`.

Field extraction follows the packet columns that :mod:`nfvkit.packet.batch` documents; fields
not held in a column (TCP flags, ICMP type and code, DSCP) are read from the packet bytes at
``l3_off`` / ``l4_off``. A field a packet does not carry maps to the field's "absent" class,
whose vector holds only the rules that leave that field unconstrained.

Field ids and parse flags are fixed code constants; drop codes and port numbers arrive as
arguments (``rule_fate``), never as globals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros
from numpy.typing import NDArray

from nfvkit.elements.classify import fields as F
from nfvkit.elements.classify.compiler import AddrTable, Tables
from nfvkit.packet import flags as FL
from nfvkit.packet.batch import PacketBatch

_IP = FL.IPV4 | FL.IPV6
_DOMAIN = F.DOMAIN


@njit(cache=True, nogil=True, inline="always")
def _byte(data: NDArray[np.uint8], start: int, rel: int, at: int, length: int) -> int:
    """Byte ``at`` bytes past header offset ``rel`` of the packet at ``start``; -1 if outside."""
    if rel < 0 or rel + at >= length:
        return -1
    return int(data[start + rel + at])


@njit(cache=True, nogil=True)
def _dscp(data: NDArray[np.uint8], start: int, l3: int, length: int, fl: int) -> int:
    b0 = _byte(data, start, l3, 0, length)
    b1 = _byte(data, start, l3, 1, length)
    if b0 < 0 or b1 < 0:
        return -1
    if fl & FL.IPV4:
        return b1 >> 2
    return ((b0 & 0x0F) << 2) | (b1 >> 6)


@njit(cache=True, nogil=True)
def _direct_value(
    fid: int,
    i: int,
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    port: NDArray[np.uint16],
    l3_off: NDArray[np.int16],
    l4_off: NDArray[np.int16],
    flags: NDArray[np.uint16],
    proto: NDArray[np.uint8],
    ethertype: NDArray[np.uint16],
    vlan: NDArray[np.uint16],
    sport: NDArray[np.uint16],
    dport: NDArray[np.uint16],
) -> int:
    """The value of directly indexed field ``fid`` for packet ``i``; -1 if it lacks it."""
    fl = int(flags[i])
    if fid == F.SPORT or fid == F.DPORT:
        if (fl & FL.L4) == 0 or (fl & FL.ICMP) != 0:
            return -1
        return int(sport[i]) if fid == F.SPORT else int(dport[i])
    if fid == F.PROTO:
        return int(proto[i]) if fl & _IP else -1
    if fid == F.IP_VERSION:
        return 4 if fl & FL.IPV4 else (6 if fl & FL.IPV6 else -1)
    if fid == F.ETHERTYPE:
        return int(ethertype[i])
    if fid == F.VLAN:
        return int(vlan[i, 0]) & 0xFFF if fl & FL.VLAN else -1
    if fid == F.INNER_VLAN:
        return int(vlan[i, 1]) & 0xFFF if fl & FL.QINQ else -1
    if fid == F.IN_PORT:
        return int(port[i])
    if fid == F.LENGTH:
        return min(int(length[i]), 65535)
    if fid == F.FRAGMENT:
        return (1 if fl & FL.FRAGMENT else 0) if fl & _IP else -1
    start = int(offset[i])
    n = int(length[i])
    if fid == F.TCP_FLAGS:
        return _byte(data, start, int(l4_off[i]), 13, n) if fl & FL.TCP else -1
    if fid == F.ICMP_TYPE or fid == F.ICMP_CODE:
        at = 0 if fid == F.ICMP_TYPE else 1
        return _byte(data, start, int(l4_off[i]), at, n) if fl & FL.ICMP else -1
    if fid == F.DSCP:
        return _dscp(data, start, int(l3_off[i]), n, fl) if fl & _IP else -1
    return -1


@njit(cache=True, nogil=True)
def _search4(b4: NDArray[np.uint32], l1: NDArray[np.int32], shift: int, v: int) -> int:
    top = v >> shift
    lo = int(l1[top])
    hi = int(l1[top + 1])
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if int(b4[mid]) <= v:
            lo = mid
        else:
            hi = mid - 1
    return lo


@njit(cache=True, nogil=True)
def _search6(bh: NDArray[np.uint64], bl: NDArray[np.uint64], h: np.uint64, low: np.uint64) -> int:
    lo = 0
    hi = bh.shape[0] - 1
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if bh[mid] < h or (bh[mid] == h and bl[mid] <= low):
            lo = mid
        else:
            hi = mid - 1
    return lo


@njit(cache=True, nogil=True)
def _addr_row(t: AddrTable, fl: int, words: NDArray[np.uint32], i: int) -> int:
    if fl & FL.IPV4:
        return int(t.c4[_search4(t.b4, t.l1, t.shift, int(words[i, 3]))])
    if fl & FL.IPV6:
        s32 = np.uint64(32)
        h = (np.uint64(words[i, 0]) << s32) | np.uint64(words[i, 1])
        low = (np.uint64(words[i, 2]) << s32) | np.uint64(words[i, 3])
        return int(t.c6[_search6(t.b6h, t.b6l, h, low)])
    return t.absent


@njit(cache=True, nogil=True)
def _first_rule(t: Tables, rows: NDArray[np.int64], nrows: int) -> int:
    """Lowest rule index set in the AND of the class vectors ``rows[:nrows]``; -1 if none."""
    abv = t.abv
    bv = t.bv
    one = np.uint64(1)
    for a in range(abv.shape[1]):
        agg = abv[rows[0], a]
        for k in range(1, nrows):
            agg &= abv[rows[k], a]
        while agg != 0:
            w = a * 64 + np.int64(trailing_zeros(agg))
            word = bv[rows[0], w]
            for k in range(1, nrows):
                word &= bv[rows[k], w]
            if word != 0:
                return w * 64 + np.int64(trailing_zeros(word))
            agg &= agg - one
    return -1


@njit(cache=True, nogil=True)
def _match_packet(
    t: Tables,
    rows: NDArray[np.int64],
    i: int,
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    port: NDArray[np.uint16],
    l3_off: NDArray[np.int16],
    l4_off: NDArray[np.int16],
    flags: NDArray[np.uint16],
    proto: NDArray[np.uint8],
    ethertype: NDArray[np.uint16],
    vlan: NDArray[np.uint16],
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    sport: NDArray[np.uint16],
    dport: NDArray[np.uint16],
) -> int:
    fl = int(flags[i])
    n = 0
    if t.addr_active[0]:
        rows[n] = _addr_row(t.src, fl, src, i)
        n += 1
    if t.addr_active[1]:
        rows[n] = _addr_row(t.dst, fl, dst, i)
        n += 1
    for fid in t.direct:
        v = _direct_value(
            fid, i, data, offset, length, port, l3_off, l4_off, flags, proto, ethertype, vlan,
            sport, dport,
        )  # fmt: skip
        if v < 0:
            v = _DOMAIN[fid]
        rows[n] = t.dtab[t.dbase[fid] + v]
        n += 1
    if n == 0:
        rows[0] = 0
        n = 1
    return _first_rule(t, rows, n)


@njit(cache=True, nogil=True)
def lookup_batch(
    t: Tables,
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    port: NDArray[np.uint16],
    l3_off: NDArray[np.int16],
    l4_off: NDArray[np.int16],
    flags: NDArray[np.uint16],
    proto: NDArray[np.uint8],
    ethertype: NDArray[np.uint16],
    vlan: NDArray[np.uint16],
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    sport: NDArray[np.uint16],
    dport: NDArray[np.uint16],
    out: NDArray[np.int32],
) -> None:
    """Write the index of the first matching rule (or -1) of every packet into ``out``."""
    rows = np.zeros(F.NFIELDS + 2, dtype=np.int64)
    for i in range(offset.shape[0]):
        out[i] = _match_packet(
            t, rows, i, data, offset, length, port, l3_off, l4_off, flags, proto, ethertype,
            vlan, src, dst, sport, dport,
        )  # fmt: skip


@njit(cache=True, nogil=True)
def fate_batch(
    t: Tables,
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    port: NDArray[np.uint16],
    l3_off: NDArray[np.int16],
    l4_off: NDArray[np.int16],
    flags: NDArray[np.uint16],
    proto: NDArray[np.uint8],
    ethertype: NDArray[np.uint16],
    vlan: NDArray[np.uint16],
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    sport: NDArray[np.uint16],
    dport: NDArray[np.uint16],
    rule_fate: NDArray[np.int16],
    hits: NDArray[np.int64],
    fate: NDArray[np.int16],
) -> None:
    """Set ``fate[i] = rule_fate[rule]`` (``rule_fate[-1]`` when no rule matches); count hits."""
    rows = np.zeros(F.NFIELDS + 2, dtype=np.int64)
    nrules = t.nrules
    for i in range(offset.shape[0]):
        r = _match_packet(
            t, rows, i, data, offset, length, port, l3_off, l4_off, flags, proto, ethertype,
            vlan, src, dst, sport, dport,
        )  # fmt: skip
        if r < 0:
            r = nrules
        hits[r] += 1
        fate[i] = rule_fate[r]


def _columns(batch: PacketBatch) -> tuple[NDArray[Any], ...]:
    b = batch
    return (
        b.data, b.offset, b.length, b.port, b.l3_off, b.l4_off, b.flags, b.proto, b.ethertype,
        b.vlan, b.src, b.dst, b.sport, b.dport,
    )  # fmt: skip


def lookup(tables: Tables, batch: PacketBatch) -> NDArray[np.int32]:
    """The index of the first rule each packet of ``batch`` matches, -1 for none."""
    out = np.empty(len(batch), dtype=np.int32)
    lookup_batch(tables, *_columns(batch), out)
    return out


def apply_fates(
    tables: Tables, batch: PacketBatch, rule_fate: NDArray[np.int16], hits: NDArray[np.int64]
) -> None:
    """Write each packet's fate from its first matching rule (``rule_fate[-1]``: no match)."""
    fate_batch(tables, *_columns(batch), rule_fate, hits, batch.fate)
