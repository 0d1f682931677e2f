"""Golden packet tests of the ``nat`` element: translation both ways with exact bytes and
checksums, mapping and filtering behaviour, TCP life cycle, timeouts, static entries,
hairpinning, odd packets, handlers and state export/import."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from nfvkit.elements.nat import Nat
from nfvkit.elements.natlib.alloc import PortPools, alloc_port, release_port
from nfvkit.elements.registry import element_class
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.checksum import verify_checksums
from nfvkit.packet.parse import parse_batch
from nfvkit.testing import run_element
from nfvkit.vnf.state import StateSnapshot

S = 1_000_000_000
IN_A, IN_B = "198.18.0.5", "198.18.0.6"
EXT = "198.19.0.1"
R1, R2 = "198.19.100.1", "198.19.100.2"
BASE: dict[str, Any] = {"inside": ["198.18.0.0/16"], "external": [EXT], "max_mappings": 4096}


def nat(**config: Any) -> Nat:
    el = Nat.configure("nat0", {**BASE, **config})
    assert isinstance(el, Nat)
    el.initialize()
    return el


def eth(l3: Packet) -> Packet:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / l3


def tcp(src: str, dst: str, sport: int, dport: int, flags: str = "A", **kw: Any) -> Packet:
    load = kw.pop("load", b"")
    pkt = eth(IP(src=src, dst=dst, id=7) / TCP(sport=sport, dport=dport, flags=flags, **kw))
    return pkt / Raw(load) if load else pkt


def udp(src: str, dst: str, sport: int, dport: int, load: bytes = b"hello", **kw: Any) -> Packet:
    return eth(IP(src=src, dst=dst, id=9) / UDP(sport=sport, dport=dport, **kw) / Raw(load))


def echo(src: str, dst: str, ident: int, kind: str = "echo-request") -> Packet:
    return eth(IP(src=src, dst=dst) / ICMP(type=kind, id=ident, seq=3) / Raw(b"ping"))


def push(
    el: Nat, pkts: Sequence[Packet | bytes], ts: list[int] | int = 0
) -> tuple[list[int], list[bytes], PacketBatch]:
    """Process one batch: (fates, packet bytes afterwards, the batch)."""
    times = ts if isinstance(ts, list) else [ts] * len(pkts)
    batch = PacketBatch.from_packets([bytes(p) for p in pkts], ts=times)
    parse_batch(batch)
    assert (batch.fate == 0).all(), "test packets must parse"
    el.stats.receive(batch)
    el.process(batch)
    el.stats.tally(batch)
    return [int(f) for f in batch.fate], batch.packets(), batch


def one(el: Nat, pkt: Packet, ts: int = 0) -> bytes:
    """Process one packet that must pass; its bytes afterwards."""
    fates, out, _ = push(el, [pkt], ts)
    assert fates == [0], el.stats.drops_by_reason()
    return out[0]


def dropped(el: Nat, pkt: Packet, ts: int = 0) -> str:
    """Process one packet that must be dropped; the reason's name."""
    before = el.stats.drops_by_reason()
    fates, _, _ = push(el, [pkt], ts)
    assert fates[0] < 0
    after = el.stats.drops_by_reason()
    (name,) = [k for k in after if after[k] != before.get(k, 0)]
    return name


def checksums_ok(raw: bytes) -> bool:
    """scapy recomputes every checksum of ``raw``; the result must equal ``raw``."""
    pkt = Ether(raw)
    for layer in (IP, TCP, UDP, ICMP):
        if layer in pkt:
            del pkt[layer].chksum
    return bytes(pkt) == raw


def ext_port(raw: bytes) -> int:
    layer = Ether(raw)[IP].payload
    return int(layer.id if isinstance(layer, ICMP) else layer.sport)


def mapping_of(el: Nat, inside: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in el.read_mappings()["sample"] if m["inside"] == inside]
    assert len(found) == 1
    return found[0]


# configuration ------------------------------------------------------------------------------


