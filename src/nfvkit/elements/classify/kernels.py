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
from numba.cpython.unsafe.numbers import trailing_zeros as _trailing_zeros
from numpy.typing import NDArray

from nfvkit.elements.classify import fields as F
from nfvkit.elements.classify.compiler import AddrTable, Tables
from nfvkit.packet import flags as FL
from nfvkit.packet.batch import PacketBatch

_IP = FL.IPV4 | FL.IPV6
_DOMAIN = F.DOMAIN
trailing_zeros: Any = _trailing_zeros  # a Numba intrinsic: count trailing zero bits


@njit(cache=True, nogil=True, inline="always")
def _byte(data: NDArray[np.uint8], start: int, rel: int, at: int, length: int) -> int:
    """Byte ``at`` bytes past header offset ``rel`` of the packet at ``start``; -1 if outside."""
    if rel < 0 or rel + at >= length:
        return -1
    return int(data[start + rel + at])


@njit(cache=True, nogil=True, inline="always")
def _dscp(data: NDArray[np.uint8], start: int, l3: int, length: int, fl: int) -> int:
    b0 = _byte(data, start, l3, 0, length)
    b1 = _byte(data, start, l3, 1, length)
    if b0 < 0 or b1 < 0:
        return -1
    if fl & FL.IPV4:
        return b1 >> 2
    return ((b0 & 0x0F) << 2) | (b1 >> 6)


@njit(cache=True, nogil=True)
def _column_values(
    fid: int,
    length: NDArray[np.int32],
    port: NDArray[np.uint16],
    flags: NDArray[np.uint16],
    proto: NDArray[np.uint8],
    ethertype: NDArray[np.uint16],
    vlan: NDArray[np.uint16],
    sport: NDArray[np.uint16],
    dport: NDArray[np.uint16],
    out: NDArray[np.int32],
) -> None:
    """Values of a field held in a batch column; -1 where the packet lacks it."""
    n = flags.shape[0]
    if fid in (F.SPORT, F.DPORT):
        col = sport if fid == F.SPORT else dport
        for i in range(n):
            ok = (flags[i] & FL.L4) != 0 and (flags[i] & FL.ICMP) == 0
            out[i] = np.int32(col[i]) if ok else -1
    elif fid == F.PROTO:
        for i in range(n):
            out[i] = np.int32(proto[i]) if flags[i] & _IP else -1
    elif fid == F.IP_VERSION:
        for i in range(n):
            fl = flags[i]
            out[i] = 4 if fl & FL.IPV4 else (6 if fl & FL.IPV6 else -1)
    elif fid == F.ETHERTYPE:
        for i in range(n):
            out[i] = ethertype[i]
    elif fid in (F.VLAN, F.INNER_VLAN):
        k = 0 if fid == F.VLAN else 1
        need = FL.VLAN if fid == F.VLAN else FL.QINQ
        for i in range(n):
            out[i] = np.int32(vlan[i, k] & 0xFFF) if flags[i] & need else -1
    elif fid == F.IN_PORT:
        for i in range(n):
            out[i] = port[i]
    elif fid == F.LENGTH:
        for i in range(n):
            out[i] = min(length[i], 65535)
    elif fid == F.FRAGMENT:
        for i in range(n):
            fl = flags[i]
            out[i] = (1 if fl & FL.FRAGMENT else 0) if fl & _IP else -1


@njit(cache=True, nogil=True)
def _byte_values(
    fid: int,
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    l3_off: NDArray[np.int16],
    l4_off: NDArray[np.int16],
    flags: NDArray[np.uint16],
    out: NDArray[np.int32],
) -> None:
    """Values of a field read from header bytes (TCP flags, ICMP type/code, DSCP)."""
    for i in range(flags.shape[0]):
        fl = int(flags[i])
        start = int(offset[i])
        n = int(length[i])
        v = -1
        if fid == F.TCP_FLAGS:
            if fl & FL.TCP:
                v = _byte(data, start, int(l4_off[i]), 13, n)
        elif fid in (F.ICMP_TYPE, F.ICMP_CODE):
            if fl & FL.ICMP:
                v = _byte(data, start, int(l4_off[i]), 0 if fid == F.ICMP_TYPE else 1, n)
        elif fl & _IP:
            v = _dscp(data, start, int(l3_off[i]), n, fl)
        out[i] = v


@njit(cache=True, nogil=True, inline="always")
def _search4(
    b4: NDArray[np.uint32], l1: NDArray[np.int32], base: int, limit: int, shift: int, v: int
) -> int:
    if v < base:
        return 0
    if v >= limit:
        return int(b4.shape[0]) - 1
    top = (v - base) >> shift
    lo = int(l1[top])
    hi = int(l1[top + 1])
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if int(b4[mid]) <= v:
            lo = mid
        else:
            hi = mid - 1
    return lo


