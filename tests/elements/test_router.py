"""Golden packet tests of the ``router`` element: LPM correctness (v4 and v6, against a brute
force reference), TTL / hop limit handling with checksums checked by scapy, exact MAC rewrite,
drop reasons, route files, handlers and validation errors."""

from __future__ import annotations

import ipaddress
import random
import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from nfvkit.elements.registry import element_class
from nfvkit.elements.route.lpm import V4_STRIDES, V6_STRIDES, build_trie
from nfvkit.elements.route.table import address_words
from nfvkit.elements.router import Router
from nfvkit.errors import HandlerError
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.checksum import verify_checksums
from nfvkit.packet.fate import reason_by_name
from nfvkit.packet.parse import parse_batch
from nfvkit.testing import run_element

PORTS = ["p0", "p1", "p2", "p3"]
NEIGHBOURS = 10


def port_mac(i: int) -> str:
    return f"02:00:00:00:0{i}:01"


def nh_mac(i: int) -> str:
    return f"02:00:00:00:aa:{i:02x}"


def neighbours(n: int = NEIGHBOURS) -> list[dict[str, Any]]:
    return [{"name": f"nh{i}", "mac": nh_mac(i), "port": PORTS[i % 4]} for i in range(n)]


def router(routes: list[dict[str, Any]], **extra: Any) -> Router:
    config: dict[str, Any] = {
        "ports": [{"name": p, "mac": port_mac(i)} for i, p in enumerate(PORTS)],
        "neighbours": neighbours(),
        "routes": routes,
    }
    config.update(extra)
    el = Router.configure("r0", config)
    assert isinstance(el, Router)
    return el


def via(pairs: list[tuple[str, int]]) -> list[dict[str, Any]]:
    return [{"prefix": p, "via": f"nh{n}"} for p, n in pairs]


def frame(l3: Any, src: str = "02:00:00:00:00:99", dst: str = "02:00:00:00:00:98") -> bytes:
    return bytes(Ether(src=src, dst=dst) / l3)


def v4(dst: str, ttl: int = 64, **kw: Any) -> bytes:
    return frame(IP(src="198.18.0.1", dst=dst, ttl=ttl, **kw) / UDP(sport=1000, dport=2000))


def v6(dst: str, hlim: int = 64) -> bytes:
    return frame(IPv6(src="2001:db8::99", dst=dst, hlim=hlim) / UDP(sport=1000, dport=2000))


def process(el: Router, pkts: list[bytes]) -> tuple[list[int], list[bytes]]:
    """Parse ``pkts`` into one batch, route it; return per-packet fates and bytes."""
    batch = PacketBatch.from_packets(pkts)
    parse_batch(batch)
    el.process(batch)
    el.stats.tally(batch)
    return [int(f) for f in batch.fate], batch.packets()


def fate(name: str) -> int:
    return reason_by_name(name).fate


# lookups ------------------------------------------------------------------------------------

V4_ROUTES = [
    ("0.0.0.0/0", 0),
    ("10.0.0.0/8", 1),
    ("10.1.0.0/16", 2),
    ("10.1.2.0/24", 3),
    ("10.1.2.128/25", 4),
    ("10.1.2.200/32", 5),
    ("10.1.2.4/30", 6),
    ("10.1.4.0/23", 7),
]
V4_CASES = [
    ("192.0.2.1", 0),
    ("9.255.255.255", 0),
    ("11.0.0.0", 0),
    ("10.0.0.0", 1),
    ("10.200.0.1", 1),
    ("10.1.200.1", 2),
    ("10.1.3.7", 2),
    ("10.1.2.1", 3),
    ("10.1.2.8", 3),
    ("10.1.2.127", 3),
    ("10.1.2.4", 6),
    ("10.1.2.7", 6),
    ("10.1.2.128", 4),
    ("10.1.2.199", 4),
    ("10.1.2.200", 5),
    ("10.1.2.201", 4),
    ("10.1.2.255", 4),
    ("10.1.4.9", 7),
    ("10.1.5.255", 7),
    ("10.1.6.0", 2),
]


def check_forwarding(el: Router, pkts: list[bytes], expect: list[int]) -> None:
    fates, out = process(el, pkts)
    assert fates == [n % 4 for n in expect]
    assert [Ether(p).dst for p in out] == [nh_mac(n) for n in expect]
    assert [Ether(p).src for p in out] == [port_mac(n % 4) for n in expect]


