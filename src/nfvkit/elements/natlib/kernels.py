"""The per-packet steps of ``nat`` as Numba kernels: direction, mapping lookup or creation,
filtering, the TCP mapping life cycle, rewriting, and reclaiming retired mappings.

:mod:`.batch` drives them over a batch. Per packet:

1. IPv4 only; the source in an inside prefix makes it *outbound*, else the destination being
   an external address makes it *inbound*, else it is *unmatched*.
2. Only unfragmented TCP, UDP and ICMP echo are translated here (ICMP errors:
   :mod:`.icmperr`; anything else is ``nat_unsupported``).
3. Outbound (:func:`outbound`): find the mapping of ``(inside address, proto, port)`` (plus
   the remote endpoint under address-and-port-dependent mapping), else a static entry, else
   create one with a port from the pool of the paired external address, the remote endpoint
   as its peer; record any other remote endpoint as a session (filtering); rewrite the source.
4. Inbound (:func:`inbound`): find the external endpoint in ``reverse``, then its mapping;
   check filtering (:func:`admitted`); rewrite the destination.
5. Dynamic mappings are refreshed and their TCP life-cycle bits updated on every packet.

Retired mappings (expired, removed) are reclaimed from the mapping table's log -- the records
:meth:`~nfvkit.vnf.state.StateTable.drain_log` returns -- by :func:`reclaim`, at the end of
every batch and when a pool runs dry mid-batch (after a sweep, at most once per
``G_SWEEP_GAP`` ns): each one's port goes back to its pool and its reverse entry is removed.

Steps return a reason index (``X_*``) or :data:`OK`; the element maps indices to fates. All
kernels run without Numba's reference counting (scratch keys come from the caller): passing
the table tuples between functions would otherwise cost atomic operations per call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.natlib.alloc import alloc_port, proto_class, release_port
from nfvkit.elements.natlib.rewrite import rewrite
from nfvkit.elements.natlib.tables import (
    F_CLOSING,
    F_EST,
    F_FIN_IN,
    F_FIN_OUT,
    F_ONE2ONE,
    F_STATIC,
    F_SYN_OUT,
    FAR,
)
from nfvkit.packet import flags as FL
from nfvkit.packet.flow import hash_words
from nfvkit.packet.jit import inlined
from nfvkit.packet.parse import i64, kernel
from nfvkit.vnf.state.kernels import C_LOGGED, find, find_or_insert, remove, sweep

(
    G_APDM,  # 1: address-and-port-dependent mapping
    G_FILTER,  # EIF / ADF / APDF
    G_SESSIONS,  # 1: sessions are kept (endpoint-independent mapping, filtering not EIF)
    G_HAIRPIN,
    G_UNMATCHED_DROP,
    G_IN_REFRESH,
    G_T_UDP,  # timeouts, ns
    G_T_EST,
    G_T_TRANS,
    G_T_ICMP,
    G_STATIC,  # static entries with ports exist
    G_ONE2ONE,  # 1:1 entries exist
    G_POOL_SEED,
    G_SWEEP_GAP,  # least ns between two sweeps for an exhausted pool
    G_SEED_F,  # table hash seeds
    G_SEED_R,
    G_SEED_S,
    N_CFG,
) = range(18)
EIF, ADF, APDF = 0, 1, 2
(
    N_GEN,  # the next mapping's gen
    N_LAST_SWEEP,
    N_NOW,  # latest packet time seen
    N_OUT,  # translated packets...
    N_IN,
    N_HAIRPIN,
    N_ERRORS,  # ... of which ICMP errors
    N_CREATED,
    N_RELEASED,
    N_RECLAIMS,  # reclaim runs (they may remove reverse entries)
    N_CTL,
) = range(11)
(
    X_NO_MAPPING,
    X_FILTERED,
    X_EXHAUSTED,
    X_FULL,
    X_HAIRPIN,
    X_UNSUPPORTED,
    X_UNMATCHED,
    N_CODES,
) = range(8)
OK = -1
_SYN, _FIN, _RST, _ACK = 0x02, 0x01, 0x04, 0x10


# classification and small helpers -------------------------------------------------------------


@inlined
def is_inside(nets: Any, a: int) -> bool:
    """``a`` is in an inside prefix (``nets[0]`` networks, ``nets[1]`` masks)."""
    net, mask = nets[0], nets[1]
    for k in range(net.shape[0]):  # noqa: SIM110 (a loop Numba compiles tightly)
        if (a & mask[k]) == net[k]:
            return True
    return False


@inlined
def ext_index(nets: Any, a: int) -> int:
    """Index of ``a`` in the sorted external addresses ``nets[2]``, or -1."""
    ext = nets[2]
    lo, hi = 0, ext.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if ext[mid] < a:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < ext.shape[0] and ext[lo] == a else -1


@inlined
def supported(fl: int, pr: int) -> bool:
    """An unfragmented TCP, UDP or ICMP echo packet with its transport header parsed."""
    if (fl & (FL.FRAGMENT | FL.MALFORMED)) != 0 or (fl & FL.L4) == 0:
        return False
    if pr == 6:
        return (fl & FL.TCP) != 0
    if pr == 17:
        return (fl & FL.UDP) != 0
    return pr == 1 and (fl & FL.ECHO) != 0


@inlined
def _paired(a: int, n: int, seed: int) -> int:
    """The pool address of inside address ``a``: always the same one ("paired", RFC 4787
    REQ-2), spread by a 32-bit mix."""
    h = (a ^ seed) & 0xFFFFFFFF
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return (h ^ (h >> 16)) % n


@inlined
def _tcp_update(fl: int, tcp: int, outbound: bool) -> int:
    """A mapping's life-cycle bits after a TCP segment with flags ``tcp``: established once
    an outbound SYN is answered by an inbound SYN; closing after a RST or FINs both ways; an
    outbound SYN on a closing mapping starts over."""
    if outbound:
        if (tcp & _SYN) and not (tcp & _ACK) and (fl & F_CLOSING):
            fl &= ~(F_SYN_OUT | F_EST | F_FIN_OUT | F_FIN_IN | F_CLOSING)
        if tcp & _SYN:
            fl |= F_SYN_OUT
        if tcp & _FIN:
            fl |= F_FIN_OUT
    else:
        if (tcp & _SYN) and (fl & F_SYN_OUT):
            fl |= F_EST
        if tcp & _FIN:
            fl |= F_FIN_IN
    if (tcp & _RST) or ((fl & F_FIN_OUT) and (fl & F_FIN_IN)):
        fl |= F_CLOSING
    return fl


@inlined
def _timeout(cfg: NDArray[np.int64], pr: int, fl: int) -> int:
    if pr == 17:
        return int(cfg[G_T_UDP])
    if pr == 1:
        return int(cfg[G_T_ICMP])
    if (fl & F_EST) and not (fl & F_CLOSING):
        return int(cfg[G_T_EST])
    return int(cfg[G_T_TRANS])


@inlined
def set4(k: NDArray[np.uint32], a: int, b: int, c: int, d: int) -> None:
    """Fill a four-word key."""
    k[0], k[1], k[2], k[3] = a, b, c, d


@inlined
def out_key(cfg: NDArray[np.int64], kf: NDArray[np.uint32], in_a: int, pr: int, in_p: int,
            rem: int, rp: int) -> None:  # fmt: skip
    """The mapping key of an outbound packet."""
    if cfg[G_APDM]:
        set4(kf, in_a, (pr << 16) | in_p, rem, rp)
    else:
        set4(kf, in_a, (pr << 16) | in_p, 0, 0)


@inlined
def _is_peer(cfg: NDArray[np.int64], rows: Any, s: int, rem: int, rp: int) -> bool:
    """The remote endpoint is mapping ``s``'s peer, as far as the filtering looks."""
    return bool(rows[s].peer == rem and (cfg[G_FILTER] != APDF or rows[s].peer_port == rp))


