"""Golden tests of the header parser: one packet per protocol case, every column asserted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw

from nfvkit.packet import flags as F
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import reason_by_code, reason_by_name
from nfvkit.packet.parse import MAX_IPV6_EXT, PARSE_DROP_REASONS, parse_batch

V4A, V4B = "198.18.0.1", "198.19.0.2"
V6A, V6B = "2001:db8::1", "2001:db8:ffff::2"
W4A = [0, 0, 0xFFFF, 0xC6120001]
W4B = [0, 0, 0xFFFF, 0xC6130002]
W6A = [0x20010DB8, 0, 0, 1]
W6B = [0x20010DB8, 0xFFFF0000, 0, 2]
ZERO = [0, 0, 0, 0]


def eth() -> Packet:
    """An Ethernet header with fixed addresses (so scapy does not resolve any)."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def parse(*packets: Packet | bytes) -> PacketBatch:
    batch = PacketBatch.from_packets([bytes(p) for p in packets])
    parse_batch(batch)
    return batch


def row(batch: PacketBatch, i: int = 0) -> dict[str, Any]:
    """Every column the parser writes, for packet ``i``."""
    return {
        "fate": int(batch.fate[i]),
        "l3_off": int(batch.l3_off[i]),
        "l4_off": int(batch.l4_off[i]),
        "l7_off": int(batch.l7_off[i]),
        "ip_len": int(batch.ip_len[i]),
        "ethertype": int(batch.ethertype[i]),
        "proto": int(batch.proto[i]),
        "flags": sorted(F.describe(int(batch.flags[i]))),
        "vlan": [int(v) for v in batch.vlan[i]],
        "src": [int(v) for v in batch.src[i]],
        "dst": [int(v) for v in batch.dst[i]],
        "sport": int(batch.sport[i]),
        "dport": int(batch.dport[i]),
    }


def expect(**kw: Any) -> dict[str, Any]:
    """An expected row: defaults for a good non-IP packet, overridden by ``kw``."""
    base: dict[str, Any] = {
        "fate": 0,
        "l3_off": -1,
        "l4_off": -1,
        "l7_off": -1,
        "ip_len": 0,
        "ethertype": 0,
        "proto": 0,
        "flags": [],
        "vlan": [0, 0],
        "src": ZERO,
        "dst": ZERO,
        "sport": 0,
        "dport": 0,
    }
    base.update(kw)
    base["flags"] = sorted(base["flags"])
    return base


def dropped(packet: Packet | bytes) -> str:
    """The name of the reason the parser dropped ``packet`` for (fails if it was not)."""
    batch = parse(packet)
    assert batch.fate[0] < 0, row(batch)
    assert batch.flags[0] & F.MALFORMED
    return reason_by_code(int(batch.fate[0])).name


# golden packets ---------------------------------------------------------------------------


def test_ipv4_tcp_every_column() -> None:
    pkt = eth() / IP(src=V4A, dst=V4B) / TCP(sport=1234, dport=80) / b"hello"
    assert row(parse(pkt)) == expect(
        l3_off=14, l4_off=34, l7_off=54, ip_len=45, ethertype=0x0800, proto=6,
        flags=["ipv4", "tcp", "l4"], src=W4A, dst=W4B, sport=1234, dport=80,
    )  # fmt: skip


def test_ethernet_padding_is_not_malformed() -> None:
    pkt = bytes(eth() / IP(src=V4A, dst=V4B) / UDP(sport=5, dport=6)) + bytes(18)
    assert len(pkt) == 60
    assert row(parse(pkt)) == expect(
        l3_off=14, l4_off=34, l7_off=42, ip_len=28, ethertype=0x0800, proto=17,
        flags=["ipv4", "udp", "l4"], src=W4A, dst=W4B, sport=5, dport=6,
    )  # fmt: skip


def test_tcp_options_move_l7() -> None:
    pkt = eth() / IP(src=V4A, dst=V4B) / TCP(sport=1, dport=2, options=[("MSS", 1460)])
    assert row(parse(pkt))["l7_off"] == 34 + 24


def test_dot1q_ipv4_udp() -> None:
    pkt = eth() / Dot1Q(vlan=100, prio=5) / IP(src=V4A, dst=V4B) / UDP(sport=53, dport=9)
    assert row(parse(pkt)) == expect(
        l3_off=18, l4_off=38, l7_off=46, ip_len=28, ethertype=0x0800, proto=17,
        flags=["vlan", "ipv4", "udp", "l4"], vlan=[(5 << 13) | 100, 0],
        src=W4A, dst=W4B, sport=53, dport=9,
    )  # fmt: skip


