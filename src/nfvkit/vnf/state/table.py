"""The per-flow state table: a declared schema over fixed-capacity, timeout-driven NumPy rows.

A stateful element declares a :class:`StateSchema` -- its key layout and typed value columns
-- and owns one :class:`StateTable` per schema. Its Numba kernels take ``table.tbl`` and use
:mod:`nfvkit.vnf.state.kernels` (``find``, ``find_or_insert``, ``remove``); Python code uses
the methods here for what is not on the packet path: statistics, the log of retired entries,
whole-table sweeps, and export/import of entries as a :class:`TableSnapshot`.

Time is whatever the element passes as ``now`` (ns): packet timestamps by default, or an
injected clock. The table never grows (see :mod:`~nfvkit.vnf.state.kernels` for refusal and
eviction); it compacts itself (a rehash at the same size) when tombstones pass a quarter of the
slots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from nfvkit.vnf.state import kernels as K
from nfvkit.vnf.state.keys import KeyLayout, decode_keys

_META_FIELDS = ("hash", "state", "flags", "expire")
COUNTER_NAMES = {
    "live": K.C_LIVE,
    "created": K.C_CREATED,
    "expired": K.C_EXPIRED,
    "evicted": K.C_EVICTED,
    "refused": K.C_REFUSED,
    "removed": K.C_REMOVED,
    "unlogged": K.C_UNLOGGED,
}


@dataclass(frozen=True)
class StateSchema:
    """What a table stores: a key layout and named value columns with NumPy dtypes."""

    key: KeyLayout
    values: tuple[tuple[str, str], ...]

    @property
    def key_words(self) -> int:
        return sum(w for _, w in self.key)

    def row_dtype(self) -> np.dtype[Any]:
        """One slot: key, hash, state, flags, expire, then the values (C-aligned)."""
        head: list[tuple[Any, ...]] = [
            ("key", "<u4", (self.key_words,)),
            ("hash", "<u4"),
            ("state", "u1"),
            ("flags", "u1"),
            ("expire", "<i8"),
        ]
        return np.dtype(head + [(n, t) for n, t in self.values], align=True)

    def describe(self) -> dict[str, Any]:
        """A JSON-able form, stored in snapshots and compared on import."""
        return {"key": [list(k) for k in self.key], "values": [list(v) for v in self.values]}


Selector = Callable[[NDArray[Any]], NDArray[np.bool_]]
"""Picks entries to export: given the live records, a boolean mask over them."""


@dataclass
class TableSnapshot:
    """Entries of one table at one time; ``records`` has the table's row dtype."""

    schema: StateSchema
    taken_at: int
    records: NDArray[Any]

    def __len__(self) -> int:
        return int(self.records.shape[0])

    def entries(self) -> list[dict[str, Any]]:
        """The records as JSON-able dicts: decoded key, flags, expire and values."""
        out = []
        for rec in self.records:
            item: dict[str, Any] = {"key": decode_keys(self.schema.key, rec["key"])}
            item["flags"] = int(rec["flags"])
            item["expire"] = int(rec["expire"])
            for name, _ in self.schema.values:
                item[name] = rec[name].item()
            out.append(item)
        return out


@dataclass(frozen=True)
class ImportResult:
    """What an import did: entries added, entries that replaced a live one, entries refused."""

    added: int = 0
    replaced: int = 0
    refused: int = 0

    def __add__(self, other: ImportResult) -> ImportResult:
        return ImportResult(
            self.added + other.added,
            self.replaced + other.replaced,
            self.refused + other.refused,
        )


def aligned_zeros(n: int, dtype: np.dtype[Any], align: int = 64) -> NDArray[Any]:
    """``n`` zeroed records of ``dtype`` starting on an ``align``-byte boundary, so that a
    64-byte record is one cache line rather than two."""
    raw = np.zeros(n * dtype.itemsize + align, dtype=np.uint8)
    skip = (-raw.ctypes.data) % align
    out: NDArray[Any] = raw[skip : skip + n * dtype.itemsize].view(dtype)
    return out


def _slots_for(max_entries: int) -> int:
    cap = 16
    while cap < 2 * max_entries:
        cap *= 2
    return cap