def test_registered_and_defaults() -> None:
    assert element_class("nat") is Nat
    cfg = Nat.configure("n", BASE).config.model_dump()
    assert cfg["mapping"] == "endpoint_independent"
    assert cfg["filtering"] == "address_dependent"
    assert cfg["hairpinning"] is False and cfg["port_range"] == (1024, 65535)
    assert cfg["timeouts"] == {
        "udp": 300.0,
        "tcp_established": 7440.0,
        "tcp_transitory": 240.0,
        "icmp": 60.0,
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"external": ["2001:db8::1"]}, "external"),
        ({"inside": ["198.18.0.1/16"]}, "host bits"),
        ({"port_range": [3000, 2000]}, "port_range"),
        ({"static": [{"external": "198.19.0.10:80", "internal": "198.18.1.10:80"}]}, "proto"),
        ({"static": [{"proto": "tcp", "external": "198.19.0.10:80", "internal": "10.0.0.1:80"}]},
         "not in an inside prefix"),
        ({"static": [{"external": EXT, "internal": "198.18.1.1"}]}, "may not be in the pool"),
        ({"static": [{"proto": "tcp", "external": "198.19.0.10", "internal": "198.18.1.1:1"}]},
         "both sides"),
        ({"filtering": "nope"}, "filtering"),
        ({"bogus": 1}, "bogus"),
    ],
)  # fmt: skip
def test_bad_configurations_are_rejected(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Nat.configure("n", {**BASE, **extra})


# golden translations ------------------------------------------------------------------------


def test_outbound_and_inbound_tcp_golden_bytes_and_columns() -> None:
    el = nat()
    syn = tcp(IN_A, R1, 40000, 80, "S", options=[("MSS", 1460)])
    fates, out, batch = push(el, [syn])
    assert fates == [0]
    assert out[0] == bytes(tcp(EXT, R1, 1024, 80, "S", options=[("MSS", 1460)]))
    assert int(batch.src[0, 3]) == 0xC6130001 and int(batch.sport[0]) == 1024
    assert int(batch.dst[0, 3]) == 0xC6136401 and int(batch.dport[0]) == 80
    assert verify_checksums(batch).all() and checksums_ok(out[0])

    fates, back, batch = push(el, [tcp(R1, EXT, 80, 1024, "SA", seq=99, ack=1)])
    assert fates == [0]
    assert back[0] == bytes(tcp(R1, IN_A, 80, 40000, "SA", seq=99, ack=1))
    assert int(batch.dst[0, 3]) == 0xC6120005 and int(batch.dport[0]) == 40000
    assert checksums_ok(back[0])


def test_udp_both_ways_golden_and_zero_checksum_stays_zero() -> None:
    el = nat()
    assert one(el, udp(IN_A, R1, 5353, 53)) == bytes(udp(EXT, R1, 1025, 53))
    assert one(el, udp(R1, EXT, 53, 1025, b"answer")) == bytes(udp(R1, IN_A, 53, 5353, b"answer"))
    out = one(el, udp(IN_A, R1, 5353, 53, chksum=0))
    assert out == bytes(udp(EXT, R1, 1025, 53, chksum=0))  # scapy made the IPv4 checksum
    back = one(el, udp(R1, EXT, 53, 1025, chksum=0))
    assert back == bytes(udp(R1, IN_A, 53, 5353, chksum=0))


def test_icmp_echo_identifier_both_ways() -> None:
    el = nat()
    out = one(el, echo(IN_A, R1, 0x1234))
    assert out == bytes(echo(EXT, R1, 1024)) and checksums_ok(out)
    back = one(el, echo(R1, EXT, 1024, "echo-reply"))
    assert back == bytes(echo(R1, IN_A, 0x1234, "echo-reply")) and checksums_ok(back)
    # ICMP identifiers have their own pool: a TCP mapping also gets 1024
    assert ext_port(one(el, tcp(IN_A, R1, 40000, 80, "S"))) == 1024


def test_full_tcp_conversation_is_translated_back_exactly() -> None:
    el = nat()
    c, s = (IN_A, 40001), (R1, 443)
    talk: list[tuple[str, str, int, int, bytes]] = [
        ("out", "S", 1000, 0, b""),
        ("in", "SA", 5000, 1001, b""),
        ("out", "A", 1001, 5001, b""),
        ("out", "PA", 1001, 5001, b"GET / HTTP/1.1\r\n\r\n"),
        ("in", "A", 5001, 1019, b""),
        ("in", "PA", 5001, 1019, b"HTTP/1.1 200 OK\r\n\r\nhello"),
        ("out", "FA", 1019, 5026, b""),
        ("in", "A", 5026, 1020, b""),
        ("in", "FA", 5026, 1020, b""),
        ("out", "A", 1020, 5027, b""),
    ]
    states = []
    for t, (way, flags, seq, ack, load) in enumerate(talk):
        kw = {"seq": seq, "ack": ack, "load": load, "window": 512}
        if way == "out":
            out = one(el, tcp(c[0], s[0], c[1], s[1], flags, **kw), t * S)
            assert out == bytes(tcp(EXT, s[0], 1025, s[1], flags, **kw))
        else:
            out = one(el, tcp(s[0], EXT, s[1], 1025, flags, **kw), t * S)
            assert out == bytes(tcp(s[0], c[0], s[1], c[1], flags, **kw))
        assert checksums_ok(out)
        states.append(mapping_of(el, f"{IN_A}:40001")["tcp"])
    assert states[0] == "opening" and states[1] == "established"
    assert states[6] == "established" and states[8] == "closing"
    assert mapping_of(el, f"{IN_A}:40001")["expires_in"] == 240.0


# mapping and filtering behaviour ------------------------------------------------------------


def test_endpoint_independent_mapping_reuses_the_external_port() -> None:
    el = nat(filtering="endpoint_independent")
    p1 = ext_port(one(el, udp(IN_A, R1, 6000, 53)))
    p2 = ext_port(one(el, udp(IN_A, R2, 6000, 123)))
    p3 = ext_port(one(el, udp(IN_A, R1, 6002, 53)))
    assert p1 == p2 and p3 != p1
    assert el.read_mappings()["live"] == 2


def test_address_port_dependent_mapping_gives_each_remote_its_port() -> None:
    el = nat(mapping="address_port_dependent")
    ports = {ext_port(one(el, udp(IN_A, r, 6000, d))) for r, d in ((R1, 53), (R2, 53), (R1, 54))}
    assert len(ports) == 3
    p = ext_port(one(el, udp(IN_A, R1, 6000, 53)))
    assert one(el, udp(R1, EXT, 53, p))  # the mapping's own remote endpoint
    assert dropped(el, udp(R1, EXT, 54, p)) == "nat_filtered"


def test_address_dependent_filtering_is_the_default() -> None:
    el = nat()
    p = ext_port(one(el, udp(IN_A, R1, 6000, 53)))
    assert one(el, udp(R1, EXT, 53, p))
    assert one(el, udp(R1, EXT, 9999, p))  # same address, other port: admitted
    assert dropped(el, udp(R2, EXT, 53, p)) == "nat_filtered"
    one(el, udp(IN_A, R2, 6000, 123))  # now the inside host has sent to R2 too
    assert one(el, udp(R2, EXT, 7, p))


def test_address_port_dependent_filtering_needs_the_port() -> None:
    el = nat(filtering="address_port_dependent")
    p = ext_port(one(el, udp(IN_A, R1, 6000, 53)))
    assert one(el, udp(R1, EXT, 53, p))
    assert dropped(el, udp(R1, EXT, 9999, p)) == "nat_filtered"
    one(el, udp(IN_A, R1, 6000, 9999))
    assert one(el, udp(R1, EXT, 9999, p))


def test_endpoint_independent_filtering_admits_anyone() -> None:
    el = nat(filtering="endpoint_independent")
    p = ext_port(one(el, udp(IN_A, R1, 6000, 53)))
    assert one(el, udp(R2, EXT, 4444, p)) == bytes(udp(R2, IN_A, 4444, 6000))


def test_a_session_does_not_outlive_its_mapping() -> None:
    el = nat()
    one(el, tcp(IN_A, R1, 40000, 80, "S"), 0)
    one(el, tcp(R1, EXT, 80, 1024, "SA"), 0)  # established: 7440 s
    one(el, tcp(IN_A, R2, 40000, 80, "S"), S)  # session with R2, expiring at 7441 s
    one(el, tcp(R1, EXT, 80, 1024, "R"), 2 * S)  # transitory: the mapping ends at 242 s
    later = 300 * S
    port = ext_port(one(el, tcp(IN_A, R1, 40000, 80, "S"), later))  # a new mapping
    assert port != 1024
    assert dropped(el, tcp(R2, EXT, 80, port, "SA"), later) == "nat_filtered"


def test_inbound_without_a_mapping_is_dropped() -> None:
    el = nat()
    assert dropped(el, tcp(R1, EXT, 80, 1024, "S")) == "nat_no_mapping"
    one(el, tcp(IN_A, R1, 40000, 80, "S"))
    assert dropped(el, tcp(R1, EXT, 80, 1026, "SA")) == "nat_no_mapping"
    assert dropped(el, udp(R1, EXT, 80, 1024)) == "nat_no_mapping"  # TCP mapping, UDP packet


# ports, expiry and capacity -----------------------------------------------------------------


def test_port_exhaustion_with_a_tiny_range() -> None:
    el = nat(port_range=[2000, 2001], port_parity=False)
    fates, out, _ = push(el, [udp(IN_A, R1, 6000 + k, 53) for k in range(3)])
    assert fates[:2] == [0, 0] and fates[2] < 0
    assert sorted(ext_port(o) for o in out[:2]) == [2000, 2001]
    assert el.stats.drops_by_reason() == {"nat_ports_exhausted": 1}
    assert el.read_ports()["free"][EXT] == {"tcp": 2, "udp": 0, "icmp": 2}
    assert el.read_ports()["in_use"] == 2


def test_allocator_is_next_fit_with_parity_and_wraps_around() -> None:
    pools = PortPools(1, 2000, 2004, parity=True)  # one address; pool 0 is TCP
    take = [alloc_port(pools.arrays, 0, 0) for _ in range(3)]
    assert take == [2000, 2002, 2004]
    assert alloc_port(pools.arrays, 0, 0) == 2001  # no even port left: the other parity
    assert release_port(pools.arrays, 0, 2000) and not release_port(pools.arrays, 0, 2000)
    assert alloc_port(pools.arrays, 0, 1) == 2003  # after the last one, not the freed 2000
    assert alloc_port(pools.arrays, 0, 1) == 2000  # wrapped round
    assert alloc_port(pools.arrays, 0, 1) == -1 and pools.free_ports().tolist() == [[0, 5, 5]]
    wide = PortPools(2, 1024, 65535, parity=False)
    ports = [alloc_port(wide.arrays, 4, 0) for _ in range(64512)]
    assert sorted(ports) == list(range(1024, 65536)) and alloc_port(wide.arrays, 4, 0) == -1
    assert wide.in_use() == 64512


def test_expired_mapping_returns_its_port_for_reuse() -> None:
    el = nat(port_range=[2000, 2000])
    assert ext_port(one(el, udp(IN_A, R1, 6000, 53), 0)) == 2000
    assert dropped(el, udp(IN_B, R1, 7000, 53), 10 * S) == "nat_ports_exhausted"
    assert one(el, udp(R1, EXT, 53, 2000), 299 * S)  # refreshes it (inbound refresh)
    assert dropped(el, udp(IN_B, R1, 7000, 53), 598 * S) == "nat_ports_exhausted"
    assert ext_port(one(el, udp(IN_B, R1, 7000, 53), 600 * S)) == 2000  # 299 + 300 < 600
    assert one(el, udp(R1, EXT, 53, 2000), 600 * S) == bytes(udp(R1, IN_B, 53, 7000))
    assert [m["inside"] for m in el.read_mappings()["sample"]] == [f"{IN_B}:7000"]
    assert el.read_mappings()["created"] == 2


def test_port_reused_within_one_batch_reaches_the_new_mapping() -> None:
    el = nat(port_range=[2000, 2000])
    one(el, udp(IN_A, R1, 6000, 53), 0)
    late = 400 * S  # the first mapping has expired; a new one takes its port mid-batch
    fates, out, _ = push(
        el, [udp(R1, EXT, 53, 2000), udp(IN_B, R1, 7000, 53), udp(R1, EXT, 53, 2000)], late
    )
    assert fates[1:] == [0, 0] and fates[0] < 0
    assert out[2] == bytes(udp(R1, IN_B, 53, 7000))


def test_without_inbound_refresh_replies_do_not_extend_a_mapping() -> None:
    el = nat(inbound_refresh=False, port_range=[2000, 2000])
    one(el, udp(IN_A, R1, 6000, 53), 0)
    one(el, udp(R1, EXT, 53, 2000), 299 * S)
    assert ext_port(one(el, udp(IN_B, R1, 7000, 53), 301 * S)) == 2000


def test_table_full_refuses_new_mappings() -> None:
    el = nat(max_mappings=2)
    fates, _, _ = push(el, [udp(IN_A, R1, 6000 + k, 53) for k in range(3)])
    assert fates[:2] == [0, 0] and fates[2] < 0
    assert el.stats.drops_by_reason() == {"nat_table_full": 1}
    assert el.read_ports()["in_use"] == 2  # the refused flow's port went back


def test_icmp_mappings_live_sixty_seconds() -> None:
    el = nat()
    one(el, echo(IN_A, R1, 78), 0)
    assert one(el, echo(R1, EXT, 1024, "echo-reply"), 59 * S)
    assert dropped(el, echo(R1, EXT, 1024, "echo-reply"), 120 * S) == "nat_no_mapping"


# TCP life cycle -----------------------------------------------------------------------------


def test_tcp_transitory_until_the_syn_is_answered() -> None:
    el = nat()
    one(el, tcp(IN_A, R1, 40000, 80, "S"), 0)
    assert mapping_of(el, f"{IN_A}:40000")["tcp"] == "opening"
    assert dropped(el, tcp(R1, EXT, 80, 1024, "SA"), 241 * S) == "nat_no_mapping"


def test_tcp_established_lives_7440_seconds() -> None:
    el = nat()
    one(el, tcp(IN_A, R1, 40000, 80, "S"), 0)
    one(el, tcp(R1, EXT, 80, 1024, "SA"), S)
    assert mapping_of(el, f"{IN_A}:40000") | {"expires_in": 0} == {
        "proto": "tcp",
        "inside": f"{IN_A}:40000",
        "external": f"{EXT}:1024",
        "expires_in": 0,
        "tcp": "established",
    }
    assert one(el, tcp(R1, EXT, 80, 1024, "A"), 7000 * S)
    assert one(el, tcp(R1, EXT, 80, 1024, "A"), 14000 * S)
    assert dropped(el, tcp(R1, EXT, 80, 1024, "A"), 21441 * S) == "nat_no_mapping"


@pytest.mark.parametrize(
    "closing",
    [
        [("out", "FA"), ("in", "FA")],
        [("in", "R")],
        [("out", "R")],
    ],
)
def test_tcp_fin_both_ways_or_rst_make_it_transitory(closing: list[tuple[str, str]]) -> None:
    el = nat()
    one(el, tcp(IN_A, R1, 40000, 80, "S"), 0)
    one(el, tcp(R1, EXT, 80, 1024, "SA"), 0)
    for way, flags in closing:
        pkt = tcp(IN_A, R1, 40000, 80, flags) if way == "out" else tcp(R1, EXT, 80, 1024, flags)
        one(el, pkt, 10 * S)
    m = mapping_of(el, f"{IN_A}:40000")
    assert m["tcp"] == "closing" and m["expires_in"] == 240.0
    assert dropped(el, tcp(R1, EXT, 80, 1024, "A"), 251 * S) == "nat_no_mapping"


def test_one_fin_keeps_it_established_and_a_new_syn_starts_over() -> None:
    el = nat()
    one(el, tcp(IN_A, R1, 40000, 80, "S"), 0)
    one(el, tcp(R1, EXT, 80, 1024, "SA"), 0)
    one(el, tcp(IN_A, R1, 40000, 80, "FA"), 0)
    assert mapping_of(el, f"{IN_A}:40000")["tcp"] == "established"
    one(el, tcp(R1, EXT, 80, 1024, "R"), 0)
    assert mapping_of(el, f"{IN_A}:40000")["tcp"] == "closing"
    one(el, tcp(IN_A, R1, 40000, 80, "S"), S)
    assert mapping_of(el, f"{IN_A}:40000")["tcp"] == "opening"


# static entries, hairpinning ----------------------------------------------------------------

STATIC = [
    {"proto": "tcp", "external": "198.19.0.10:80", "internal": "198.18.1.10:8080"},
    {"external": "198.19.0.11", "internal": "198.18.1.11"},
]


def test_static_port_forward_both_ways_never_expires() -> None:
    el = nat(static=STATIC)
    assert one(el, tcp(R1, "198.19.0.10", 5555, 80, "S"), 0) == bytes(
        tcp(R1, "198.18.1.10", 5555, 8080, "S")
    )
    assert one(el, tcp("198.18.1.10", R1, 8080, 5555, "SA"), 0) == bytes(
        tcp("198.19.0.10", R1, 80, 5555, "SA")
    )
    much_later = 10**6 * S
    assert one(el, tcp(R2, "198.19.0.10", 6666, 80, "S"), much_later)  # anyone, any time
    assert dropped(el, tcp(R1, "198.19.0.10", 5555, 81, "S")) == "nat_no_mapping"
    assert dropped(el, udp(R1, "198.19.0.10", 5555, 80)) == "nat_no_mapping"
    assert el.read_static() == [{"proto": "tcp", **STATIC[0]}, {"proto": None, **STATIC[1]}]
    assert el.read_mappings()["static"] == 2 and el.read_mappings()["live"] == 0


def test_static_one_to_one_translates_the_address_only() -> None:
    el = nat(static=STATIC)
    assert one(el, echo(R1, "198.19.0.11", 42)) == bytes(echo(R1, "198.18.1.11", 42))
    assert one(el, udp("198.18.1.11", R1, 5000, 53)) == bytes(udp("198.19.0.11", R1, 5000, 53))
    assert one(el, udp(R1, "198.19.0.11", 53, 5000)) == bytes(udp(R1, "198.18.1.11", 53, 5000))


def test_static_port_in_the_pool_is_reserved() -> None:
    el = nat(
        port_range=[1024, 1025],
        port_parity=False,
        static=[{"proto": "tcp", "external": f"{EXT}:1024", "internal": "198.18.1.10:22"}],
    )
    assert ext_port(one(el, tcp(IN_A, R1, 40000, 80, "S"))) == 1025
    assert dropped(el, tcp(IN_B, R1, 40000, 80, "S")) == "nat_ports_exhausted"
    assert one(el, tcp(R1, EXT, 9, 1024, "S")) == bytes(tcp(R1, "198.18.1.10", 9, 22, "S"))


def test_hairpinning_is_off_by_default() -> None:
    el = nat()
    one(el, udp(IN_B, R1, 7000, 53))
    assert dropped(el, udp(IN_A, EXT, 6000, 1024)) == "nat_hairpin"


def test_hairpinning_translates_both_addresses_when_on() -> None:
    el = nat(hairpinning=True, filtering="endpoint_independent")
    assert ext_port(one(el, udp(IN_B, R1, 7000, 53))) == 1024
    out = one(el, udp(IN_A, EXT, 6000, 1024))
    assert out == bytes(udp(EXT, IN_B, 1026, 7000)) and checksums_ok(out)
    assert el.read_mappings()["translated"] == {
        "outbound": 2,
        "inbound": 1,
        "hairpin": 1,
        "icmp_errors": 0,
    }


# ICMP errors (RFC 5508) ---------------------------------------------------------------------

ROUTER = "198.19.200.1"


def error(src: str, dst: str, kind: int, quote: Packet | bytes, code: int = 0) -> Packet:
    body = Raw(quote) if isinstance(quote, bytes) else quote
    return eth(IP(src=src, dst=dst) / ICMP(type=kind, code=code) / body)


@pytest.mark.parametrize(
    "sent",
    [udp(IN_A, R1, 5353, 53), tcp(IN_A, R1, 40000, 80, "S"), echo(IN_A, R1, 0x1234)],
    ids=["udp", "tcp", "echo"],
)
def test_inbound_icmp_error_quotes_the_inside_packet_exactly(sent: Packet) -> None:
    el = nat()
    left = Ether(one(el, sent))[IP]  # the packet as it left, which the router quotes
    back = one(el, error(ROUTER, EXT, 3, left, code=1))
    assert back == bytes(error(ROUTER, IN_A, 3, sent[IP], code=1))
    assert checksums_ok(back)
    assert el.read_mappings()["translated"]["icmp_errors"] == 1


def test_inbound_icmp_error_with_an_eight_byte_quote() -> None:
    el = nat()
    sent = tcp(IN_A, R1, 40000, 80, "S")
    left = bytes(Ether(one(el, sent))[IP])[:28]  # IPv4 header + 8 bytes: no TCP checksum
    back = one(el, error(ROUTER, EXT, 11, left))
    assert back == bytes(error(ROUTER, IN_A, 11, bytes(sent[IP])[:28]))


def test_inbound_icmp_errors_need_a_mapping_and_pass_filtering() -> None:
    el = nat()
    one(el, udp(IN_A, R1, 5353, 53))
    assert dropped(el, error(ROUTER, EXT, 3, udp(EXT, R1, 1999, 53)[IP])) == "nat_no_mapping"
    assert dropped(el, error(ROUTER, EXT, 3, udp(EXT, R2, 1025, 53)[IP])) == "nat_filtered"
    assert dropped(el, error(ROUTER, EXT, 3, b"\x45" + b"\x00" * 10)) == "nat_unsupported"
    quote = bytes(udp(EXT, R1, 1025, 53)[IP])
    frag = quote[:6] + b"\x00\x10" + quote[8:]  # embedded fragment offset 16: no ports in it
    assert dropped(el, error(ROUTER, EXT, 3, frag)) == "nat_unsupported"


def test_outbound_icmp_error_about_a_received_packet() -> None:
    el = nat(filtering="endpoint_independent")
    one(el, udp(IN_A, R1, 5353, 53))
    received = Ether(one(el, udp(R2, EXT, 4444, 1025)))[IP]  # delivered to IN_A:5353
    out = one(el, error(IN_A, R2, 3, received, code=3))
    assert out == bytes(error(EXT, R2, 3, udp(R2, EXT, 4444, 1025)[IP], code=3))
    assert checksums_ok(out)
    unknown = udp(R2, IN_B, 4444, 9)[IP]
    assert dropped(el, error(IN_B, R2, 3, unknown, code=3)) == "nat_no_mapping"


# odd packets --------------------------------------------------------------------------------


def test_unsupported_and_unmatched_packets() -> None:
    el = nat()
    frag = eth(IP(src=IN_A, dst=R1, flags="MF") / UDP(sport=1, dport=2) / Raw(b"x" * 16))
    unreachable = eth(IP(src=R1, dst=EXT) / ICMP(type=3, code=3) / Raw(b"\x00" * 28))
    gre = eth(IP(src=IN_A, dst=R1, proto=47) / Raw(b"\x00" * 8))
    passing = [
        eth(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=1, dport=2)),
        Ether() / ARP(psrc=IN_A, pdst=EXT),
        udp(R1, R2, 1, 2),  # transit: neither inside nor to an external address
    ]
    fates, out, _ = push(el, [frag, unreachable, gre, *passing])
    assert fates[3:] == [0, 0, 0] and out[3:] == [bytes(p) for p in passing]
    assert el.stats.drops_by_reason() == {"nat_unsupported": 3}
    strict = nat(unmatched="drop")
    push(strict, passing)
    assert strict.stats.drops_by_reason() == {"nat_unmatched": 3}