def test_qinq_ipv6_tcp() -> None:
    pkt = (
        eth() / Dot1AD(vlan=7) / Dot1Q(vlan=300)
        / IPv6(src=V6A, dst=V6B) / TCP(sport=443, dport=50000) / b"x"
    )  # fmt: skip
    assert row(parse(pkt)) == expect(
        l3_off=22, l4_off=62, l7_off=82, ip_len=61, ethertype=0x86DD, proto=6,
        flags=["vlan", "qinq", "ipv6", "tcp", "l4"], vlan=[7, 300],
        src=W6A, dst=W6B, sport=443, dport=50000,
    )  # fmt: skip


def test_third_vlan_tag_is_left_as_the_ethertype() -> None:
    pkt = eth() / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP() / UDP()
    assert row(parse(pkt)) == expect(ethertype=0x8100, flags=["vlan", "qinq"], vlan=[1, 2])


def test_arp() -> None:
    assert row(parse(eth() / ARP(psrc=V4A, pdst=V4B))) == expect(
        l3_off=14, ethertype=0x0806, flags=["arp"]
    )


def test_lldp_and_8023_frames_pass_as_non_ip() -> None:
    lldp = Ether(type=0x88CC) / Raw(bytes(30))
    llc = Ether(type=46) / Raw(bytes(46))
    batch = parse(lldp, llc)
    assert row(batch, 0) == expect(ethertype=0x88CC)
    assert row(batch, 1) == expect(ethertype=46)


def test_ipv4_options() -> None:
    pkt = eth() / IP(src=V4A, dst=V4B, options=b"\x01\x01\x01\x00") / UDP(sport=1, dport=2)
    assert row(parse(pkt)) == expect(
        l3_off=14, l4_off=38, l7_off=46, ip_len=32, ethertype=0x0800, proto=17,
        flags=["ipv4", "ip_options", "udp", "l4"], src=W4A, dst=W4B, sport=1, dport=2,
    )  # fmt: skip


def test_ipv4_first_fragment_parses_l4() -> None:
    pkt = eth() / IP(src=V4A, dst=V4B, flags="MF") / UDP(sport=7, dport=8, len=1000) / b"ab"
    assert row(parse(pkt)) == expect(
        l3_off=14, l4_off=34, l7_off=42, ip_len=30, ethertype=0x0800, proto=17,
        flags=["ipv4", "fragment", "first_fragment", "udp", "l4"],
        src=W4A, dst=W4B, sport=7, dport=8,
    )  # fmt: skip


def test_ipv4_later_fragment_has_no_l4() -> None:
    pkt = eth() / IP(src=V4A, dst=V4B, frag=185, proto=6) / Raw(b"x" * 16)
    assert row(parse(pkt)) == expect(
        l3_off=14, ip_len=36, ethertype=0x0800, proto=6,
        flags=["ipv4", "fragment"], src=W4A, dst=W4B,
    )  # fmt: skip


def test_unknown_l4_protocol_passes_without_l4() -> None:
    pkt = eth() / IP(src=V4A, dst=V4B, proto=47) / Raw(b"gre!")
    assert row(parse(pkt)) == expect(
        l3_off=14, ip_len=24, ethertype=0x0800, proto=47, flags=["ipv4"], src=W4A, dst=W4B
    )
    # ICMPv6 is not ICMP over IPv4
    pkt = eth() / IP(src=V4A, dst=V4B, proto=58) / Raw(bytes(8))
    assert row(parse(pkt))["l4_off"] == -1


@pytest.mark.parametrize(
    ("icmp", "flag_names", "ident", "l7"),
    [
        (ICMP(type=8, id=0x1234), ["echo"], 0x1234, 42),
        (ICMP(type=0, id=99), ["echo"], 99, 42),
        (ICMP(type=3, code=1), [], 0, 38),
    ],
)
def test_icmp(icmp: Packet, flag_names: list[str], ident: int, l7: int) -> None:
    pkt = eth() / IP(src=V4A, dst=V4B) / icmp
    assert row(parse(pkt)) == expect(
        l3_off=14, l4_off=34, l7_off=l7, ip_len=28, ethertype=0x0800, proto=1,
        flags=["ipv4", "icmp", "l4", *flag_names], src=W4A, dst=W4B, sport=ident, dport=ident,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("icmp", "flag_names", "ident", "l7"),
    [
        (ICMPv6EchoRequest(id=7), ["echo"], 7, 62),
        (ICMPv6EchoReply(id=65535), ["echo"], 65535, 62),
        (ICMPv6ND_NS(tgt=V6B), [], 0, 58),
    ],
)
def test_icmpv6(icmp: Packet, flag_names: list[str], ident: int, l7: int) -> None:
    pkt = eth() / IPv6(src=V6A, dst=V6B) / icmp
    res = row(parse(pkt))
    assert res == expect(
        l3_off=14, l4_off=54, l7_off=l7, ip_len=len(pkt) - 14, ethertype=0x86DD, proto=58,
        flags=["ipv6", "icmp", "l4", *flag_names], src=W6A, dst=W6B, sport=ident, dport=ident,
    )  # fmt: skip


