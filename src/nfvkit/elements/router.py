"""``router``: IPv4 and IPv6 forwarding by longest-prefix match.

Each packet's destination is looked up in compiled tries (:mod:`nfvkit.elements.route.lpm`:
DIR-24-8 for IPv4, 16-then-8-bit strides for IPv6); the matching route gives the output port
and the next hop. The router then decrements the IPv4 TTL (header checksum updated
incrementally, RFC 1624) or the IPv6 hop limit, writes the next hop's MAC as the destination
and the output port's MAC as the source, and sends the packet out of that port.

A route ``via`` a neighbour (its name or address) uses that neighbour's MAC, and its port
unless the route names one. A route without ``via`` is *connected*: the packet's destination
itself must be a declared neighbour (there is no ARP/ND resolution; the neighbour table is
static). Ports are named by ``ports``, each optionally with the MAC the router sends from
(default ``02:00:00:00:PP:PP``, PP:PP = port index + 1).

Example::

    type: router
    config:
      ports: [{name: lan, mac: "02:00:00:00:01:01"}, {name: wan, mac: "02:00:00:00:02:01"}]
      neighbours:
        - {name: isp, address: 203.0.113.1, mac: "02:00:00:00:99:01", port: wan}
        - {address: 198.18.0.10, mac: "02:00:00:00:00:10"}      # a host on the LAN
        - {name: isp6, address: "2001:db8:ffff::1", mac: "02:00:00:00:99:02", port: wan}
      routes:
        - {prefix: 0.0.0.0/0, via: isp}
        - {prefix: 198.18.0.0/24, port: lan}                      # connected
        - {prefix: "::/0", via: isp6}
      routes_file: routes.txt          # more routes: "PREFIX [via NEXTHOP] [port PORT]",
                                       # relative to the graph file's folder
      arp_port: lan                    # optional: ARP frames go out here; else dropped

Decisions: non-IP frames are dropped as ``not_ip``, except ARP when ``arp_port`` names a
port (for a control-plane element or an ARP responder behind it). Packets the parser marked
``MALFORMED`` (or that an earlier element dropped) are left alone. The route is looked up
before the TTL is checked (as Linux does), so a packet with no route and TTL 1 counts as
``no_route``. Broadcast, multicast and link-local destinations get no special treatment, and
no ICMP errors are generated. The IPv4 header checksum is not verified, only updated.

Drop reasons: ``no_route``, ``ttl_expired`` (TTL / hop limit <= 1 on arrival),
``no_neighbour`` (connected route, destination not a neighbour), ``not_ip``.

Handlers: ``routes`` (read: every route with its port, next hop and hits), ``stats`` (read:
table sizes, memory, build time), ``lookup`` (write: an address -> the route it matches),
``set_routes`` (write: a list of route mappings or text-form lines over the same ports and
neighbours; compiled, then swapped in atomically; hit counters restart).
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

import numpy as np
from pydantic import ValidationError

from nfvkit.elements.base import Element, ElementConfig, read_handler, write_handler
from nfvkit.elements.route.config import Resolved, RouteFileError, RouterConfig, parse_route_lines
from nfvkit.elements.route.kernels import R_NO_NEIGHBOUR, R_NO_ROUTE, R_NOT_IP, R_TTL_EXPIRED
from nfvkit.elements.route.table import RouteTable
from nfvkit.errors import HandlerError
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import drop_reason

NO_ROUTE = drop_reason("no_route", "no route matches the destination address")
TTL_EXPIRED = drop_reason("ttl_expired", "IPv4 TTL or IPv6 hop limit was <= 1 on arrival")
NO_NEIGHBOUR = drop_reason(
    "no_neighbour", "connected route, but the destination is not a declared neighbour"
)
NOT_IP = drop_reason("not_ip", "neither IPv4 nor IPv6 (and not ARP sent to an arp_port)")


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc.lstrip('.')}: {msg}" if loc else msg)
    return "; ".join(parts)


class Router(Element):
    """Forward IPv4 and IPv6 packets by longest-prefix match (see the module docstring)."""

    type_name = "router"
    Config: ClassVar[type[ElementConfig]] = RouterConfig
    drop_reasons = (NO_ROUTE, TTL_EXPIRED, NO_NEIGHBOUR, NOT_IP)

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        self.cfg = self._typed(config)
        codes = np.zeros(4, dtype=np.int16)
        codes[R_NO_ROUTE] = NO_ROUTE.fate
        codes[R_TTL_EXPIRED] = TTL_EXPIRED.fate
        codes[R_NO_NEIGHBOUR] = NO_NEIGHBOUR.fate
        codes[R_NOT_IP] = NOT_IP.fate
        self._codes = codes
        arp = self.cfg.arp_port
        self._arp_port = -1 if arp is None else self.cfg.port_names().index(arp)
        self._table = self._compile(self.cfg.resolved())

    @staticmethod
    def _typed(config: ElementConfig) -> RouterConfig:
        assert isinstance(config, RouterConfig)
        return config

    @classmethod
    def outputs_for(cls, config: ElementConfig) -> tuple[str, ...]:
        return tuple(cls._typed(config).port_names())

    def _compile(self, routes: list[Resolved]) -> RouteTable:
        return RouteTable(routes, self.cfg.neighbours, self.cfg.port_macs())

    # data path --------------------------------------------------------------------------------

    def process(self, batch: PacketBatch) -> PacketBatch:
        self._table.forward(batch, self._codes, self._arp_port)
        return batch

    # handlers ---------------------------------------------------------------------------------

    def _describe(self, index: int) -> dict[str, Any]:
        table = self._table
        res = table.routes[index]
        out: dict[str, Any] = {
            "index": index,
            "prefix": str(res.route.prefix),
            "port": self.outputs[res.port],
        }
        if res.nexthop >= 0:
            nb = table.neighbours[res.nexthop]
            out["via"] = nb.label()
            out["mac"] = nb.mac
        else:
            out["via"] = "connected"
        out["hits"] = int(table.hits[index])
        return out

    @read_handler("routes", "every route: prefix, output port, next hop (or connected), hits")
    def read_routes(self) -> list[dict[str, Any]]:
        return [self._describe(i) for i in range(len(self._table.routes))]

    @read_handler("stats", "route counts, trie nodes, table memory (bytes) and build time")
    def read_stats(self) -> dict[str, Any]:
        table = self._table
        return {**table.stats(), "hits": int(table.hits.sum())}

    @write_handler("lookup", "the route an address matches (with its next hop), or null")
    def write_lookup(self, value: Any) -> dict[str, Any]:
        try:
            addr = ipaddress.ip_address(str(value).strip())
        except ValueError:
            raise HandlerError(
                f"{value!r} is not an IPv4 or IPv6 address", where=f"{self.name}.lookup"
            ) from None
        index = self._table.lookup(addr)
        if index < 0:
            return {"address": str(addr), "route": None}
        route = self._describe(index)
        if route["via"] == "connected":
            nb = self._table.neighbour_for(addr)
            route["neighbour"] = None if nb < 0 else self.cfg.neighbours[nb].mac
        return {"address": str(addr), "route": route}

    @write_handler("set_routes", "replace the routes: a list of route mappings or text lines")
    def write_routes(self, value: Any) -> None:
        where = f"{self.name}.set_routes"
        try:
            if isinstance(value, str):
                value = [r.model_dump(mode="json") for _, r in parse_route_lines(value, "line")]
            raw = {**self.cfg.model_dump(mode="json"), "routes": value, "routes_file": None}
            cfg = self._typed(self.Config.model_validate(raw))
        except RouteFileError as exc:
            raise HandlerError(str(exc), where=where) from None
        except ValidationError as exc:
            raise HandlerError(_validation_message(exc), where=where) from None
        table = RouteTable(cfg.resolved(), cfg.neighbours, cfg.port_macs())  # compile first
        self._table = table
        self.config = self.cfg = cfg