@inlined
def _session(cfg: NDArray[np.int64], ks: NDArray[np.uint32], kf: NDArray[np.uint32], rem: int,
             rp: int) -> int:  # fmt: skip
    """Fill the session key of mapping key ``kf`` and a remote endpoint; return its hash."""
    set4(ks, kf[0], kf[1], rem, rp if cfg[G_FILTER] == APDF else 0)
    return int(hash_words(ks, cfg[G_SEED_S]))


# reclaiming retired mappings ------------------------------------------------------------------


@kernel
def reclaim(
    fwd: Any, rev: Any, pools: Any, nets: Any, cfg: NDArray[np.int64], ctl: NDArray[np.int64],
    kr: NDArray[np.uint32], now: int, sweep_first: bool,
) -> None:  # fmt: skip
    """Release the ports and reverse entries of the mappings in the mapping table's log and
    empty the log; with ``sweep_first``, retire expired mappings first (rate-limited)."""
    ctl[N_RECLAIMS] += 1
    if sweep_first and now - ctl[N_LAST_SWEEP] >= cfg[G_SWEEP_GAP]:
        ctl[N_LAST_SWEEP] = now
        sweep(fwd, now)
    log, fctl, rrows = fwd[1], fwd[2], rev[0]
    for k in range(fctl[C_LOGGED]):
        if log[k].flags & F_STATIC:
            continue
        ext, port = i64(log[k].external), i64(log[k].ext_port)
        pr = i64(log[k].key[1]) >> 16
        x = ext_index(nets, ext)
        pool = nets[3][x] * 3 + proto_class(pr) if x >= 0 and nets[3][x] >= 0 else -1
        if release_port(pools, pool, port):
            ctl[N_RELEASED] += 1
        kr[0], kr[1] = ext, (pr << 16) | port
        r = find(rev, kr, int(hash_words(kr, cfg[G_SEED_R])), now)
        if (
            r >= 0
            and rrows[r].inside == log[k].key[0]
            and rrows[r].inside_pp == log[k].key[1]
            and rrows[r].remote == log[k].key[2]
            and rrows[r].remote_port == log[k].key[3]
        ):
            remove(rev, r)
    fctl[C_LOGGED] = 0


