"""``lb``: a Maglev load balancer with a connection table, L3 (NAT) and DSR modes.

A packet addressed to a VIP belongs to a flow (its 5-tuple). A new flow goes to the backend
in entry ``hash(5-tuple) mod M`` of a Maglev lookup table (:mod:`.lblib.maglev`: the paper's
Pseudocode 1, weights by credits, backends ordered by name, so every instance with the same
backends builds the same table); the connection table then keeps the flow on that backend
whatever later happens to the backend set, unless that backend goes ``down`` or is removed.

Modes:

* ``l3``: destination address (and port, if the backend has one) → the backend; with ``snat``
  the source address → ``snat`` and the source port → a port of ``snat_ports`` (the client's
  own port when free, else hashed candidates; ``lb_tuple_in_use`` when 32 are taken).
  Replies from a backend (source = backend, destination = client or ``snat``) are translated
  back exactly -- source → VIP and its port; with SNAT, destination → client and its port --
  through reply entries derived from the connection table (:mod:`.lblib.kernels`); a reply
  also keeps its flow alive. Ethernet addresses and TTL are left alone (routing is another
  element's job). IPv4 and IPv6 (one family per element).
* ``dsr``: only the destination MAC → the backend's ``mac`` (the backend holds the VIP and
  answers the client directly); no reply path, no SNAT.

What passes untouched: packets to no VIP (and, in ``l3``, that are no backend's reply to a
tracked flow), non-IP and malformed packets. Dropped, by reason: a new flow with no backend
up (``lb_no_backend``); a new flow the full connection table refused (``lb_table_full``, or
evict the entry closest to expiry with ``on_full: evict``); no free backend-side 5-tuple
(``lb_tuple_in_use``); fragments to a VIP (``lb_fragment``: no ports to hash; reassemble
first); packets to a VIP that are neither TCP nor UDP (``lb_unsupported``). A packet to a VIP
matches the first VIP (in order) with its address, protocol (if given) and port (if given).

Health (``set_health``, or ``state`` in a backend entry): ``drain`` takes a backend out of the
Maglev table (no new flows) but its flows stay; ``down`` also removes its flows, whose next
packets are dispatched again (counted as ``flows_redispatched``). Every change is computed in
full first (new table and arrays), then swapped in as one object. Handlers must be called
between batches (as the runtime does), not while ``process`` runs.

Flows expire ``idle_timeout`` seconds after their last packet (packet timestamps, or an
injected clock). Export/import (:class:`~nfvkit.elements.stateful.StatefulElement`) carries the
``flows`` table; each flow records its backend's portable id (a hash of the name), so an
instance importing it -- even with another backend list -- maps the flow to the backend of the
same name; flows whose backend it lacks (or has ``down``) are not imported, and the reply
entries are rebuilt (an imported flow keeps its SNAT port unless a local flow holds it).

Not handled (gaps): fragments in either direction are not translated (reassemble before the
``lb``); ICMP errors about a flow are not translated; TCP FIN/RST do not shorten a flow's
lifetime; a reply arriving after its flow's idle timeout, before the flow entry is retired,
is still translated once. The batch's ``hash`` column is not updated.

Example::

    type: lb
    config:
      vips: [{address: 198.18.0.10, port: 80, proto: tcp}]
      backends:
        - {name: web1, address: 198.19.0.1, port: 8080, weight: 2}
        - {name: web2, address: 198.19.0.2, port: 8080}
      table_size: 65537            # prime
      mode: l3                     # or dsr (then each backend needs mac: ...)
      snat: 198.19.255.1           # optional, l3 only
      max_flows: 1000000
      idle_timeout: 300
      on_full: refuse              # or evict

Handlers: ``backends`` (read: state, weight, table share, flows, packets per backend),
``table`` (read: size, build time), ``stats`` (read), ``state`` (read), ``set_health`` (write:
``{name: up | drain | down}``), ``set_backends`` (write: a new backend list; members keep their
slot and, unless the entry gives ``state``, their health).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from nfvkit.elements.base import ElementConfig, read_handler, write_handler
from nfvkit.elements.lblib import kernels as K
from nfvkit.elements.lblib.config import Backend, LbConfig
from nfvkit.elements.lblib.pool import BackendPool, Plan
from nfvkit.elements.stateful import StatefulElement
from nfvkit.errors import HandlerError
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import drop_reason
from nfvkit.vnf.state import (
    FLOW_KEY_WORDS,
    ImportResult,
    StateSchema,
    StateSnapshot,
    StateTable,
    TableSnapshot,
)
from nfvkit.vnf.state.kernels import LIVE
from nfvkit.vnf.state.keys import address_words

NO_BACKEND = drop_reason("lb_no_backend", "lb: no backend is up for a new flow")
TABLE_FULL = drop_reason("lb_table_full", "lb: the connection table refused a new flow")
TUPLE_IN_USE = drop_reason(
    "lb_tuple_in_use", "lb: every backend-side 5-tuple for a new flow is taken by other flows"
)
FRAGMENT = drop_reason("lb_fragment", "lb: an IP fragment addressed to a VIP")
UNSUPPORTED = drop_reason("lb_unsupported", "lb: a packet to a VIP that is neither TCP nor UDP")
NS = 1_000_000_000
SNAT_TRIES = 32
_PROTO = {None: 0, "tcp": 6, "udp": 17}


class Lb(StatefulElement):
    """Maglev load balancer over weighted backends with a connection table; L3, SNAT or DSR."""

    type_name = "lb"
    Config: ClassVar[type[ElementConfig]] = LbConfig
    drop_reasons = (NO_BACKEND, TABLE_FULL, TUPLE_IN_USE, FRAGMENT, UNSUPPORTED)
    state_schemas: ClassVar[dict[str, StateSchema]] = {"flows": K.FLOWS_SCHEMA}

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        assert isinstance(config, LbConfig)
        self.cfg: LbConfig = config
        self.pool = BackendPool(config.backends, config.table_size)
        vips = config.all_vips()
        self._vips = (
            np.array([address_words(str(v.address)) for v in vips], dtype=np.uint32),
            np.array([-1 if v.port is None else v.port for v in vips], dtype=np.int32),
            np.array([_PROTO[v.proto] for v in vips], dtype=np.int32),
        )
        self._snat = np.zeros((1, 4), dtype=np.uint32)
        if config.snat is not None:
            self._snat[0] = address_words(str(config.snat))
        self._prm = self._params(config)
        self._codes = np.zeros(K.N_CODES, dtype=np.int16)
        for at, reason in enumerate((NO_BACKEND, TABLE_FULL, TUPLE_IN_USE, FRAGMENT, UNSUPPORTED)):
            self._codes[at] = reason.fate
        self._cnt = np.zeros(K.N_CNT, dtype=np.int64)
        nslots = self.pool.dispatch.slots
        self._pkts = np.zeros(nslots, dtype=np.int64)
        self._newf = np.zeros(nslots, dtype=np.int64)
        self._redispatched = 0
        self._scratch = (
            np.zeros(FLOW_KEY_WORDS, dtype=np.uint32),
            np.zeros(FLOW_KEY_WORDS, dtype=np.uint32),
            np.zeros((1, 4), dtype=np.uint32),
        )
        self._what = np.zeros(0, dtype=np.int32)
        self._hs = np.zeros(0, dtype=np.int64)
        self._replies: StateTable | None = None

    @staticmethod
    def _params(cfg: LbConfig) -> NDArray[np.int64]:
        prm = np.zeros(K.N_PRM, dtype=np.int64)
        prm[K.P_DSR] = int(cfg.mode == "dsr")
        prm[K.P_SNAT] = int(cfg.snat is not None)
        prm[K.P_LO], prm[K.P_HI] = cfg.snat_ports
        prm[K.P_IDLE] = max(int(cfg.idle_timeout * NS), 1)
        prm[K.P_MSEED] = cfg.seed
        prm[K.P_FSEED] = 0x6C62_0001
        prm[K.P_RSEED] = 0x6C62_0002
        prm[K.P_TRIES] = SNAT_TRIES
        return prm

    # life cycle -------------------------------------------------------------------------------

    def make_tables(self) -> dict[str, StateTable]:
        cfg, l3 = self.cfg, self.cfg.mode == "l3"
        idle = int(self._prm[K.P_IDLE])
        flows = StateTable(
            K.FLOWS_SCHEMA,
            cfg.max_flows,
            idle,
            on_full=cfg.on_full,
            log_retired=l3,
            seed=int(self._prm[K.P_FSEED]),
        )
        rmax = cfg.max_flows if l3 else 1
        self._replies = StateTable(K.REPLIES_SCHEMA, rmax, idle, seed=int(self._prm[K.P_RSEED]))
        return {"flows": flows}

    def cleanup(self) -> None:
        super().cleanup()
        self._replies = None

    def _tables(self) -> tuple[StateTable, StateTable]:
        flows = self.ensure_tables()["flows"]
        assert self._replies is not None
        return flows, self._replies

    # data path --------------------------------------------------------------------------------

    def process(self, batch: PacketBatch) -> PacketBatch:
        if len(batch) == 0:
            return batch
        flows, replies = self._tables()
        d, b = self.pool.dispatch, batch
        if self._what.shape[0] < len(b):
            self._what = np.zeros(len(b), dtype=np.int32)
            self._hs = np.zeros(len(b), dtype=np.int64)
        scratch = (*self._scratch, self._what, self._hs)
        cols = (b.src, b.dst, b.sport, b.dport)
        K.lb_kernel(
            b.data, b.offset, b.l3_off, b.l4_off, b.flags, b.proto, cols, b.fate, self.times(b),
            flows.tbl, replies.tbl, scratch, self._prm, self._codes,
            self._vips, (d.table, d.addr, d.port, d.mac, d.bid), self._snat,
            (self._pkts, self._newf, self._cnt),
        )  # fmt: skip
        flows.maintain()
        replies.maintain()
        return batch

    # backend changes --------------------------------------------------------------------------

    def _apply(self, plan: Plan) -> int:
        """Remove the doomed flows (with the current arrays), then swap ``plan`` in."""
        flows, replies = self._tables()
        old = self.pool.dispatch
        gone = 0
        if plan.doomed.any():
            args = (flows.tbl, replies.tbl, self._scratch[1], self._prm, plan.doomed)
            gone = int(K.purge_kernel(*args, old.addr, old.port, self._snat))
            flows.maintain()
            replies.maintain()
        self._pkts, self._newf = self._carry_counters(plan)
        self.pool.apply(plan)
        self._redispatched += gone
        self.config = self.cfg = self.cfg.model_copy(update={"backends": self.pool.configs()})
        return gone

    def _carry_counters(self, plan: Plan) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Per-slot counters for ``plan``: kept for members keeping their slot, else zero."""
        n = plan.dispatch.slots
        pkts, newf = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        for name, m in plan.members.items():
            old = self.pool.members.get(name)
            if old is not None and old.slot == m.slot:
                pkts[m.slot], newf[m.slot] = self._pkts[m.slot], self._newf[m.slot]
        return pkts, newf

    # export / import --------------------------------------------------------------------------

    def import_state(self, snap: StateSnapshot, rebase: bool = False) -> ImportResult:
        """Import flows, mapping each to the local backend with the same name (by its id);
        flows whose backend is missing or down here are skipped (counted as refused)."""
        part = snap.tables.get("flows")
        skipped = 0
        if part is not None and part.schema == K.FLOWS_SCHEMA:
            recs = part.records.copy()
            slots = self._slots_by_id(recs["bid"])
            keep = slots >= 0
            recs["backend"] = np.maximum(slots, 0)
            skipped = int((~keep).sum())
            tables = dict(snap.tables)
            tables["flows"] = TableSnapshot(part.schema, part.taken_at, recs[keep])
            snap = StateSnapshot(snap.element_type, snap.element, tables)
        result = super().import_state(snap, rebase)
        dropped = self._relink()
        return ImportResult(
            max(result.added - dropped, 0), result.replaced, result.refused + skipped + dropped
        )

    def _slots_by_id(self, ids: NDArray[np.uint32]) -> NDArray[np.int64]:
        """The local slot of each backend id (-1: no such backend, or it is down)."""
        members = [m for m in self.pool.members.values() if m.health != "down"]
        if not members:
            return np.full(ids.shape[0], -1, dtype=np.int64)
        known = self.pool.dispatch.bid[[m.slot for m in members]].astype(np.int64)
        slot = np.array([m.slot for m in members], dtype=np.int64)
        order = np.argsort(known)
        at = np.minimum(np.searchsorted(known[order], ids.astype(np.int64)), len(order) - 1)
        hit = known[order][at] == ids
        return np.where(hit, slot[order][at], -1)

    def _relink(self) -> int:
        """Rebuild the reply entries from the flows (l3); return the flows dropped."""
        flows, replies = self._tables()
        if self.cfg.mode != "l3":
            return 0
        replies.clear()
        d = self.pool.dispatch
        scratch = (self._scratch[0], self._scratch[1], self._scratch[2])
        args = (flows.tbl, replies.tbl, scratch, self._prm, self._vips)
        dropped = int(K.relink_kernel(*args, d.addr, d.port, self._snat, flows.now))
        flows.maintain()
        replies.maintain()
        return dropped

    # handlers ---------------------------------------------------------------------------------

    def _flows_per_slot(self) -> NDArray[np.int64]:
        flows, _ = self._tables()
        rows = flows.rows
        alive = (rows["state"] == LIVE) & (rows["expire"] > flows.now)
        out: NDArray[np.int64] = np.bincount(
            rows["backend"][alive].astype(np.int64), minlength=self.pool.dispatch.slots
        )
        return out

    @read_handler("backends", "per backend: state, weight, table share, flows and packets")
    def read_backends(self) -> list[dict[str, Any]]:
        share = self.pool.table_share()
        flows = self._flows_per_slot()
        out = []
        for m in sorted(self.pool.members.values(), key=lambda m: m.slot):
            out.append(
                {
                    "name": m.cfg.name,
                    "address": str(m.cfg.address),
                    "port": m.cfg.port,
                    "state": m.health,
                    "weight": m.cfg.weight,
                    "table_share": round(float(share[m.slot]), 6),
                    "flows": int(flows[m.slot]),
                    "new_flows": int(self._newf[m.slot]),
                    "packets": int(self._pkts[m.slot]),
                }
            )
        return out

    @read_handler("table", "the Maglev lookup table: size, backends in it, build time")
    def read_table(self) -> dict[str, Any]:
        d = self.pool.dispatch
        share = self.pool.table_share()
        used = share[share > 0]
        return {
            "size": int(d.table.shape[0]),
            "backends": int(used.shape[0]),
            "build_seconds": round(d.build_seconds, 6),
            "max_over_mean": round(float(used.max() / used.mean()), 6) if used.size else 0.0,
            "seed": self.cfg.seed,
        }

    @read_handler("stats", "new flows, forwarded, translated replies, passed, redispatched")
    def read_stats(self) -> dict[str, int]:
        c = self._cnt
        return {
            "new_flows": int(c[K.K_NEW]),
            "forward_packets": int(c[K.K_FORWARD]),
            "reply_packets": int(c[K.K_REPLY]),
            "passed": int(c[K.K_PASS]),
            "flows_redispatched": self._redispatched,
        }

    @write_handler("set_health", "backend health: {name: up | drain | down}")
    def write_health(self, value: Any) -> dict[str, Any]:
        where = f"{self.name}.set_health"
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and v in ("up", "drain", "down") for k, v in value.items()
        ):
            raise HandlerError("expected a mapping {backend name: up | drain | down}", where)
        try:
            plan = self.pool.plan_health(value)
        except KeyError as exc:
            raise HandlerError(str(exc.args[0]), where) from None
        gone = plan.doomed_names(self.pool.members)
        return {"flows_redispatched": self._apply(plan), "flushed": gone}

    @write_handler("set_backends", "replace the backend list (members keep slot and health)")
    def write_backends(self, value: Any) -> dict[str, Any]:
        where = f"{self.name}.set_backends"
        try:
            raw = self.cfg.model_dump(mode="json")
            raw["backends"] = value
            cfg = LbConfig.model_validate(raw)
            plan = self.pool.plan_backends(cfg.backends)
        except (ValidationError, ValueError) as exc:
            raise HandlerError(str(exc), where) from None
        gone = plan.doomed_names(self.pool.members)
        return {"flows_redispatched": self._apply(plan), "flushed": gone}


__all__ = ["Backend", "Lb", "LbConfig"]
