"""Packet kernels of the ``lb`` element: VIP match, connection table, Maglev dispatch, header
rewrite with incremental checksums, and the reply path.

Two state tables (see :mod:`nfvkit.vnf.state`):

* ``flows`` (:data:`FLOWS_SCHEMA`, one 64-byte record per flow), keyed by the client's 5-tuple
  toward the VIP: the backend's slot and portable id, and the source port toward the backend
  (the SNAT port, or the client's port without SNAT). Flag :data:`LINKED`: the flow has a reply
  entry.
* ``replies`` (:data:`REPLIES_SCHEMA`, ``l3`` mode only), keyed by the 5-tuple the backend
  answers with: which VIP and port to restore as the source and, with SNAT, which client
  address and port to restore as the destination. It is derived from ``flows``: its entries
  never expire; each goes when its flow retires (expiry, eviction, removal), which the kernels
  see in the flows table's retirement log, checking the entry still belongs to that flow.

Header rewrites and checksums: :mod:`.rewrite`. A batch takes two passes: :func:`_classify`
hashes every packet's key and prefetches its table slot, then :func:`lb_kernel` does the work
(see :mod:`.jit`).

Kernels get drop fates and parameters as arrays (never module globals): ``prm`` holds the
``P_*`` entries, ``codes`` the ``D_*`` fates, ``cnt`` the ``K_*`` counters.
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

from nfvkit.elements.lblib.rewrite import rewrite_forward, rewrite_reply
from nfvkit.packet import flags as F
from nfvkit.packet.flow import hash_row, hash_words
from nfvkit.packet.jit import inlined, prefetch
from nfvkit.packet.parse import i64, kernel
from nfvkit.vnf.state import FLOW_KEY, StateSchema, flow_key, reverse_flow_key
from nfvkit.vnf.state.kernels import C_LOGGED, C_NOW, LIVE, Table, find, find_or_insert, remove

FLOWS_SCHEMA = StateSchema(FLOW_KEY, (("backend", "<u2"), ("port", "<u2"), ("bid", "<u4")))
REPLIES_SCHEMA = StateSchema(
    FLOW_KEY, (("vip", "<u2"), ("vport", "<u2"), ("cport", "<u2"), ("client", "(4,)<u4"))
)
LINKED = 1
NEVER = 1 << 62
SNAT_STEP = 40503  # odd stride between SNAT port candidates

P_DSR, P_SNAT, P_LO, P_HI, P_IDLE, P_MSEED, P_FSEED, P_RSEED, P_TRIES, N_PRM = range(10)
D_NO_BACKEND, D_FULL, D_IN_USE, D_FRAGMENT, D_UNSUPPORTED, N_CODES = range(6)
K_NEW, K_FORWARD, K_REPLY, K_PASS, N_CNT = range(5)

Arr = NDArray[Any]


# VIPs and reply entries ---------------------------------------------------------------------


@inlined
def match_vip(vips: tuple[Arr, Arr, Arr], addr: Arr, row: int, dp: int, pr: int) -> int:
    """The first VIP matching destination ``addr[row]``, ``pr`` and port ``dp`` (-1: unknown,
    a fragment, matches any port; -2: no port, matches port-less VIPs only), or -1."""
    vaddr, vport, vproto = vips
    for v in range(vaddr.shape[0]):
        if (
            vaddr[v, 3] != addr[row, 3]
            or vaddr[v, 2] != addr[row, 2]
            or vaddr[v, 1] != addr[row, 1]
            or vaddr[v, 0] != addr[row, 0]
        ):
            continue
        if vproto[v] != 0 and vproto[v] != pr:
            continue
        if vport[v] >= 0 and dp != -1 and dp != vport[v]:
            continue
        return v
    return -1


@kernel
def _reply_key(rkey: Arr, rec: Any, baddr: Arr, bport: Arr, snat: Arr, snat_on: bool) -> None:
    """The key of the reply entry of forward record ``rec``: backend → client or SNAT."""
    slot = i64(rec.backend)
    vport = i64(rec.key[8]) & 0xFFFF
    bp = i64(bport[slot]) if bport[slot] >= 0 else vport
    for w in range(4):
        rkey[w] = baddr[slot, w]
        rkey[4 + w] = snat[0, w] if snat_on else rec.key[w]
    rkey[8] = (bp << 16) | i64(rec.port)
    rkey[9] = rec.key[9]


@kernel
def unlink_retired(
    ftbl: Table, rtbl: Table, rkey: Arr, prm: Arr, baddr: Arr, bport: Arr, snat: Arr
) -> None:
    """Remove the reply entries of the flows retired since the last call (the flows table's
    log), each only if it still belongs to that flow; empty the log."""
    fctl = ftbl[2]
    n = fctl[C_LOGGED]
    if n == 0:
        return
    log, rows = ftbl[1], rtbl[0]
    for j in range(n):
        rec = log[j]
        if (rec.flags & LINKED) == 0:
            continue
        _reply_key(rkey, rec, baddr, bport, snat, prm[P_SNAT] != 0)
        r = find(rtbl, rkey, i64(hash_words(rkey, prm[P_RSEED])), 0)
        if r < 0 or i64(rows[r].cport) != i64(rec.key[8]) >> 16:
            continue
        if i64(rows[r].vport) != (i64(rec.key[8]) & 0xFFFF):
            continue
        mine = True
        for w in range(4):
            mine = mine and rows[r].client[w] == rec.key[w]
        if mine:
            remove(rtbl, r)
    fctl[C_LOGGED] = 0


@kernel
def link(
    rtbl: Table, rkey: Arr, prm: Arr, fkey: Arr, slot: int, vip: int, baddr: Arr, bport: Arr,
    snat: Arr, hb: int, pref: int, now: int,
) -> int:  # fmt: skip
    """Insert the reply entry of forward flow ``fkey`` on backend ``slot``; return the source
    port toward the backend (``pref`` if free, with SNAT), -1 if the table is full, -2 if every
    candidate 5-tuple is taken by another flow."""
    snat_on = prm[P_SNAT] != 0
    cport, vport = i64(fkey[8]) >> 16, i64(fkey[8]) & 0xFFFF
    bp = i64(bport[slot]) if bport[slot] >= 0 else vport
    lo, hi = prm[P_LO], prm[P_HI]
    for w in range(4):
        rkey[w] = baddr[slot, w]
        rkey[4 + w] = snat[0, w] if snat_on else fkey[w]
    rkey[9] = fkey[9]
    rows = rtbl[0]
    for t in range(prm[P_TRIES] if snat_on else 1):
        xp = cport
        if snat_on:
            xp = pref if t == 0 and lo <= pref <= hi else lo + (hb + t * SNAT_STEP) % (hi - lo + 1)
        rkey[8] = (bp << 16) | xp
        r, created = find_or_insert(rtbl, rkey, i64(hash_words(rkey, prm[P_RSEED])), now)
        if r < 0:
            return -1
        if created:
            rows[r].vip = vip
            rows[r].vport = vport
            rows[r].cport = cport
            for w in range(4):
                rows[r].client[w] = fkey[w]
            rows[r].expire = NEVER
            return xp
    return -2


# the data path ------------------------------------------------------------------------------


@inlined
def _open(
    i: int, s: int, v: int, now: int, cols: tuple[Arr, Arr, Arr, Arr], pr: int, key: Arr,
    rkey: Arr, ftbl: Table, rtbl: Table, prm: Arr, codes: Arr, be: tuple[Arr, Arr, Arr, Arr, Arr],
    snat: Arr, newf: Arr, cnt: Arr,
) -> int:  # fmt: skip
    """A new flow in slot ``s``: pick its backend by Maglev, link its reply entry; fate."""
    src, dst, sport, dport = cols
    table, baddr, bport, _, bid = be
    sp = i64(sport[i])
    hb = i64(hash_row(src, dst, i, sp, i64(dport[i]), pr, prm[P_MSEED]))
    slot = i64(table[hb % table.shape[0]])
    if slot < 0:
        return i64(codes[D_NO_BACKEND])
    rows = ftbl[0]
    rows[s].backend = slot
    rows[s].bid = bid[slot]
    rows[s].port = sp
    if prm[P_DSR] == 0:
        xp = link(rtbl, rkey, prm, key, slot, v, baddr, bport, snat, hb, sp, now)
        if xp < 0:
            return i64(codes[D_FULL] if xp == -1 else codes[D_IN_USE])
        rows[s].port = xp
        rows[s].flags |= LINKED
    newf[slot] += 1
    cnt[K_NEW] += 1
    return 0


@inlined
def _forward(
    i: int, v: int, now: int, data: Arr, b: int, l3: int, l4: int, pr: int, v6: bool,
    cols: tuple[Arr, Arr, Arr, Arr], key: Arr, rkey: Arr, ftbl: Table, rtbl: Table, prm: Arr,
    codes: Arr, be: tuple[Arr, Arr, Arr, Arr, Arr], snat: Arr, pkts: Arr, newf: Arr, cnt: Arr,
    h: int,
) -> int:  # fmt: skip
    """A packet to VIP ``v`` (flow key hash ``h``): find or open its flow, rewrite toward its
    backend; return its fate."""
    src, dst, sport, dport = cols
    _, baddr, bport, bmac, _ = be
    flow_key(key, src, dst, i, i64(sport[i]), i64(dport[i]), pr)
    s, created = find_or_insert(ftbl, key, h, now)
    if ftbl[2][C_LOGGED] != 0:
        unlink_retired(ftbl, rtbl, rkey, prm, baddr, bport, snat)
    if s < 0:
        return i64(codes[D_FULL])
    if created:
        fate = _open(i, s, v, now, cols, pr, key, rkey, ftbl, rtbl, prm, codes, be, snat, newf, cnt)
        if fate != 0:
            remove(ftbl, s)
            unlink_retired(ftbl, rtbl, rkey, prm, baddr, bport, snat)
            return fate
    rows = ftbl[0]
    rows[s].expire = now + prm[P_IDLE]
    slot = i64(rows[s].backend)
    pkts[slot] += 1
    cnt[K_FORWARD] += 1
    if prm[P_DSR] != 0:
        for k in range(6):
            data[b + k] = bmac[slot, k]
    else:
        snat_on = prm[P_SNAT] != 0
        rewrite_forward(data, b, l3, l4, pr, v6, i, cols, baddr, bport, slot, snat, snat_on,
                         i64(rows[s].port))  # fmt: skip
    return 0


@inlined
def _reply(
    i: int, now: int, data: Arr, b: int, l3: int, l4: int, pr: int, v6: bool,
    cols: tuple[Arr, Arr, Arr, Arr], key: Arr, rkey: Arr, tmp: Arr, ftbl: Table, rtbl: Table,
    prm: Arr, vaddr: Arr, cnt: Arr, h: int,
) -> int:  # fmt: skip
    """A packet that may be a backend's reply (key hash ``h``): translate it back; return the
    hash of its flow's key (to refresh the flow later, see :func:`_refresh`), or -1."""
    src, dst, sport, dport = cols
    flow_key(rkey, src, dst, i, i64(sport[i]), i64(dport[i]), pr)
    r = find(rtbl, rkey, h, now)
    if r < 0:
        cnt[K_PASS] += 1
        return -1
    entry = rtbl[0][r]
    vip, vport, cport = i64(entry.vip), i64(entry.vport), i64(entry.cport)
    for w in range(4):
        tmp[0, w] = entry.client[w]
    rewrite_reply(data, b, l3, l4, pr, v6, i, cols, vaddr, vip, vport, tmp, cport,
                   prm[P_SNAT] != 0)  # fmt: skip
    cnt[K_REPLY] += 1
    reverse_flow_key(key, src, dst, i, vport, cport, pr)
    fh = i64(hash_words(key, prm[P_FSEED]))
    prefetch(ftbl[0], fh & (ftbl[0].shape[0] - 1))
    return fh