# outbound -------------------------------------------------------------------------------------


@inlined
def _find_static(fwd: Any, cfg: NDArray[np.int64], kf: NDArray[np.uint32],
                 kx: NDArray[np.uint32], now: int) -> int:  # fmt: skip
    """A static entry for the inside endpoint (or address, 1:1) of key ``kf``, or -1."""
    seed = cfg[G_SEED_F]
    if cfg[G_APDM] and cfg[G_STATIC]:
        set4(kx, kf[0], kf[1], 0, 0)
        s = find(fwd, kx, int(hash_words(kx, seed)), now)
        if s >= 0 and (fwd[0][s].flags & F_STATIC):
            return s
    if cfg[G_ONE2ONE]:
        set4(kx, kf[0], 0, 0, 0)
        s = find(fwd, kx, int(hash_words(kx, seed)), now)
        if s >= 0 and (fwd[0][s].flags & F_ONE2ONE):
            return s
    return -1


@inlined
def find_outbound(fwd: Any, cfg: NDArray[np.int64], keys: Any, hf: int, now: int) -> int:
    """The mapping (or static entry) for the outbound key in ``keys[0]`` (hash ``hf``)."""
    s = find(fwd, keys[0], hf, now)
    if s < 0 and (cfg[G_STATIC] or cfg[G_ONE2ONE]):
        s = _find_static(fwd, cfg, keys[0], keys[3], now)
    return s


@kernel
def _new_mapping(
    st: Any, pools: Any, nets: Any, cfg: NDArray[np.int64], ctl: NDArray[np.int64],
    keys: Any, hf: int, pr: int, rem: int, rp: int, now: int,
) -> tuple[int, int]:  # fmt: skip
    """(slot, OK) of a new mapping for key ``keys[0]`` (hash ``hf``) with a fresh external
    port and the remote endpoint ``(rem, rp)`` as its peer, or (-1, reason)."""
    fwd, rev = st[0], st[1]
    kf, kr = keys[0], keys[1]
    in_a, in_p = i64(kf[0]), i64(kf[1]) & 0xFFFF
    pa = _paired(in_a, nets[4].shape[0], cfg[G_POOL_SEED])
    pool = pa * 3 + proto_class(pr)
    port = alloc_port(pools, pool, in_p & 1)
    if port < 0:
        reclaim(fwd, rev, pools, nets, cfg, ctl, kr, now, True)
        port = alloc_port(pools, pool, in_p & 1)
        if port < 0:
            return -1, X_EXHAUSTED
    s, _ = find_or_insert(fwd, kf, hf, now)
    if s < 0:
        release_port(pools, pool, port)
        return -1, X_FULL
    rows, ext = fwd[0], nets[4][pa]
    rows[s].external, rows[s].ext_port = ext, port
    rows[s].gen = ctl[N_GEN]
    rows[s].peer, rows[s].peer_port = rem, rp
    ctl[N_GEN] = ctl[N_GEN] + 1 if ctl[N_GEN] < 0xFFFFFFFF else 1
    kr[0], kr[1] = ext, (pr << 16) | port
    h = int(hash_words(kr, cfg[G_SEED_R]))
    r, _ = find_or_insert(rev, kr, h, now)
    if r < 0:
        reclaim(fwd, rev, pools, nets, cfg, ctl, kr, now, False)
        kr[0], kr[1] = ext, (pr << 16) | port
        r, _ = find_or_insert(rev, kr, h, now)
        if r < 0:
            remove(fwd, s)  # logged: the port returns at the next reclaim
            return -1, X_FULL
    rr = rev[0]
    rr[r].inside, rr[r].inside_pp, rr[r].remote, rr[r].remote_port = kf[0], kf[1], kf[2], kf[3]
    rr[r].expire = FAR
    ctl[N_CREATED] += 1
    return s, OK