def test_ipv6_extension_chain() -> None:
    pkt = (
        eth() / IPv6(src=V6A, dst=V6B) / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=[V6B]) / IPv6ExtHdrDestOpt() / UDP(sport=1, dport=2)
    )  # fmt: skip
    l4 = 14 + 40 + 8 + 24 + 8
    assert row(parse(pkt)) == expect(
        l3_off=14, l4_off=l4, l7_off=l4 + 8, ip_len=len(pkt) - 14, ethertype=0x86DD, proto=17,
        flags=["ipv6", "ipv6_ext", "udp", "l4"], src=W6A, dst=W6B, sport=1, dport=2,
    )  # fmt: skip


def test_ipv6_ah_is_skipped() -> None:
    pkt = (
        eth()
        / IPv6(src=V6A, dst=V6B)
        / AH(nh=6, payloadlen=4, icv=bytes(12))
        / TCP(sport=3, dport=4)
    )
    res = row(parse(pkt))
    assert (res["l4_off"], res["proto"], res["sport"], res["dport"]) == (54 + 24, 6, 3, 4)
    assert "ipv6_ext" in res["flags"]


def test_ipv6_fragments() -> None:
    first = eth() / IPv6() / IPv6ExtHdrFragment(offset=0, m=1) / TCP(sport=9, dport=10)
    later = eth() / IPv6() / IPv6ExtHdrFragment(offset=100, nh=6) / Raw(bytes(24))
    batch = parse(first, later)
    a, b = row(batch, 0), row(batch, 1)
    assert (a["l4_off"], a["sport"], a["dport"], a["proto"]) == (62, 9, 10, 6)
    assert a["flags"] == sorted(["ipv6", "ipv6_ext", "fragment", "first_fragment", "tcp", "l4"])
    assert (b["l4_off"], b["l7_off"], b["sport"], b["proto"], b["fate"]) == (-1, -1, 0, 6, 0)
    assert b["flags"] == sorted(["ipv6", "ipv6_ext", "fragment"])


def test_esp_and_no_next_header_are_l4_without_ports() -> None:
    esp = eth() / IPv6(nh=50) / Raw(bytes(16))
    none = eth() / IPv6(nh=59)
    esp4 = eth() / IP(proto=50) / Raw(bytes(16))
    batch = parse(esp, none, esp4)
    for i, (proto, l4) in enumerate([(50, 54), (59, 54), (50, 34)]):
        res = row(batch, i)
        assert (res["fate"], res["proto"], res["l4_off"], res["l7_off"]) == (0, proto, l4, -1)
        assert "l4" not in res["flags"]


def test_max_extension_headers_pass() -> None:
    chain: Packet = IPv6()
    for _ in range(MAX_IPV6_EXT):
        chain = chain / IPv6ExtHdrDestOpt()
    batch = parse(eth() / chain / UDP(sport=1, dport=2))
    assert batch.fate[0] == 0
    assert batch.sport[0] == 1


# malformed packets --------------------------------------------------------------------------


IP4 = eth() / IP(src=V4A, dst=V4B)
IP6 = eth() / IPv6(src=V6A, dst=V6B)


