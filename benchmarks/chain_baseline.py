"""The per-packet pure-Python baseline of the service chain: dpkt and dicts, one packet at a time.

It does what the nfvkit chain does, the way a straightforward Python VNF would: parse each frame
with dpkt, run a first-match loop over the same ACL rules, source-NAT with a dict of mappings
and sequential port allocation, pick a backend with a connection dict and the same Maglev
lookup table, count the flow in a dict, and serialise the frame (dpkt recomputes the
checksums). It is the yardstick the chain's speed-up is measured against, not a reference
implementation: it handles only IPv4 TCP/UDP, which is all the benchmark workload holds.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dpkt

from nfvkit.elements.classify.rules import AclRule

_PROTO = {"tcp": 6, "udp": 17, "icmp": 1}


@dataclass
class _Rule:
    allow: bool
    proto: int  # -1 any
    src: tuple[int, int]  # (network, mask)
    dst: tuple[int, int]
    sport: tuple[int, int]
    dport: tuple[int, int]


def _net(value: Any) -> tuple[int, int]:
    if value is None:
        return 0, 0
    net = ipaddress.ip_network(str(value), strict=False)
    return int(net.network_address), int(net.netmask)


def _ports(value: Any) -> tuple[int, int]:
    if value is None:
        return 0, 65535
    text = str(value)
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def compile_baseline_rules(rules: Sequence[AclRule]) -> list[_Rule]:
    """The rules as plain tuples for the Python loop (IPv4 fields only)."""
    out = []
    for r in rules:
        d = r.model_dump(exclude_none=True)
        proto = d.get("proto")
        out.append(
            _Rule(
                allow=d["action"] == "allow",
                proto=-1 if proto in (None, "any", "ip") else _PROTO.get(str(proto), -2),
                src=_net(d.get("src")),
                dst=_net(d.get("dst")),
                sport=_ports(d.get("sport")),
                dport=_ports(d.get("dport")),
            )
        )
    return out


@dataclass
class BaselineChain:
    """The chain's state, in dicts."""

    rules: list[_Rule]
    inside: tuple[int, int]
    external: int
    vips: set[int]
    backends: list[int]
    maglev: Sequence[int]
    nat: dict[tuple[int, int, int], int] = field(default_factory=dict)
    next_port: int = 1024
    conns: dict[tuple[int, int, int, int, int], int] = field(default_factory=dict)
    flows: dict[tuple[int, int, int, int, int], list[int]] = field(default_factory=dict)

    def allowed(self, src: int, dst: int, proto: int, sport: int, dport: int) -> bool:
        for r in self.rules:
            if (
                (r.proto < 0 or r.proto == proto)
                and (src & r.src[1]) == r.src[0]
                and (dst & r.dst[1]) == r.dst[0]
                and r.sport[0] <= sport <= r.sport[1]
                and r.dport[0] <= dport <= r.dport[1]
            ):
                return r.allow
        return False

    def process(self, frame: bytes, ts: int) -> bytes | None:
        """One frame through the chain; the frame out, or None when dropped."""
        eth = dpkt.ethernet.Ethernet(frame)
        ip = eth.data
        if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP | dpkt.udp.UDP):
            return None
        l4 = ip.data
        src, dst = struct.unpack("!I", ip.src)[0], struct.unpack("!I", ip.dst)[0]
        if not self.allowed(src, dst, ip.p, l4.sport, l4.dport):
            return None
        if (src & self.inside[1]) == self.inside[0]:  # source NAT
            key = (ip.p, src, l4.sport)
            port = self.nat.get(key)
            if port is None:
                port = self.nat[key] = self.next_port
                self.next_port = 1024 + (self.next_port - 1023) % 64512
            ip.src = socket.inet_aton(str(ipaddress.IPv4Address(self.external)))
            l4.sport = port
            src = self.external
        if dst in self.vips:  # Maglev load balancing with a connection table
            five = (src, dst, ip.p, l4.sport, l4.dport)
            b = self.conns.get(five)
            if b is None:
                h = zlib.crc32(struct.pack("!IIBHH", *five))
                b = self.conns[five] = self.maglev[h % len(self.maglev)]
            ip.dst = struct.pack("!I", self.backends[b])
            dst = self.backends[b]
        rec = self.flows.get((src, dst, ip.p, l4.sport, l4.dport))
        if rec is None:
            self.flows[(src, dst, ip.p, l4.sport, l4.dport)] = [1, len(frame), ts, ts]
        else:
            rec[0] += 1
            rec[1] += len(frame)
            rec[3] = ts
        ip.sum = 0
        l4.sum = 0
        return bytes(eth)
