"""The batch kernel of ``nat``: three passes over a batch, so that table misses overlap.

A NAT with a hundred thousand flows keeps tens of megabytes of tables; one lookup per packet
after another would wait for memory each time. :func:`translate` therefore

1. classifies every packet (outbound, inbound, hairpin, ICMP error either way, or done:
   unmatched, unsupported or a hairpin drop, with its fate), hashes the key the packet itself
   gives (the mapping key outbound, the reverse key inbound) and prefetches that slot and the
   packet header (ICMP errors, rare, are looked up in pass 3 only);
2. for inbound packets, reads the reverse entry (in cache by now) and prefetches the mapping
   slot it leads to;
3. translates packet after packet (:func:`~.kernels.outbound`, :func:`~.kernels.inbound`)
   with the slots in cache, and reclaims the mappings retired meanwhile.

The hashes of pass 1 stay valid in pass 3: they depend only on the packet's own columns,
which change only when the packet is translated. The reverse slots and mapping hashes of pass
2 stay valid until a reclaim (the only thing that removes reverse entries within a batch)
runs; pass 3 looks up again after one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.natlib import kernels as NK
from nfvkit.elements.natlib.icmperr import error_inbound, error_outbound, is_error
from nfvkit.packet import flags as FL
from nfvkit.packet.flow import hash_words
from nfvkit.packet.jit import inlined, prefetch
from nfvkit.packet.parse import i64, kernel

K_NONE, K_OUT, K_IN, K_HAIRPIN, K_ERR_OUT, K_ERR_IN = 0, 1, 2, 3, 4, 5


@inlined
def _error_kind(cols: Any, i: int, fl: int) -> bool:
    """Packet ``i`` is an ICMP error message that may be translated."""
    data, offset, l4_off = cols[0], cols[1], cols[3]
    if (fl & (FL.ICMP | FL.L4)) != (FL.ICMP | FL.L4) or (fl & (FL.FRAGMENT | FL.MALFORMED)):
        return False
    return (fl & FL.IPV4) != 0 and is_error(data, offset[i] + l4_off[i])


@inlined
def _kind(nets: Any, cfg: NDArray[np.int64], codes: NDArray[np.int64], cols: Any, i: int) -> int:
    """The packet's kind; for K_NONE its fate is set (or left 0: passed untouched)."""
    _, _, _, _, flags, proto, src, dst, _, _, fate, _ = cols
    fl = i64(flags[i])
    v4 = (fl & FL.IPV4) != 0
    inside = v4 and NK.is_inside(nets, i64(src[i, 3]))
    to_ext = v4 and NK.ext_index(nets, i64(dst[i, 3])) >= 0
    if not inside and not to_ext:
        if cfg[NK.G_UNMATCHED_DROP]:
            fate[i] = codes[NK.X_UNMATCHED]
        return K_NONE
    error = False
    if not NK.supported(fl, i64(proto[i])):
        error = _error_kind(cols, i, fl)
        if not error or (inside and to_ext and cfg[NK.G_HAIRPIN]):
            fate[i] = codes[NK.X_UNSUPPORTED]
            return K_NONE
    if inside and to_ext and not cfg[NK.G_HAIRPIN]:
        fate[i] = codes[NK.X_HAIRPIN]
        return K_NONE
    if not inside:
        return K_ERR_IN if error else K_IN
    if error:
        return K_ERR_OUT
    return K_HAIRPIN if to_ext else K_OUT


@kernel
def _classify(
    st: Any, nets: Any, cfg: NDArray[np.int64], codes: NDArray[np.int64], keys: Any, cols: Any,
    kind: NDArray[np.int8], h1: NDArray[np.int64],
) -> None:  # fmt: skip
    """Pass 1: kinds, fates of the packets not translated, hashes, prefetches."""
    data, offset, l3_off, _, _, proto, src, dst, sport, dport, fate, _ = cols
    frows, rrows = st[0][0], st[1][0]
    kf, kr = keys[0], keys[1]
    for i in range(offset.shape[0]):
        k = K_NONE if fate[i] != 0 else _kind(nets, cfg, codes, cols, i)
        kind[i] = k
        if k == K_NONE or k >= K_ERR_OUT:
            continue
        prefetch(data, offset[i] + l3_off[i])
        pr = i64(proto[i])
        if k == K_IN:
            kr[0], kr[1] = dst[i, 3], (pr << 16) | i64(dport[i])
            h1[i] = int(hash_words(kr, cfg[NK.G_SEED_R]))
            prefetch(rrows, h1[i] & (rrows.shape[0] - 1))
            continue
        rp = 0 if pr == 1 else i64(dport[i])
        NK.out_key(cfg, kf, i64(src[i, 3]), pr, i64(sport[i]), i64(dst[i, 3]), rp)
        h1[i] = int(hash_words(kf, cfg[NK.G_SEED_F]))
        prefetch(frows, h1[i] & (frows.shape[0] - 1))


