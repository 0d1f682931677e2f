"""The configuration model of ``nat``: inside prefixes, the external address pool, behaviours
(mapping, filtering, hairpinning), timeouts and static entries, checked as a whole.

Addresses are IPv4 only (NAT44). Parsed forms -- integer addresses, networks, the sorted pool
-- are computed once by the validator and kept in private attributes.
"""

from __future__ import annotations

import ipaddress
from typing import Literal, Self

from pydantic import Field, PrivateAttr, model_validator

from nfvkit.elements.base import ElementConfig

MAX_POOL = 65536
"""Most external addresses a pool may hold (its prefixes expanded)."""

PROTOS = {"tcp": 6, "udp": 17}


def _endpoint(text: str, where: str) -> tuple[int, int | None]:
    """``"a.b.c.d"`` or ``"a.b.c.d:port"`` as (address, port or None)."""
    addr, sep, port = text.rpartition(":") if ":" in text else (text, "", "")
    try:
        ip = ipaddress.IPv4Address(addr)
    except ValueError:
        raise ValueError(f"{where}: {text!r} is not an IPv4 address[:port]") from None
    if not sep:
        return int(ip), None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{where}: {text!r} has no valid port (1-65535)")
    return int(ip), int(port)


class Timeouts(ElementConfig):
    """Idle timeouts of dynamic mappings, in seconds (the RFC floors in each description)."""

    udp: float = Field(300.0, gt=0, description="UDP; RFC 4787 REQ-5: >= 120, 300 recommended")
    tcp_established: float = Field(
        7440.0, gt=0, description="TCP once the SYN is answered; RFC 5382 REQ-5: >= 7440"
    )
    tcp_transitory: float = Field(
        240.0, gt=0, description="TCP opening or closing (FIN both ways, RST); RFC 5382: >= 240"
    )
    icmp: float = Field(60.0, gt=0, description="ICMP echo (query) mappings; RFC 5508 REQ-1: >= 60")


class StaticEntry(ElementConfig):
    """A static destination NAT entry: ``external`` is forwarded to ``internal``, and the
    internal endpoint's outbound packets leave with the external source. With ``proto`` both
    sides are ``address:port``; without, both are bare addresses (1:1 address-only NAT)."""

    proto: Literal["tcp", "udp"] | None = None
    external: str
    internal: str
    _ext: tuple[int, int | None] = PrivateAttr(default=(0, None))
    _int: tuple[int, int | None] = PrivateAttr(default=(0, None))

    @model_validator(mode="after")
    def _parse(self) -> Self:
        self._ext = _endpoint(self.external, "static external")
        self._int = _endpoint(self.internal, "static internal")
        ported = self._ext[1] is not None
        if ported != (self._int[1] is not None):
            raise ValueError("static entry: give a port on both sides or on neither")
        if ported != (self.proto is not None):
            raise ValueError("static entry: a port form needs proto (tcp/udp); 1:1 takes none")
        return self

    @property
    def proto_number(self) -> int:
        """6 or 17, or 0 for a 1:1 address-only entry."""
        return PROTOS[self.proto] if self.proto else 0

    @property
    def ext(self) -> tuple[int, int]:
        """(address, port) of the external side; port 0 for 1:1."""
        return self._ext[0], self._ext[1] or 0

    @property
    def int_(self) -> tuple[int, int]:
        """(address, port) of the internal side; port 0 for 1:1."""
        return self._int[0], self._int[1] or 0


def _networks(items: list[str], where: str) -> list[ipaddress.IPv4Network]:
    out = []
    for text in items:
        try:
            out.append(ipaddress.IPv4Network(text, strict=True))
        except ValueError as exc:
            raise ValueError(f"{where}: {text!r}: {exc}") from None
    return out


class NatConfig(ElementConfig):
    """Everything a ``nat`` needs (see :mod:`nfvkit.elements.nat` for the meaning)."""

    inside: list[str] = Field(min_length=1, description="prefixes of the inside hosts")
    external: list[str] = Field(min_length=1, description="pool: addresses and/or prefixes")
    port_range: tuple[int, int] = Field((1024, 65535), description="external ports to allocate")
    port_parity: bool = Field(True, description="keep the inside port's parity (RFC 4787 REQ-4)")
    mapping: Literal["endpoint_independent", "address_port_dependent"] = "endpoint_independent"
    filtering: Literal["endpoint_independent", "address_dependent", "address_port_dependent"] = (
        "address_dependent"
    )
    hairpinning: bool = False
    inbound_refresh: bool = Field(True, description="inbound packets refresh a mapping's timer")
    unmatched: Literal["pass", "drop"] = "pass"
    max_mappings: int = Field(131072, ge=1, le=1 << 24)
    max_sessions: int | None = Field(None, ge=1, le=1 << 24, description="default max_mappings")
    timeouts: Timeouts = Field(default_factory=Timeouts)
    static: list[StaticEntry] = Field(default_factory=list)
    _inside: list[ipaddress.IPv4Network] = PrivateAttr(default_factory=list)
    _pool: list[int] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Self:
        self._inside = _networks(self.inside, "inside")
        pool: set[int] = set()
        for text in self.external:
            net = _networks([text], "external")[0]
            if len(pool) + net.num_addresses > MAX_POOL:
                raise ValueError(f"external: more than {MAX_POOL} addresses")
            pool.update(range(int(net.network_address), int(net.broadcast_address) + 1))
        self._pool = sorted(pool)
        lo, hi = self.port_range
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"port_range {list(self.port_range)}: need 1 <= low <= high <= 65535")
        self._check_static(pool)
        return self

    def _check_static(self, pool: set[int]) -> None:
        seen_ext: set[tuple[int, int, int]] = set()
        seen_int: set[tuple[int, int, int]] = set()
        for n, entry in enumerate(self.static):
            where = f"static[{n}]"
            ext, internal = entry.ext, entry.int_
            if not self.is_inside(internal[0]):
                raise ValueError(f"{where}: internal {entry.internal} is not in an inside prefix")
            if self.is_inside(ext[0]):
                raise ValueError(f"{where}: external {entry.external} is in an inside prefix")
            if entry.proto is None and ext[0] in pool:
                raise ValueError(f"{where}: a 1:1 external address may not be in the pool")
            ke, ki = (entry.proto_number, *ext), (entry.proto_number, *internal)
            if ke in seen_ext or ki in seen_int:
                raise ValueError(f"{where}: duplicates an earlier static entry")
            seen_ext.add(ke)
            seen_int.add(ki)

    def is_inside(self, addr: int) -> bool:
        ip = ipaddress.IPv4Address(addr)
        return any(ip in net for net in self._inside)

    @property
    def inside_networks(self) -> list[ipaddress.IPv4Network]:
        return list(self._inside)

    @property
    def pool(self) -> list[int]:
        """The pool's addresses (integers), sorted."""
        return list(self._pool)

    @property
    def sessions_limit(self) -> int:
        return self.max_sessions or self.max_mappings
