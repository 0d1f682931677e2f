"""The rule model shared by the ``classifier`` and ``acl`` elements.

A :class:`Match` constrains any subset of the fields of :mod:`.fields`; a field left out (or
given as ``any``) matches every packet. A packet that lacks a constrained field (a port rule
against an ICMP packet, an IPv4 prefix against an IPv6 packet, a VLAN rule against an untagged
frame) does not match. Rules are ordered and the first match wins.

Field values, as written in YAML:

=========== ====================================================================
src, dst    IPv4 or IPv6 address or CIDR prefix (``198.18.0.0/15``, ``2001:db8::/32``);
            one rule may not mix families
sport,dport ``80`` or ``"1024-65535"``
proto       number, ``"6-17"`` range or name (tcp, udp, icmp, icmpv6, sctp, gre, esp...)
ip_version  4 or 6
ethertype   number (``0x0806``) or name (ipv4, ipv6, arp, mpls)
vlan        outer VLAN id (0..4095) or range; ``inner_vlan`` the inner (QinQ) one
in_port     input port number or range
length      frame length in bytes or range (``"64-128"``)
tcp_flags   ``"syn,!ack"`` (listed flags set, ``!`` flags clear) or ``"MASK/VALUE"``
icmp_type   ICMP / ICMPv6 type or range; ``icmp_code`` the code
fragment    true: any IP fragment; false: unfragmented packets
dscp        0..63, range or name (ef, cs0..cs7, af11..af43)
=========== ====================================================================
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, model_validator

from nfvkit.elements.classify import fields as F
from nfvkit.elements.classify.fields import FlagMatch, Prefix, Range

ANY_WORDS = frozenset({"any", "*"})


def _dump_range(r: Range) -> int | str:
    return r.lo if r.lo == r.hi else str(r)


def _ranged(hi: int, what: str, names: dict[str, int] | None = None) -> PlainValidator:
    return PlainValidator(partial(F.parse_range, hi_max=hi, what=what, names=names))


def _ip_version(raw: Any) -> int:
    if raw in (4, 6) and not isinstance(raw, bool):
        return int(raw)
    if isinstance(raw, str) and raw.strip().lower().lstrip("ipv") in ("4", "6"):
        return int(raw.strip().lower().lstrip("ipv"))
    raise ValueError(f"ip_version must be 4 or 6, not {raw!r}")


def _fragment(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "yes", "1", "false", "no", "0"):
        return raw.strip().lower() in ("true", "yes", "1")
    raise ValueError(f"fragment must be true or false, not {raw!r}")


PrefixT = Annotated[Prefix, PlainValidator(F.parse_prefix), PlainSerializer(str)]
FlagsT = Annotated[FlagMatch, PlainValidator(F.parse_tcp_flags), PlainSerializer(str)]
_DumpRange = PlainSerializer(_dump_range)
PortT = Annotated[Range, _ranged(65535, "port"), _DumpRange]
ProtoT = Annotated[Range, _ranged(255, "protocol", F.PROTOCOLS), _DumpRange]
EthertypeT = Annotated[Range, _ranged(0xFFFF, "ethertype", F.ETHERTYPES), _DumpRange]
VlanT = Annotated[Range, _ranged(4095, "VLAN id"), _DumpRange]
U16T = Annotated[Range, _ranged(65535, "value"), _DumpRange]
U8T = Annotated[Range, _ranged(255, "value"), _DumpRange]
DscpT = Annotated[Range, _ranged(63, "dscp", F.DSCP_NAMES), _DumpRange]
IpVersionT = Annotated[int, PlainValidator(_ip_version)]
FragmentT = Annotated[bool, PlainValidator(_fragment)]


def _overlaps(r: Range, values: frozenset[int]) -> bool:
    return any(r.contains(v) for v in values)


class Match(BaseModel):
    """What a rule matches: every given field must match (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    src: PrefixT | None = None
    dst: PrefixT | None = None
    sport: PortT | None = None
    dport: PortT | None = None
    proto: ProtoT | None = None
    ip_version: IpVersionT | None = None
    ethertype: EthertypeT | None = None
    vlan: VlanT | None = None
    inner_vlan: VlanT | None = None
    in_port: U16T | None = None
    length: U16T | None = None
    tcp_flags: FlagsT | None = None
    icmp_type: U8T | None = None
    icmp_code: U8T | None = None
    fragment: FragmentT | None = None
    dscp: DscpT | None = None

    @model_validator(mode="before")
    @classmethod
    def _drop_any(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                k: v
                for k, v in data.items()
                if not (isinstance(v, str) and v.strip().lower() in ANY_WORDS)
            }
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        versions = {p.version for p in (self.src, self.dst) if p is not None}
        if len(versions) > 1:
            raise ValueError(f"src {self.src} and dst {self.dst} mix IPv4 and IPv6 prefixes")
        if versions and self.ip_version is not None and self.ip_version not in versions:
            raise ValueError(f"ip_version {self.ip_version} contradicts the src/dst prefix family")
        self._check_proto()
        return self

    def _check_proto(self) -> None:
        proto = self.proto
        if proto is None:
            return
        if (self.sport or self.dport) and not _overlaps(proto, F.PORT_PROTOCOLS):
            raise ValueError(f"sport/dport need a protocol with ports, but proto is {proto}")
        if self.tcp_flags is not None and not proto.contains(6):
            raise ValueError(f"tcp_flags needs proto tcp, but proto is {proto}")
        icmp = self.icmp_type or self.icmp_code
        if icmp is not None and not _overlaps(proto, F.ICMP_PROTOCOLS):
            raise ValueError(f"icmp_type/icmp_code need proto icmp or icmpv6, not {proto}")

    def constraints(self) -> dict[int, Prefix | tuple[Range, ...]]:
        """The constrained fields, by field id: a prefix, or the disjoint value ranges."""
        out: dict[int, Prefix | tuple[Range, ...]] = {}
        for fid, name in enumerate(F.FIELDS):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, Prefix):
                out[fid] = value
            elif isinstance(value, FlagMatch):
                out[fid] = F.flag_ranges(value)
            elif isinstance(value, bool):
                out[fid] = (Range(int(value), int(value)),)
            elif isinstance(value, int):
                out[fid] = (Range(value, value),)
            else:
                out[fid] = (value,)
        return out

    def describe(self) -> str:
        """A short human-readable form, e.g. ``proto=6 dst=10.0.0.0/8 dport=80``."""
        dumped = self.model_dump(mode="json", exclude_none=True, exclude={"action"})
        return " ".join(f"{k}={v}" for k, v in dumped.items()) or "any"


class AclRule(Match):
    """An ACL rule: an action and the fields it matches on, side by side."""

    action: Literal["allow", "deny"]

    def describe(self) -> str:
        """The action and the match, e.g. ``allow proto=6 dport=80``."""
        return f"{self.action} {super().describe()}"

    def match(self) -> Match:
        """The match part of the rule, without the action."""
        return Match.model_validate(self.model_dump(exclude={"action"}, exclude_none=True))


class ClassifierRule(BaseModel):
    """A classifier rule: packets that ``match`` leave on output ``port``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    match: Match = Match()
    port: str
