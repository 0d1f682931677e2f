"""Configuration models of the ``lb`` element: virtual IPs, backends and the balancer itself.

Every check happens here, before the element exists: at least one VIP, no duplicate VIP, unique
backend names (and unique 32-bit backend ids derived from them), a prime ``table_size`` larger
than the number of backends, one address family throughout in ``l3`` mode, a MAC address for
every backend in ``dsr`` mode, ``snat`` only in ``l3`` mode.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal, Self

from pydantic import Field, IPvAnyAddress, model_validator

from nfvkit.elements.base import ElementConfig
from nfvkit.elements.lblib.maglev import MAX_TABLE_SIZE, is_prime, next_prime

MAX_VIPS = 64
MAX_BACKENDS = 65535
MAC_PATTERN = r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$"
Health = Literal["up", "drain", "down"]


class Vip(ElementConfig):
    """A virtual address the balancer answers for; ``port``/``proto`` narrow it."""

    address: IPvAnyAddress
    port: int | None = Field(None, ge=1, le=65535, description="any port when absent")
    proto: Literal["tcp", "udp"] | None = Field(None, description="tcp and udp when absent")

    def label(self) -> str:
        port = "*" if self.port is None else str(self.port)
        return f"{self.address}:{port}/{self.proto or 'any'}"


class Backend(ElementConfig):
    """A real server behind the VIPs."""

    name: str = Field(min_length=1, max_length=128, description="identity; hashed by Maglev")
    address: IPvAnyAddress
    port: int | None = Field(None, ge=1, le=65535, description="keep the VIP port when absent")
    weight: int = Field(1, ge=1, le=65535, description="share of new flows, relative")
    mac: str | None = Field(None, pattern=MAC_PATTERN, description="next hop MAC (dsr mode)")
    state: Health | None = Field(
        None, description="initial health (up); in set_backends, absent keeps the current one"
    )

    def mac_bytes(self) -> bytes:
        return bytes.fromhex((self.mac or "00:00:00:00:00:00").replace(":", ""))


def backend_id(name: str) -> int:
    """A backend's portable 32-bit id (stored with each flow, used to map flows on import)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big")


def check_backends(backends: Sequence[Backend]) -> None:
    """Unique names and ids; ``ValueError`` otherwise."""
    seen: dict[int, str] = {}
    for b in backends:
        other = seen.get(backend_id(b.name))
        if other == b.name:
            raise ValueError(f"backend name {b.name!r} is used twice")
        if other is not None:
            raise ValueError(f"backends {other!r} and {b.name!r} hash to the same id; rename one")
        seen[backend_id(b.name)] = b.name


class LbConfig(ElementConfig):
    """VIPs, backends, Maglev table, forwarding mode and connection table of an ``lb``."""

    vip: Vip | None = Field(None, description="a single VIP (shorthand for vips: [..])")
    vips: list[Vip] = Field(default_factory=list, max_length=MAX_VIPS)
    backends: list[Backend] = Field(default_factory=list, max_length=MAX_BACKENDS)
    table_size: int = Field(65537, ge=3, le=MAX_TABLE_SIZE, description="prime")
    mode: Literal["l3", "dsr"] = "l3"
    snat: IPvAnyAddress | None = Field(None, description="source address toward backends (l3)")
    snat_ports: tuple[int, int] = Field((1024, 65535), description="SNAT source port range")
    seed: int = Field(0x4D676C76, ge=0, le=0xFFFFFFFF, description="flow hash seed")
    max_flows: int = Field(65536, ge=1, le=1 << 24, description="tracked flows at most")
    idle_timeout: float = Field(300.0, gt=0, description="seconds a flow lives after a packet")
    on_full: Literal["refuse", "evict"] = "refuse"

    def all_vips(self) -> list[Vip]:
        """``vip`` (if given) followed by ``vips``."""
        return ([self.vip] if self.vip is not None else []) + list(self.vips)

    @model_validator(mode="after")
    def _check(self) -> Self:
        vips = self.all_vips()
        if not vips:
            raise ValueError("an lb needs at least one VIP (vip or vips)")
        labels = [v.label() for v in vips]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"VIP listed twice: {', '.join(dup)}")
        check_backends(self.backends)
        if not is_prime(self.table_size):
            raise ValueError(
                f"table_size {self.table_size} is not prime (next prime: "
                f"{next_prime(self.table_size)})"
            )
        if self.table_size <= len(self.backends):
            raise ValueError("table_size must exceed the number of backends (aim for 100x)")
        lo, hi = self.snat_ports
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"snat_ports {lo}-{hi} is not a range within 1-65535")
        self._check_mode()
        return self

    def _check_mode(self) -> None:
        if self.mode == "dsr":
            if self.snat is not None:
                raise ValueError("snat needs mode l3 (dsr leaves the IP header alone)")
            missing = [b.name for b in self.backends if b.mac is None]
            if missing:
                raise ValueError(f"mode dsr needs a mac for every backend: {missing}")
            return
        versions = {v.address.version for v in self.all_vips()}
        versions |= {b.address.version for b in self.backends}
        if self.snat is not None:
            versions.add(self.snat.version)
        if len(versions) > 1:
            raise ValueError("mode l3 needs VIPs, backends and snat of one address family")
