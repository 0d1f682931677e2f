"""The ``dpi`` scan kernel: walk each packet's L4 payload through the automaton, resolve
matches to rules, pick each packet's winning action.

Per packet the payload is ``l7_off`` up to the end of the IP packet (``l3_off + ip_len``, never
beyond the frame), so Ethernet padding is not scanned. Non-IP packets, non-first fragments and
packets without an L4 payload are skipped.

When the walk reaches a state with outputs, each pattern ending there is checked (exact bytes
for case-sensitive patterns) and marks the contents it serves whose ``offset``/``depth`` window
holds it; a rule whose every content is marked is checked against the packet's header; if it
holds, it competes for the packet: ``pass`` beats ``drop`` beats ``alert``. Marks are
per-packet "stamps", so nothing is cleared between packets.

Outputs: ``drop`` wins -> the fate argument; the rules of the winning action (``alert`` or
``drop``), up to the scratch size per packet, as ``(packet, rule)`` pairs in ``hit_pkt`` /
``hit_rule``; per-rule hit counts; counters in ``ctl`` (indices ``K_*``).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

from nfvkit.packet import flags as F

(
    K_STAMP,
    K_PACKETS,
    K_BYTES,
    K_MATCHED,
    K_ALERTS,
    K_DROPS,
    K_PASSES,
    K_LOST,
    N_CTL,
) = range(9)
COUNTER_NAMES = {
    "scanned_packets": K_PACKETS,
    "scanned_bytes": K_BYTES,
    "matched_packets": K_MATCHED,
    "alerts": K_ALERTS,
    "dropped": K_DROPS,
    "passed": K_PASSES,
    "alerts_lost": K_LOST,
}
_SIGN = -9223372036854775807 - 1
_PASS = 3


@njit(cache=True, nogil=True, inline="always")
def _half(words: NDArray[np.uint32], i: int, w: int) -> int:
    return ((np.int64(words[i, w]) << 32) | np.int64(words[i, w + 1])) ^ _SIGN


@njit(cache=True, nogil=True)
def _addr_ok(addr: NDArray[np.int64], a: int, b: int, words: NDArray[np.uint32], i: int, v6: int) -> bool:
    if a == b:
        return True
    hi = _half(words, i, 0)
    lo = _half(words, i, 2)
    has_inc = False
    hit = False
    for k in range(a, b):
        fl = addr[k, 4]
        excl = fl & 1
        if excl == 0:
            has_inc = True
        if (fl >> 1) & 1 != v6:
            continue
        above = hi > addr[k, 0] or (hi == addr[k, 0] and lo >= addr[k, 1])
        below = hi < addr[k, 2] or (hi == addr[k, 2] and lo <= addr[k, 3])
        if above and below:
            if excl:
                return False
            hit = True
    return hit or not has_inc


@njit(cache=True, nogil=True)
def _port_ok(port: NDArray[np.int32], a: int, b: int, value: int) -> bool:
    has_inc = False
    hit = False
    for k in range(a, b):
        inside = port[k, 0] <= value <= port[k, 1]
        if port[k, 2]:
            if inside:
                return False
        else:
            has_inc = True
            hit = hit or inside
    return hit or not has_inc


@njit(cache=True, nogil=True)
def _side_ok(
    rule: NDArray[np.int32],
    r: int,
    addr: NDArray[np.int64],
    port: NDArray[np.int32],
    a_src: NDArray[np.uint32],
    a_dst: NDArray[np.uint32],
    p_src: int,
    p_dst: int,
    i: int,
    v6: int,
) -> bool:
    return (
        _port_ok(port, rule[r, 8], rule[r, 9], p_src)
        and _port_ok(port, rule[r, 10], rule[r, 11], p_dst)
        and _addr_ok(addr, rule[r, 4], rule[r, 5], a_src, i, v6)
        and _addr_ok(addr, rule[r, 6], rule[r, 7], a_dst, i, v6)
    )


@njit(cache=True, nogil=True)
def header_ok(
    rule: NDArray[np.int32],
    r: int,
    addr: NDArray[np.int64],
    port: NDArray[np.int32],
    src: NDArray[np.uint32],
    dst: NDArray[np.uint32],
    sport: int,
    dport: int,
    fl: int,
    i: int,
) -> bool:
    """Whether packet ``i`` satisfies rule ``r``'s protocol, addresses and ports."""
    proto = rule[r, 1]
    if proto == 6 and not fl & F.TCP:
        return False
    if proto == 17 and not fl & F.UDP:
        return False
    if proto == 1 and not fl & F.ICMP:
        return False
    v6 = 1 if fl & F.IPV6 else 0
    if _side_ok(rule, r, addr, port, src, dst, sport, dport, i, v6):
        return True
    return rule[r, 3] == 1 and _side_ok(rule, r, addr, port, dst, src, dport, sport, i, v6)