def test_registered_and_default_ports() -> None:
    assert element_class("router") is Router
    el = Router.configure("r", {})
    assert el.outputs == ("out",)
    fates, _ = process(el, [v4("10.0.0.1"), v6("2001:db8::1")])
    assert fates == [fate("no_route")] * 2
    assert router([]).outputs == tuple(PORTS)


def test_ipv4_overlapping_prefixes() -> None:
    el = router(via(V4_ROUTES))
    check_forwarding(el, [v4(a) for a, _ in V4_CASES], [n for _, n in V4_CASES])
    for addr, n in V4_CASES:
        got = el.call_handler("lookup", addr)["route"]
        assert got["prefix"] == V4_ROUTES[[r[1] for r in V4_ROUTES].index(n)][0]
        assert got["via"] == f"nh{n}"


def test_ipv4_without_default_route() -> None:
    el = router(via(V4_ROUTES[1:]))
    fates, _ = process(el, [v4("192.0.2.1"), v4("10.1.2.200")])
    assert fates == [fate("no_route"), 1]
    assert el.call_handler("lookup", "192.0.2.1") == {"address": "192.0.2.1", "route": None}


V6_ROUTES = [
    ("::/0", 0),
    ("2001:db8::/32", 1),
    ("2001:db8:1::/48", 2),
    ("2001:db8:1:2::/64", 3),
    ("2001:db8:1:2::/127", 4),
    ("2001:db8:1:2::1/128", 5),
    ("2001:d00::/24", 6),
    ("2000::/3", 7),
    ("2001:8000::/17", 8),
    ("2001:db8:1:2:ffff::/80", 9),
]
V6_CASES = [
    ("2001:db8:1:2::1", 5),
    ("2001:db8:1:2::", 4),
    ("2001:db8:1:2::2", 3),
    ("2001:db8:1:2:ffff::7", 9),
    ("2001:db8:1:2:fffe::7", 3),
    ("2001:db8:1:3::1", 2),
    ("2001:db8:2::1", 1),
    ("2001:db9::1", 6),
    ("2001:dff:ffff::1", 6),
    ("2001:e00::1", 7),
    ("2001:8000::1", 8),
    ("2001:ffff::1", 8),
    ("2001:7fff::1", 7),
    ("3fff::1", 7),
    ("4000::1", 0),
    ("::1", 0),
]


def test_ipv6_overlapping_prefixes() -> None:
    el = router(via(V6_ROUTES))
    check_forwarding(el, [v6(a) for a, _ in V6_CASES], [n for _, n in V6_CASES])
    assert el.call_handler("lookup", "2001:db8:1:2::1")["route"]["prefix"] == "2001:db8:1:2::1/128"


def test_ipv4_and_ipv6_in_one_batch_and_table() -> None:
    el = router(via(V4_ROUTES + V6_ROUTES))
    cases = [(v4(a), n) for a, n in V4_CASES[:6]] + [(v6(a), n) for a, n in V6_CASES[:6]]
    random.Random(3).shuffle(cases)
    check_forwarding(el, [p for p, _ in cases], [n for _, n in cases])


def random_prefixes(rng: random.Random, version: int, n: int) -> list[Any]:
    """``n`` distinct prefixes clustered under a few bases, so that many of them nest."""
    bits = 32 if version == 4 else 128
    bases = [rng.getrandbits(bits) for _ in range(6)]
    nets: set[Any] = set()
    while len(nets) < n:
        plen = rng.choice([rng.randint(0, bits), rng.randint(8, 28 if version == 4 else 72)])
        noise = rng.getrandbits(bits) >> rng.randint(0, bits)
        addr = rng.choice(bases) ^ noise
        net = ipaddress.ip_network((addr, plen), strict=False)
        if net.version != version:  # a v6 address < 2**32 is still v6 given as an int tuple
            net = ipaddress.IPv6Network((addr, plen), strict=False)
        nets.add(net)
    return sorted(nets, key=lambda x: (int(x.network_address), x.prefixlen))