@settings(max_examples=60)
@given(st.binary(min_size=0, max_size=80), st.integers(0, 80))
def test_any_bytes_are_counted_not_crashing(tail: bytes, cut: int) -> None:
    base = bytes(tcp(IN_A, R1, 40000, 80, "S"))[:34] + tail  # IPv4 header from inside + junk
    frames = [base, bytes(udp(R1, EXT, 1, 1024))[: 14 + cut], bytes(echo(IN_A, R1, 5))[:cut]]
    result = run_element(Nat.configure("n", BASE), frames)
    passed = sum(len(v) for v in result.outputs.values())
    assert passed + sum(result.drops.values()) + result.parse_drops == 3
    assert set(result.drops) <= {r.name for r in Nat.drop_reasons}


@settings(max_examples=80)
@given(
    proto=st.sampled_from(["tcp", "udp", "icmp"]),
    host=st.integers(1, 65534),
    port=st.integers(1, 65535),
    remote=st.integers(1, 250),
    rport=st.integers(1, 65535),
    load=st.binary(max_size=40),
)
def test_reply_is_translated_back_exactly(
    proto: str, host: int, port: int, remote: int, rport: int, load: bytes
) -> None:
    el = nat()
    inside = f"198.18.{host >> 8}.{host & 255}"
    far = f"198.19.100.{remote}"

    def make(src: str, dst: str, sp: int, dp: int) -> Packet:
        if proto == "tcp":
            return tcp(src, dst, sp, dp, "PA", seq=1234, load=load)
        if proto == "udp":
            return udp(src, dst, sp, dp, load)
        return eth(IP(src=src, dst=dst) / ICMP(id=sp, seq=dp) / Raw(load))

    out = one(el, make(inside, far, port, rport))
    p = ext_port(out)
    assert out == bytes(make(EXT, far, p, rport)) and checksums_ok(out)
    back = one(el, make(far, EXT, rport, p) if proto != "icmp" else make(far, EXT, p, rport))
    expect = make(far, inside, rport, port) if proto != "icmp" else make(far, inside, port, rport)
    assert back == bytes(expect) and checksums_ok(back)


