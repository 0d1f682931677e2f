"""The stateful ACL's connection table: fixed capacity, open addressing, timeouts by timestamps.

A flow is stored once, under its canonical key (the lower ``(address, port)`` endpoint first)
with the side that opened it, so both directions find the same slot. The slot array has
``2 × max_flows`` rounded up to a power of two slots (load ≤ 50 %), linear probing bounded to
:data:`PROBES` slots, the symmetric MurmurHash3 of :mod:`nfvkit.packet.flow` for the home slot.

Time comes only from packet timestamps (``batch.ts``, ns). An entry lives until ``expire``:
``idle`` after its last packet, or ``closing`` after a TCP FIN or RST was seen. Expired entries
are reclaimed lazily when a probe passes them (they become tombstones), by a whole-table sweep
when a new flow finds the table full (at most once per 1/8 idle timeout), and tombstones are
squeezed out by a rehash when they exceed a quarter of the slots.

The table never grows: a new flow when ``max_flows`` are live, or when its probe window is full,
is *refused* (counted) — or, with ``evict``, replaces the window's entry closest to expiry
(counted as an eviction).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

from nfvkit.packet import flags as FL
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.flow import hash_row_symmetric

PROBES = 32
EMPTY, LIVE, TOMB = 0, 1, 2
# counters (an int64 array that kernels update)
C_LIVE, C_TOMBS, C_CREATED, C_EXPIRED, C_EVICTED, C_REFUSED, C_REVERSE, C_NOW, C_SWEPT = range(9)
COUNTER_NAMES = ("live", "tombstones", "created", "expired", "evicted", "refused", "reverse")
_TCP_FIN_RST = 0x05


def _empty_slots(cap: int) -> tuple[NDArray[Any], ...]:
    return (
        np.zeros((cap, 4), np.uint32),  # a: lower endpoint address
        np.zeros((cap, 4), np.uint32),  # b: upper endpoint address
        np.zeros(cap, np.uint16),  # pa
        np.zeros(cap, np.uint16),  # pb
        np.zeros(cap, np.uint8),  # proto
        np.zeros(cap, np.uint8),  # state: EMPTY / LIVE / TOMB
        np.zeros(cap, np.uint8),  # bit 0: opened by side b; bit 1: closing (FIN/RST seen)
        np.zeros(cap, np.int64),  # expire (ns)
    )


@njit(cache=True, nogil=True, inline="always")
def _src_lower(src: NDArray[np.uint32], dst: NDArray[np.uint32], i: int, sp: int, dp: int) -> bool:
    for k in range(4):
        if src[i, k] != dst[i, k]:
            return bool(src[i, k] < dst[i, k])
    return sp <= dp


@njit(cache=True, nogil=True, inline="always")
def _same(
    slots: tuple[Any, ...], s: int, x: NDArray[np.uint32], y: NDArray[np.uint32], i: int,
    px: int, py: int, proto: int,
) -> bool:  # fmt: skip
    a, b, pa, pb, pr = slots[0], slots[1], slots[2], slots[3], slots[4]
    if pa[s] != px or pb[s] != py or pr[s] != proto:
        return False
    same = True
    for k in range(4):
        same = same and a[s, k] == x[i, k] and b[s, k] == y[i, k]
    return same


@njit(cache=True, nogil=True, inline="always")
def _reclaim(slots: tuple[Any, ...], s: int, now: int, counters: NDArray[np.int64]) -> None:
    """Turn slot ``s`` into a tombstone if its entry has expired."""
    state, expire = slots[5], slots[7]
    if state[s] == LIVE and expire[s] <= now:
        state[s] = TOMB
        counters[C_LIVE] -= 1
        counters[C_TOMBS] += 1
        counters[C_EXPIRED] += 1


@njit(cache=True, nogil=True)
def _find(
    slots: tuple[Any, ...], home: int, mask: int, x: NDArray[np.uint32], y: NDArray[np.uint32],
    i: int, px: int, py: int, proto: int, now: int, counters: NDArray[np.int64],
) -> tuple[int, int]:  # fmt: skip
    """(slot of the live key or -1, first reusable slot in the window or -1)."""
    state = slots[5]
    free = -1
    for k in range(PROBES):
        s = (home + k) & mask
        _reclaim(slots, s, now, counters)
        st = state[s]
        if st == LIVE and _same(slots, s, x, y, i, px, py, proto):
            return s, free
        if st != LIVE and free < 0:
            free = s
        if st == EMPTY:
            break
    return -1, free


@njit(cache=True, nogil=True)
def _victim(slots: tuple[Any, ...], home: int, mask: int) -> int:
    """The live slot of the probe window closest to expiry."""
    state, expire = slots[5], slots[7]
    best = -1
    for k in range(PROBES):
        s = (home + k) & mask
        if state[s] == LIVE and (best < 0 or expire[s] < expire[best]):
            best = s
    return best


@njit(cache=True, nogil=True)
def _store(
    slots: tuple[Any, ...], s: int, x: NDArray[np.uint32], y: NDArray[np.uint32], i: int,
    px: int, py: int, proto: int, opener: int,
) -> None:  # fmt: skip
    a, b, pa, pb, pr, state, info = (
        slots[0],
        slots[1],
        slots[2],
        slots[3],
        slots[4],
        slots[5],
        slots[6],
    )
    a[s, :] = x[i, :]
    b[s, :] = y[i, :]
    pa[s] = px
    pb[s] = py
    pr[s] = proto
    state[s] = LIVE
    info[s] = opener


@njit(cache=True, nogil=True)
def sweep_kernel(slots: tuple[Any, ...], now: int, counters: NDArray[np.int64]) -> None:
    """Reclaim every expired entry."""
    for s in range(slots[5].shape[0]):
        _reclaim(slots, s, now, counters)


@njit(cache=True, nogil=True)
def _first_free(slots: tuple[Any, ...], home: int, mask: int) -> int:
    """The first non-live slot of the probe window (up to the first empty one); -1 if none."""
    state = slots[5]
    for k in range(PROBES):
        s = (home + k) & mask
        if state[s] != LIVE:
            return s
    return -1


@njit(cache=True, nogil=True)
def _insert(
    slots: tuple[Any, ...], home: int, mask: int, free: int, x: NDArray[np.uint32],
    y: NDArray[np.uint32], i: int, px: int, py: int, proto: int, opener: int, now: int,
    limits: NDArray[np.int64], counters: NDArray[np.int64],
) -> int:  # fmt: skip
    """Place a new flow; return its slot or -1 when refused."""
    state = slots[5]
    if counters[C_LIVE] >= limits[0] and now - counters[C_SWEPT] >= limits[4]:
        sweep_kernel(slots, now, counters)  # full: reclaim expired entries (rate-limited)
        counters[C_SWEPT] = now
        free = _first_free(slots, home, mask)
    if counters[C_LIVE] >= limits[0] or free < 0:
        victim = _victim(slots, home, mask) if limits[3] else -1
        if victim < 0:
            counters[C_REFUSED] += 1
            return -1
        state[victim] = TOMB  # a tombstone keeps the probe chains of other keys intact
        counters[C_LIVE] -= 1
        counters[C_TOMBS] += 1
        counters[C_EVICTED] += 1
        if free < 0:
            free = victim
    if state[free] == TOMB:
        counters[C_TOMBS] -= 1
    counters[C_LIVE] += 1
    counters[C_CREATED] += 1
    _store(slots, free, x, y, i, px, py, proto, opener)
    return free


@njit(cache=True, nogil=True)
def _tcp_end(data: NDArray[np.uint8], off: int, l4: int, n: int, fl: int) -> bool:
    if (fl & FL.TCP) == 0 or l4 < 0 or l4 + 13 >= n:
        return False
    return bool(data[off + l4 + 13] & _TCP_FIN_RST)


@njit(cache=True, nogil=True)
def track_kernel(
    slots: tuple[Any, ...],
    limits: NDArray[np.int64],
    counters: NDArray[np.int64],
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    ts: NDArray[np.int64],
    l4_off: NDArray[np.int16],
    flags: NDArray[np.uint16],
    proto: NDArray[np.uint8],
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    sport: NDArray[np.uint16],
    dport: NDArray[np.uint16],
    fate: NDArray[np.int16],
) -> None:
    """Admit reverse-direction packets of tracked flows; track flows the rules allowed.

    ``limits``: max_flows, idle ns, closing ns, evict (0/1), least ns between full-table
    sweeps. ``fate[i] >= 0`` means allowed by the rules.
    """
    mask = slots[5].shape[0] - 1
    info, expire = slots[6], slots[7]
    for i in range(offset.shape[0]):
        fl = int(flags[i])
        if (fl & (FL.IPV4 | FL.IPV6)) == 0 or (fl & FL.MALFORMED) != 0:
            continue
        now = int(ts[i])
        counters[C_NOW] = max(counters[C_NOW], now)
        sp, dp, pr = int(sport[i]), int(dport[i]), int(proto[i])
        lower = _src_lower(src, dst, i, sp, dp)
        x, y = (src, dst) if lower else (dst, src)
        px, py = (sp, dp) if lower else (dp, sp)
        side = 0 if lower else 1
        home = int(hash_row_symmetric(src, dst, i, sp, dp, pr, 0)) & mask
        s, free = _find(slots, home, mask, x, y, i, px, py, pr, now, counters)
        if fate[i] < 0:
            if s < 0 or (info[s] & 1) == side:
                continue
            fate[i] = 0
            counters[C_REVERSE] += 1
        elif s < 0:
            s = _insert(slots, home, mask, free, x, y, i, px, py, pr, side, now, limits, counters)
            if s < 0:
                continue
        if _tcp_end(data, int(offset[i]), int(l4_off[i]), int(length[i]), fl):
            info[s] |= 2
        expire[s] = now + (limits[2] if info[s] & 2 else limits[1])


@njit(cache=True, nogil=True)
def rehash_kernel(old: tuple[Any, ...], new: tuple[Any, ...], counters: NDArray[np.int64]) -> None:
    """Copy the live entries of ``old`` into the empty table ``new`` (drops tombstones)."""
    mask = new[5].shape[0] - 1
    a, b, pa, pb, pr, state = old[0], old[1], old[2], old[3], old[4], old[5]
    for s in range(state.shape[0]):
        if state[s] != LIVE:
            continue
        home = int(hash_row_symmetric(a, b, s, int(pa[s]), int(pb[s]), int(pr[s]), 0)) & mask
        placed = False
        for k in range(PROBES):
            t = (home + k) & mask
            if new[5][t] == EMPTY:
                _store(new, t, a, b, s, int(pa[s]), int(pb[s]), int(pr[s]), int(old[6][s]))
                new[7][t] = old[7][s]
                placed = True
                break
        if not placed:
            counters[C_LIVE] -= 1
            counters[C_EVICTED] += 1
    counters[C_TOMBS] = 0


class FlowTable:
    """Connection tracking for the stateful ACL (see the module docstring)."""

    def __init__(self, max_flows: int, idle_ns: int, closing_ns: int, evict: bool) -> None:
        cap = 16
        while cap < 2 * max_flows:
            cap *= 2
        self.capacity = cap
        self.max_flows = max_flows
        self.slots = _empty_slots(cap)
        gap = max(idle_ns // 8, 1)  # a full table is swept at most once per 1/8 idle timeout
        self.limits = np.array([max_flows, idle_ns, closing_ns, int(evict), gap], dtype=np.int64)
        self.counters = np.zeros(9, dtype=np.int64)
        self.counters[C_SWEPT] = -(1 << 62)

    def track(self, batch: PacketBatch) -> None:
        """Admit reverse packets of tracked flows in ``batch.fate``; track allowed flows."""
        if len(batch) == 0:
            return
        b = batch
        track_kernel(
            self.slots, self.limits, self.counters, b.data, b.offset, b.length, b.ts, b.l4_off,
            b.flags, b.proto, b.src, b.dst, b.sport, b.dport, b.fate,
        )  # fmt: skip
        if self.counters[C_TOMBS] > self.capacity // 4:
            self._rehash()

    def _rehash(self) -> None:
        fresh = _empty_slots(self.capacity)
        rehash_kernel(self.slots, fresh, self.counters)
        self.slots = fresh

    def occupancy(self, now: int | None = None) -> int:
        """Entries not yet expired at ``now`` (default: the latest timestamp seen)."""
        at = int(self.counters[C_NOW]) if now is None else now
        return int(np.count_nonzero((self.slots[5] == LIVE) & (self.slots[7] > at)))

    def stats(self) -> dict[str, int]:
        """Capacity, live entries and the event counters."""
        out = {name: int(self.counters[k]) for k, name in enumerate(COUNTER_NAMES)}
        out.update(
            max_flows=self.max_flows,
            slots=self.capacity,
            active=self.occupancy(),
            memory_bytes=sum(int(a.nbytes) for a in self.slots),
        )
        return out