def random_addresses(rng: random.Random, nets: list[Any], n: int) -> list[int]:
    bits = nets[0].max_prefixlen
    out = []
    for _ in range(n):
        net = rng.choice(nets)
        host = rng.getrandbits(bits - net.prefixlen) if net.prefixlen < bits else 0
        out.append(int(net.network_address) | host if rng.random() < 0.8 else rng.getrandbits(bits))
    return out


def brute_lpm(nets: list[Any], addr: int) -> int:
    best, best_len = -1, -1
    bits = nets[0].max_prefixlen
    for i, net in enumerate(nets):
        shift = bits - net.prefixlen
        if net.prefixlen > best_len and (addr >> shift) == (int(net.network_address) >> shift):
            best, best_len = i, net.prefixlen
    return best


@pytest.mark.parametrize("version", [4, 6])
def test_trie_matches_brute_force_on_random_prefixes(version: int) -> None:
    rng = random.Random(version)
    nets = random_prefixes(rng, version, 300)
    trie = build_trie(nets, list(range(len(nets))), V4_STRIDES if version == 4 else V6_STRIDES)
    addrs = random_addresses(rng, nets, 1500)
    keys = np.array(
        [
            address_words(ipaddress.ip_address(a) if version == 4 else ipaddress.IPv6Address(a))
            for a in addrs
        ],
        dtype=np.uint32,
    )
    got = trie.lookup(keys).tolist()
    assert got == [brute_lpm(nets, a) for a in addrs]
    assert max(got) >= 0 and got.count(-1) < len(got)


@pytest.mark.parametrize("version", [4, 6])
def test_router_matches_brute_force_on_random_prefixes(version: int) -> None:
    rng = random.Random(10 + version)
    nets = random_prefixes(rng, version, 120)
    el = router([{"prefix": str(n), "via": f"nh{i % NEIGHBOURS}"} for i, n in enumerate(nets)])
    addrs = random_addresses(rng, nets, 300)
    if version == 4:
        pkts = [v4(str(ipaddress.IPv4Address(a))) for a in addrs]
    else:
        pkts = [v6(str(ipaddress.IPv6Address(a))) for a in addrs]
    fates, out = process(el, pkts)
    for a, f, pkt in zip(addrs, fates, out, strict=True):
        best = brute_lpm(nets, a)
        if best < 0:
            assert f == fate("no_route")
        else:
            assert (f, Ether(pkt).dst) == ((best % NEIGHBOURS) % 4, nh_mac(best % NEIGHBOURS))
    hits = [r["hits"] for r in el.call_handler("routes")]
    assert sum(hits) == sum(1 for f in fates if f >= 0)


# rewrite: TTL, checksum, MACs -----------------------------------------------------------------


def scapy_ip_checksum(pkt: bytes) -> int:
    ip = Ether(pkt)[IP].copy()
    del ip.chksum
    return int(IP(bytes(ip)).chksum)


@cache
def one_route_router() -> Router:
    return router([{"prefix": "0.0.0.0/0", "via": "nh1"}, {"prefix": "::/0", "via": "nh2"}])


@settings(max_examples=200)
@given(
    ttl=st.integers(2, 255),
    ident=st.integers(0, 0xFFFF),
    tos=st.integers(0, 255),
    src=st.integers(0, 2**32 - 1),
    dst=st.integers(0, 2**32 - 1),
    options=st.booleans(),
)
def test_ttl_decrement_keeps_the_checksum_right(
    ttl: int, ident: int, tos: int, src: int, dst: int, options: bool
) -> None:
    opts = b"\x01\x01\x01\x00" if options else b""
    ip = IP(
        src=str(ipaddress.IPv4Address(src)),
        dst=str(ipaddress.IPv4Address(dst)),
        ttl=ttl,
        id=ident,
        tos=tos,
        options=opts,
    )
    fates, out = process(one_route_router(), [frame(ip / UDP())])
    assert fates == [1]
    got = Ether(out[0])[IP]
    assert got.ttl == ttl - 1
    assert got.chksum == scapy_ip_checksum(out[0])