# handlers and state -------------------------------------------------------------------------


def test_handlers() -> None:
    el = nat(static=STATIC)
    one(el, tcp(IN_A, R1, 40000, 80, "S"), 5 * S)
    one(el, udp(IN_B, R1, 6001, 53), 5 * S)
    m = el.call_handler("mappings")
    assert m["live"] == 2 and m["static"] == 2 and m["created"] == 2
    assert m["by_proto"] == {"tcp": 1, "udp": 1, "icmp": 0}
    assert {x["inside"]: x["external"] for x in m["sample"]} == {
        f"{IN_A}:40000": f"{EXT}:1024",
        f"{IN_B}:6001": f"{EXT}:1025",
    }
    ports = el.call_handler("ports")
    assert ports["free"][EXT] == {"tcp": 64511, "udp": 64511, "icmp": 64512}
    assert ports["in_use"] == 2 and ports["range"] == [1024, 65535] and ports["addresses"] == 1
    assert ports["free_total"] == ports["free"][EXT]
    state = el.call_handler("state")
    assert state["mappings"]["live"] == 4 and state["reverse"]["live"] == 4
    assert el.call_handler("static")[0]["external"] == "198.19.0.10:80"


def _session_traffic(el: Nat) -> list[bytes]:
    """Outbound and inbound packets of three flows (TCP established, UDP, ICMP)."""
    outs = [
        one(el, tcp(IN_A, R1, 40000, 80, "S"), S),
        one(el, tcp(R1, EXT, 80, 1024, "SA"), S),
        one(el, udp(IN_B, R1, 6001, 53), S),
        one(el, udp(IN_B, R2, 6001, 123), S),  # a second remote: a session
        one(el, echo(IN_A, R2, 10), S),
    ]
    return outs


