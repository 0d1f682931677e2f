"""The state tables of ``nat``: schemas, record flags, static entries, and keeping the reverse
table and the port allocator consistent with the mapping table.

Three tables (IPv4 addresses as host-order ``uint32``; ``pp`` = ``proto << 16 | port``):

* ``mappings`` -- key ``(inside, inside_pp, remote, remote_port)``; ``remote`` and
  ``remote_port`` are 0 under endpoint-independent mapping. Values: ``external``,
  ``ext_port``, ``gen`` (a number unique to this mapping's life), ``peer``/``peer_port`` (the
  remote endpoint of the packet that created it). ``flags``: :data:`F_STATIC`,
  :data:`F_ONE2ONE` and the TCP life-cycle bits. This table owns the mapping's lifetime.
* ``reverse`` -- key ``(external, ext_pp)``; values: the mapping's key words. An index from
  the external endpoint to the mapping: it never expires by itself and is removed when its
  mapping retires.
* ``sessions`` -- key ``(inside, inside_pp, remote, remote_port)`` (``remote_port`` 0 under
  address-dependent filtering or for ICMP); value: the ``gen`` of the mapping it belongs to.
  The remote endpoints *other than the peer* that a mapping has sent to, for
  address(-and-port)-dependent filtering under endpoint-independent mapping. The peer needs no
  session (most mappings only ever talk to it, so most packets touch one table outbound); it
  is admitted as long as the mapping lives, other remotes as long as their session does (it
  expires with the mapping's expiry as of the remote's latest outbound packet). A session
  left by an earlier mapping of the same inside endpoint does not match (``gen``).

Static entries live in ``mappings`` and ``reverse`` with :data:`F_STATIC` and never expire; a
1:1 entry has the key ``(inside, 0, 0, 0)`` / ``(external, 0)`` and :data:`F_ONE2ONE`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import numpy as np
from numba import njit

from nfvkit.elements.natlib.alloc import PortPools, proto_class
from nfvkit.elements.natlib.config import NatConfig
from nfvkit.packet.flow import hash_words
from nfvkit.vnf.state import StateSchema, StateTable
from nfvkit.vnf.state.kernels import LIVE, Table, find, find_or_insert, remove

F_STATIC, F_ONE2ONE, F_SYN_OUT, F_EST, F_FIN_OUT, F_FIN_IN, F_CLOSING = 1, 2, 4, 8, 16, 32, 64
FAR = 1 << 62
"""The expiry of entries that never expire."""

MAPPINGS = StateSchema(
    (("inside", 1), ("inside_pp", 1), ("remote", 1), ("remote_port", 1)),
    (("external", "<u4"), ("gen", "<u4"), ("peer", "<u4"), ("ext_port", "<u2"),
     ("peer_port", "<u2")),
)  # fmt: skip
REVERSE = StateSchema(
    (("external", 1), ("ext_pp", 1)),
    (("inside", "<u4"), ("inside_pp", "<u4"), ("remote", "<u4"), ("remote_port", "<u4")),
)
SESSIONS = StateSchema(
    (("external", 1), ("ext_pp", 1), ("remote", 1), ("remote_port", 1)), (("gen", "<u4"),)
)
SCHEMAS = {"mappings": MAPPINGS, "reverse": REVERSE, "sessions": SESSIONS}
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 0: "any"}
REVERSE_SLACK = 4096
"""Extra reverse entries for mappings retired but not yet reclaimed."""


def make_tables(cfg: NatConfig) -> dict[str, StateTable]:
    """The three tables, sized from ``cfg`` (``refuse`` when full: ``nat_table_full``)."""
    t = cfg.timeouts
    shortest = int(min(t.udp, t.tcp_established, t.tcp_transitory, t.icmp) * 1e9)
    nstatic = len(cfg.static)
    used = cfg.mapping == "endpoint_independent" and cfg.filtering != "endpoint_independent"
    sessions = cfg.sessions_limit if used else 1
    return {
        "mappings": StateTable(MAPPINGS, cfg.max_mappings + nstatic, shortest, log_retired=True),
        "reverse": StateTable(REVERSE, cfg.max_mappings + nstatic + REVERSE_SLACK, FAR),
        "sessions": StateTable(SESSIONS, sessions, shortest),
    }


def _put(table: StateTable, words: list[int]) -> int:
    key = np.array(words, dtype=np.uint32)
    s, _ = find_or_insert(table.tbl, key, int(hash_words(key, table.seed)), table.now)
    if s < 0:
        raise RuntimeError("nat: no room for a static entry")
    return int(s)


def _set(table: StateTable, s: int, **values: int) -> None:
    for name, value in values.items():
        table.rows[name][s] = value


def install_static(cfg: NatConfig, tables: dict[str, StateTable], pools: PortPools) -> None:
    """Put every static entry in the tables (never expiring); reserve pool ports they use."""
    fwd, rev = tables["mappings"], tables["reverse"]
    pool_index = {a: i for i, a in enumerate(cfg.pool)}
    for entry in cfg.static:
        pr = entry.proto_number
        (ea, ep), (ia, ip) = entry.ext, entry.int_
        flags = F_STATIC | (0 if pr else F_ONE2ONE)
        ipp, epp = (pr << 16 | ip, pr << 16 | ep) if pr else (0, 0)
        _set(fwd, _put(fwd, [ia, ipp, 0, 0]), external=ea, ext_port=ep, flags=flags, expire=FAR)
        _set(rev, _put(rev, [ea, epp]), inside=ia, inside_pp=ipp, flags=flags, expire=FAR)
        if pr and ea in pool_index and pools.in_range(ep):
            pools.reserve(pool_index[ea] * 3 + proto_class(pr), ep)


@njit(cache=True, nogil=True, inline="always")
def _points_to(rrows: Any, r: int, frows: Any, s: int) -> bool:
    """Reverse entry ``r`` holds the key of mapping ``s``."""
    return bool(
        rrows[r].inside == frows[s].key[0]
        and rrows[r].inside_pp == frows[s].key[1]
        and rrows[r].remote == frows[s].key[2]
        and rrows[r].remote_port == frows[s].key[3]
    )


@njit(cache=True, nogil=True, inline="always")
def _points_back(rrows: Any, r: int, frows: Any, s: int) -> bool:
    """Mapping ``s`` has the external endpoint that is reverse entry ``r``'s key."""
    ext_pp = ((frows[s].key[1] >> 16) << 16) | frows[s].ext_port
    return bool(frows[s].external == rrows[r].key[0] and ext_pp == rrows[r].key[1])