def test_rewrite_is_exact() -> None:
    el = router(via([("0.0.0.0/0", 5), ("2001:db8::/32", 6)]))
    inner4 = IP(src="198.18.0.1", dst="203.0.113.9", ttl=64, id=77) / UDP(sport=5, dport=6) / b"x"
    inner6 = IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=2) / UDP(sport=5, dport=6) / b"y"
    fates, out = process(el, [frame(inner4), frame(inner6)])
    assert fates == [1, 2]
    want4 = IP(src="198.18.0.1", dst="203.0.113.9", ttl=63, id=77) / UDP(sport=5, dport=6) / b"x"
    want6 = IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=1) / UDP(sport=5, dport=6) / b"y"
    assert out[0] == bytes(Ether(src=port_mac(1), dst=nh_mac(5)) / want4)
    assert out[1] == bytes(Ether(src=port_mac(2), dst=nh_mac(6)) / want6)
    assert out[0][:12] == bytes.fromhex("02000000aa05020000000101")


def test_vlan_tagged_frames_are_routed_with_the_tag_kept() -> None:
    el = one_route_router()
    pkt = bytes(Ether() / Dot1Q(vlan=7) / IP(dst="198.51.100.1", ttl=9) / UDP())
    fates, out = process(el, [pkt])
    assert fates == [1]
    got = Ether(out[0])
    assert (got.dst, got[Dot1Q].vlan, got[IP].ttl) == (nh_mac(1), 7, 8)
    assert got[IP].chksum == scapy_ip_checksum(out[0])


def test_default_port_macs() -> None:
    el = Router.configure(
        "r",
        {
            "ports": ["a", "b"],
            "neighbours": [{"name": "n", "mac": "02:00:00:00:aa:01", "port": "b"}],
            "routes": [{"prefix": "0.0.0.0/0", "via": "n"}],
        },
    )
    result = run_element(el, [v4("192.0.2.1")])
    assert Ether(result.outputs["b"][0]).src == "02:00:00:00:00:02"


# drops ----------------------------------------------------------------------------------------


def test_ttl_expiry() -> None:
    el = one_route_router()
    pkts = [
        v4("1.2.3.4", ttl=1),
        v4("1.2.3.4", ttl=0),
        v4("1.2.3.4", ttl=2),
        v6("2001:db8::1", hlim=1),
        v6("2001:db8::1", hlim=0),
        v6("2001:db8::1", hlim=2),
    ]
    fates, out = process(el, pkts)
    expired = fate("ttl_expired")
    assert fates == [expired, expired, 1, expired, expired, 2]
    assert out[0] == pkts[0] and out[3] == pkts[3]  # dropped packets are not rewritten
    assert Ether(out[2])[IP].ttl == 1 and Ether(out[5])[IPv6].hlim == 1


def test_no_route_is_decided_before_ttl() -> None:
    el = router(via([("10.0.0.0/8", 1)]))
    result = run_element(el, [v4("11.0.0.1", ttl=1), v4("10.0.0.1", ttl=1)])
    assert result.drops == {"no_route": 1, "ttl_expired": 1}


def test_not_ip_and_arp_port() -> None:
    arp = frame(ARP(pdst="198.18.0.1"))
    lldp = bytes(Ether(type=0x88CC) / (b"\x00" * 46))
    el = router(via([("0.0.0.0/0", 1)]))
    assert run_element(el, [arp, lldp, v4("1.1.1.1")]).drops == {"not_ip": 2}
    el = router(via([("0.0.0.0/0", 1)]), arp_port="p3")
    result = run_element(el, [arp, lldp])
    assert result.outputs == {"p3": [arp]}
    assert result.drops == {"not_ip": 1}


def test_connected_route_uses_the_neighbour_table() -> None:
    nbs = [
        *neighbours(),
        {"address": "198.18.0.10", "mac": "02:00:00:00:bb:10"},
        {"address": "2001:db8:5::10", "mac": "02:00:00:00:bb:11", "port": "p0"},
    ]
    el = Router.configure(
        "r",
        {
            "ports": [{"name": p, "mac": port_mac(i)} for i, p in enumerate(PORTS)],
            "neighbours": nbs,
            "routes": [
                {"prefix": "198.18.0.0/24", "port": "p2"},
                {"prefix": "2001:db8:5::/64", "port": 3},
            ],
        },
    )
    fates, out = process(
        el, [v4("198.18.0.10"), v4("198.18.0.11"), v6("2001:db8:5::10"), v6("2001:db8:5::11")]
    )
    assert fates == [2, fate("no_neighbour"), 3, fate("no_neighbour")]
    assert Ether(out[0]).dst == "02:00:00:00:bb:10"
    assert Ether(out[2]).dst == "02:00:00:00:bb:11"
    got = el.call_handler("lookup", "198.18.0.10")["route"]
    assert (got["via"], got["neighbour"], got["port"]) == ("connected", "02:00:00:00:bb:10", "p2")
    assert el.call_handler("lookup", "198.18.0.11")["route"]["neighbour"] is None


