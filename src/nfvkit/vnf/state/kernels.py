"""Numba kernels of the per-flow state table: find, insert, remove, sweep, rehash.

A table is the tuple ``tbl = (rows, log, ctl, blank)`` that
:class:`~nfvkit.vnf.state.table.StateTable` owns, so an element's kernel takes one argument:

* ``rows`` -- a structured array, one 64-byte-aligned record per slot: ``key`` (``uint32 ×
  key_words``), ``hash``, ``state`` (:data:`EMPTY` / :data:`LIVE` / :data:`TOMB`), ``flags``
  (the element's own bits), ``expire`` (ns) and the element's value fields. A slot is one
  record, so a probe touches one cache line.
* ``log`` -- records retired since the element last drained it (``state`` there holds why:
  :data:`R_EXPIRED`, :data:`R_EVICTED`, :data:`R_REMOVED`); empty when the table keeps no log.
* ``ctl`` -- an ``int64`` array of limits and counters, indexed by the ``C_*`` constants.
* ``blank`` -- one all-zero record, copied over a slot that a new entry takes.

Slots are a power of two, at least twice the entry limit; linear probing over a bounded window
(``C_PROBES``) from ``hash & mask``; the hash is compared before the key words. An entry whose
``expire`` is not after ``now`` is dead: a probe that passes it retires it (logged, counted as
expired). A new key when ``C_MAX`` entries are live first sweeps the whole table (at most once
per ``C_GAP`` ns), then either refuses the key or, with ``C_EVICT``, evicts the window's entry
closest to expiry. Nothing ever grows.

These kernels allocate nothing and are compiled without reference counting (see
:func:`nfvkit.packet.parse.kernel`); an element kernel that calls them should be too, taking
its scratch key buffer as an argument rather than allocating it. Usage in an element kernel::

    # key: np.empty(KEY_WORDS, np.uint32) allocated once by the element, passed in
    ...
    h = hash_words(key, seed)
    s, created = find_or_insert(tbl, key, h, now)
    if s >= 0:
        rows = tbl[0]
        rows[s].packets += 1
        rows[s].expire = now + timeout
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

from nfvkit.packet.flow import hash_words
from nfvkit.packet.parse import kernel

EMPTY, LIVE, TOMB = 0, 1, 2
R_EXPIRED, R_EVICTED, R_REMOVED, R_FLUSHED = 1, 2, 3, 4
RETIRE_REASONS = {
    R_EXPIRED: "expired",
    R_EVICTED: "evicted",
    R_REMOVED: "removed",
    R_FLUSHED: "flushed",
}

(
    C_MAX,  # live entries at most
    C_IDLE,  # default lifetime of an entry after insert (ns)
    C_EVICT,  # 1: evict the entry closest to expiry when full; 0: refuse
    C_GAP,  # least ns between two full-table sweeps
    C_PROBES,  # probe window
    C_SEED,  # hash seed
    C_LIVE,
    C_TOMBS,
    C_CREATED,
    C_EXPIRED,
    C_EVICTED,
    C_REFUSED,
    C_REMOVED,
    C_NOW,  # latest time seen
    C_LAST_SWEEP,
    C_LOGGED,  # records in the log
    C_UNLOGGED,  # retired records the full log could not take
    N_CTL,
) = range(18)

Table = tuple[Any, Any, NDArray[np.int64], Any]


@njit(cache=True, nogil=True, inline="always")
def _matches(rows: Any, s: int, key: NDArray[np.uint32], h: int) -> bool:
    if rows[s].hash != h:
        return False
    for k in range(key.shape[0]):  # noqa: SIM110 (a loop Numba compiles tightly)
        if rows[s].key[k] != key[k]:
            return False
    return True


@kernel
def retire(tbl: Table, s: int, reason: int) -> None:
    """Turn live slot ``s`` into a tombstone, logging its record with ``reason``."""
    rows, log, ctl = tbl[0], tbl[1], tbl[2]
    n = ctl[C_LOGGED]
    if log.shape[0] > 0:
        if n < log.shape[0]:
            log[n] = rows[s]
            log[n].state = reason
            ctl[C_LOGGED] = n + 1
        else:
            ctl[C_UNLOGGED] += 1
    rows[s].state = TOMB
    ctl[C_LIVE] -= 1
    ctl[C_TOMBS] += 1
    if reason == R_EXPIRED:
        ctl[C_EXPIRED] += 1
    elif reason == R_EVICTED:
        ctl[C_EVICTED] += 1
    else:
        ctl[C_REMOVED] += 1


@njit(cache=True, nogil=True, inline="always")
def _state_at(tbl: Table, s: int, now: int) -> int:
    """The slot's state after retiring it if it has expired by ``now``."""
    rows = tbl[0]
    st = int(rows[s].state)
    if st == LIVE and rows[s].expire <= now:
        retire(tbl, s, R_EXPIRED)
        return TOMB
    return st


@kernel
def find(tbl: Table, key: NDArray[np.uint32], h: int, now: int) -> int:
    """The slot holding ``key`` (hash ``h``) alive at ``now``, or -1."""
    rows, ctl = tbl[0], tbl[2]
    mask = int(rows.shape[0]) - 1
    dead = -1
    found = -1
    for k in range(ctl[C_PROBES]):
        s = (h + k) & mask
        st = rows[s].state
        if st == EMPTY:
            break
        if st == LIVE:
            if rows[s].expire <= now:
                dead = s if dead < 0 else dead
            elif _matches(rows, s, key, h):
                found = s
                break
    if dead >= 0:  # reclaim one expired entry per probe, outside the hot loop
        retire(tbl, dead, R_EXPIRED)
    return found