@kernel
def _refresh(
    what: Arr, hs: Arr, cols: tuple[Arr, Arr, Arr, Arr], proto: Arr, now_col: Arr, key: Arr,
    rkey: Arr, ftbl: Table, rtbl: Table, prm: Arr, be: tuple[Arr, Arr, Arr, Arr, Arr],
    snat: Arr,
) -> None:  # fmt: skip
    """Keep alive the flows of the replies translated in this batch (``what == W_REFRESH``;
    their flow keys are the reverse of the translated packets). A separate pass, so that the
    flow entries prefetched by :func:`_reply` have arrived."""
    src, dst, sport, dport = cols
    for i in range(proto.shape[0]):
        if what[i] != W_REFRESH:
            continue
        now = i64(now_col[i])
        reverse_flow_key(key, src, dst, i, i64(sport[i]), i64(dport[i]), i64(proto[i]))
        s = find(ftbl, key, hs[i], now)
        if s >= 0:
            ftbl[0][s].expire = now + prm[P_IDLE]
        if ftbl[2][C_LOGGED] != 0:
            unlink_retired(ftbl, rtbl, rkey, prm, be[1], be[2], snat)


@inlined
def _port_of(fl: int, pr: int, dport: int) -> int:
    """The destination port for VIP matching: -1 unknown (fragment), -2 none (not TCP/UDP)."""
    if fl & F.FRAGMENT:
        return -1
    if (fl & F.L4) and pr in (6, 17):
        return dport
    return -2