def test_via_a_neighbour_address_and_route_port_override() -> None:
    el = Router.configure(
        "r",
        {
            "ports": ["a", "b"],
            "neighbours": [{"address": "198.18.0.1", "mac": "02:00:00:00:cc:01", "port": "a"}],
            "routes": [
                {"prefix": "10.0.0.0/8", "via": "198.18.0.1"},
                {"prefix": "11.0.0.0/8", "via": "198.18.0.1", "port": "b"},
            ],
        },
    )
    fates, out = process(el, [v4("10.0.0.1"), v4("11.0.0.1")])
    assert fates == [0, 1]
    assert {Ether(p).dst for p in out} == {"02:00:00:00:cc:01"}


def test_malformed_and_already_dropped_packets_are_left_alone() -> None:
    good = v4("1.2.3.4")
    truncated = good[:30]
    batch = PacketBatch.from_packets([good, truncated, good])
    parse_batch(batch)
    parse_fate = int(batch.fate[1])
    assert parse_fate < 0
    batch.fate[2] = -99
    one_route_router().process(batch)
    assert batch.fate.tolist() == [1, parse_fate, -99]
    assert batch.packets()[1:] == [truncated, good]


# handlers -------------------------------------------------------------------------------------


def test_routes_and_stats_handlers() -> None:
    el = router(
        [
            {"prefix": "10.0.0.0/8", "via": "nh1"},
            {"prefix": "10.1.2.3/32", "port": "p3"},
            {"prefix": "2001:db8::/48", "via": "nh2", "port": "p0"},
        ]
    )
    run_element(el, [v4("10.0.0.1"), v4("10.9.0.1"), v6("2001:db8::1")])
    assert el.call_handler("routes") == [
        {
            "index": 0,
            "prefix": "10.0.0.0/8",
            "port": "p1",
            "via": "nh1",
            "mac": nh_mac(1),
            "hits": 2,
        },
        {"index": 1, "prefix": "10.1.2.3/32", "port": "p3", "via": "connected", "hits": 0},
        {
            "index": 2,
            "prefix": "2001:db8::/48",
            "port": "p0",
            "via": "nh2",
            "mac": nh_mac(2),
            "hits": 1,
        },
    ]
    stats = el.call_handler("stats")
    assert (stats["routes"], stats["hits"], stats["neighbours"]) == (3, 3, NEIGHBOURS)
    assert stats["ipv4"]["routes"] == 2 and stats["ipv4"]["nodes"] == 1
    assert stats["ipv6"]["routes"] == 1 and stats["ipv6"]["nodes"] == 4  # /16 /24 /32 /40
    assert stats["bytes"] >= (1 << 24) * 4 + (1 << 16) * 4 + 5 * 1024
    with pytest.raises(HandlerError, match="not an IPv4 or IPv6 address"):
        el.call_handler("lookup", "10.0.0")


def test_set_routes_swaps_the_table() -> None:
    el = router(via([("0.0.0.0/0", 1)]))
    assert process(el, [v4("10.0.0.1")])[0] == [1]
    el.call_handler(
        "set_routes",
        [{"prefix": "0.0.0.0/0", "via": "nh2"}, {"prefix": "10.0.0.0/8", "via": "nh3"}],
    )
    fates, out = process(el, [v4("10.0.0.1"), v4("11.0.0.1")])
    assert fates == [3, 2]
    assert [Ether(p).dst for p in out] == [nh_mac(3), nh_mac(2)]
    assert [r["hits"] for r in el.call_handler("routes")] == [1, 1]
    assert [r.describe() for r in el.cfg.routes] == ["0.0.0.0/0 via nh2", "10.0.0.0/8 via nh3"]
    el.call_handler("set_routes", "# text form\n10.0.0.0/8 via nh4 port p0\n")
    assert process(el, [v4("10.0.0.1"), v4("11.0.0.1")])[0] == [0, fate("no_route")]


