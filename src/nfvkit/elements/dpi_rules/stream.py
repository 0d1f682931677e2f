"""Stream mode of the ``dpi`` element: the automaton continues across in-order TCP segments.

Per directional TCP flow (the 5-tuple, :data:`~nfvkit.vnf.state.FLOW_KEY`) a state table entry
keeps where the automaton stopped, the sequence number the next segment must carry, the stream
position (payload bytes scanned in the flow) and the last :data:`HISTORY` bytes of the stream.
A segment whose sequence number is the expected one resumes from the saved state, so a
pattern split across segments is found in the segment where it ends; any other segment
(retransmission, gap, reordering) restarts the automaton (counted as a resync). FIN and RST
end the entry; idle flows expire after the configured timeout.

In stream mode ``offset``/``depth`` count from the first payload byte of the flow; every
content of a rule must still end within one segment. A case-sensitive pattern that spans the
segment boundary is verified against the saved history (its bytes more than :data:`HISTORY`
back are taken as matching). An entry holds the id of the rule set it was scanned with; after
``set_rules`` (or an import from an instance with other rules) old entries restart.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import NDArray

from nfvkit.elements.dpi_rules.kernels import (
    AcArgs,
    Cols,
    Out,
    Tabs,
    Work,
    begin,
    payload_span,
    settle,
    walk,
)
from nfvkit.elements.dpi_rules.model import DpiRule
from nfvkit.packet import flags as F
from nfvkit.packet.flow import hash_words
from nfvkit.packet.parse import i64, kernel
from nfvkit.vnf.state import FLOW_KEY, StateSchema
from nfvkit.vnf.state import kernels as SK
from nfvkit.vnf.state.keys import flow_key

HISTORY = 32
STREAM_SCHEMA = StateSchema(
    key=FLOW_KEY,
    values=(
        ("ac_state", "<i4"),
        ("next_seq", "<u4"),
        ("ruleset", "<u4"),
        ("nhist", "<u4"),
        ("pos", "<i8"),
        ("h0", "<u8"),
        ("h1", "<u8"),
        ("h2", "<u8"),
        ("h3", "<u8"),
    ),
)
S_NEW, S_CONTINUED, S_RESYNC, S_REFUSED, N_SCTL = range(5)
STREAM_COUNTERS = {
    "stream_new": S_NEW,
    "stream_continued": S_CONTINUED,
    "stream_resyncs": S_RESYNC,
    "stream_refused": S_REFUSED,
}
_FIN_RST = 0x05
_SYN = 0x02


def ruleset_id(rules: Sequence[DpiRule]) -> int:
    """A 32-bit fingerprint of a rule set (what a saved automaton state is valid for)."""
    return zlib.crc32("\n".join(r.text() for r in rules).encode()) | 1


@kernel
def _word(rows: Any, s: int, w: int) -> int:
    if w == 0:
        return int(rows[s].h0)
    if w == 1:
        return int(rows[s].h1)
    if w == 2:
        return int(rows[s].h2)
    return int(rows[s].h3)


@njit(cache=True, nogil=True)
def _load_hist(rows: Any, s: int, hist: NDArray[np.uint8]) -> int:
    """Unpack slot ``s``'s history into ``hist``; return its length."""
    for k in range(HISTORY):
        hist[k] = (np.uint64(_word(rows, s, k >> 3)) >> np.uint64(8 * (k & 7))) & np.uint64(0xFF)
    return min(int(rows[s].nhist), HISTORY)


@njit(cache=True, nogil=True)
def _save_hist(
    rows: Any,
    s: int,
    hist: NDArray[np.uint8],
    nhist: int,
    data: NDArray[np.uint8],
    p0: int,
    n: int,
) -> None:
    """Store the last :data:`HISTORY` bytes of (``hist[:nhist]`` then ``data[p0:p0+n]``)."""
    total = nhist + n
    keep = min(total, HISTORY)
    w0 = w1 = w2 = w3 = np.uint64(0)
    for k in range(keep):
        at = total - keep + k
        v = np.uint64(hist[at] if at < nhist else data[p0 + at - nhist]) << np.uint64(8 * (k & 7))
        q = k >> 3
        if q == 0:
            w0 |= v
        elif q == 1:
            w1 |= v
        elif q == 2:
            w2 |= v
        else:
            w3 |= v
    rows[s].h0 = w0
    rows[s].h1 = w1
    rows[s].h2 = w2
    rows[s].h3 = w3
    rows[s].nhist = keep


@kernel
def _u32(data: NDArray[np.uint8], p: int) -> int:
    hi = (i64(data[p]) << 8) | i64(data[p + 1])
    return (hi << 16) | (i64(data[p + 2]) << 8) | i64(data[p + 3])