W_PASS, W_REPLY, W_FRAGMENT, W_UNSUPPORTED, W_REFRESH = -1, -2, -3, -4, -5


@kernel
def _classify(
    flags: Arr, proto: Arr, cols: tuple[Arr, Arr, Arr, Arr], fate: Arr, vips: tuple[Arr, Arr, Arr],
    prm: Arr, ftbl: Table, rtbl: Table, key: Arr, what: Arr, hs: Arr,
) -> None:  # fmt: skip
    """First pass: each packet's kind (a VIP index or a ``W_*`` value) and table key hash.

    It also prefetches each packet's first probe slot, so the table's cache lines are fetched
    in parallel before the second pass needs them (at 100k flows the tables are far larger
    than L2).
    """
    src, dst, sport, dport = cols
    frows, rrows = ftbl[0], rtbl[0]
    fmask, rmask = frows.shape[0] - 1, rrows.shape[0] - 1
    for i in range(flags.shape[0]):
        what[i] = W_PASS
        fl = i64(flags[i])
        if fate[i] != 0 or (fl & F.MALFORMED) or (fl & (F.IPV4 | F.IPV6)) == 0:
            continue
        pr = i64(proto[i])
        dp = _port_of(fl, pr, i64(dport[i]))
        v = match_vip(vips, dst, i, dp, pr)
        if v >= 0:
            what[i] = v if dp >= 0 else (W_FRAGMENT if dp == -1 else W_UNSUPPORTED)
            if dp >= 0:
                flow_key(key, src, dst, i, i64(sport[i]), dp, pr)
                hs[i] = i64(hash_words(key, prm[P_FSEED]))
                prefetch(frows, hs[i] & fmask)
        elif prm[P_DSR] == 0 and dp >= 0:
            what[i] = W_REPLY
            flow_key(key, src, dst, i, i64(sport[i]), dp, pr)
            hs[i] = i64(hash_words(key, prm[P_RSEED]))
            prefetch(rrows, hs[i] & rmask)


