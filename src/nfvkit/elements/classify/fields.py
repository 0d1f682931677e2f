"""The match fields of a classification rule: their ids, value domains and value parsers.

Every field a rule can match on is one of :data:`FIELDS`. Address fields (``src``, ``dst``) hold
an IPv4 or IPv6 :class:`Prefix`; ``tcp_flags`` holds a :class:`FlagMatch` (mask/value); every
other field holds a :class:`Range` of integers within its domain (a single value is a range of
one). Parsers raise ``ValueError`` with a message meant for a person; pydantic adds the location.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

# Field ids: the kernels receive these as array positions, so the numbering is part of the
# compiled table layout (never of a cached kernel's constants).
SRC, DST = 0, 1
SPORT, DPORT, PROTO, IP_VERSION, ETHERTYPE, VLAN, INNER_VLAN = 2, 3, 4, 5, 6, 7, 8
IN_PORT, LENGTH, TCP_FLAGS, ICMP_TYPE, ICMP_CODE, FRAGMENT, DSCP = 9, 10, 11, 12, 13, 14, 15
NFIELDS = 16

FIELDS: tuple[str, ...] = (
    "src",
    "dst",
    "sport",
    "dport",
    "proto",
    "ip_version",
    "ethertype",
    "vlan",
    "inner_vlan",
    "in_port",
    "length",
    "tcp_flags",
    "icmp_type",
    "icmp_code",
    "fragment",
    "dscp",
)
FIELD_ID: dict[str, int] = {name: i for i, name in enumerate(FIELDS)}

# Size of the value domain of each directly indexed field (address fields: 0, not indexed).
DOMAIN: tuple[int, ...] = (
    0,
    0,
    65536,
    65536,
    256,
    16,
    65536,
    4096,
    4096,
    65536,
    65536,
    256,
    256,
    256,
    2,
    64,
)

PROTOCOLS: dict[str, int] = {
    "icmp": 1,
    "igmp": 2,
    "ipip": 4,
    "ipencap": 4,
    "tcp": 6,
    "udp": 17,
    "ipv6": 41,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "ospf": 89,
    "pim": 103,
    "vrrp": 112,
    "sctp": 132,
    "udplite": 136,
}
PORT_PROTOCOLS = frozenset({6, 17, 33, 132, 136})  # tcp, udp, dccp, sctp, udplite
ICMP_PROTOCOLS = frozenset({1, 58})
ETHERTYPES: dict[str, int] = {"ipv4": 0x0800, "arp": 0x0806, "ipv6": 0x86DD, "mpls": 0x8847}
TCP_FLAG_BITS: dict[str, int] = {
    "fin": 0x01,
    "syn": 0x02,
    "rst": 0x04,
    "psh": 0x08,
    "ack": 0x10,
    "urg": 0x20,
    "ece": 0x40,
    "cwr": 0x80,
}
DSCP_NAMES: dict[str, int] = {
    "ef": 46,
    **{f"cs{n}": 8 * n for n in range(8)},
    **{f"af{c}{d}": 8 * c + 2 * d for c in range(1, 5) for d in range(1, 4)},
}


@dataclass(frozen=True)
class Range:
    """An inclusive range of integer values ``lo..hi``."""

    lo: int
    hi: int

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"

    def contains(self, value: int) -> bool:
        return self.lo <= value <= self.hi


@dataclass(frozen=True)
class Prefix:
    """An IPv4 or IPv6 CIDR prefix as the inclusive range of addresses it covers."""

    version: int
    lo: int
    hi: int
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class FlagMatch:
    """TCP flags match: ``flags & mask == value``."""

    mask: int
    value: int

    def __str__(self) -> str:
        return f"0x{self.mask:02x}/0x{self.value:02x}"

    def matches(self, flags: int) -> bool:
        return flags & self.mask == self.value


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None


def parse_range(raw: Any, hi_max: int, what: str, names: dict[str, int] | None = None) -> Range:
    """Parse ``N``, ``"N"``, ``"lo-hi"`` or a name into a :class:`Range` within 0..hi_max."""
    if isinstance(raw, Range):
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"{what} must be a number, a 'lo-hi' range or a name, not {raw!r}")
    if isinstance(raw, int):
        lo = hi = raw
    else:
        text = raw.strip().lower()
        if names is not None and text in names:
            lo = hi = names[text]
        elif "-" in text.lstrip("-"):
            left, _, right = text.partition("-")
            lo, hi = _int(left.strip()), _int(right.strip())
        elif text and (text[0].isdigit() or text[0] == "-"):
            lo = hi = _int(text)
        else:
            known = f" (known: {', '.join(sorted(names))})" if names else ""
            raise ValueError(f"unknown {what} name {raw!r}{known}")
    for v in (lo, hi):
        if not 0 <= v <= hi_max:
            raise ValueError(f"{what} {v} out of range 0..{hi_max}")
    if lo > hi:
        raise ValueError(f"{what} range {raw!r}: lo {lo} > hi {hi}")
    return Range(lo, hi)


def parse_prefix(raw: Any) -> Prefix:
    """Parse an IPv4/IPv6 address or CIDR prefix (host bits must be zero)."""
    if isinstance(raw, Prefix):
        return raw
    if not isinstance(raw, str):
        raise ValueError(f"address prefix must be a string like '10.0.0.0/8', not {raw!r}")
    try:
        net = ipaddress.ip_network(raw.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"bad prefix {raw!r}: {exc}") from None
    lo = int(net.network_address)
    return Prefix(net.version, lo, lo + net.num_addresses - 1, str(net))


def parse_tcp_flags(raw: Any) -> FlagMatch:
    """Parse ``"syn,!ack"`` (named flags, ``!`` = must be clear) or ``"MASK/VALUE"``."""
    if isinstance(raw, FlagMatch):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"tcp_flags must be a string like 'syn,!ack' or '0x12/0x02', not {raw!r}")
    text = raw.strip().lower()
    if "/" in text:
        left, _, right = text.partition("/")
        mask, value = _int(left.strip()), _int(right.strip())
        if not (0 <= mask <= 0xFF and 0 <= value <= 0xFF):
            raise ValueError(f"tcp_flags {raw!r}: mask and value must be within 0..0xff")
        if value & ~mask:
            raise ValueError(f"tcp_flags {raw!r}: value has bits outside the mask")
        return FlagMatch(mask, value)
    mask = value = 0
    for item in text.replace(" ", "").split(","):
        name = item.lstrip("!")
        bit = TCP_FLAG_BITS.get(name)
        if bit is None:
            raise ValueError(f"unknown TCP flag {name!r} (known: {', '.join(TCP_FLAG_BITS)})")
        if mask & bit:
            raise ValueError(f"TCP flag {name!r} given twice")
        mask |= bit
        if not item.startswith("!"):
            value |= bit
    return FlagMatch(mask, value)


def flag_ranges(match: FlagMatch) -> tuple[Range, ...]:
    """The 8-bit flag values that ``match`` accepts, as disjoint ranges."""
    out: list[Range] = []
    for v in range(256):
        if match.matches(v):
            if out and out[-1].hi == v - 1:
                out[-1] = Range(out[-1].lo, v)
            else:
                out.append(Range(v, v))
    return tuple(out)