@njit(cache=True, nogil=True, inline="always")
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
def _addr_rows(
    t: AddrTable, flags: NDArray[np.uint16], words: NDArray[np.uint32], out: Any
) -> None:
    """Class row of address field ``t`` for every packet into ``out`` (a column view)."""
    b4, c4, l1, base, limit, shift = t.b4, t.c4, t.l1, t.base, t.limit, t.shift
    b6h, b6l, c6, absent = t.b6h, t.b6l, t.c6, t.absent
    s32 = np.uint64(32)
    for i in range(flags.shape[0]):
        fl = int(flags[i])
        if fl & FL.IPV4:
            out[i] = c4[_search4(b4, l1, base, limit, shift, int(words[i, 3]))]
        elif fl & FL.IPV6:
            h = (np.uint64(words[i, 0]) << s32) | np.uint64(words[i, 1])
            low = (np.uint64(words[i, 2]) << s32) | np.uint64(words[i, 3])
            out[i] = c6[_search6(b6h, b6l, h, low)]
        else:
            out[i] = absent


@njit(cache=True, nogil=True)
def _direct_rows(
    fid: int,
    tab: NDArray[np.int32],
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
    vals: NDArray[np.int32],
    out: Any,
) -> None:
    """Class row of directly indexed field ``fid`` (table ``tab``) for every packet."""
    if fid in (F.TCP_FLAGS, F.ICMP_TYPE, F.ICMP_CODE, F.DSCP):
        _byte_values(fid, data, offset, length, l3_off, l4_off, flags, vals)
    else:
        _column_values(fid, length, port, flags, proto, ethertype, vlan, sport, dport, vals)
    absent = tab.shape[0] - 1
    for i in range(flags.shape[0]):
        v = vals[i]
        out[i] = tab[v if v >= 0 else absent]


@njit(cache=True, nogil=True, inline="always")
def _first_rule(
    bv: NDArray[np.uint64], abv: NDArray[np.uint64], rows: NDArray[np.int32], nrows: int
) -> int:
    """Lowest rule index set in the AND of the class vectors ``rows[:nrows]``; -1 if none."""
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
                return int(w * 64 + np.int64(trailing_zeros(word)))
            agg &= agg - one
    return -1


@njit(cache=True, nogil=True)
def _class_rows(
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
) -> tuple[NDArray[np.int32], int]:
    """Per packet, the class row of every active field (field-major passes); and their count."""
    n = offset.shape[0]
    rows = np.zeros((n, F.NFIELDS + 1), dtype=np.int32)
    vals = np.empty(n, dtype=np.int32)
    nf = 0
    if t.addr_active[0]:
        _addr_rows(t.src, flags, src, rows[:, nf])
        nf += 1
    if t.addr_active[1]:
        _addr_rows(t.dst, flags, dst, rows[:, nf])
        nf += 1
    for fid in t.direct:
        base = t.dbase[fid]
        tab = t.dtab[base : base + _DOMAIN[fid] + 1]
        _direct_rows(
            fid, tab, data, offset, length, port, l3_off, l4_off, flags, proto, ethertype, vlan,
            sport, dport, vals, rows[:, nf],
        )  # fmt: skip
        nf += 1
    return rows, max(nf, 1)  # no active field: row 0 (every rule) for every packet


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
    rows, nf = _class_rows(
        t, data, offset, length, port, l3_off, l4_off, flags, proto, ethertype, vlan, src, dst,
        sport, dport,
    )  # fmt: skip
    bv = t.bv
    abv = t.abv
    for i in range(offset.shape[0]):
        out[i] = _first_rule(bv, abv, rows[i], nf)


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
    rows, nf = _class_rows(
        t, data, offset, length, port, l3_off, l4_off, flags, proto, ethertype, vlan, src, dst,
        sport, dport,
    )  # fmt: skip
    bv = t.bv
    abv = t.abv
    nrules = t.nrules
    for i in range(offset.shape[0]):
        r = _first_rule(bv, abv, rows[i], nf)
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
    lookup_batch(tables, *_columns(batch), out)  # type: ignore[call-arg]
    return out


def apply_fates(
    tables: Tables, batch: PacketBatch, rule_fate: NDArray[np.int16], hits: NDArray[np.int64]
) -> None:
    """Write each packet's fate from its first matching rule (``rule_fate[-1]``: no match)."""
    fate_batch(tables, *_columns(batch), rule_fate, hits, batch.fate)  # type: ignore[call-arg]