@njit(cache=True, nogil=True)
def _rebuild_reverse(fwd: Table, rev: Table, seed: int, now: int) -> int:
    """Give every live dynamic mapping its reverse entry and remove reverse entries whose
    mapping is gone; return how many mappings had to be dropped (external port clash)."""
    frows, rrows = fwd[0], rev[0]
    kf = np.empty(4, np.uint32)
    kr = np.empty(2, np.uint32)
    for r in range(rrows.shape[0]):
        if rrows[r].state != LIVE or (rrows[r].flags & F_STATIC) != 0:
            continue
        kf[0], kf[1] = rrows[r].inside, rrows[r].inside_pp
        kf[2], kf[3] = rrows[r].remote, rrows[r].remote_port
        s = find(fwd, kf, int(hash_words(kf, seed)), now)
        if s < 0 or not _points_back(rrows, r, frows, s):
            remove(rev, r)
    clashes = 0
    for s in range(frows.shape[0]):
        if frows[s].state != LIVE or (frows[s].flags & F_STATIC) != 0:
            continue
        kr[0] = frows[s].external
        kr[1] = (frows[s].key[1] >> 16) << 16 | frows[s].ext_port
        r, created = find_or_insert(rev, kr, int(hash_words(kr, seed)), now)
        mine = created or _points_to(rrows, r, frows, s)
        if r < 0 or (rrows[r].flags & F_STATIC) != 0 or not mine:
            remove(fwd, s)
            clashes += 1
            continue
        rrows[r].inside, rrows[r].inside_pp = frows[s].key[0], frows[s].key[1]
        rrows[r].remote, rrows[r].remote_port = frows[s].key[2], frows[s].key[3]
        rrows[r].expire = FAR
    return clashes


def reconcile(cfg: NatConfig, tables: dict[str, StateTable], pools: PortPools) -> int:
    """Make ``reverse`` and the allocator agree with ``mappings`` (after an import, or after
    retired mappings were lost to a full log); return the next free ``gen``."""
    fwd, rev = tables["mappings"], tables["reverse"]
    now = max(fwd.now, rev.now)
    rev.observe(now)
    _rebuild_reverse(fwd.tbl, rev.tbl, rev.seed, now)
    fwd.drain_log()  # entries dropped for clashes: their ports are not marked below
    rev.maintain()
    fwd.maintain()
    rows = fwd.rows[(fwd.rows["state"] == LIVE) & ((fwd.rows["flags"] & F_STATIC) == 0)]
    pool = np.asarray(cfg.pool, dtype=np.int64)
    ext = rows["external"].astype(np.int64)
    at = np.searchsorted(pool, ext)
    hit = (at < len(pool)) & (pool[np.minimum(at, len(pool) - 1)] == ext)
    proto = (rows["key"][:, 1] >> 16).astype(np.int64)
    cls = np.where(proto == 6, 0, np.where(proto == 17, 1, 2))
    pools.rebuild(np.where(hit, at * 3 + cls, -1), rows["ext_port"].astype(np.int64))
    return int(rows["gen"].max()) + 1 if len(rows) else 1


def describe_mapping(rec: Any, now: int) -> dict[str, Any]:
    """One ``mappings`` record as readable fields."""
    key = [int(x) for x in rec["key"]]
    flags = int(rec["flags"])
    proto = key[1] >> 16
    out: dict[str, Any] = {
        "proto": PROTO_NAMES.get(proto, str(proto)),
        "inside": f"{ipaddress.IPv4Address(key[0])}:{key[1] & 0xFFFF}",
        "external": f"{ipaddress.IPv4Address(int(rec['external']))}:{int(rec['ext_port'])}",
    }
    if flags & F_ONE2ONE:
        out["inside"] = str(ipaddress.IPv4Address(key[0]))
        out["external"] = str(ipaddress.IPv4Address(int(rec["external"])))
    if key[2]:
        out["remote"] = f"{ipaddress.IPv4Address(key[2])}:{key[3]}"
    if flags & F_STATIC:
        out["static"] = True
    else:
        out["expires_in"] = round((int(rec["expire"]) - now) / 1e9, 3)
    if proto == 6 and not flags & F_STATIC:
        out["tcp"] = tcp_state(flags)
    return out


def tcp_state(flags: int) -> str:
    """The TCP life-cycle state a mapping's flags say."""
    if flags & F_CLOSING:
        return "closing"
    if flags & F_EST:
        return "established"
    return "opening"
