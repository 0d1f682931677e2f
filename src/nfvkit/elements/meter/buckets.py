"""Token-bucket kernels of the policer: RFC 2697 srTCM metering, per class and per flow.

A meter has a committed bucket ``tc`` (capacity CBS) and an excess bucket ``te`` (capacity
EBS), both full at first. Tokens arrive at CIR from packet timestamps: they fill ``tc`` up to
CBS and what overflows fills ``te`` up to EBS (RFC 2697 section 3.1). A packet costing ``B``
tokens is (section 3.2, colour-blind) green if ``tc >= B`` (``tc -= B``), else yellow if
``te >= B`` (``te -= B``), else red. Colour-aware, a pre-coloured yellow packet may only take
``te`` and a red one stays red without taking tokens. A single-rate policer is the same meter
with EBS = 0: conforming packets are green, the rest red.

All quantities are integers in 10^-9 token (see :mod:`.rates`). Per-class meters live in
``cstate`` rows (``tc``, ``te``, ``last``); per-flow meters in a state table whose entries hold
``tc`` and ``te`` and expire ``lifetime`` ns after their last packet, so ``last`` is
``expire - lifetime`` (the lifetime is at least the time to refill both buckets, so a flow that
comes back after its entry expired gains nothing by starting full).

Metering order: the flow's meter first (colour-aware on the packet's DSCP colour if
configured), then its class's meter, colour-aware on the flow meter's result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.meter.prefetch import PREFETCH_AHEAD, prefetch_row
from nfvkit.packet import flags as FL
from nfvkit.packet.checksum import csum_update16
from nfvkit.packet.parse import i64, kernel
from nfvkit.vnf.state import FLOW_KEY, StateSchema, flow_key
from nfvkit.vnf.state.kernels import Table, find_or_insert

FLOW_BUCKETS = StateSchema(FLOW_KEY, (("tc", "<i8"), ("te", "<i8")))
GREEN, YELLOW, RED = 0, 1, 2
COLOURS = ("green", "yellow", "red")
NEVER = -(1 << 62)

# meter parameter columns (cparams rows, fparams)
M_CIR, M_CBS, M_EBS, M_PER_BYTE, M_PER_PACKET, N_METER = range(6)
# cstate columns
S_TC, S_TE, S_LAST = range(3)
# settings: fate per colour (3 entries from A_FATE), DSCP to write per colour (3 from A_REMARK,
# -1: none), colour-aware (0/1), size from IP length (0/1), default class row (-1: none),
# per-flow metering (0/1), per-flow on_full (0 pass, 1 drop, 2 evict), flow entry lifetime (ns),
# fate of a packet whose flow found no room (on_full: drop)
A_FATE, A_REMARK, A_AWARE, A_SIZE_IP, A_DEFAULT = 0, 3, 6, 7, 8
A_FLOW, A_ON_FULL, A_LIFETIME, A_NO_STATE_FATE, N_SETTINGS = 9, 10, 11, 12, 13
# counters
K_UNPOLICED, K_FLOW_UNMETERED, K_FLOW_REFUSED, K_REMARKED, N_COUNTERS = range(5)

_IP = FL.IPV4 | FL.IPV6


@kernel
def refill(tc: int, te: int, dt: int, cir: int, cbs: int, ebs: int) -> tuple[int, int]:
    """Buckets after ``dt`` ns at ``cir``: ``tc`` fills to ``cbs``, the overflow ``te`` to
    ``ebs`` (no intermediate product can overflow: a long gap fills both)."""
    if dt <= 0 or cir <= 0:
        return tc, te
    room = (cbs - tc) + (ebs - te)
    if room <= 0 or dt > room // cir:
        return cbs, ebs
    add = dt * cir
    to_c = min(add, cbs - tc)
    return tc + to_c, min(te + add - to_c, ebs)


@kernel
def mark(tc: int, te: int, cost: int, pre: int) -> tuple[int, int, int]:
    """RFC 2697 marking (colour-aware; colour-blind is ``pre`` = green): ``(tc, te, colour)``."""
    if pre == GREEN and tc >= cost:
        return tc - cost, te, GREEN
    if pre != RED and te >= cost:
        return tc, te - cost, YELLOW
    return tc, te, RED


@kernel
def _dscp(data: NDArray[np.uint8], p: int, n: int, fl: int) -> int:
    """DSCP of the IP header at ``data[p]`` (``n`` bytes left); -1 when truncated or not IP."""
    if n < 2:
        return -1
    if fl & FL.IPV4:
        return i64(data[p + 1]) >> 2
    if fl & FL.IPV6:
        return ((i64(data[p]) & 0x0F) << 2) | (i64(data[p + 1]) >> 6)
    return -1


@kernel
def remark_dscp(data: NDArray[np.uint8], p: int, n: int, fl: int, dscp: int) -> bool:
    """Write ``dscp`` into the IP header at ``data[p]`` (ECN bits kept; IPv4 header checksum
    updated incrementally, RFC 1624); whether the header changed."""
    if fl & FL.IPV4:
        if n < 12:
            return False
        tos = i64(data[p + 1])
        new = (dscp << 2) | (tos & 0x03)
        if new == tos:
            return False
        hi = i64(data[p]) << 8
        hc = (i64(data[p + 10]) << 8) | i64(data[p + 11])
        hc = csum_update16(hc, hi | tos, hi | new)
        data[p + 1] = new
        data[p + 10] = hc >> 8
        data[p + 11] = hc & 0xFF
        return True
    if n < 2:
        return False
    tclass = ((i64(data[p]) & 0x0F) << 4) | (i64(data[p + 1]) >> 4)
    new = (dscp << 2) | (tclass & 0x03)
    if new == tclass:
        return False
    data[p] = (i64(data[p]) & 0xF0) | (new >> 4)
    data[p + 1] = ((new & 0x0F) << 4) | (i64(data[p + 1]) & 0x0F)
    return True


@kernel
def _flow_meter(
    tbl: Table, key: NDArray[np.uint32], h: int, now: int, fparams: NDArray[np.int64],
    lifetime: int, nbytes: int, pre: int,
) -> tuple[int, int]:  # fmt: skip
    """Meter one packet on its flow's buckets: ``(colour, slot)``; slot -1 when refused."""
    s, created = find_or_insert(tbl, key, h, now)
    if s < 0:
        return pre, -1
    rows = tbl[0]
    cbs, ebs = fparams[M_CBS], fparams[M_EBS]
    if created:
        tc, te = cbs, ebs
    else:
        tc, te = refill(
            rows[s].tc, rows[s].te, now - (rows[s].expire - lifetime), fparams[M_CIR], cbs, ebs
        )
    cost = nbytes * fparams[M_PER_BYTE] + fparams[M_PER_PACKET]
    tc, te, colour = mark(tc, te, cost, pre)
    rows[s].tc = tc
    rows[s].te = te
    rows[s].expire = max(rows[s].expire, now + lifetime)
    return colour, s