def _too_many_ext() -> Packet:
    chain: Packet = IPv6()
    for _ in range(MAX_IPV6_EXT + 1):
        chain = chain / IPv6ExtHdrDestOpt()
    return eth() / chain / UDP()


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (b"", "eth_empty"),
        (bytes(13), "eth_truncated"),
        (bytes(eth() / Dot1Q() / IP())[:16], "vlan_truncated"),
        (bytes(eth() / Dot1AD() / Dot1Q() / IP())[:20], "vlan_truncated"),
        (bytes(eth() / ARP())[:41], "arp_truncated"),
        (bytes(IP4 / UDP())[:33], "ipv4_truncated"),
        (bytes(IP4 / UDP()).replace(b"\x45", b"\x55", 1), "ipv4_bad_version"),
        (Ether(type=0x0800) / IPv6(), "ipv4_bad_version"),
        (eth() / IP(ihl=4) / UDP(), "ipv4_bad_ihl"),
        (eth() / IP(ihl=0) / UDP(), "ipv4_bad_ihl"),
        (eth() / IP(len=19) / UDP(), "ipv4_bad_total_length"),
        (eth() / IP(len=29) / UDP(), "ipv4_bad_total_length"),
        (eth() / IP(ihl=15) / UDP(), "ipv4_bad_total_length"),
        (bytes(IP6 / UDP())[:53], "ipv6_truncated"),
        (Ether(type=0x86DD) / IP() / Raw(bytes(40)), "ipv6_bad_version"),
        (eth() / IPv6(plen=9) / UDP(), "ipv6_bad_payload_length"),
        (eth() / IPv6(plen=4, nh=0) / Raw(bytes(8)), "ipv6_ext_truncated"),
        (eth() / IPv6() / IPv6ExtHdrDestOpt(len=3) / UDP(), "ipv6_ext_truncated"),
        (
            eth() / IPv6() / IPv6ExtHdrRouting() / IPv6ExtHdrHopByHop() / UDP(),
            "ipv6_ext_bad_order",
        ),
        (_too_many_ext(), "ipv6_ext_chain_too_long"),
        (eth() / IP() / TCP() / b"payload", None),
        (eth() / IP(proto=6) / Raw(bytes(19)), "tcp_truncated"),
        (eth() / IPv6(nh=6) / Raw(bytes(19)), "tcp_truncated"),
        (eth() / IP() / TCP(dataofs=4), "tcp_bad_data_offset"),
        (eth() / IP() / TCP(dataofs=6), "tcp_bad_data_offset"),
        (eth() / IP(flags="MF", proto=6) / Raw(bytes(12)), "tcp_truncated"),
        (eth() / IP(proto=17) / Raw(bytes(7)), "udp_truncated"),
        (eth() / IP() / UDP(len=7), "udp_bad_length"),
        (eth() / IP() / UDP(len=9), "udp_bad_length"),
        (eth() / IPv6() / UDP(len=20) / b"ab", "udp_bad_length"),
        (eth() / IP(proto=1) / Raw(b"\x03\x00\x00"), "icmp_truncated"),
        (eth() / IP(proto=1) / Raw(b"\x08\x00\x00\x00\x00\x01"), "icmp_truncated"),
        (eth() / IPv6(nh=58) / Raw(b"\x80\x00\x00\x00\x00"), "icmp_truncated"),
    ],
)
def test_malformed_packets_get_their_named_reason(
    packet: Packet | bytes, reason: str | None
) -> None:
    if reason is None:
        assert parse(packet).fate[0] == 0
    else:
        assert dropped(packet) == reason


def test_packet_outside_the_buffer_is_dropped() -> None:
    batch = PacketBatch.from_packets([bytes(eth() / IP() / UDP())] * 2)
    batch.length[1] = len(batch.data)
    parse_batch(batch)
    assert batch.fate[0] == 0
    assert reason_by_code(int(batch.fate[1])).name == "packet_out_of_buffer"


def test_reasons_are_declared_once_and_unique() -> None:
    names = [r.name for r in PARSE_DROP_REASONS]
    assert len(set(names)) == len(names)
    for r in PARSE_DROP_REASONS:
        assert reason_by_name(r.name) is r
        assert r.doc


def test_stale_columns_are_overwritten() -> None:
    packets: list[Packet | bytes] = [
        eth() / IP(src=V4A, dst=V4B) / TCP(sport=1, dport=2),
        Ether(type=0x88CC) / Raw(bytes(40)),
        b"",
        eth() / IPv6() / IPv6ExtHdrFragment(offset=9) / Raw(bytes(8)),
    ]
    fresh = parse(*packets)
    dirty = PacketBatch.from_packets([bytes(p) for p in packets])
    for name in ("fate", "l3_off", "l4_off", "l7_off", "ip_len", "ethertype", "proto", "flags",
                 "vlan", "src", "dst", "sport", "dport"):  # fmt: skip
        col = getattr(dirty, name)
        col[...] = np.iinfo(col.dtype).max
    parse_batch(dirty)
    for i in range(len(packets)):
        assert row(dirty, i) == row(fresh, i)


def test_empty_batch() -> None:
    batch = PacketBatch.empty()
    parse_batch(batch)
    assert len(batch) == 0
