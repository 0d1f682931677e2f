"""The compiled classifier against a naive first-match loop, on random rules and packets."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from nfvkit.elements.classify import Match, compile_rules, lookup
from nfvkit.elements.classify.fields import FIELDS, FlagMatch, Prefix, Range
from nfvkit.packet import flags as FL
from nfvkit.packet.batch import PacketBatch

# ---------------------------------------------------------------------------------------------
# the packets, described by what they carry (None = the packet lacks the field)


@dataclass
class Pkt:
    ip: int | None  # 4, 6 or None (ARP)
    src: int
    dst: int
    proto: int
    ports: bool  # TCP/UDP header present (not a non-first fragment)
    sport: int
    dport: int
    tcp_flags: int
    icmp_type: int
    icmp_code: int
    fragment: bool
    nonfirst: bool
    dscp: int
    vlans: tuple[int, ...]
    in_port: int
    length: int

    def value(self, name: str) -> Any:
        """The reference view of field ``name`` (None when the packet lacks it)."""
        ip = self.ip is not None
        l4 = ip and not self.nonfirst
        table: dict[str, Any] = {
            "ip_version": self.ip,
            "proto": self.proto if ip else None,
            "sport": self.sport if l4 and self.proto in (6, 17) else None,
            "dport": self.dport if l4 and self.proto in (6, 17) else None,
            "tcp_flags": self.tcp_flags if l4 and self.proto == 6 else None,
            "icmp_type": self.icmp_type if l4 and self.proto in (1, 58) else None,
            "icmp_code": self.icmp_code if l4 and self.proto in (1, 58) else None,
            "fragment": self.fragment if ip else None,
            "dscp": self.dscp if ip else None,
            "ethertype": {4: 0x0800, 6: 0x86DD, None: 0x0806}[self.ip],
            "vlan": self.vlans[0] if self.vlans else None,
            "inner_vlan": self.vlans[1] if len(self.vlans) > 1 else None,
            "in_port": self.in_port,
            "length": self.length,
        }
        return table[name]


def ref_match(rule: Match, p: Pkt) -> bool:
    for name in Match.model_fields:
        want = getattr(rule, name)
        if want is None:
            continue
        if name in ("src", "dst"):
            addr = p.src if name == "src" else p.dst
            if p.ip != want.version or not want.lo <= addr <= want.hi:
                return False
            continue
        have = p.value(name)
        if have is None:
            return False
        if isinstance(want, Range):
            ok = want.contains(have)
        elif isinstance(want, FlagMatch):
            ok = want.matches(have)
        else:
            ok = want == have
        if not ok:
            return False
    return True


def ref_first(rules: list[Match], p: Pkt) -> int:
    for i, r in enumerate(rules):
        if ref_match(r, p):
            return i
    return -1


def to_batch(pkts: list[Pkt]) -> PacketBatch:
    """Fill batch columns (and the header bytes kernels read) for ``pkts``."""
    n = len(pkts)
    b = PacketBatch(
        np.zeros(512 * max(n, 1), np.uint8),
        np.arange(n, dtype=np.int64) * 512,
        np.array([p.length for p in pkts], dtype=np.int32),
    )
    for i, p in enumerate(pkts):
        _fill(b, i, p)
    return b


def _words(addr: int, ip: int) -> list[int]:
    if ip == 4:
        return [0, 0, 0xFFFF, addr]
    return [(addr >> s) & 0xFFFFFFFF for s in (96, 64, 32, 0)]


def _fill(b: PacketBatch, i: int, p: Pkt) -> None:
    base = int(b.offset[i])
    fl = 0
    if p.vlans:
        fl |= FL.VLAN
        b.vlan[i, 0] = 0x2000 | p.vlans[0]  # PCP bits must be ignored
    if len(p.vlans) > 1:
        fl |= FL.QINQ
        b.vlan[i, 1] = p.vlans[1]
    l3 = 14 + 4 * len(p.vlans)
    b.port[i] = p.in_port
    b.ethertype[i] = p.value("ethertype")
    if p.ip is None:
        b.flags[i] = fl | FL.ARP
        b.l3_off[i] = l3
        return
    fl |= FL.IPV4 if p.ip == 4 else FL.IPV6
    b.l3_off[i] = l3
    b.proto[i] = p.proto
    b.src[i] = _words(p.src, p.ip)
    b.dst[i] = _words(p.dst, p.ip)
    if p.ip == 4:
        b.data[base + l3] = 0x45
        b.data[base + l3 + 1] = (p.dscp << 2) | 1
    else:
        b.data[base + l3] = 0x60 | (p.dscp >> 2)
        b.data[base + l3 + 1] = ((p.dscp & 3) << 6) | 0x25
    if p.fragment:
        fl |= FL.FRAGMENT | (0 if p.nonfirst else FL.FIRST_FRAGMENT)
    fl |= {6: FL.TCP, 17: FL.UDP, 1: FL.ICMP, 58: FL.ICMP}.get(p.proto, 0)
    if not p.nonfirst:
        l4 = l3 + (20 if p.ip == 4 else 40)
        b.l4_off[i] = l4
        if p.proto in (6, 17):
            fl |= FL.L4
            b.sport[i], b.dport[i] = p.sport, p.dport
        elif p.proto in (1, 58):
            fl |= FL.L4 | FL.ECHO  # an echo: sport = dport = identifier, not port values
            b.sport[i] = b.dport[i] = p.sport
        b.data[base + l4 + 13] = p.tcp_flags if p.proto == 6 else 0
        if p.proto in (1, 58):
            b.data[base + l4] = p.icmp_type
            b.data[base + l4 + 1] = p.icmp_code
    b.flags[i] = fl


# ---------------------------------------------------------------------------------------------
# strategies: values drawn from small pools so that rules and packets meet often

V4_BASE = int(ipaddress.ip_address("198.18.0.0"))
V6_BASE = int(ipaddress.ip_address("2001:db8::"))

v4_addr = st.integers(0, 1023).map(lambda x: V4_BASE + x) | st.integers(0, 2**32 - 1)
v6_addr = st.integers(0, 1023).map(lambda x: V6_BASE + (x << 64) + x) | st.integers(0, 2**128 - 1)
port = st.sampled_from([0, 1, 53, 79, 80, 81, 443, 1023, 1024, 8080, 65535]) | st.integers(0, 65535)
small = st.integers(0, 16)


@st.composite
def packets(draw: st.DrawFn) -> Pkt:
    ip = draw(st.sampled_from([4, 4, 4, 6, 6, None]))
    addr = v4_addr if ip == 4 else v6_addr
    proto = draw(st.sampled_from([6, 17, 1 if ip == 4 else 58, 47]))
    frag = draw(st.sampled_from([False, False, False, True]))
    return Pkt(
        ip=ip,
        src=draw(addr) if ip else 0,
        dst=draw(addr) if ip else 0,
        proto=proto,
        ports=proto in (6, 17),
        sport=draw(port),
        dport=draw(port),
        tcp_flags=draw(st.integers(0, 255)),
        icmp_type=draw(small),
        icmp_code=draw(st.integers(0, 3)),
        fragment=frag,
        nonfirst=frag and draw(st.booleans()),
        dscp=draw(st.integers(0, 63)),
        vlans=tuple(draw(st.lists(st.integers(0, 8), max_size=2))),
        in_port=draw(st.integers(0, 3)),
        length=draw(st.integers(100, 300)),
    )


def _prefix(draw: st.DrawFn, version: int) -> str:
    if version == 4:
        plen = draw(st.sampled_from([0, 8, 15, 16, 22, 24, 30, 32]) | st.integers(0, 32))
        net = ipaddress.ip_network((draw(v4_addr), plen), strict=False)
    else:
        plen = draw(st.sampled_from([0, 32, 48, 64, 120, 128]) | st.integers(0, 128))
        net = ipaddress.ip_network((draw(v6_addr), plen), strict=False)
    return str(net)


def _range(draw: st.DrawFn, values: st.SearchStrategy[int]) -> int | str:
    a, b = sorted((draw(values), draw(values)))
    return a if draw(st.booleans()) else f"{a}-{b}"


FLAG_SPECS = ["syn", "syn,!ack", "ack", "fin", "rst", "!syn", "0x12/0x12", "0x3f/0x10"]


@st.composite
def rules(draw: st.DrawFn) -> Match:
    raw: dict[str, Any] = {}
    fields = draw(
        st.sets(
            st.sampled_from(list(FIELDS)),
            max_size=4,
        )
    )
    version = draw(st.sampled_from([4, 6]))
    for name in fields:
        if name in ("src", "dst"):
            raw[name] = _prefix(draw, version)
        elif name in ("sport", "dport"):
            raw[name] = _range(draw, port)
        elif name == "proto":
            raw[name] = draw(st.sampled_from(["tcp", "udp", "icmp", "icmpv6", 47, "6-17"]))
        elif name == "ip_version":
            raw[name] = version
        elif name == "ethertype":
            raw[name] = draw(st.sampled_from(["ipv4", "ipv6", "arp", "0x0800-0x86dd"]))
        elif name in ("vlan", "inner_vlan", "icmp_type", "icmp_code"):
            raw[name] = _range(draw, small)
        elif name == "in_port":
            raw[name] = _range(draw, st.integers(0, 3))
        elif name == "length":
            raw[name] = _range(draw, st.integers(90, 310))
        elif name == "tcp_flags":
            raw[name] = draw(st.sampled_from(FLAG_SPECS))
        elif name == "fragment":
            raw[name] = draw(st.booleans())
        else:
            raw[name] = _range(draw, st.integers(0, 63))
    try:
        return Match.model_validate(raw)
    except ValidationError:
        return Match()  # an inconsistent combination: use a match-all rule instead


# ---------------------------------------------------------------------------------------------


@given(st.lists(rules(), max_size=40), st.lists(packets(), min_size=1, max_size=60))
def test_compiled_matches_reference(rule_list: list[Match], pkts: list[Pkt]) -> None:
    compiled = compile_rules(rule_list)
    got = lookup(compiled.tables, to_batch(pkts)).tolist()
    want = [ref_first(rule_list, p) for p in pkts]
    assert got == want


@settings(max_examples=60)
@given(st.lists(rules(), min_size=60, max_size=200), st.lists(packets(), min_size=1, max_size=40))
def test_many_rules_cross_word_boundaries(rule_list: list[Match], pkts: list[Pkt]) -> None:
    compiled = compile_rules(rule_list)
    got = lookup(compiled.tables, to_batch(pkts)).tolist()
    assert got == [ref_first(rule_list, p) for p in pkts]


def test_empty_rule_set_matches_nothing() -> None:
    pkts = [Pkt(4, 1, 2, 6, True, 1, 80, 2, 0, 0, False, False, 0, (), 0, 100)]
    assert lookup(compile_rules([]).tables, to_batch(pkts)).tolist() == [-1]


def test_match_all_rule_wins_for_every_packet_type() -> None:
    pkts = [
        Pkt(4, 1, 2, 6, True, 1, 80, 2, 0, 0, False, False, 0, (), 0, 100),
        Pkt(6, 1, 2, 58, False, 0, 0, 0, 128, 0, False, False, 0, (5,), 1, 120),
        Pkt(None, 0, 0, 0, False, 0, 0, 0, 0, 0, False, False, 0, (), 2, 100),
    ]
    compiled = compile_rules([Match(), Match(proto="tcp")])
    assert lookup(compiled.tables, to_batch(pkts)).tolist() == [0, 0, 0]


def test_rule_above_64_and_4096_positions() -> None:
    """The first match is found past one word and past one aggregate word."""
    filler = [Match(dport=i) for i in range(1, 4200)]
    target = Match(dport=9999)
    compiled = compile_rules([*filler, target, Match()])
    p = Pkt(4, 1, 2, 17, True, 5, 9999, 0, 0, 0, False, False, 0, (), 0, 100)
    q = Pkt(4, 1, 2, 17, True, 5, 4150, 0, 0, 0, False, False, 0, (), 0, 100)
    r = Pkt(4, 1, 2, 17, True, 5, 30000, 0, 0, 0, False, False, 0, (), 0, 100)
    assert lookup(compiled.tables, to_batch([p, q, r])).tolist() == [4199, 4149, 4200]


def test_ipv4_prefix_never_matches_ipv6_packet() -> None:
    v4 = Match(src="0.0.0.0/0")
    p6 = Pkt(6, 0xFFFF_0000_0001, 2, 17, True, 1, 2, 0, 0, 0, False, False, 0, (), 0, 100)
    p4 = Pkt(4, 1, 2, 17, True, 1, 2, 0, 0, 0, False, False, 0, (), 0, 100)
    assert lookup(compile_rules([v4]).tables, to_batch([p6, p4])).tolist() == [-1, 0]


def test_compile_figures_are_reported() -> None:
    rng = np.random.default_rng(1)
    rule_list = [
        Match(
            src=f"{ipaddress.ip_address(int(rng.integers(0, 2**32)) & ~0xFF)}/24",
            dport=int(rng.integers(1, 65535)),
            proto="tcp",
        )
        for _ in range(300)
    ]
    compiled = compile_rules(rule_list)
    assert compiled.nrules == 300
    assert compiled.nbytes > 0
    assert set(compiled.classes) == {"src", "dport", "proto"}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"src": "10.0.0.1/8"}, "src"),
        ({"dst": "10.0.0.0/33"}, "dst"),
        ({"dport": "2000-1000"}, "dport"),
        ({"sport": 70000}, "sport"),
        ({"proto": "tcpp"}, "proto"),
        ({"vlan": 4096}, "vlan"),
        ({"tcp_flags": "syn,foo"}, "tcp_flags"),
        ({"tcp_flags": "0x02/0x12"}, "tcp_flags"),
        ({"dscp": "ef2"}, "dscp"),
        ({"ip_version": 5}, "ip_version"),
        ({"fragment": "maybe"}, "fragment"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_field_is_named(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Match.model_validate(raw)
    assert info.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"src": "10.0.0.0/8", "dst": "2001:db8::/32"}, "mix IPv4 and IPv6"),
        ({"src": "10.0.0.0/8", "ip_version": 6}, "ip_version 6"),
        ({"proto": "icmp", "dport": 80}, "sport/dport"),
        ({"proto": "udp", "tcp_flags": "syn"}, "tcp_flags"),
        ({"proto": "tcp", "icmp_type": 8}, "icmp_type"),
    ],
)
def test_inconsistent_rule_is_explained(raw: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        Match.model_validate(raw)


def test_values_round_trip_through_json() -> None:
    m = Match.model_validate(
        {"src": "198.18.0.0/15", "dport": "1000-2000", "proto": "tcp", "tcp_flags": "syn,!ack"}
    )
    dumped = m.model_dump(mode="json", exclude_none=True)
    assert dumped["src"] == "198.18.0.0/15"
    assert dumped["dport"] == "1000-2000"
    assert dumped["proto"] == 6
    assert Match.model_validate(dumped) == m
    assert isinstance(m.src, Prefix)
    assert Match.model_validate({"src": "any", "dport": "*"}) == Match()