@kernel
def _class_meter(
    cparams: NDArray[np.int64], cstate: NDArray[np.int64], c: int, now: int, nbytes: int,
    pre: int,
) -> int:  # fmt: skip
    """Meter one packet on class ``c``'s buckets; its colour."""
    cbs, ebs = cparams[c, M_CBS], cparams[c, M_EBS]
    last = cstate[c, S_LAST]
    tc, te = cstate[c, S_TC], cstate[c, S_TE]
    if last != NEVER:
        tc, te = refill(tc, te, now - last, cparams[c, M_CIR], cbs, ebs)
    cost = nbytes * cparams[c, M_PER_BYTE] + cparams[c, M_PER_PACKET]
    tc, te, colour = mark(tc, te, cost, pre)
    cstate[c, S_TC] = tc
    cstate[c, S_TE] = te
    cstate[c, S_LAST] = max(last, now)
    return colour


@kernel
def police_kernel(
    tbl: Table, key: NDArray[np.uint32], hashes: NDArray[np.int64],
    cparams: NDArray[np.int64], cstate: NDArray[np.int64], fparams: NDArray[np.int64],
    settings: NDArray[np.int64], precolour: NDArray[np.int64], colours: NDArray[np.int64],
    counters: NDArray[np.int64], classes: NDArray[np.int32], now_col: NDArray[np.int64],
    data: NDArray[np.uint8], offset: NDArray[np.int64], length: NDArray[np.int32],
    l3_off: NDArray[np.int16], flags: NDArray[np.uint16], ip_len: NDArray[np.int32],
    src: NDArray[np.uint32], dst: NDArray[np.uint32], sport: NDArray[np.uint16],
    dport: NDArray[np.uint16], proto: NDArray[np.uint8], fate: NDArray[np.int16],
) -> None:  # fmt: skip
    """Meter and act on every packet (see the module docstring).

    ``classes``: each packet's class row, -1 for none; ``hashes``: flow-key hashes (per-flow
    metering on); ``colours``: packet counts ``[class rows..., per-flow, total] x colour``.
    """
    nclass = cstate.shape[0]
    rows = tbl[0]
    mask = int(rows.shape[0]) - 1
    flow_on, lifetime = settings[A_FLOW], settings[A_LIFETIME]
    n = offset.shape[0]
    for i in range(n):
        if flow_on and i + PREFETCH_AHEAD < n:
            prefetch_row(rows, hashes[i + PREFETCH_AHEAD] & mask)
        fl = int(flags[i])
        is_ip = (fl & _IP) != 0 and (fl & FL.MALFORMED) == 0
        start, l3, size = int(offset[i]), int(l3_off[i]), int(length[i])
        nbytes = int(ip_len[i]) if is_ip and settings[A_SIZE_IP] else size
        now = int(now_col[i])
        colour = GREEN
        if settings[A_AWARE] and is_ip:
            d = _dscp(data, start + l3, size - l3, fl)
            colour = int(precolour[d]) if d >= 0 else GREEN
        metered = False
        if flow_on and is_ip:
            flow_key(key, src, dst, i, int(sport[i]), int(dport[i]), int(proto[i]))
            colour, s = _flow_meter(tbl, key, hashes[i], now, fparams, lifetime, nbytes, colour)
            if s >= 0:
                metered = True
                colours[nclass, colour] += 1
            elif settings[A_ON_FULL] == 1:
                counters[K_FLOW_REFUSED] += 1
                fate[i] = settings[A_NO_STATE_FATE]
                continue
            else:
                counters[K_FLOW_UNMETERED] += 1
        c = int(classes[i])
        if c < 0:
            c = int(settings[A_DEFAULT])
        if c >= 0:
            colour = _class_meter(cparams, cstate, c, now, nbytes, colour)
            colours[c, colour] += 1
            metered = True
        if not metered:
            counters[K_UNPOLICED] += 1
            continue
        colours[nclass + 1, colour] += 1
        f = settings[A_FATE + colour]
        fate[i] = f
        dscp = settings[A_REMARK + colour]
        remark = f >= 0 and dscp >= 0 and is_ip and l3 >= 0
        if remark and remark_dscp(data, start + l3, size - l3, fl, int(dscp)):
            counters[K_REMARKED] += 1


def new_class_state(cparams: NDArray[np.int64]) -> NDArray[np.int64]:
    """Per-class buckets, full (RFC 2697: both buckets start full), never updated."""
    state = np.zeros((cparams.shape[0], 3), dtype=np.int64)
    state[:, S_TC] = cparams[:, M_CBS]
    state[:, S_TE] = cparams[:, M_EBS]
    state[:, S_LAST] = NEVER
    return state


def tokens(scaled: Any, per_byte: int) -> float:
    """Bucket units as bytes (bit meters) or packets."""
    return float(scaled) / (per_byte if per_byte else 1_000_000_000)