@kernel
def lb_kernel(
    data: Arr, offset: Arr, l3_off: Arr, l4_off: Arr, flags: Arr, proto: Arr,
    cols: tuple[Arr, Arr, Arr, Arr], fate: Arr, now_col: Arr, ftbl: Table, rtbl: Table,
    scratch: tuple[Arr, Arr, Arr, Arr, Arr], prm: Arr, codes: Arr, vips: tuple[Arr, Arr, Arr],
    be: tuple[Arr, Arr, Arr, Arr, Arr], snat: Arr, counters: tuple[Arr, Arr, Arr],
) -> None:  # fmt: skip
    """Balance a parsed batch: packets to a VIP go to their flow's backend (or are dropped
    with a fate); in ``l3`` mode backends' replies are translated back; the rest pass.

    ``scratch``: two keys, a (1, 4) address, and per-packet kind and hash arrays (at least
    as long as the batch).
    """
    key, rkey, tmp, what, hs = scratch
    pkts, newf, cnt = counters
    if ftbl[2][C_LOGGED] != 0:  # flows retired outside the data path (a sweep)
        unlink_retired(ftbl, rtbl, rkey, prm, be[1], be[2], snat)
    _classify(flags, proto, cols, fate, vips, prm, ftbl, rtbl, key, what, hs)
    for i in range(offset.shape[0]):
        v = i64(what[i])
        if v == W_PASS:
            cnt[K_PASS] += 1
            continue
        if v in (W_FRAGMENT, W_UNSUPPORTED):
            fate[i] = codes[D_FRAGMENT if v == W_FRAGMENT else D_UNSUPPORTED]
            continue
        fl, pr, now = i64(flags[i]), i64(proto[i]), i64(now_col[i])
        b, l3, l4 = i64(offset[i]), i64(l3_off[i]), i64(l4_off[i])
        v6 = (fl & F.IPV6) != 0
        if v >= 0:
            fate[i] = _forward(i, v, now, data, b, l3, l4, pr, v6, cols, key, rkey, ftbl, rtbl,
                               prm, codes, be, snat, pkts, newf, cnt, hs[i])  # fmt: skip
        else:
            fh = _reply(i, now, data, b, l3, l4, pr, v6, cols, key, rkey, tmp, ftbl, rtbl, prm,
                        vips[0], cnt, hs[i])  # fmt: skip
            if fh >= 0:
                what[i], hs[i] = W_REFRESH, fh
    if prm[P_DSR] == 0:
        _refresh(what, hs, cols, proto, now_col, key, rkey, ftbl, rtbl, prm, be, snat)