@inlined
def outbound(
    st: Any, pools: Any, nets: Any, cfg: NDArray[np.int64], ctl: NDArray[np.int64],
    keys: Any, cols: Any, i: int, now: int, hf: int,
) -> int:  # fmt: skip
    """Translate outbound packet ``i``; ``hf``: hash of its mapping key, or -1."""
    fwd, ses = st[0], st[2]
    kf = keys[0]
    data, offset, l3_off, l4_off, _, proto, src, dst, sport, dport, _, _ = cols
    pr, b = i64(proto[i]), offset[i]
    ip, l4 = b + l3_off[i], b + l4_off[i]
    in_a, in_p, rem = i64(src[i, 3]), i64(sport[i]), i64(dst[i, 3])
    rp = 0 if pr == 1 else i64(dport[i])
    out_key(cfg, kf, in_a, pr, in_p, rem, rp)
    if hf < 0:
        hf = int(hash_words(kf, cfg[G_SEED_F]))
    s = find_outbound(fwd, cfg, keys, hf, now)
    if s < 0:
        s, why = _new_mapping(st, pools, nets, cfg, ctl, keys, hf, pr, rem, rp, now)
        if s < 0:
            return why
    rows = fwd[0]
    fl = i64(rows[s].flags)
    new_a = i64(rows[s].external)
    new_p = in_p if fl & F_ONE2ONE else i64(rows[s].ext_port)
    if (fl & F_STATIC) == 0:
        if pr == 6:
            fl = _tcp_update(fl, i64(data[l4 + 13]), True)
            rows[s].flags = fl
        exp = now + _timeout(cfg, pr, fl)
        rows[s].expire = exp
        if cfg[G_SESSIONS] and not _is_peer(cfg, rows, s, rem, rp):
            ks = keys[2]
            q, _ = find_or_insert(ses, ks, _session(cfg, ks, kf, rem, rp), now)
            if q < 0:
                return X_FULL
            ses[0][q].gen = rows[s].gen
            ses[0][q].expire = exp
    rewrite(data, ip, l4, pr, False, in_a, new_a, in_p, new_p)
    src[i, 3], sport[i] = new_a, new_p
    if pr == 1:
        dport[i] = new_p
    ctl[N_OUT] += 1
    return OK


# inbound --------------------------------------------------------------------------------------


@inlined
def find_inbound(st: Any, cfg: NDArray[np.int64], keys: Any, ext: int, pr: int, ep: int,
                 hr: int, now: int) -> int:  # fmt: skip
    """The reverse slot of external endpoint ``(ext, pr, ep)`` (``hr``: its hash or -1), a
    1:1 entry's if none; -1 if none. ``keys[0]`` then holds the mapping's key."""
    rev = st[1]
    kf, kr = keys[0], keys[1]
    kr[0], kr[1] = ext, (pr << 16) | ep
    r = find(rev, kr, hr if hr >= 0 else int(hash_words(kr, cfg[G_SEED_R])), now)
    if r < 0 and cfg[G_ONE2ONE]:
        kr[1] = 0
        r = find(rev, kr, int(hash_words(kr, cfg[G_SEED_R])), now)
    if r >= 0:
        rr = rev[0]
        set4(kf, rr[r].inside, rr[r].inside_pp, rr[r].remote, rr[r].remote_port)
    return r