class StateTable:
    """Fixed-capacity per-flow state (see the module docstring)."""

    def __init__(
        self,
        schema: StateSchema,
        max_entries: int,
        idle_ns: int,
        on_full: Literal["refuse", "evict"] = "refuse",
        log_retired: bool = False,
        probes: int = 32,
        seed: int = 0x6E66,
    ) -> None:
        if max_entries < 1 or idle_ns < 1:
            raise ValueError("a state table needs max_entries >= 1 and idle_ns >= 1")
        self.schema = schema
        self.max_entries = max_entries
        self.dtype = schema.row_dtype()
        self.slots = _slots_for(max_entries)
        ctl = np.zeros(K.N_CTL, dtype=np.int64)
        ctl[K.C_MAX] = max_entries
        ctl[K.C_IDLE] = idle_ns
        ctl[K.C_EVICT] = int(on_full == "evict")
        ctl[K.C_GAP] = max(idle_ns // 8, 1)
        ctl[K.C_PROBES] = min(probes, self.slots)
        ctl[K.C_SEED] = seed
        ctl[K.C_NOW] = -(1 << 62)
        ctl[K.C_LAST_SWEEP] = -(1 << 62)
        self.ctl = ctl
        self.rows = aligned_zeros(self.slots, self.dtype)
        self.log = np.zeros(max_entries + 4096 if log_retired else 0, dtype=self.dtype)
        self._blank = np.zeros(1, dtype=self.dtype)

    @property
    def tbl(self) -> K.Table:
        """The tuple kernels take."""
        return (self.rows, self.log, self.ctl, self._blank)

    @property
    def seed(self) -> int:
        return int(self.ctl[K.C_SEED])

    @property
    def now(self) -> int:
        """The latest time the table has seen (ns)."""
        return int(self.ctl[K.C_NOW])

    def observe(self, now: int) -> None:
        """Advance the table's clock to ``now`` if it is later."""
        self.ctl[K.C_NOW] = max(int(self.ctl[K.C_NOW]), now)

    def __len__(self) -> int:
        """Live entries (some may have expired but not been retired yet)."""
        return int(self.ctl[K.C_LIVE])

    # upkeep ------------------------------------------------------------------------------------

    def maintain(self) -> None:
        """Compact the slots when tombstones pass a quarter of them (call after a batch)."""
        if self.ctl[K.C_TOMBS] > self.slots // 4:
            fresh = aligned_zeros(self.slots, self.dtype)
            ctl = self.ctl.copy()
            ctl[K.C_LIVE] = 0
            ctl[K.C_TOMBS] = 0
            K.rehash(self.tbl, (fresh, self.log, ctl, self._blank))
            self.rows, self.ctl = fresh, ctl

    def sweep(self, now: int | None = None) -> None:
        """Retire every entry expired by ``now`` (default: the latest time seen)."""
        at = self.now if now is None else now
        self.observe(at)
        K.sweep(self.tbl, at)
        self.maintain()

    def drain_log(self) -> NDArray[Any]:
        """The retired records since the last drain (``state`` = reason), emptying the log."""
        n = int(self.ctl[K.C_LOGGED])
        out = self.log[:n].copy()
        self.ctl[K.C_LOGGED] = 0
        return out

    def clear(self) -> None:
        """Forget every entry (counted as removed); counters other than ``live`` stay."""
        self.ctl[K.C_REMOVED] += self.ctl[K.C_LIVE]
        self.rows[:] = self._blank[0]
        self.ctl[K.C_LIVE] = 0
        self.ctl[K.C_TOMBS] = 0

    # inspection --------------------------------------------------------------------------------

    def live(self, now: int | None = None) -> NDArray[Any]:
        """A copy of the entries alive at ``now`` (default: the latest time seen)."""
        at = self.now if now is None else now
        rows = self.rows
        live: NDArray[Any] = rows[(rows["state"] == K.LIVE) & (rows["expire"] > at)]
        return live.copy()

    def stats(self) -> dict[str, int]:
        """Limits, occupancy and event counters."""
        out = {name: int(self.ctl[k]) for name, k in COUNTER_NAMES.items()}
        out.update(
            max_entries=self.max_entries,
            slots=self.slots,
            tombstones=int(self.ctl[K.C_TOMBS]),
            memory_bytes=int(self.rows.nbytes + self.log.nbytes),
        )
        return out

    # export / import ---------------------------------------------------------------------------

    def export(self, select: Selector | None = None, now: int | None = None) -> TableSnapshot:
        """The entries alive at ``now`` (all, or those ``select`` picks)."""
        at = self.now if now is None else now
        records = self.live(at)
        if select is not None:
            mask = np.asarray(select(records), dtype=bool)
            if mask.shape != records.shape:
                raise ValueError("a state selector must return one boolean per entry")
            records = records[mask]
        return TableSnapshot(self.schema, at, records)

    def import_(self, snap: TableSnapshot, rebase: bool = False) -> ImportResult:
        """Insert the snapshot's entries, replacing live entries with the same key.

        With ``rebase`` each entry's expiry keeps its remaining lifetime relative to this
        table's clock rather than its absolute time (for tables on different clocks).
        """
        if snap.schema != self.schema:
            raise ValueError(
                f"state schema mismatch: snapshot has {snap.schema.describe()}, "
                f"table has {self.schema.describe()}"
            )
        records = snap.records.astype(self.dtype, copy=True)
        now = self.now if self.now > -(1 << 61) else snap.taken_at
        if rebase:
            records["expire"] += now - snap.taken_at
        before = self.stats()
        key = np.empty(self.schema.key_words, dtype=np.uint32)
        replaced = int(K.import_records(self.tbl, records, key, now))
        refused = self.stats()["refused"] - before["refused"]
        self.maintain()
        return ImportResult(len(records) - replaced - refused, replaced, refused)
