"""``nat``: IPv4 NAT44 -- source NAT with port allocation, static destination NAT, on the
per-flow state API.

Direction is decided by address, on one input: a packet whose **source** is in an ``inside``
prefix is *outbound* (its source is translated); otherwise a packet whose **destination** is an
external address (the ``external`` pool, or a static entry's external address) is *inbound*
(looked up in the reverse mapping, its destination translated back). Anything else --
IPv6, ARP, transit traffic -- is *unmatched*: passed untouched (``unmatched: pass``, the
default) or dropped as ``nat_unmatched``.

Behaviour (RFC 4787 for UDP, RFC 5382 for TCP, RFC 5508 for ICMP):

* **Mapping**: ``endpoint_independent`` (default, RFC 4787 REQ-1): one external endpoint per
  inside ``(address, protocol, port)`` whatever the remote; ``address_port_dependent``: one
  per inside endpoint *and* remote endpoint.
* **Address pooling** is *paired* (REQ-2): an inside address always gets the same pool
  address (a hash of it); when that address's ports of the protocol are used up the packet is
  dropped as ``nat_ports_exhausted`` (no fallback to another address).
* **Port assignment**: next-fit over a bitmap per pool address and protocol
  (:mod:`.natlib.alloc`) in ``port_range``; with ``port_parity`` (default, REQ-4) a port of the
  inside port's parity when one is free. No port preservation. ICMP echo identifiers come
  from the same range, in their own pools. A retired mapping's port returns to its pool.
* **Filtering** (REQ-8): ``address_dependent`` by default -- inbound packets are admitted from
  remote addresses the mapping has sent to (REQ-8's recommendation when stringency matters;
  with endpoint-independent mapping it still lets hole punching work); ``endpoint_independent``
  admits anyone (REQ-8's choice for transparency); ``address_port_dependent`` needs the
  remote port too. Refused packets: ``nat_filtered``. ICMP has no remote port. The remote a
  mapping was created for is admitted while the mapping lives; other remotes while their
  session (:mod:`.natlib.tables`) lives. Under address-and-port-dependent mapping a mapping
  admits only its own remote endpoint, whatever ``filtering`` says.
* **Timeouts** (seconds, ``timeouts``): UDP 300 (REQ-5), ICMP query 60 (RFC 5508 REQ-1), TCP
  established 7440 and transitory 240 (RFC 5382 REQ-5). A TCP mapping is transitory until an
  outbound SYN is answered by an inbound SYN (SYN-ACK or simultaneous open), established then,
  and transitory again after a RST either way or FINs both ways; an outbound SYN (no ACK) on a
  closing mapping starts its life cycle over. The state is kept per mapping, so connections
  sharing an endpoint-independent mapping share it. Outbound packets refresh a mapping (REQ-6);
  inbound ones too unless ``inbound_refresh: false`` (then they may only shorten it).
* **Hairpinning** is off by default: inside to an own external address is dropped as
  ``nat_hairpin``. With ``hairpinning: true`` the source is translated as for any outbound
  packet and the destination as for an inbound one (REQ-9: the target sees the external
  source), filtering included.
* **Static entries** (port forwards, 1:1) never expire, are not filtered, and are exported by
  nobody (they are configuration). A port form's external port is taken out of the pool.
* **Translated**: unfragmented TCP, UDP and ICMP echo request/reply (identifier = port), and
  ICMP errors (unreachable, source quench, time exceeded, parameter problem) about such a
  packet, with the packet they quote (RFC 5508 REQ-3; :mod:`.natlib.icmperr`; filtered like
  the flow, never refreshing it). Fragments, other ICMP, errors on hairpinned paths and other
  protocols on a translated direction are dropped as ``nat_unsupported``. Addresses and ports
  are rewritten in place with incremental checksum updates (RFC 1624; TCP/UDP pseudo-header; a
  zero UDP checksum stays zero); the batch's ``src``/``dst``/``sport``/``dport`` columns
  follow (for an ICMP error only ``src``/``dst``).

Example::

    type: nat
    config:
      inside: [198.18.0.0/16]
      external: [198.19.0.1, 198.19.1.0/30]   # the pool: addresses and/or prefixes
      port_range: [1024, 65535]
      mapping: endpoint_independent           # | address_port_dependent
      filtering: address_dependent            # | endpoint_independent | address_port_dependent
      hairpinning: false
      unmatched: pass                         # | drop
      max_mappings: 131072                    # then nat_table_full; max_sessions likewise
      timeouts: {udp: 300, tcp_established: 7440, tcp_transitory: 240, icmp: 60}
      static:
        - {proto: tcp, external: "198.19.0.10:80", internal: "198.18.1.10:8080"}
        - {external: 198.19.0.11, internal: 198.18.1.11}      # 1:1, address only

State (see :mod:`.natlib.tables` for key layouts): tables ``mappings``, ``reverse``,
``sessions``. :meth:`Nat.export_state` leaves static entries out; :meth:`Nat.import_state`
rebuilds the reverse index and the port pools from the imported mappings, so an instance with
the same configuration translates the imported flows identically, both ways.

Handlers: ``mappings`` (read: counts, translations, a sample of entries), ``ports`` (read: free
ports per external address and protocol), ``static`` (read), ``state`` (read, per table), and
the common ``config``, ``counters`` and ``reset_counters``.
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.base import ElementConfig, read_handler
from nfvkit.elements.natlib import kernels as NK
from nfvkit.elements.natlib.alloc import CLASSES, PortPools
from nfvkit.elements.natlib.batch import translate
from nfvkit.elements.natlib.config import NatConfig
from nfvkit.elements.natlib.tables import (
    F_STATIC,
    SCHEMAS,
    describe_mapping,
    install_static,
    make_tables,
    reconcile,
)
from nfvkit.elements.stateful import StatefulElement, TableSelector
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import drop_reason
from nfvkit.vnf.state import ImportResult, StateSnapshot, StateTable
from nfvkit.vnf.state.kernels import C_UNLOGGED

NAT_NO_MAPPING = drop_reason("nat_no_mapping", "inbound to an external endpoint with no mapping")
NAT_FILTERED = drop_reason(
    "nat_filtered", "inbound from a remote endpoint the nat's filtering does not admit"
)
NAT_PORTS_EXHAUSTED = drop_reason(
    "nat_ports_exhausted", "no free external port for a new nat mapping"
)
NAT_TABLE_FULL = drop_reason("nat_table_full", "the nat mapping or session table is full")
NAT_HAIRPIN = drop_reason("nat_hairpin", "inside host to an own external address, hairpinning off")
NAT_UNSUPPORTED = drop_reason(
    "nat_unsupported", "a fragment, other protocol or ICMP message nat does not translate"
)
NAT_UNMATCHED = drop_reason(
    "nat_unmatched", "neither from inside nor to an external address (unmatched: drop)"
)
_BY_INDEX = {
    NK.X_NO_MAPPING: NAT_NO_MAPPING,
    NK.X_FILTERED: NAT_FILTERED,
    NK.X_EXHAUSTED: NAT_PORTS_EXHAUSTED,
    NK.X_FULL: NAT_TABLE_FULL,
    NK.X_HAIRPIN: NAT_HAIRPIN,
    NK.X_UNSUPPORTED: NAT_UNSUPPORTED,
    NK.X_UNMATCHED: NAT_UNMATCHED,
}
NS = 1_000_000_000
SWEEP_GAP_NS = NS
SAMPLE = 32
PORTS_LISTED = 256
_FILTERS = {
    "endpoint_independent": NK.EIF,
    "address_dependent": NK.ADF,
    "address_port_dependent": NK.APDF,
}


def _nets(cfg: NatConfig) -> tuple[NDArray[np.int64], ...]:
    """(inside nets, inside masks, external addresses sorted, their pool index or -1, pool)."""
    nets = cfg.inside_networks
    pool = cfg.pool
    ext = sorted(set(pool) | {e.ext[0] for e in cfg.static})
    where = {a: i for i, a in enumerate(pool)}
    return (
        np.array([int(n.network_address) for n in nets], dtype=np.int64),
        np.array([int(n.netmask) for n in nets], dtype=np.int64),
        np.array(ext, dtype=np.int64),
        np.array([where.get(a, -1) for a in ext], dtype=np.int64),
        np.array(pool, dtype=np.int64),
    )


def _settings(cfg: NatConfig) -> NDArray[np.int64]:
    g = np.zeros(NK.N_CFG, dtype=np.int64)
    t = cfg.timeouts
    g[NK.G_APDM] = cfg.mapping == "address_port_dependent"
    g[NK.G_FILTER] = _FILTERS[cfg.filtering]
    g[NK.G_SESSIONS] = not g[NK.G_APDM] and g[NK.G_FILTER] != NK.EIF
    g[NK.G_HAIRPIN] = cfg.hairpinning
    g[NK.G_UNMATCHED_DROP] = cfg.unmatched == "drop"
    g[NK.G_IN_REFRESH] = cfg.inbound_refresh
    g[NK.G_T_UDP], g[NK.G_T_ICMP] = int(t.udp * NS), int(t.icmp * NS)
    g[NK.G_T_EST], g[NK.G_T_TRANS] = int(t.tcp_established * NS), int(t.tcp_transitory * NS)
    g[NK.G_STATIC] = any(e.proto for e in cfg.static)
    g[NK.G_ONE2ONE] = any(not e.proto for e in cfg.static)
    g[NK.G_POOL_SEED] = 0x4E415434
    g[NK.G_SWEEP_GAP] = SWEEP_GAP_NS
    return g


def _scratch(n: int) -> tuple[NDArray[Any], ...]:
    """Kind (int8), two hashes and a slot (int64) per packet."""
    return (np.zeros(n, np.int8), *(np.zeros(n, np.int64) for _ in range(3)))


class Nat(StatefulElement):
    """IPv4 NAT44 (see the module docstring)."""

    type_name = "nat"
    Config: ClassVar[type[ElementConfig]] = NatConfig
    drop_reasons = tuple(_BY_INDEX.values())
    state_schemas = SCHEMAS

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        assert isinstance(config, NatConfig)
        self.cfg: NatConfig = config
        self.nets = _nets(config)
        self.settings = _settings(config)
        self.codes = np.array([_BY_INDEX[k].fate for k in range(NK.N_CODES)], dtype=np.int64)
        self.pools = self._fresh_pools()
        self.ctl = self._fresh_ctl()
        self._unlogged = 0
        self.keys = tuple(np.zeros(w, dtype=np.uint32) for w in (4, 2, 4, 4))
        self._scratch = _scratch(1024)

    def _fresh_pools(self) -> PortPools:
        lo, hi = self.cfg.port_range
        return PortPools(len(self.cfg.pool), lo, hi, self.cfg.port_parity)

    @staticmethod
    def _fresh_ctl() -> NDArray[np.int64]:
        ctl = np.zeros(NK.N_CTL, dtype=np.int64)
        ctl[NK.N_GEN] = 1
        ctl[NK.N_LAST_SWEEP] = ctl[NK.N_NOW] = -(1 << 62)
        return ctl

    def make_tables(self) -> dict[str, StateTable]:
        tables = make_tables(self.cfg)
        self.pools = self._fresh_pools()
        self.ctl = self._fresh_ctl()
        self._unlogged = 0
        install_static(self.cfg, tables, self.pools)
        g = self.settings
        g[NK.G_SEED_F] = tables["mappings"].seed
        g[NK.G_SEED_R] = tables["reverse"].seed
        g[NK.G_SEED_S] = tables["sessions"].seed
        return tables

    # data path --------------------------------------------------------------------------------

    def process(self, batch: PacketBatch) -> PacketBatch:
        if len(batch) == 0:
            return batch
        t = self.ensure_tables()
        fwd, rev, ses = t["mappings"], t["reverse"], t["sessions"]
        b = batch
        translate(
            (fwd.tbl, rev.tbl, ses.tbl), self.pools.arrays, self.nets, self.settings, self.ctl,
            self.codes, self.keys, self._hints(len(b)), self.times(b),
            (b.data, b.offset, b.l3_off, b.l4_off, b.flags, b.proto, b.src, b.dst, b.sport,
             b.dport, b.fate, b.ip_len),
        )  # fmt: skip
        now = int(self.ctl[NK.N_NOW])
        for table in (fwd, rev, ses):
            table.observe(now)
            table.maintain()
        if int(fwd.ctl[C_UNLOGGED]) != self._unlogged:  # retired mappings the log missed
            self._unlogged = int(fwd.ctl[C_UNLOGGED])
            self._reconcile()
        return batch

    def _hints(self, n: int) -> tuple[NDArray[Any], ...]:
        """Per-packet scratch for the batch kernel, at least ``n`` long (kept between batches)."""
        if self._scratch[0].shape[0] < n:
            self._scratch = _scratch(max(n, 2 * self._scratch[0].shape[0]))
        return self._scratch

    def _reconcile(self) -> None:
        gen = reconcile(self.cfg, self.ensure_tables(), self.pools)
        self.ctl[NK.N_GEN] = max(int(self.ctl[NK.N_GEN]), gen)

    # export / import ---------------------------------------------------------------------------

    def export_state(self, select: TableSelector | None = None) -> StateSnapshot:
        """Live dynamic entries (static ones are configuration), those ``select`` picks."""

        def pick(name: str, records: NDArray[Any]) -> NDArray[np.bool_]:
            mask = (records["flags"] & F_STATIC) == 0
            if select is not None:
                mask &= np.asarray(select(name, records), dtype=bool)
            return np.asarray(mask, dtype=np.bool_)

        return super().export_state(pick)

    def import_state(self, snap: StateSnapshot, rebase: bool = False) -> ImportResult:
        """Import mappings and sessions, then rebuild the reverse index and the port pools."""
        result = super().import_state(snap, rebase)
        self._reconcile()
        return result

    # handlers ---------------------------------------------------------------------------------

    @read_handler("mappings", "live mappings by protocol, translation counters, a sample")
    def read_mappings(self) -> dict[str, Any]:
        fwd = self.ensure_tables()["mappings"]
        now = fwd.now
        live = fwd.live(now)
        dynamic = live[(live["flags"] & F_STATIC) == 0]
        proto = dynamic["key"][:, 1] >> 16
        c = self.ctl
        return {
            "live": len(dynamic),
            "static": len(live) - len(dynamic),
            "by_proto": {
                n: int((proto == p).sum()) for n, p in (("tcp", 6), ("udp", 17), ("icmp", 1))
            },
            "created": int(c[NK.N_CREATED]),
            "translated": {
                "outbound": int(c[NK.N_OUT]),
                "inbound": int(c[NK.N_IN]),
                "hairpin": int(c[NK.N_HAIRPIN]),
                "icmp_errors": int(c[NK.N_ERRORS]),
            },
            "sample": [describe_mapping(r, now) for r in dynamic[:SAMPLE]],
        }

    @read_handler("ports", "free external ports per pool address (the first 256) and protocol")
    def read_ports(self) -> dict[str, Any]:
        self.ensure_tables()
        free = self.pools.free_ports()
        pool = self.cfg.pool
        return {
            "range": list(self.cfg.port_range),
            "parity": self.cfg.port_parity,
            "in_use": self.pools.in_use(),
            "free_total": {c: int(free[:, k].sum()) for k, c in enumerate(CLASSES)},
            "free": {
                str(ipaddress.IPv4Address(a)): {c: int(free[i, k]) for k, c in enumerate(CLASSES)}
                for i, a in enumerate(pool[:PORTS_LISTED])
            },
            "addresses": len(pool),
        }

    @read_handler("static", "the static entries")
    def read_static(self) -> list[dict[str, Any]]:
        return [e.model_dump(mode="json") for e in self.cfg.static]