@njit(cache=True, nogil=True)
def _resume(
    tbl: SK.Table,
    key: NDArray[np.uint32],
    hdr: tuple[NDArray[np.uint32], NDArray[np.uint32], int, int, int, int],
    seq: int,
    now: int,
    ruleset: int,
    limit: int,
    nclasses: int,
    hist: NDArray[np.uint8],
    sctl: NDArray[np.int64],
) -> tuple[int, int, int, int]:
    """(slot or -1, start state, stream position, history length) for a TCP segment."""
    src, dst, sport, dport, _, i = hdr
    rows = tbl[0]
    flow_key(key, src, dst, i, sport, dport, 6)
    h = int(hash_words(key, tbl[2][SK.C_SEED]))
    slot, created = SK.find_or_insert(tbl, key, h, now)
    if slot < 0:
        sctl[S_REFUSED] += 1
        return -1, 0, 0, 0
    if created:
        sctl[S_NEW] += 1
        return slot, 0, 0, 0
    pos = int(rows[slot].pos)
    s0 = int(rows[slot].ac_state)
    ok = rows[slot].ruleset == ruleset and 0 <= s0 < limit and s0 % nclasses == 0
    if not ok or int(rows[slot].next_seq) != seq:
        sctl[S_RESYNC] += 1
        return slot, 0, pos, 0
    sctl[S_CONTINUED] += 1
    return slot, s0, pos, _load_hist(rows, slot, hist)


@njit(cache=True, nogil=True)
def _save(
    tbl: SK.Table,
    slot: int,
    tflags: int,
    seq: int,
    state: tuple[int, int, int, int],
    hist: NDArray[np.uint8],
    data: NDArray[np.uint8],
    p0: int,
    n: int,
    ruleset: int,
) -> None:
    """Keep a segment's end state (automaton state, position, history); FIN/RST end it."""
    if tflags & _FIN_RST:
        SK.remove(tbl, slot)
        return
    s, pos0, nhist, now = state
    rows = tbl[0]
    rows[slot].ac_state = s
    rows[slot].next_seq = (seq + n + (1 if tflags & _SYN else 0)) & 0xFFFFFFFF
    rows[slot].ruleset = ruleset
    rows[slot].pos = pos0 + n
    rows[slot].expire = now + tbl[2][SK.C_IDLE]
    _save_hist(rows, slot, hist, nhist, data, p0, n)


@njit(cache=True, nogil=True)
def scan_stream(
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    offs: tuple[NDArray[np.int16], NDArray[np.int16], NDArray[np.int16]],
    ip_len: NDArray[np.int32],
    flags: NDArray[np.uint16],
    times: NDArray[np.int64],
    cols: Cols,
    ac: AcArgs,
    tabs: Tabs,
    work: Work,
    out: Out,
    drop_fate: int,
    stream: tuple[SK.Table, NDArray[np.uint32], int, NDArray[np.int64]],
) -> int:
    """Like :func:`.kernels.scan_batch`, resuming TCP flows from their saved state
    (``stream``: the table, a key scratch, the rule-set id, the stream counters)."""
    l3_off, l4_off, l7_off = offs
    tbl, key, ruleset, sctl = stream
    limit = ac[1].shape[0]
    nh = 0
    for i in range(offset.shape[0]):
        a, b = payload_span(l3_off, l7_off, ip_len, length, flags, i)
        if b <= a:
            continue
        stamp = begin(out[1], a, b)
        base = offset[i]
        # Built here, not by kernels.header: an array returned from an NRT-less kernel into
        # this reference-counting one would be released once too often.
        hdr = (cols[0], cols[1], i64(cols[2][i]), i64(cols[3][i]), i64(flags[i]), i)
        slot, s0, pos0, nhist, seq = -1, 0, 0, 0, 0
        if flags[i] & F.TCP and l4_off[i] >= 0:
            seq = _u32(data, base + l4_off[i] + 4)
            slot, s0, pos0, nhist = _resume(
                tbl, key, hdr, seq, times[i], ruleset, limit, ac[3], work[4], sctl
            )
        p0 = base + a
        s, best, nm = walk(
            data, p0, p0, base + b, s0, pos0, nhist, ac, tabs, work, stamp, hdr, 0, 0
        )
        if slot >= 0:
            tflags = i64(data[base + l4_off[i] + 13])
            state = (s, pos0, nhist, i64(times[i]))
            _save(tbl, slot, tflags, seq, state, work[4], data, p0, b - a, ruleset)
        nh = settle(i, best, nm, work, out, drop_fate, nh)
    return nh
