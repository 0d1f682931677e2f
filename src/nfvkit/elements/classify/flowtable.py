"""The stateful ACL's connection tracking, on the shared per-flow state table.

A connection is stored once, under its canonical :data:`~nfvkit.vnf.state.FLOW_KEY` (the lower
``(address, port)`` endpoint first), so both directions find the same entry. The entry's
``flags`` hold bit 0: the connection was opened by the upper endpoint, and bit 1: a TCP FIN or
RST was seen (the entry then lives ``closing`` ns after its last packet instead of ``idle``).

Allowed packets open or refresh their connection; a packet the rules deny passes when it
travels in the reply direction of a tracked connection (counted as ``reverse``). Capacity,
expiry by packet timestamps, refusal or eviction when full: see :mod:`nfvkit.vnf.state`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from nfvkit.packet import flags as FL
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.flow import hash_words
from nfvkit.packet.parse import kernel
from nfvkit.vnf.state import FLOW_KEY, FLOW_KEY_WORDS, StateSchema, StateTable, flow_key
from nfvkit.vnf.state.kernels import Table, find, find_or_insert

CONN_SCHEMA = StateSchema(FLOW_KEY, ())
_OPENED_BY_UPPER, _CLOSING = 1, 2
_TCP_FIN_RST = 0x05


@kernel
def _src_lower(src: NDArray[np.uint32], dst: NDArray[np.uint32], i: int, sp: int, dp: int) -> bool:
    for k in range(4):
        if src[i, k] != dst[i, k]:
            return bool(src[i, k] < dst[i, k])
    return sp <= dp


@kernel
def _tcp_end(data: NDArray[np.uint8], off: int, l4: int, n: int, fl: int) -> bool:
    if (fl & FL.TCP) == 0 or l4 < 0 or l4 + 13 >= n:
        return False
    return bool(data[off + l4 + 13] & _TCP_FIN_RST)


@kernel
def _canonical_key(
    key: NDArray[np.uint32], src: NDArray[np.uint32], dst: NDArray[np.uint32], i: int,
    sp: int, dp: int, pr: int,
) -> int:  # fmt: skip
    """Fill ``key`` with the connection's canonical key; return the packet's side (0/1)."""
    if _src_lower(src, dst, i, sp, dp):
        flow_key(key, src, dst, i, sp, dp, pr)
        return 0
    flow_key(key, dst, src, i, dp, sp, pr)
    return 1


@kernel
def track_kernel(
    tbl: Table,
    key: NDArray[np.uint32],
    seed: int,
    timeouts: NDArray[np.int64],
    reverse: NDArray[np.int64],
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    now_col: NDArray[np.int64],
    l4_off: NDArray[np.int16],
    flags: NDArray[np.uint16],
    proto: NDArray[np.uint8],
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    sport: NDArray[np.uint16],
    dport: NDArray[np.uint16],
    fate: NDArray[np.int16],
) -> None:
    """Admit reply-direction packets of tracked connections; track the ones the rules allowed.

    ``timeouts``: idle ns, closing ns; ``key``: scratch. ``fate[i] >= 0``: allowed by the rules.
    """
    rows = tbl[0]
    for i in range(offset.shape[0]):
        fl = int(flags[i])
        if (fl & (FL.IPV4 | FL.IPV6)) == 0 or (fl & FL.MALFORMED) != 0:
            continue
        now = int(now_col[i])
        side = _canonical_key(key, src, dst, i, int(sport[i]), int(dport[i]), int(proto[i]))
        h = int(hash_words(key, seed))
        if fate[i] < 0:
            s = find(tbl, key, h, now)
            if s < 0 or (rows[s].flags & _OPENED_BY_UPPER) == side:
                continue
            fate[i] = 0
            reverse[0] += 1
        else:
            s, created = find_or_insert(tbl, key, h, now)
            if s < 0:
                continue
            if created:
                rows[s].flags = side
        if _tcp_end(data, int(offset[i]), int(l4_off[i]), int(length[i]), fl):
            rows[s].flags |= _CLOSING
        rows[s].expire = now + (timeouts[1] if rows[s].flags & _CLOSING else timeouts[0])


class ConnTracker:
    """Connection tracking for the stateful ACL (see the module docstring)."""

    def __init__(
        self,
        max_flows: int,
        idle_ns: int,
        closing_ns: int,
        on_full: Literal["refuse", "evict"] = "refuse",
    ) -> None:
        self.table = StateTable(CONN_SCHEMA, max_flows, idle_ns, on_full=on_full)
        self.timeouts = np.array([idle_ns, closing_ns], dtype=np.int64)
        self.reverse = np.zeros(1, dtype=np.int64)
        self._key = np.empty(FLOW_KEY_WORDS, dtype=np.uint32)

    def track(self, batch: PacketBatch, now: NDArray[np.int64]) -> None:
        """Admit reply packets of tracked connections in ``batch.fate``; track allowed ones."""
        if len(batch) == 0:
            return
        b, t = batch, self.table
        track_kernel(
            t.tbl, self._key, t.seed, self.timeouts, self.reverse, b.data, b.offset, b.length, now,
            b.l4_off, b.flags, b.proto, b.src, b.dst, b.sport, b.dport, b.fate,
        )  # fmt: skip
        t.maintain()

    def stats(self) -> dict[str, Any]:
        """The table's statistics, connections alive now, and reply packets admitted."""
        out: dict[str, Any] = self.table.stats()
        out.update(
            max_flows=self.table.max_entries,
            active=int(self.table.live().shape[0]),
            reverse=int(self.reverse[0]),
        )
        return out