def test_export_import_round_trip_translates_identically() -> None:
    first = nat(static=STATIC)
    _session_traffic(first)
    snap = StateSnapshot.from_bytes(first.export_state().to_bytes())
    assert {n: len(t) for n, t in snap.tables.items()} == {
        "mappings": 3,
        "reverse": 3,
        "sessions": 1,
    }
    second = nat(static=STATIC)
    result = second.import_state(snap)
    assert result.added == 7 and result.refused == 0
    probes = [
        (tcp(IN_A, R1, 40000, 80, "A"), 2 * S),
        (tcp(R1, EXT, 80, 1024, "A"), 2 * S),
        (udp(R1, EXT, 53, 1025), 2 * S),
        (udp(R2, EXT, 123, 1025), 2 * S),
        (echo(R2, EXT, 1024, "echo-reply"), 2 * S),
        (udp(IN_B, R1, 6001, 53), 2 * S),
        (tcp(R1, "198.19.0.10", 1, 80, "S"), 2 * S),
    ]
    for pkt, t in probes:
        assert one(first, pkt, t) == one(second, pkt, t)
    for el in (first, second):
        assert dropped(el, udp(R2, EXT, 53, 1024)) == "nat_no_mapping"  # 1024/udp is free
        assert dropped(el, tcp(R2, EXT, 80, 1024, "A"), 3 * S) == "nat_filtered"
    assert mapping_of(second, f"{IN_A}:40000")["tcp"] == "established"
    # new flows on the second instance do not collide with imported ports
    assert ext_port(one(second, tcp(IN_B, R1, 40000, 80, "S"), 3 * S)) == 1026
    assert first.read_ports()["in_use"] == 3 and second.read_ports()["in_use"] == 4