@kernel
def _warm_inbound(
    st: Any, cfg: NDArray[np.int64], keys: Any, cols: Any, now_col: NDArray[np.int64],
    kind: NDArray[np.int8], h1: NDArray[np.int64], h2: NDArray[np.int64],
    rs: NDArray[np.int64],
) -> None:  # fmt: skip
    """Pass 2: each inbound packet's reverse slot (``rs``, -1 if none) and mapping key hash
    (``h2``); prefetch the mapping slot."""
    _, offset, _, _, _, proto, _, dst, _, dport, _, _ = cols
    frows, kf = st[0][0], keys[0]
    for i in range(offset.shape[0]):
        if kind[i] != K_IN:
            continue
        pr = i64(proto[i])
        r = NK.find_inbound(st, cfg, keys, i64(dst[i, 3]), pr, i64(dport[i]), h1[i], now_col[i])
        rs[i] = r
        if r >= 0:
            h2[i] = int(hash_words(kf, cfg[NK.G_SEED_F]))
            prefetch(frows, h2[i] & (frows.shape[0] - 1))


@kernel
def _error(st: Any, cfg: NDArray[np.int64], ctl: NDArray[np.int64], keys: Any, cols: Any,
           i: int, now: int, inbound: bool) -> int:  # fmt: skip
    """Translate ICMP error message ``i`` (:mod:`.icmperr`); OK or a reason."""
    data, offset, l3_off, l4_off, src, dst, ip_len = (
        cols[0], cols[1], cols[2], cols[3], cols[6], cols[7], cols[11],
    )  # fmt: skip
    ip, l4 = offset[i] + l3_off[i], offset[i] + l4_off[i]
    end = ip + ip_len[i]
    if inbound:
        why, addr = error_inbound(st, cfg, keys, data, ip, l4, end, now)
        if why == NK.OK:
            dst[i, 3] = addr
            ctl[NK.N_ERRORS] += 1
        return why
    why, addr = error_outbound(st, cfg, keys, data, ip, l4, end, now)
    if why == NK.OK:
        src[i, 3] = addr
        ctl[NK.N_ERRORS] += 1
    return why


@kernel
def translate(
    st: Any, pools: Any, nets: Any, cfg: NDArray[np.int64], ctl: NDArray[np.int64],
    codes: NDArray[np.int64], keys: Any, hints: Any, now_col: NDArray[np.int64], cols: Any,
) -> None:  # fmt: skip
    """Translate a batch: ``cols`` = (data, offset, l3_off, l4_off, flags, proto, src, dst,
    sport, dport, fate, ip_len); ``codes[X_*]`` are the drop fates; ``keys`` scratch keys of 4, 2, 4
    and 4 words; ``hints`` = (kind int8, h1, h2, rs int64) scratch of at least one per packet."""
    kind, h1, h2, rs = hints
    fate = cols[10]
    _classify(st, nets, cfg, codes, keys, cols, kind, h1)
    _warm_inbound(st, cfg, keys, cols, now_col, kind, h1, h2, rs)
    reclaims = ctl[NK.N_RECLAIMS]  # pass 2's slots stay current until a reclaim runs
    latest = -(1 << 62)
    for i in range(fate.shape[0]):
        k = kind[i]
        if k == K_NONE:
            continue
        now = now_col[i]
        latest = max(latest, now)
        if k == K_IN:
            if rs[i] < 0 or ctl[NK.N_RECLAIMS] != reclaims:
                why = NK.inbound(st, cfg, ctl, keys, cols, i, now, h1[i])
            else:
                why = NK.inbound(st, cfg, ctl, keys, cols, i, now, h1[i], rs[i], h2[i])
        elif k >= K_ERR_OUT:
            why = _error(st, cfg, ctl, keys, cols, i, now, k == K_ERR_IN)
        else:
            why = NK.outbound(st, pools, nets, cfg, ctl, keys, cols, i, now, h1[i])
            if why == NK.OK and k == K_HAIRPIN:
                why = NK.inbound(st, cfg, ctl, keys, cols, i, now, -1)
                if why == NK.OK:
                    ctl[NK.N_HAIRPIN] += 1
        if why != NK.OK:
            fate[i] = codes[why]
    ctl[NK.N_NOW] = max(ctl[NK.N_NOW], latest)
    NK.reclaim(st[0], st[1], pools, nets, cfg, ctl, keys[1], latest, False)