@kernel
def sweep(tbl: Table, now: int) -> None:
    """Retire every entry that has expired by ``now``."""
    rows = tbl[0]
    for s in range(rows.shape[0]):
        _state_at(tbl, s, now)


@kernel
def _window_slot(tbl: Table, h: int, want_live: bool) -> int:
    """First non-live slot of the window, or (``want_live``) the live one closest to expiry."""
    rows, ctl = tbl[0], tbl[2]
    mask = int(rows.shape[0]) - 1
    best = -1
    for k in range(ctl[C_PROBES]):
        s = (h + k) & mask
        live = rows[s].state == LIVE
        if not want_live and not live:
            return s
        if want_live and live and (best < 0 or rows[s].expire < rows[best].expire):
            best = s
    return best


@kernel
def _make_room(tbl: Table, h: int, now: int, free: int) -> int:
    """A slot for a new entry when the table may be full: sweep, evict or refuse (-1)."""
    ctl = tbl[2]
    if ctl[C_LIVE] >= ctl[C_MAX] and now - ctl[C_LAST_SWEEP] >= ctl[C_GAP]:
        sweep(tbl, now)
        ctl[C_LAST_SWEEP] = now
        free = _window_slot(tbl, h, False)
    if ctl[C_LIVE] < ctl[C_MAX] and free >= 0:
        return free
    victim = _window_slot(tbl, h, True) if ctl[C_EVICT] else -1
    if victim < 0:
        ctl[C_REFUSED] += 1
        return -1
    retire(tbl, victim, R_EVICTED)
    return free if free >= 0 and ctl[C_LIVE] < ctl[C_MAX] else victim


@kernel
def _place(tbl: Table, s: int, key: NDArray[np.uint32], h: int, now: int) -> None:
    rows, ctl = tbl[0], tbl[2]
    if rows[s].state == TOMB:
        ctl[C_TOMBS] -= 1
    rows[s] = tbl[3][0]
    for k in range(key.shape[0]):
        rows[s].key[k] = key[k]
    rows[s].hash = h
    rows[s].state = LIVE
    rows[s].flags = 0
    rows[s].expire = now + ctl[C_IDLE]
    ctl[C_LIVE] += 1
    ctl[C_CREATED] += 1


@kernel
def find_or_insert(tbl: Table, key: NDArray[np.uint32], h: int, now: int) -> tuple[int, bool]:
    """(slot, created): the live entry for ``key``, or a new one (values zeroed, expiring at
    ``now + idle``); slot -1 when the table refused the key."""
    rows, ctl = tbl[0], tbl[2]
    mask = int(rows.shape[0]) - 1
    ctl[C_NOW] = max(ctl[C_NOW], now)
    free = -1
    dead = -1
    for k in range(ctl[C_PROBES]):
        s = (h + k) & mask
        st = rows[s].state
        if st == LIVE and rows[s].expire > now:
            if _matches(rows, s, key, h):
                if dead >= 0:
                    retire(tbl, dead, R_EXPIRED)
                return s, False
            continue
        if st == LIVE:
            dead = s if dead < 0 else dead
        free = s if free < 0 else free
        if st == EMPTY:
            break
    if dead >= 0:
        retire(tbl, dead, R_EXPIRED)
    s = _make_room(tbl, h, now, free)
    if s < 0:
        return -1, False
    _place(tbl, s, key, h, now)
    return s, True


@kernel
def insert_record(tbl: Table, rec: Any, key: NDArray[np.uint32], now: int) -> tuple[int, bool]:
    """Store a whole record (an imported entry) under its key (``key`` is scratch space of
    the key's width): (slot, replaced); slot -1 when refused."""
    rows, ctl = tbl[0], tbl[2]
    for k in range(key.shape[0]):
        key[k] = rec.key[k]
    h = int(hash_words(key, ctl[C_SEED]))
    s, created = find_or_insert(tbl, key, h, now)
    if s < 0:
        return -1, False
    rows[s] = rec
    rows[s].hash = h
    rows[s].state = LIVE
    return s, not created


@kernel
def import_records(tbl: Table, records: Any, key: NDArray[np.uint32], now: int) -> int:
    """Insert every record of ``records`` (the table's dtype); return how many replaced one."""
    replaced = 0
    for i in range(records.shape[0]):
        s, was = insert_record(tbl, records[i], key, now)
        if s >= 0 and was:
            replaced += 1
    return replaced


@kernel
def remove(tbl: Table, s: int) -> None:
    """Remove live slot ``s`` now (logged as removed)."""
    if tbl[0][s].state == LIVE:
        retire(tbl, s, R_REMOVED)


@kernel
def rehash(old: Table, new: Table) -> None:
    """Copy the live entries of ``old`` into the empty table ``new`` (tombstones vanish)."""
    rows, nrows, nctl = old[0], new[0], new[2]
    mask = int(nrows.shape[0]) - 1
    for s in range(rows.shape[0]):
        if rows[s].state != LIVE:
            continue
        h = int(rows[s].hash)
        placed = False
        for k in range(nctl[C_PROBES]):
            t = (h + k) & mask
            if nrows[t].state == EMPTY:
                nrows[t] = rows[s]
                placed = True
                break
        if placed:
            nctl[C_LIVE] += 1
        else:
            nctl[C_EVICTED] += 1
