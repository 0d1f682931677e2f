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

The walk is one table load per byte, a chain of dependent loads; :func:`walk2` runs two
packets' chains interleaved so the CPU overlaps them (about twice the bytes per cycle), and
:func:`scan_batch` pairs up payloads of at least :data:`PAIR_MIN` bytes. Table indices are
unsigned so that Numba adds no negative-index fix-up to the chain.

Outputs: ``drop`` wins -> the fate argument; the rules of the winning action (``alert`` or
``drop``), up to the scratch size per packet, as ``(packet, rule)`` pairs in ``hit_pkt`` /
``hit_rule``; per-rule hit counts; counters in ``ctl`` (indices ``K_*``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from nfvkit.packet import flags as F
from nfvkit.packet.parse import i64, kernel

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

AcArgs = tuple[
    NDArray[np.uint8], NDArray[np.uint32], int, int, NDArray[np.int32], NDArray[np.int32]
]
"""classes, delta, first_out, nclasses, out_start, out_keys (see :class:`.automaton.Automaton`)"""
Tabs = tuple[
    NDArray[np.int32],
    NDArray[np.uint8],
    NDArray[np.int32],
    NDArray[np.int32],
    NDArray[np.int32],
    NDArray[np.int32],
    NDArray[np.int64],
    NDArray[np.int32],
]
"""pat, pat_bytes, pat_cstart, pat_conts, cont, rule, addr, port (see :mod:`.compiler`)"""
Work = tuple[
    NDArray[np.int64], NDArray[np.int64], NDArray[np.int32], NDArray[np.int32], NDArray[np.uint8]
]
"""Scratch: content stamps, rule stamps, rule content counts, the packet's winning rules, and
the stream history (the flow's bytes before this segment, most recent last)."""
Hdr = tuple[NDArray[np.uint32], NDArray[np.uint32], int, int, int, int]
"""src and dst columns, then the packet's sport, dport, flags and index"""


@kernel
def _half(words: NDArray[np.uint32], i: int, w: int) -> int:
    return ((i64(words[i, w]) << 32) | i64(words[i, w + 1])) ^ _SIGN


@kernel
def _addr_ok(
    addr: NDArray[np.int64], a: int, b: int, words: NDArray[np.uint32], i: int, v6: int
) -> bool:
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


@kernel
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


@kernel
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


@kernel
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


@kernel
def _exact(
    data: NDArray[np.uint8],
    p: int,
    n: int,
    p0: int,
    hist: NDArray[np.uint8],
    nhist: int,
    pat_bytes: NDArray[np.uint8],
    at: int,
) -> bool:
    """Whether the ``n`` bytes ending at ``data[p]`` equal ``pat_bytes[at:at + n]``; bytes
    before ``p0`` (the segment start) come from ``hist``, and those beyond it are not checked."""
    for k in range(n):
        q = p - n + 1 + k
        if q >= p0:
            b = data[q]
        elif p0 - q <= nhist:
            b = hist[nhist - (p0 - q)]
        else:
            continue
        if b != pat_bytes[at + k]:
            return False
    return True


@kernel
def _report(
    o: int,
    data: NDArray[np.uint8],
    p: int,
    pos: int,
    p0: int,
    nhist: int,
    ac_out: tuple[NDArray[np.int32], NDArray[np.int32]],
    tabs: Tabs,
    work: Work,
    stamp: int,
    hdr: Hdr,
    best: int,
    nm: int,
) -> tuple[int, int]:
    """Resolve the patterns of output state ``o`` ending at payload byte ``pos`` (buffer index
    ``p``); return the packet's best action so far and how many rules share it."""
    out_start, out_keys = ac_out
    pat, pat_bytes, cstart, conts, cont, rule, addr, port = tabs
    cstamp, rstamp, rcount, scratch, hist = work
    src, dst, sport, dport, fl, i = hdr
    for q in range(out_start[o], out_start[o + 1]):
        pid = out_keys[q]
        n = pat[pid, 0]
        start = pos - n + 1
        if start < 0:
            continue
        if pat[pid, 1] and not _exact(data, p, n, p0, hist, nhist, pat_bytes, pat[pid, 2]):
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


@kernel
def payload_span(
    l3_off: NDArray[np.int16],
    l7_off: NDArray[np.int16],
    ip_len: NDArray[np.int32],
    length: NDArray[np.int32],
    flags: NDArray[np.uint16],
    i: int,
) -> tuple[int, int]:
    """Packet ``i``'s L4 payload as frame offsets ``[start, end)``; empty when there is none."""
    l3 = i64(l3_off[i])
    l7 = i64(l7_off[i])
    if l3 < 0 or l7 < 0 or flags[i] & F.MALFORMED or not flags[i] & (F.IPV4 | F.IPV6):
        return 0, 0
    end = l3 + ip_len[i]
    if end > length[i]:
        end = i64(length[i])
    end = max(end, l7)
    return l7, end


@kernel
def walk(
    data: NDArray[np.uint8],
    seg0: int,
    p0: int,
    p1: int,
    s: int,
    pos0: int,
    nhist: int,
    ac: AcArgs,
    tabs: Tabs,
    work: Work,
    stamp: int,
    hdr: Hdr,
    best: int,
    nm: int,
) -> tuple[int, int, int]:
    """Run the automaton over ``data[p0:p1]`` from state ``s``, in a segment that starts at
    ``seg0`` (stream position ``pos0``) with ``nhist`` bytes of history before it; return the
    final state and the packet's best action and rule count (continuing ``best``, ``nm``)."""
    classes, delta, first_out, nclasses, out_start, out_keys = ac
    fo = np.uint64(first_out)
    u = np.uint64(s)
    for p in range(p0, p1):
        # Unsigned indices: Numba adds no negative-index wraparound to the dependency chain.
        u = np.uint64(delta[u + np.uint64(classes[data[p]])])
        if u >= fo:
            o = i64(u - fo) // nclasses
            pos = pos0 + p - seg0
            outs = (out_start, out_keys)
            best, nm = _report(o, data, p, pos, seg0, nhist, outs, tabs, work, stamp, hdr, best, nm)
    return i64(u), best, nm


@kernel
def walk2(
    data: NDArray[np.uint8],
    a0: int,
    a1: int,
    b0: int,
    b1: int,
    ac: AcArgs,
    tabs: Tabs,
    works: tuple[Work, Work],
    stamps: tuple[int, int],
    hdrs: tuple[Hdr, Hdr],
) -> tuple[int, int, int, int]:
    """Two packets' payloads (``data[a0:a1]``, ``data[b0:b1]``) walked side by side, so the
    two table-load chains overlap in the CPU; return (best, count) for each."""
    classes, delta, first_out, nclasses, out_start, out_keys = ac
    wa, wb = works
    fo = np.uint64(first_out)
    s = np.uint64(0)
    t = np.uint64(0)
    best_a = nm_a = best_b = nm_b = 0
    m = min(a1 - a0, b1 - b0)
    for k in range(m):
        s = np.uint64(delta[s + np.uint64(classes[data[a0 + k]])])
        t = np.uint64(delta[t + np.uint64(classes[data[b0 + k]])])
        if s >= fo:
            o = i64(s - fo) // nclasses
            best_a, nm_a = _report(
                o, data, a0 + k, k, a0, 0, (out_start, out_keys), tabs, wa, stamps[0], hdrs[0],
                best_a, nm_a,
            )  # fmt: skip
        if t >= fo:
            o = i64(t - fo) // nclasses
            best_b, nm_b = _report(
                o, data, b0 + k, k, b0, 0, (out_start, out_keys), tabs, wb, stamps[1], hdrs[1],
                best_b, nm_b,
            )  # fmt: skip
    _, best_a, nm_a = walk(
        data, a0, a0 + m, a1, i64(s), 0, 0, ac, tabs, wa, stamps[0], hdrs[0], best_a, nm_a
    )
    _, best_b, nm_b = walk(
        data, b0, b0 + m, b1, i64(t), 0, 0, ac, tabs, wb, stamps[1], hdrs[1], best_b, nm_b
    )
    return best_a, nm_a, best_b, nm_b


@kernel
def _record(
    i: int,
    best: int,
    nm: int,
    scratch: NDArray[np.int32],
    fate: NDArray[np.int16],
    drop_fate: int,
    ctl: NDArray[np.int64],
    rule_hits: NDArray[np.int64],
    hit_pkt: NDArray[np.int32],
    hit_rule: NDArray[np.int32],
    nh: int,
) -> int:
    """Apply packet ``i``'s winning action and record its rules; return the new hit count."""
    ctl[K_MATCHED] += 1
    if best == _PASS:
        ctl[K_PASSES] += 1
    elif best == 2:
        fate[i] = drop_fate
        ctl[K_DROPS] += 1
    kept = min(nm, scratch.shape[0])
    for k in range(kept):
        r = scratch[k]
        rule_hits[r] += 1
        if best == _PASS:
            continue
        if nh < hit_pkt.shape[0]:
            hit_pkt[nh] = i
            hit_rule[nh] = r
            nh += 1
            ctl[K_ALERTS] += 1
        else:
            ctl[K_LOST] += 1
    if best != _PASS:
        ctl[K_LOST] += nm - kept
    return nh


@kernel
def begin(ctl: NDArray[np.int64], a: int, b: int) -> int:
    """Count a scanned payload; return the packet's stamp."""
    stamp = ctl[K_STAMP] + 1
    ctl[K_STAMP] = stamp
    ctl[K_PACKETS] += 1
    ctl[K_BYTES] += b - a
    return i64(stamp)


PAIR_MIN = 64
"""Payloads at least this long are walked two at a time; shorter ones one by one."""

Cols = tuple[NDArray[np.uint32], NDArray[np.uint32], NDArray[np.uint16], NDArray[np.uint16]]
Out = tuple[
    NDArray[np.int16], NDArray[np.int64], NDArray[np.int64], NDArray[np.int32], NDArray[np.int32]
]
"""fate, ctl, per-rule hits, hit packets, hit rules"""


@kernel
def header(cols: Cols, flags: NDArray[np.uint16], i: int) -> Hdr:
    """Packet ``i``'s header fields as :data:`Hdr` (for NRT-less kernels only: it returns
    arrays without a reference)."""
    src, dst, sport, dport = cols
    return (src, dst, i64(sport[i]), i64(dport[i]), i64(flags[i]), i)


@kernel
def settle(i: int, best: int, nm: int, work: Work, out: Out, drop_fate: int, nh: int) -> int:
    """Apply packet ``i``'s outcome, if it matched; return the new hit count."""
    if not best:
        return nh
    fate, ctl, rule_hits, hit_pkt, hit_rule = out
    return _record(i, best, nm, work[3], fate, drop_fate, ctl, rule_hits, hit_pkt, hit_rule, nh)


@kernel
def scan_batch(
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    l3_off: NDArray[np.int16],
    l7_off: NDArray[np.int16],
    ip_len: NDArray[np.int32],
    flags: NDArray[np.uint16],
    cols: Cols,
    ac: AcArgs,
    tabs: Tabs,
    works: tuple[Work, Work],
    out: Out,
    drop_fate: int,
) -> int:
    """Scan every packet's payload on its own (per-packet mode), long payloads two at a time;
    return the number of hits (in ``out``'s hit arrays, not necessarily in packet order)."""
    ctl = out[1]
    wa, wb = works
    n = offset.shape[0]
    nh = 0
    j = -1  # a long payload waiting for a partner
    ja = jb = 0
    for i in range(n + 1):
        if i == n:
            if j < 0:
                break
            i, a, b = j, ja, jb  # noqa: PLW2901 (the unpaired one, walked alone)
            j = -1
        else:
            a, b = payload_span(l3_off, l7_off, ip_len, length, flags, i)
            if b <= a:
                continue
            if b - a >= PAIR_MIN:
                if j < 0:
                    j, ja, jb = i, a, b
                    continue
                sj = begin(ctl, ja, jb)
                si = begin(ctl, a, b)
                bj, nj, bi, ni = walk2(
                    data, offset[j] + ja, offset[j] + jb, offset[i] + a, offset[i] + b, ac, tabs,
                    works, (sj, si), (header(cols, flags, j), header(cols, flags, i)),
                )  # fmt: skip
                nh = settle(j, bj, nj, wa, out, drop_fate, nh)
                nh = settle(i, bi, ni, wb, out, drop_fate, nh)
                j = -1
                continue
        p0 = offset[i] + a
        si = begin(ctl, a, b)
        hi = header(cols, flags, i)
        _, bi, ni = walk(data, p0, p0, offset[i] + b, 0, 0, 0, ac, tabs, wa, si, hi, 0, 0)
        nh = settle(i, bi, ni, wa, out, drop_fate, nh)
    return nh