# control-plane kernels ----------------------------------------------------------------------


@kernel
def purge_kernel(
    ftbl: Table, rtbl: Table, rkey: Arr, prm: Arr, doomed: Arr, baddr: Arr, bport: Arr, snat: Arr
) -> int:
    """Remove every flow on a doomed slot (and its reply entry); return how many were alive."""
    rows, now = ftbl[0], ftbl[2][C_NOW]
    n = 0
    for s in range(rows.shape[0]):
        if rows[s].state != LIVE:
            continue
        slot = i64(rows[s].backend)
        if slot < doomed.shape[0] and doomed[slot]:
            if rows[s].expire > now:
                n += 1
            remove(ftbl, s)
            unlink_retired(ftbl, rtbl, rkey, prm, baddr, bport, snat)
    return n


@kernel
def relink_kernel(
    ftbl: Table, rtbl: Table, scratch: tuple[Arr, Arr, Arr], prm: Arr, vips: tuple[Arr, Arr, Arr],
    baddr: Arr, bport: Arr, snat: Arr, now: int,
) -> int:  # fmt: skip
    """Give every flow a reply entry (into an empty replies table, after an import); remove
    the flows that match no VIP or whose reply 5-tuple is taken. Return how many went."""
    key, rkey, addr = scratch
    rows = ftbl[0]
    dropped = 0
    for s in range(rows.shape[0]):
        if rows[s].state != LIVE:
            continue
        for w in range(key.shape[0]):
            key[w] = rows[s].key[w]
        for w in range(4):
            addr[0, w] = key[4 + w]
        pr = i64(key[9])
        v = match_vip(vips, addr, 0, i64(key[8]) & 0xFFFF, pr)
        xp = -1
        slot = i64(rows[s].backend)
        if v >= 0 and slot < baddr.shape[0]:
            hb = i64(hash_words(key, prm[P_MSEED]))
            xp = link(rtbl, rkey, prm, key, slot, v, baddr, bport, snat, hb, i64(rows[s].port), now)
        rows[s].flags = rows[s].flags & (0xFF ^ LINKED)
        if xp < 0:
            remove(ftbl, s)
            dropped += 1
        else:
            rows[s].port = xp
            rows[s].flags |= LINKED
    ftbl[2][C_LOGGED] = 0
    return dropped