def test_set_routes_rejects_bad_routes_and_keeps_the_old_table() -> None:
    el = router(via([("0.0.0.0/0", 1)]))
    with pytest.raises(HandlerError, match=r"routes\[1\]\.via: 'nh99' is not a declared neighbour"):
        el.call_handler("set_routes", via([("10.0.0.0/8", 1), ("11.0.0.0/8", 99)]))
    with pytest.raises(HandlerError, match=r"routes\[0\]\.prefix: '10\.0\.0\.1/8' has host bits"):
        el.call_handler("set_routes", [{"prefix": "10.0.0.1/8", "via": "nh1"}])
    with pytest.raises(HandlerError, match="line:2: unexpected 'dev'"):
        el.call_handler("set_routes", "10.0.0.0/8 via nh1\n11.0.0.0/8 dev p0\n")
    assert process(el, [v4("10.0.0.1")])[0] == [1]
    assert len(el.call_handler("routes")) == 1


# configuration --------------------------------------------------------------------------------


def test_routes_files(tmp_path: Path) -> None:
    text = tmp_path / "routes.txt"
    text.write_text("# default\n0.0.0.0/0 via nh1\n\n10.0.0.0/8 via nh2 port 3  # override\n")
    yml = tmp_path / "routes.yaml"
    yml.write_text("- {prefix: '2001:db8::/32', via: nh4}\n")
    el = router(via([("11.0.0.0/8", 5)]), routes_file=str(text))
    assert [r["prefix"] for r in el.call_handler("routes")] == [
        "11.0.0.0/8",
        "0.0.0.0/0",
        "10.0.0.0/8",
    ]
    assert process(el, [v4("10.0.0.1"), v4("11.0.0.1"), v4("12.0.0.1")])[0] == [3, 1, 1]
    el = router([], routes_file=str(yml))
    assert process(el, [v6("2001:db8::1")])[0] == [0]


def test_relative_routes_file_resolves_against_base_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "svc"
    folder.mkdir()
    (folder / "routes.txt").write_text("0.0.0.0/0 via gw\n")
    monkeypatch.chdir(tmp_path)  # not the folder of the routes file
    config = {
        "neighbours": [{"name": "gw", "mac": "02:00:00:00:00:01", "port": "out"}],
        "routes_file": "routes.txt",
    }
    el = Router.configure("r", config, base_dir=folder)
    assert el.call_handler("routes")[0]["prefix"] == "0.0.0.0/0"
    assert el.call_handler("config")["routes_file"] == str(folder / "routes.txt")


def test_routes_file_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("0.0.0.0/0 via nh1\n10.0.0.0/33 via nh1\n11.0.0.0/8 via nh77\n")
    with pytest.raises(ValidationError) as info:
        router([], routes_file=str(bad))
    assert f"{bad}:2.prefix: '10.0.0.0/33' is not an IPv4 or IPv6 prefix" in str(info.value)
    bad.write_text("0.0.0.0/0 via nh1\n11.0.0.0/8 via nh77\n")
    with pytest.raises(ValidationError, match=rf"{bad}:2\.via: 'nh77' is not a declared"):
        router([], routes_file=str(bad))
    with pytest.raises(ValidationError, match="cannot read"):
        router([], routes_file=str(tmp_path / "missing.txt"))
    yml = tmp_path / "bad.yaml"
    yml.write_text("- {prefix: 10.0.0.0/8, via: nh1}\n- {prefix: 10.0.0.0/8, gw: nh1}\n")
    with pytest.raises(ValidationError, match=r"bad\.yaml\[1\]\.gw: Extra inputs"):
        router([], routes_file=str(yml))