@inlined
def find_mapping(st: Any, cfg: NDArray[np.int64], keys: Any, ext: int, pr: int, ep: int,
                 hr: int, now: int, r: int = -1, hf: int = -1) -> int:  # fmt: skip
    """The mapping slot behind external endpoint ``(ext, pr, ep)`` (its key left in
    ``keys[0]``), or -1. ``r``/``hf``: its reverse slot and the mapping key's hash, when
    known to be current (-1: look up)."""
    kf = keys[0]
    if r >= 0:
        rr = st[1][0]
        set4(kf, rr[r].inside, rr[r].inside_pp, rr[r].remote, rr[r].remote_port)
    else:
        if find_inbound(st, cfg, keys, ext, pr, ep, hr, now) < 0:
            return -1
        hf = int(hash_words(kf, cfg[G_SEED_F]))
    return find(st[0], kf, hf, now)


@inlined
def admitted(st: Any, cfg: NDArray[np.int64], keys: Any, s: int, rem: int, rp: int,
             now: int) -> int:  # fmt: skip
    """Whether dynamic mapping ``s`` (key in ``keys[0]``) admits the remote endpoint
    ``(rem, rp)``: -2 if not, else the slot of the session that admits it or -1 (none
    needed)."""
    rows, ses = st[0][0], st[2]
    kf, ks = keys[0], keys[2]
    if cfg[G_APDM] and (rem != kf[2] or rp != kf[3]):
        return -2
    if not cfg[G_SESSIONS] or _is_peer(cfg, rows, s, rem, rp):
        return -1
    q = find(ses, ks, _session(cfg, ks, kf, rem, rp), now)
    return q if q >= 0 and ses[0][q].gen == rows[s].gen else -2


@inlined
def _admit(st: Any, cfg: NDArray[np.int64], keys: Any, s: int, pr: int, rem: int, rp: int,
           tcp: int, now: int) -> int:  # fmt: skip
    """Filter an inbound packet for dynamic mapping ``s`` and refresh it; OK or a reason."""
    q = admitted(st, cfg, keys, s, rem, rp, now)
    if q == -2:
        return X_FILTERED
    rows = st[0][0]
    fl = i64(rows[s].flags)
    if pr == 6:
        fl = _tcp_update(fl, tcp, False)
        rows[s].flags = fl
    exp = now + _timeout(cfg, pr, fl)
    if cfg[G_IN_REFRESH] or exp < rows[s].expire:
        rows[s].expire = exp
        if q >= 0:
            st[2][0][q].expire = exp
    return OK


@inlined
def inbound(st: Any, cfg: NDArray[np.int64], ctl: NDArray[np.int64], keys: Any, cols: Any,
            i: int, now: int, hr: int, r: int = -1, hf: int = -1) -> int:  # fmt: skip
    """Translate inbound packet ``i``; ``hr``: hash of its reverse key, or -1; ``r``, ``hf``:
    see :func:`find_mapping`."""
    data, offset, l3_off, l4_off, _, proto, src, dst, sport, dport, _, _ = cols
    pr, b = i64(proto[i]), offset[i]
    ip, l4 = b + l3_off[i], b + l4_off[i]
    ext, ep, rem = i64(dst[i, 3]), i64(dport[i]), i64(src[i, 3])
    rp = 0 if pr == 1 else i64(sport[i])
    s = find_mapping(st, cfg, keys, ext, pr, ep, hr, now, r, hf)
    if s < 0:
        return X_NO_MAPPING
    kf = keys[0]
    fl = i64(st[0][0][s].flags)
    new_a = i64(kf[0])
    new_p = ep if fl & F_ONE2ONE else i64(kf[1]) & 0xFFFF
    if (fl & F_STATIC) == 0:
        tcp = i64(data[l4 + 13]) if pr == 6 else 0
        why = _admit(st, cfg, keys, s, pr, rem, rp, tcp, now)
        if why != OK:
            return why
    rewrite(data, ip, l4, pr, True, ext, new_a, ep, new_p)
    dst[i, 3], dport[i] = new_a, new_p
    if pr == 1:
        sport[i] = new_p
    ctl[N_IN] += 1
    return OK