def _consistent(el: Nat) -> None:
    """Every live dynamic mapping has its own external port, and the pools agree."""
    rows = el.tables["mappings"].live()
    dynamic = rows[(rows["flags"] & 1) == 0]
    ext = {(int(r["key"][1]) >> 16, int(r["external"]), int(r["ext_port"])) for r in dynamic}
    assert len(ext) == len(dynamic)
    assert el.read_ports()["in_use"] == len(dynamic)
    assert el.tables["reverse"].stats()["live"] == len(rows)


def test_import_resolves_external_port_clashes() -> None:
    first, second = nat(), nat()
    one(first, tcp(IN_A, R1, 40000, 80, "S"))
    one(second, tcp(IN_B, R2, 40000, 80, "S"))  # the same external port, 1024
    second.import_state(first.export_state())
    _consistent(second)
    back = one(second, tcp(R1, EXT, 80, 1024, "SA")) if len(second.tables["mappings"]) == 1 else b""
    assert not back or back == bytes(tcp(R1, IN_A, 80, 40000, "SA"))
    port = ext_port(one(second, tcp("198.18.0.7", R1, 40000, 80, "S")))
    assert port != 1024
    _consistent(second)


def test_mappings_the_log_missed_are_reconciled() -> None:
    from nfvkit.vnf.state.kernels import C_UNLOGGED, TOMB

    el = nat()
    one(el, udp(IN_A, R1, 6000, 53))
    one(el, udp(IN_B, R1, 6002, 53))
    fwd = el.tables["mappings"]
    lost = (fwd.rows["state"] == 1) & (fwd.rows["key"][:, 0] == 0xC6120005)
    fwd.rows["state"][lost] = TOMB  # retired without a log record
    fwd.ctl[C_UNLOGGED] += 1
    one(el, udp(IN_B, R1, 6002, 53))
    assert dropped(el, udp(R1, EXT, 53, 1024)) == "nat_no_mapping"
    _consistent(el)
    assert el.read_ports()["in_use"] == 1
    assert ext_port(one(el, udp("198.18.0.7", R1, 6000, 53))) == 1028  # 1024 waits its turn


def test_import_into_another_element_type_is_refused() -> None:
    snap = nat().export_state()
    snap.element_type = "acl"
    with pytest.raises(ValueError, match="cannot import"):
        nat().import_state(snap)


def test_benchmark_setup_gives_a_steady_state() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_nat import build

    el, batches = build(flows=512, packets=2048, size=512)
    assert len(batches) == 4 and el.read_mappings()["live"] == 512
    for b in batches:
        el.process(b)
        assert (b.fate == 0).all()
    assert el.read_mappings()["created"] == 512