NB = [{"name": "gw", "address": "198.18.0.1", "mac": "02:00:00:00:00:01"}]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"routes": [{"prefix": "198.18.0.1/15", "port": "out"}]},
            r"'198\.18\.0\.1/15' has host bits set \(did you mean 198\.18\.0\.0/15\?\)",
        ),
        ({"routes": [{"prefix": "198.18.0.0/33", "port": "out"}]}, "is not an IPv4 or IPv6"),
        ({"routes": [{"prefix": "bogus", "port": "out"}]}, "'bogus' is not an IPv4 or IPv6"),
        (
            {"routes": [{"prefix": "10.0.0.0/8", "via": "gw9"}], "neighbours": NB},
            r"routes\[0\]\.via: 'gw9' is not a declared neighbour \(gw\)",
        ),
        (
            {
                "routes": [{"prefix": "10.0.0.0/8", "via": "198.18.0.2", "port": 0}],
                "neighbours": NB,
            },
            r"routes\[0\]\.via: '198\.18\.0\.2' is not a declared",
        ),
        (
            {"routes": [{"prefix": "10.0.0.0/8", "port": "wan"}]},
            r"routes\[0\]\.port: 'wan' is not a port \(ports: out\)",
        ),
        (
            {"routes": [{"prefix": "10.0.0.0/8", "port": 1}]},
            r"routes\[0\]\.port: port index 1 is out of range \(ports: 0\.\.0\)",
        ),
        (
            {"routes": [{"prefix": "10.0.0.0/8", "via": "gw"}], "neighbours": NB},
            r"routes\[0\]\.port: missing \(its neighbour has no port",
        ),
        ({"routes": [{"prefix": "10.0.0.0/8"}]}, r"routes\[0\]\.port: missing \(it is connected"),
        (
            {"routes": [{"prefix": "10.0.0.0/8", "port": 0}, {"prefix": "10.0.0.0/8", "port": 0}]},
            r"routes\[1\]\.prefix: 10\.0\.0\.0/8 duplicates routes\[0\]",
        ),
        ({"ports": ["a", "a"]}, r"ports\[1\]\.name: duplicate port name 'a'"),
        ({"ports": []}, "at least 1 item"),
        ({"arp_port": "ctl"}, r"arp_port: 'ctl' is not a port \(ports: out\)"),
        ({"neighbours": [{"mac": "02:00:00:00:00:01"}]}, "needs a name or an address"),
        ({"neighbours": [{"name": "x", "mac": "02:00:00:00:00"}]}, "is not a MAC address"),
        (
            {"neighbours": [{"name": "x", "mac": "02:00:00:00:00:01", "port": "wan"}]},
            r"neighbours\[0\]\.port: 'wan' is not a port",
        ),
        (
            {"neighbours": [*NB, {"name": "gw", "mac": "02:00:00:00:00:02"}]},
            r"neighbours\[1\]\.name: duplicate neighbour name 'gw'",
        ),
        (
            {"neighbours": [*NB, {"address": "198.18.0.1", "mac": "02:00:00:00:00:02"}]},
            r"neighbours\[1\]\.address: duplicate neighbour address 198\.18\.0\.1",
        ),
        ({"routes": [{"prefix": "10.0.0.0/8", "gateway": "gw"}]}, "Extra inputs"),
    ],
)
def test_bad_config_is_rejected_precisely(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Router.configure("r", config)


def test_every_resolution_error_is_reported() -> None:
    with pytest.raises(ValidationError) as info:
        Router.configure(
            "r",
            {
                "routes": [
                    {"prefix": "10.0.0.0/8", "via": "a", "port": 0},
                    {"prefix": "11.0.0.0/8", "port": "x"},
                ]
            },
        )
    assert "routes[0].via" in str(info.value) and "routes[1].port" in str(info.value)


def test_config_round_trips() -> None:
    el = router(via(V4_ROUTES[:3]), arp_port="p1")
    again = Router.configure("r1", el.call_handler("config"))
    assert again.call_handler("routes") == el.call_handler("routes")
    assert again.cfg.port_macs() == [port_mac(i) for i in range(4)]


# benchmark setup ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [4, 6])
def test_benchmark_setup_routes_every_packet(version: int) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_router.py"
    spec = importlib.util.spec_from_file_location("bench_router", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_router", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    el, batches = bench.build(flows=50, routes=300, version=version, packets=300, batch=128)
    assert [len(b) for b in batches] == [128, 128, 44]
    assert len(el.call_handler("routes")) == 301
    for b in batches:
        assert verify_checksums(b).all()
        el.process(b)
        assert ((b.fate >= 0) & (b.fate < 4)).all()
        assert verify_checksums(b).all()
        assert (b.length == 64).all()
