"""The flow monitor's table: one entry per flow, updated by one kernel per batch.

An entry is keyed by :data:`~nfvkit.vnf.state.FLOW_KEY` -- the 5-tuple as the packet travels,
or (biflow) the canonical 5-tuple with the lower ``(address, port)`` endpoint first -- and holds
``first``/``last`` (ns), ``packets``/``bytes`` (IP octets, as IPFIX's ``octetDeltaCount``
counts them), ``tcp`` (OR of the TCP flags, RFC 7125 layout: NS in bit 8) and, in biflow mode,
the same counters of the reverse direction (``rpackets``, ``rbytes``, ``rtcp``).

``flags`` bits: :data:`INITIATOR_UPPER` (biflow: the first packet came from the upper
endpoint, so the record's source is the key's ``dst``) and :data:`ACTIVE_DEADLINE` (the
entry's ``expire`` is ``first + active timeout``, earlier than ``last + idle timeout``; when
it expires the flow ends by active timeout, not idle). A flow whose TCP FIN or RST is seen
(``end_on_fin``) is removed at once; the table logs it as removed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.meter.prefetch import PREFETCH_AHEAD, hash_pass, prefetch_row
from nfvkit.packet import flags as FL
from nfvkit.packet.parse import i64, kernel
from nfvkit.vnf.state import FLOW_KEY, StateSchema, flow_key
from nfvkit.vnf.state.kernels import Table, find_or_insert, remove

FLOW_SCHEMA = StateSchema(
    FLOW_KEY,
    (
        ("first", "<i8"),
        ("last", "<i8"),
        ("packets", "<i8"),
        ("bytes", "<i8"),
        ("rpackets", "<i8"),
        ("rbytes", "<i8"),
        ("tcp", "<u2"),
        ("rtcp", "<u2"),
    ),
)
INITIATOR_UPPER, ACTIVE_DEADLINE = 1, 2

# params: idle ns, active ns, biflow (0/1), end_on_fin (0/1)
P_IDLE, P_ACTIVE, P_BIFLOW, P_END_ON_FIN = range(4)
# counters: packets not tracked (table full), non-IP packets, flows ended by FIN/RST
C_UNTRACKED, C_NON_IP, C_ENDED, N_COUNTERS = range(4)

_IP = FL.IPV4 | FL.IPV6
_FIN, _RST = 0x01, 0x04


@kernel
def _tcp_bits(data: NDArray[np.uint8], start: int, l4: int, n: int, fl: int) -> int:
    """TCP control bits (RFC 7125: NS as bit 8, CWR..FIN as bits 7..0); 0 if not TCP."""
    if (fl & FL.TCP) == 0 or l4 < 0 or l4 + 13 >= n:
        return 0
    return ((i64(data[start + l4 + 12]) & 1) << 8) | i64(data[start + l4 + 13])


@kernel
def _set_deadline(rows: Any, s: int, idle: int, active: int) -> None:
    idle_at = rows[s].last + idle
    active_at = rows[s].first + active
    if active_at < idle_at:
        rows[s].expire = active_at
        rows[s].flags = rows[s].flags | ACTIVE_DEADLINE
    else:
        rows[s].expire = idle_at
        rows[s].flags = rows[s].flags & INITIATOR_UPPER


@kernel
def _ended(rows: Any, s: int, bits: int, biflow: int) -> bool:
    """Whether this packet ends the flow: RST, or FIN (biflow: FIN seen both ways)."""
    if bits & _RST:
        return True
    if biflow:
        return bool(rows[s].tcp & rows[s].rtcp & _FIN)
    return bool(bits & _FIN)


@kernel
def observe_kernel(
    tbl: Table,
    key: NDArray[np.uint32],
    seed: int,
    params: NDArray[np.int64],
    counters: NDArray[np.int64],
    hashes: NDArray[np.int64],
    sides: NDArray[np.int64],
    now_col: NDArray[np.int64],
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    l4_off: NDArray[np.int16],
    flags: NDArray[np.uint16],
    proto: NDArray[np.uint8],
    ip_len: NDArray[np.int32],
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    sport: NDArray[np.uint16],
    dport: NDArray[np.uint16],
) -> None:
    """Count every IP packet of the batch into its flow's entry (see the module docstring).

    ``key`` is scratch space of :data:`~nfvkit.vnf.state.FLOW_KEY_WORDS` words; ``hashes`` and
    ``sides`` (at least one per packet) are scratch that this kernel fills first.
    """
    biflow, end_on_fin = params[P_BIFLOW], params[P_END_ON_FIN]
    hash_pass(tbl, key, seed, biflow, src, dst, sport, dport, proto, hashes, sides)
    rows = tbl[0]
    mask = int(rows.shape[0]) - 1
    idle, active = params[P_IDLE], params[P_ACTIVE]
    n = offset.shape[0]
    for i in range(n):
        if i + PREFETCH_AHEAD < n:
            prefetch_row(rows, hashes[i + PREFETCH_AHEAD] & mask)
        fl = int(flags[i])
        if (fl & _IP) == 0 or (fl & FL.MALFORMED) != 0:
            counters[C_NON_IP] += 1
            continue
        now = int(now_col[i])
        side = int(sides[i])
        if side:
            flow_key(key, dst, src, i, int(dport[i]), int(sport[i]), int(proto[i]))
        else:
            flow_key(key, src, dst, i, int(sport[i]), int(dport[i]), int(proto[i]))
        bits = _tcp_bits(data, int(offset[i]), int(l4_off[i]), int(length[i]), fl)
        s, created = find_or_insert(tbl, key, hashes[i], now)
        if s < 0:
            counters[C_UNTRACKED] += 1
            continue
        if created:
            rows[s].first = now
            rows[s].last = now
            rows[s].flags = side
        if side == (rows[s].flags & INITIATOR_UPPER):
            rows[s].packets += 1
            rows[s].bytes += int(ip_len[i])
            rows[s].tcp = rows[s].tcp | bits
        else:
            rows[s].rpackets += 1
            rows[s].rbytes += int(ip_len[i])
            rows[s].rtcp = rows[s].rtcp | bits
        rows[s].last = max(rows[s].last, now)
        _set_deadline(rows, s, idle, active)
        if end_on_fin and bits and _ended(rows, s, bits, biflow):
            remove(tbl, s)
            counters[C_ENDED] += 1
