""":class:`RouteTable`: the compiled form of a router's routes, built whole, swapped in whole.

It holds the IPv4 and IPv6 tries (:mod:`.lpm`), whose leaves are indices into one route
list; per route the output port, the next-hop index (-1: connected) and a hit counter; the
neighbours' MACs; the ports' MACs; and an open-addressing table from neighbour address to
neighbour index for connected routes.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.route.config import Neighbour, Resolved, mac_bytes
from nfvkit.elements.route.kernels import find_neighbour, neighbour_hash, route_batch
from nfvkit.elements.route.lpm import V4_STRIDES, V6_STRIDES, Trie, build_trie
from nfvkit.packet.batch import PacketBatch

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_words(addr: IPAddress) -> list[int]:
    """An address as the four words of a batch's ``src``/``dst`` (IPv4 as ``::ffff:a.b.c.d``)."""
    value = int(addr) | (0xFFFF << 32) if addr.version == 4 else int(addr)
    return [(value >> s) & 0xFFFFFFFF for s in (96, 64, 32, 0)]


def _macs(macs: list[str]) -> NDArray[np.uint8]:
    out = np.zeros((len(macs), 6), dtype=np.uint8)
    for i, mac in enumerate(macs):
        out[i] = np.frombuffer(mac_bytes(mac), dtype=np.uint8)
    return out


def _neighbour_table(
    neighbours: list[Neighbour],
) -> tuple[NDArray[np.uint32], NDArray[np.int32]]:
    """Open addressing, linear probing, at most half full; ``vals`` -1 marks a free slot."""
    addressed = [(i, nb.address) for i, nb in enumerate(neighbours) if nb.address is not None]
    cap = 1
    while cap < 2 * len(addressed) + 1:
        cap *= 2
    keys = np.zeros((cap, 4), dtype=np.uint32)
    vals = np.full(cap, -1, dtype=np.int32)
    for index, addr in addressed:
        words = address_words(addr)
        h = neighbour_hash(*words) & (cap - 1)
        while vals[h] >= 0:
            h = (h + 1) & (cap - 1)
        keys[h] = words
        vals[h] = index
    return keys, vals


class RouteTable:
    """Compiled routes and next hops (see the module docstring)."""

    def __init__(self, routes: list[Resolved], neighbours: list[Neighbour], port_macs: list[str]):
        t0 = time.perf_counter()
        self.routes = list(routes)
        self.neighbours = list(neighbours)
        self.tries: dict[int, Trie] = {}
        for version, strides in ((4, V4_STRIDES), (6, V6_STRIDES)):
            ids = [i for i, r in enumerate(routes) if r.route.prefix.version == version]
            prefixes = [routes[i].route.prefix for i in ids]
            self.tries[version] = build_trie(prefixes, ids, strides)
        self.route_port = np.array([r.port for r in routes], dtype=np.int16)
        self.route_nh = np.array([r.nexthop for r in routes], dtype=np.int32)
        self.hits = np.zeros(len(routes), dtype=np.int64)
        self.nh_mac = _macs([nb.mac for nb in neighbours])
        self.port_mac = _macs(port_macs)
        self.nb_keys, self.nb_vals = _neighbour_table(self.neighbours)
        self.build_seconds = time.perf_counter() - t0

    def forward(self, batch: PacketBatch, codes: NDArray[np.int16], arp_port: int) -> None:
        """Route ``batch`` in place: fates, TTLs, checksums and MACs."""
        v4, v6 = self.tries[4], self.tries[6]
        route_batch(
            batch.data,
            batch.offset,
            batch.l3_off,
            batch.flags,
            batch.fate,
            batch.dst,
            v4.root,
            v4.nodes,
            v6.root,
            v6.nodes,
            self.route_port,
            self.route_nh,
            self.hits,
            self.nh_mac,
            self.port_mac,
            self.nb_keys,
            self.nb_vals,
            codes,
            arp_port,
            np.empty(len(batch), dtype=np.int32),  # per-batch scratch: no state shared
        )

    def lookup(self, addr: IPAddress) -> int:
        """The index of the route ``addr`` matches; -1 if none."""
        words = np.array([address_words(addr)], dtype=np.uint32)
        return int(self.tries[addr.version].lookup(words)[0])

    def neighbour_for(self, addr: IPAddress) -> int:
        """The index of the neighbour with address ``addr``; -1 if none."""
        words = np.array([address_words(addr)], dtype=np.uint32)
        return int(find_neighbour(self.nb_keys, self.nb_vals, words, 0))

    @property
    def nbytes(self) -> int:
        arrays = (
            self.route_port,
            self.route_nh,
            self.hits,
            self.nh_mac,
            self.port_mac,
            self.nb_keys,
            self.nb_vals,
        )
        return sum(t.nbytes for t in self.tries.values()) + sum(a.nbytes for a in arrays)

    def stats(self) -> dict[str, Any]:
        return {
            "routes": len(self.routes),
            "ipv4": self.tries[4].stats(),
            "ipv6": self.tries[6].stats(),
            "neighbours": len(self.neighbours),
            "neighbour_slots": int(self.nb_vals.shape[0]),
            "bytes": self.nbytes,
            "build_seconds": round(self.build_seconds, 6),
        }
