"""``TrafficProfile``, the validated description of a synthetic trace, and ``GenSummary``.

Sizes are Ethernet frame sizes *including* the 4-byte FCS, as RFC 2544 (section 9) and the
traffic-generator IMIX tables count them; a capture holds no FCS, so a "64-byte" frame is
written as 60 bytes and a 1518-byte one as 1514. "imix" is the common "simple IMIX" of test
equipment (Agilent/Ixia/Spirent, Wikipedia "Internet Mix"): 64, 570 and 1518 bytes in the
ratio 7:4:1 of frames (RFC 6985 explains how to name such mixes). A frame grows past its size
when its headers do not fit (an IPv6 TCP segment with one data byte is 75 bytes); handshake,
ACK-only and FIN segments are minimum-size (60 bytes, padded).

Shares of TCP/UDP/ICMP, IPv6 and VLAN tagging are shares of *flows* (rounded by largest
remainder, so the counts are exact); ``malformed`` is a share of *packets* (rounded), which
are extra single-packet IPv4/UDP carriers, spread over the requested kinds.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MalformedKind = Literal[
    "truncated", "bad_ihl", "bad_ip_length", "bad_udp_length", "bad_ip_checksum"
]
MALFORMED_KINDS: tuple[MalformedKind, ...] = (
    "truncated",
    "bad_ihl",
    "bad_ip_length",
    "bad_udp_length",
    "bad_ip_checksum",
)
SIZE_MIXES: dict[str, tuple[tuple[int, float], ...]] = {
    "64": ((64, 1.0),),
    "imix": ((64, 7.0), (570, 4.0), (1518, 1.0)),
    "1500": ((1500, 1.0),),
}
TCP_MIN_PACKETS = 9  # SYN, SYN-ACK, ACK, one data segment each way, FIN, ACK, FIN, ACK
FCS_LEN = 4
TEST_NET4 = ipaddress.IPv4Network("198.18.0.0/15")  # RFC 2544 benchmarking range
TEST_NET6 = ipaddress.IPv6Network("2001:db8::/32")  # RFC 3849 documentation range


class TrafficProfile(BaseModel):
    """What to generate (see the module docstring for what the shares and sizes mean)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    packets: int = Field(10_000, ge=1, description="total packets, malformed ones included")
    flows: int = Field(100, ge=1, description="number of flows (bidirectional conversations)")
    servers: int = Field(1024, ge=1, le=1 << 20, description="server addresses flows go to")
    size: Literal["64", "imix", "1500"] | tuple[tuple[int, float], ...] = "imix"
    zipf: float = Field(1.0, ge=0, le=10, description="flow popularity exponent, 0 = uniform")
    tcp: float = Field(0.6, ge=0, le=1)
    udp: float = Field(0.3, ge=0, le=1)
    icmp: float = Field(0.1, ge=0, le=1)
    ipv6: float = Field(0.0, ge=0, le=1)
    vlan: float = Field(0.0, ge=0, le=1)
    malformed: float = Field(0.0, ge=0, le=1)
    malformed_kinds: tuple[MalformedKind, ...] = MALFORMED_KINDS
    seed: int = 1
    start_ns: int = Field(1_700_000_000 * 10**9, ge=0)
    rate_pps: float = Field(1_000_000.0, gt=0)
    client_net4: ipaddress.IPv4Network = ipaddress.IPv4Network("198.18.0.0/16")
    server_net4: ipaddress.IPv4Network = ipaddress.IPv4Network("198.19.0.0/16")
    client_net6: ipaddress.IPv6Network = ipaddress.IPv6Network("2001:db8:1::/64")
    server_net6: ipaddress.IPv6Network = ipaddress.IPv6Network("2001:db8:2::/64")

    @field_validator("size")
    @classmethod
    def _sizes(cls, v: str | tuple[tuple[int, float], ...]) -> str | tuple[tuple[int, float], ...]:
        if isinstance(v, str):
            return v
        if not v:
            raise ValueError("an explicit size mix needs at least one (size, weight)")
        for size, weight in v:
            if not 64 <= size <= 9216:
                raise ValueError(f"frame size {size} outside 64..9216")
            if weight <= 0:
                raise ValueError(f"weight {weight} of size {size} must be positive")
        return v

    @field_validator("client_net4", "server_net4")
    @classmethod
    def _net4(cls, v: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not v.subnet_of(TEST_NET4) or v.prefixlen > 30:
            raise ValueError(f"{v} must be a /30 or larger subnet of {TEST_NET4}")
        return v

    @field_validator("client_net6", "server_net6")
    @classmethod
    def _net6(cls, v: ipaddress.IPv6Network) -> ipaddress.IPv6Network:
        if not v.subnet_of(TEST_NET6) or v.prefixlen > 96:
            raise ValueError(f"{v} must be a /96 or larger subnet of {TEST_NET6}")
        return v

    @field_validator("malformed_kinds")
    @classmethod
    def _kinds(cls, v: tuple[MalformedKind, ...]) -> tuple[MalformedKind, ...]:
        if not v:
            raise ValueError("name at least one malformed kind")
        return tuple(dict.fromkeys(v))

    @model_validator(mode="after")
    def _consistent(self) -> TrafficProfile:
        total = self.tcp + self.udp + self.icmp
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"tcp + udp + icmp shares must sum to 1, not {total:g}")
        if self.client_net4.overlaps(self.server_net4) or self.client_net6.overlaps(
            self.server_net6
        ):
            raise ValueError("client and server subnets must not overlap")
        need = self.minimum_packets()
        if need > self.packets:
            raise ValueError(
                f"{self.packets} packets cannot hold {self.flows} flows and "
                f"{self.malformed_count()} malformed packets: at least {need} are needed"
            )
        return self

    # derived counts -------------------------------------------------------------------------

    def size_mix(self) -> tuple[tuple[int, float], ...]:
        """The ``(frame size with FCS, weight)`` pairs."""
        return SIZE_MIXES[self.size] if isinstance(self.size, str) else self.size

    def malformed_count(self) -> int:
        """How many malformed packets the trace holds."""
        return round(self.packets * self.malformed)

    def flows_by_proto(self) -> tuple[int, int, int]:
        """Flows of TCP, UDP and ICMP (largest-remainder rounding of the shares)."""
        tcp, udp, icmp = largest_remainder(self.flows, (self.tcp, self.udp, self.icmp))
        return tcp, udp, icmp

    def minimum_packets(self) -> int:
        """The fewest packets that can carry the flows and the malformed packets."""
        tcp, udp, icmp = self.flows_by_proto()
        return tcp * TCP_MIN_PACKETS + udp + icmp + self.malformed_count()


def largest_remainder(total: int, shares: tuple[float, ...]) -> list[int]:
    """Split ``total`` into integer parts proportional to ``shares`` that sum to ``total``."""
    weight = sum(shares)
    exact = [total * s / weight for s in shares]
    parts = [int(x) for x in exact]
    order = sorted(range(len(shares)), key=lambda i: (parts[i] - exact[i], i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


class GenSummary(BaseModel):
    """What :func:`nfvkit.gen.generate` wrote."""

    model_config = ConfigDict(frozen=True)

    path: str
    packets: int
    bytes: int = Field(description="sum of frame lengths written (no FCS)")
    file_bytes: int
    flows: int
    duration_ns: int
    by_kind: dict[str, int]
    by_size: dict[int, int] = Field(description="frame length written -> packets")