@njit(cache=True, nogil=True)
def _exact(data: NDArray[np.uint8], end: int, pat_bytes: NDArray[np.uint8], at: int, n: int) -> bool:
    start = end - n + 1
    for k in range(n):
        if data[start + k] != pat_bytes[at + k]:
            return False
    return True


@njit(cache=True, nogil=True)
def _report(
    o: int,
    data: NDArray[np.uint8],
    p: int,
    pos: int,
    ac_out: tuple[NDArray[np.int32], NDArray[np.int32]],
    tabs: tuple[
        NDArray[np.int32],
        NDArray[np.uint8],
        NDArray[np.int32],
        NDArray[np.int32],
        NDArray[np.int32],
        NDArray[np.int32],
        NDArray[np.int64],
        NDArray[np.int32],
    ],
    work: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int32], NDArray[np.int32]],
    stamp: int,
    hdr: tuple[NDArray[np.uint32], NDArray[np.uint32], int, int, int, int],
    best: int,
    nm: int,
) -> tuple[int, int]:
    """Resolve the patterns of output state ``o`` ending at payload byte ``pos`` (buffer index
    ``p``); return the packet's best action so far and how many rules share it."""
    out_start, out_keys = ac_out
    pat, pat_bytes, cstart, conts, cont, rule, addr, port = tabs
    cstamp, rstamp, rcount, scratch = work
    src, dst, sport, dport, fl, i = hdr
    for q in range(out_start[o], out_start[o + 1]):
        pid = out_keys[q]
        n = pat[pid, 0]
        start = pos - n + 1
        if start < 0:
            continue
        if pat[pid, 1] and not _exact(data, p, pat_bytes, pat[pid, 2], n):
            continue
        for k in range(cstart[pid], cstart[pid + 1]):
            c = conts[k]
            if cstamp[c] == stamp or start < cont[c, 1] or start + n > cont[c, 2]:
                continue
            cstamp[c] = stamp
            r = cont[c, 0]
            if rstamp[r] != stamp:
                rstamp[r] = stamp
                rcount[r] = 0
            rcount[r] += 1
            if rcount[r] != rule[r, 2]:
                continue
            if not header_ok(rule, r, addr, port, src, dst, sport, dport, fl, i):
                continue
            act = rule[r, 0]
            if act < best:
                continue
            if act > best:
                best = act
                nm = 0
            if nm < scratch.shape[0]:
                scratch[nm] = r
            nm += 1
    return best, nm


@njit(cache=True, nogil=True)
def payload_span(
    l3_off: NDArray[np.int16],
    l7_off: NDArray[np.int16],
    ip_len: NDArray[np.int32],
    length: NDArray[np.int32],
    flags: NDArray[np.uint16],
    i: int,
) -> tuple[int, int]:
    """Packet ``i``'s L4 payload as frame offsets ``[start, end)``; empty when there is none."""
    l3 = np.int64(l3_off[i])
    l7 = np.int64(l7_off[i])
    if l3 < 0 or l7 < 0 or flags[i] & F.MALFORMED or not flags[i] & (F.IPV4 | F.IPV6):
        return 0, 0
    end = l3 + ip_len[i]
    if end > length[i]:
        end = np.int64(length[i])
    if end < l7:
        end = l7
    return l7, end
