"""The ``lb`` element: Maglev population, balance, weights and disruption; connection table,
health, L3 / SNAT / DSR rewrites (golden bytes), the reply path, drops, export/import."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from nfvkit.elements.lb import NO_BACKEND, TUPLE_IN_USE, Lb
from nfvkit.elements.lblib.maglev import build_table, is_prime, lookup, next_prime, populate
from nfvkit.elements.registry import element_class
from nfvkit.errors import HandlerError
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.checksum import verify_checksums
from nfvkit.packet.flow import flow_hash
from nfvkit.packet.parse import parse_batch
from nfvkit.testing import run_element
from nfvkit.vnf.state import StateSnapshot

VIP = "198.18.0.10"
SEC = 1_000_000_000


# helpers ------------------------------------------------------------------------------------


def eth(**fields: Any) -> Any:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **fields)


def backends(n: int, port: int | None = None, **extra: Any) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        b: dict[str, Any] = {"name": f"b{i}", "address": f"198.19.0.{i + 1}", **extra}
        if port is not None:
            b["port"] = port
        b["mac"] = f"02:00:00:00:01:{i + 1:02x}"
        out.append(b)
    return out


def make(n: int = 4, **cfg: Any) -> Lb:
    raw: dict[str, Any] = {"vip": {"address": VIP}, "backends": backends(n), "table_size": 251}
    raw.update(cfg)
    el = Lb.configure("lb", raw)
    assert isinstance(el, Lb)
    el.initialize()
    return el


def tcp(
    src: str, sport: int, dst: str = VIP, dport: int = 80, flags: str = "S", load: bytes = b""
) -> bytes:
    pkt = eth() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)
    return bytes(pkt / load)


def push(el: Lb, pkts: list[bytes], ts: list[int] | None = None) -> PacketBatch:
    """Parse ``pkts`` into a batch, run it through ``el``, return the batch."""
    batch = PacketBatch.from_packets(pkts, ts=ts or [0] * len(pkts))
    parse_batch(batch)
    assert (batch.fate == 0).all()
    el.process(batch)
    return batch


def dst_of(batch: PacketBatch) -> list[str]:
    return [Ether(p)[IP].dst for p in batch.packets()]


def client_flows(n: int, seed: int = 1) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [
        tcp(f"198.18.{int(a)}.{int(b)}", int(p))
        for a, b, p in zip(
            rng.integers(1, 250, n),
            rng.integers(1, 250, n),
            rng.integers(1024, 65535, n),
            strict=True,
        )
    ]


def refilled(pkt: bytes) -> bytes:
    """``pkt`` with its checksums recomputed by scapy."""
    p = Ether(pkt)
    for layer in (IP, TCP, UDP):
        if layer in p:
            del p[layer].chksum
    return bytes(p)


# Maglev population --------------------------------------------------------------------------


def paper_populate(perms: list[list[int]], m: int, weights: list[int] | None = None) -> list[int]:
    """Pseudocode 1 of the Maglev paper, literally (with the credit weights when given)."""
    n = len(perms)
    w = weights or [1] * n
    nxt, entry, credit, filled = [0] * n, [-1] * m, [0] * n, 0
    while True:
        for i in range(n):
            credit[i] += w[i]
            if credit[i] < max(w):
                continue
            credit[i] -= max(w)
            c = perms[i][nxt[i]]
            while entry[c] >= 0:
                nxt[i] += 1
                c = perms[i][nxt[i]]
            entry[c] = i
            nxt[i] += 1
            filled += 1
            if filled == m:
                return entry


def paper_perms(names: list[str], m: int) -> list[list[int]]:
    out = []
    for name in names:
        d = hashlib.blake2b(name.encode(), digest_size=16).digest()
        offset = int.from_bytes(d[:8], "big") % m
        skip = int.from_bytes(d[8:], "big") % (m - 1) + 1
        out.append([(offset + j * skip) % m for j in range(m)])
    return out


def test_population_reproduces_the_papers_table_1():
    # Table 1 of Eisenbud et al.: M = 7, B0 (offset 3, skip 4), B1 (0, 2), B2 (3, 1)
    offset = np.array([3, 0, 3], dtype=np.int64)
    skip = np.array([4, 2, 1], dtype=np.int64)
    ones = np.ones(3, dtype=np.int64)
    assert list(populate(offset, skip, ones, 7)) == [1, 0, 1, 0, 2, 2, 0]
    after = populate(offset[[0, 2]], skip[[0, 2]], ones[:2], 7)  # B1 removed
    assert [(0, 2)[k] for k in after] == [0, 0, 0, 0, 2, 2, 2]


@pytest.mark.parametrize(("m", "n"), [(13, 3), (17, 5), (101, 7), (1009, 40)])
def test_population_matches_the_pseudocode(m: int, n: int):
    names = [f"backend-{k}" for k in range(n)]
    table, order = build_table(names[::-1], [1] * n, m)  # any input order
    expect = paper_populate(paper_perms(sorted(names), m), m)
    assert [names[::-1][k] for k in table] == [sorted(names)[k] for k in expect]
    assert sorted(names[::-1][k] for k in order) == sorted(names)


def test_weighted_population_matches_the_credit_scheme():
    names, weights, m = ["a", "b", "c"], [3, 1, 2], 101
    table, _ = build_table(names, weights, m)
    expect = paper_populate(paper_perms(names, m), m, weights)
    assert list(table) == expect


def test_table_size_must_be_prime():
    assert is_prime(65537) and not is_prime(65536) and next_prime(65536) == 65537
    with pytest.raises(ValidationError, match=r"not prime.*65537"):
        make(table_size=65536)
    with pytest.raises(ValueError, match="not prime"):
        build_table(["a"], [1], 100)


def test_equal_backends_share_the_table_evenly():
    table, _ = build_table([f"be{k}" for k in range(16)], [1] * 16, 65537)
    counts = np.bincount(table, minlength=16)
    assert counts.sum() == 65537
    assert counts.max() / counts.mean() <= 1.02


def test_weights_set_the_shares():
    weights = [1, 2, 3, 4, 10]
    table, _ = build_table([f"w{k}" for k in range(5)], weights, 65537)
    share = np.bincount(table, minlength=5) / 65537
    expect = np.array(weights) / sum(weights)
    assert np.allclose(share, expect, rtol=0.02)


def test_removing_one_backend_moves_about_one_nth_of_the_table():
    names = [f"be{k}" for k in range(16)]
    before, _ = build_table(names, [1] * 16, 65537)
    after, _ = build_table(names[1:], [1] * 15, 65537)
    after = after + 1  # indices into names[1:] -> into names
    changed = before != after
    assert np.all(changed[before == 0])  # the removed backend's entries all move
    assert changed.mean() <= 1 / 16 + 0.01
    others = changed[before != 0].mean()
    assert 0 < others <= 0.01  # Maglev is not perfectly minimal, but close


def test_element_uses_table_of_the_flow_hash():
    el = make(8, table_size=65537)
    pkts = client_flows(200)
    batch = PacketBatch.from_packets(pkts)
    parse_batch(batch)
    hashes = flow_hash(batch, seed=el.cfg.seed).copy()
    expect = [f"198.19.0.{s + 1}" for s in lookup(el.pool.dispatch.table, hashes)]
    assert dst_of(push(el, pkts)) == expect


# connection table and health ----------------------------------------------------------------


def test_flows_keep_their_backend_when_a_backend_joins():
    el = make(4, table_size=65537)
    pkts = client_flows(400)
    first = dst_of(push(el, pkts))
    joined = [*backends(4), {"name": "b9", "address": "198.19.0.99"}]
    assert el.write_backends(joined) == {"flows_redispatched": 0, "flushed": []}
    assert dst_of(push(el, pkts)) == first
    fresh = make(4, table_size=65537)
    fresh.write_backends(joined)
    moved = dst_of(push(fresh, pkts))
    assert 0 < sum(a != b for a, b in zip(first, moved, strict=True)) < 200
    assert "198.19.0.99" in moved  # new flows do reach the new backend


def test_drain_keeps_flows_down_redispatches_them():
    el = make(4, table_size=65537)
    pkts = client_flows(400)
    first = dst_of(push(el, pkts))
    on_b0 = [i for i, d in enumerate(first) if d == "198.19.0.1"]
    assert on_b0
    assert el.write_health({"b0": "drain"}) == {"flows_redispatched": 0, "flushed": []}
    assert dst_of(push(el, pkts)) == first
    new = dst_of(push(el, client_flows(400, seed=2)))
    assert "198.19.0.1" not in new
    report = {b["name"]: b for b in el.read_backends()}
    assert report["b0"]["state"] == "drain" and report["b0"]["table_share"] == 0
    assert report["b0"]["flows"] == len(on_b0)
    assert el.write_health({"b0": "down"}) == {"flows_redispatched": len(on_b0), "flushed": ["b0"]}
    again = dst_of(push(el, pkts))
    assert all(again[i] != "198.19.0.1" for i in on_b0)
    assert [a for i, a in enumerate(again) if i not in on_b0] == [
        a for i, a in enumerate(first) if i not in on_b0
    ]
    assert el.read_stats()["flows_redispatched"] == len(on_b0)
    assert el.read_config()["backends"][0]["state"] == "down"


def test_all_down_drops_new_flows_only():
    el = make(2)
    old = tcp("198.18.1.1", 1000)
    push(el, [old])
    el.write_health({"b0": "drain", "b1": "drain"})
    batch = push(el, [old, tcp("198.18.1.2", 1000)])
    assert list(batch.fate) == [0, NO_BACKEND.fate]  # the old flow still reaches its backend
    assert el.read_table()["backends"] == 0
    assert el.read_state()["flows"]["live"] == 1  # the refused flow left no entry
    r = run_element(make(2, backends=[{**b, "state": "down"} for b in backends(2)]), [old])
    assert r.drops == {"lb_no_backend": 1} and not r.outputs


# golden bytes -------------------------------------------------------------------------------


def udp(src: str, sport: int, dst: str = VIP, dport: int = 53, load: bytes = b"q") -> bytes:
    return bytes(eth() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / load)


def test_l3_rewrite_golden_bytes_tcp_and_udp():
    el = make(1, backends=backends(1, port=8080))
    r = run_element(el, [tcp("198.18.1.1", 40000, load=b"hello"), udp("198.18.1.1", 5353)])
    assert r.outputs["out"] == [
        refilled(tcp("198.18.1.1", 40000, dst="198.19.0.1", dport=8080, load=b"hello")),
        refilled(udp("198.18.1.1", 5353, dst="198.19.0.1", dport=8080)),
    ]
    assert verify_checksums(r.batches[0][1]).all()
    b = r.batches[0][1]
    assert list(b.dport) == [8080, 8080] and list(b.dst[:, 3]) == [0xC6130001] * 2


def test_udp_without_checksum_keeps_none_and_ipv6_is_rewritten():
    el = make(1)
    raw = eth() / IP(src="198.18.1.1", dst=VIP) / UDP(sport=1, dport=2, chksum=0) / b"x"
    out = run_element(el, [bytes(raw)]).outputs["out"][0]
    assert Ether(out)[UDP].chksum == 0 and Ether(out)[IP].dst == "198.19.0.1"
    v6 = make(
        1,
        vip={"address": "2001:db8::10", "port": 443},
        backends=[{"name": "s", "address": "2001:db8:1::5", "port": 8443}],
    )
    pkt = eth() / IPv6(src="2001:db8:2::7", dst="2001:db8::10") / TCP(sport=3, dport=443)
    r = run_element(v6, [bytes(pkt)])
    want = eth() / IPv6(src="2001:db8:2::7", dst="2001:db8:1::5") / TCP(sport=3, dport=8443)
    assert r.outputs["out"] == [bytes(want)]
    assert verify_checksums(r.batches[0][1]).all()


def test_reply_translation_is_exact_for_a_tcp_conversation():
    el = make(1, backends=backends(1, port=8080))
    c, s = ("198.18.7.7", 33000), ("198.19.0.1", 8080)
    talk = [
        ("c", "S", b""), ("s", "SA", b""), ("c", "A", b""), ("c", "PA", b"GET /"),
        ("s", "PA", b"200 OK"), ("c", "FA", b""), ("s", "FA", b""), ("c", "A", b""),
    ]  # fmt: skip
    for who, flags, load in talk:
        if who == "c":
            pkt = tcp(c[0], c[1], flags=flags, load=load)
            want = tcp(c[0], c[1], dst=s[0], dport=s[1], flags=flags, load=load)
        else:
            pkt = tcp(s[0], s[1], dst=c[0], dport=c[1], flags=flags, load=load)
            want = tcp(VIP, 80, dst=c[0], dport=c[1], flags=flags, load=load)
        batch = push(el, [pkt])
        assert batch.packet(0) == refilled(want), (who, flags)
        assert verify_checksums(batch).all() and batch.fate[0] == 0
    assert el.read_stats()["reply_packets"] == 3
    assert el.read_stats()["new_flows"] == 1


def _addresses(v6: bool, host: int) -> tuple[str, str, str, str]:
    """VIP, client, backend and SNAT addresses of one family."""
    if v6:
        return "2001:db8::10", f"2001:db8:2::{host:x}", "2001:db8:1::5", "2001:db8:ff::1"
    return VIP, f"198.18.{host >> 8}.{host & 255}", "198.19.0.1", "198.19.255.1"


def _packet(v6: bool, udp: bool, src: str, dst: str, sport: int, dport: int, load: bytes) -> bytes:
    l3 = IPv6(src=src, dst=dst) if v6 else IP(src=src, dst=dst)
    l4 = UDP(sport=sport, dport=dport) if udp else TCP(sport=sport, dport=dport, flags="PA")
    return bytes(eth() / l3 / l4 / load)


@settings(max_examples=60)
@given(
    v6=st.booleans(),
    udp=st.booleans(),
    snat=st.booleans(),
    host=st.integers(1, 0xFFFE),
    sport=st.integers(1, 65535),
    vport=st.integers(1, 65535),
    bport=st.none() | st.integers(1, 65535),
    load=st.binary(max_size=24),
)
def test_forward_then_reply_round_trips_exactly(
    v6: bool, udp: bool, snat: bool, host: int, sport: int, vport: int, bport: int | None,
    load: bytes,
):  # fmt: skip
    vip, client, server, snat_addr = _addresses(v6, host)
    el = make(
        1,
        vip={"address": vip, "port": vport},
        backends=[{"name": "s", "address": server, "port": bport}],
        snat=snat_addr if snat else None,
    )
    fwd = push(el, [_packet(v6, udp, client, vip, sport, vport, load)])
    assert fwd.fate[0] == 0 and verify_checksums(fwd).all()
    ip = fwd.packet(0)[14:]
    l4 = Ether(fwd.packet(0))[UDP if udp else TCP]
    got = (str(Ether(fwd.packet(0))[IPv6 if v6 else IP].src), l4.dport)
    assert got == (snat_addr if snat else client, vport if bport is None else bport)
    assert (l4.sport == sport) or (snat and sport < 1024)
    assert ip.endswith(load)
    reply = _packet(v6, udp, server, got[0], l4.dport, l4.sport, load)
    back = push(el, [reply])
    assert back.packet(0) == _packet(v6, udp, vip, client, vport, sport, load)
    assert verify_checksums(back).all()


def test_snat_translates_both_ways_and_allocates_ports():
    el = make(1, backends=backends(1, port=8080), snat="198.19.255.1", snat_ports=[2000, 2001])
    a = push(el, [tcp("198.18.1.1", 2000), tcp("198.18.1.2", 2000), tcp("198.18.1.3", 2000)])
    got = [Ether(p) for p in a.packets()]
    assert [(p[IP].src, p[IP].dst, p[TCP].dport) for p in got[:2]] == [
        ("198.19.255.1", "198.19.0.1", 8080)
    ] * 2
    assert got[0][TCP].sport == 2000  # the client's own port when free
    assert got[1][TCP].sport == 2001  # then another from the range
    assert a.fate[2] == TUPLE_IN_USE.fate  # the range is used up
    assert verify_checksums(a).all()
    reply = tcp("198.19.0.1", 8080, dst="198.19.255.1", dport=2001, flags="SA")
    back = push(el, [reply])
    assert back.packet(0) == refilled(tcp(VIP, 80, dst="198.18.1.2", dport=2000, flags="SA"))
    assert list(back.sport) == [80] and list(back.dport) == [2000]


def test_dsr_rewrites_only_the_destination_mac():
    el = make(2, mode="dsr", backends=backends(1))
    pkt = tcp("198.18.1.1", 1234, load=b"abc")
    out = run_element(el, [pkt]).outputs["out"][0]
    assert out == bytes.fromhex("020000000101") + pkt[6:]


def test_other_packets_pass_untouched():
    el = make(2, vip={"address": VIP, "port": 80, "proto": "tcp"})
    others = [
        tcp("198.18.1.1", 1234, dst="198.18.0.11"),  # another address
        tcp("198.18.1.1", 1234, dport=81),  # another port
        bytes(eth() / IP(src="198.18.1.1", dst=VIP) / UDP(sport=1, dport=80)),
        bytes(eth() / IP(src="198.18.1.1", dst=VIP) / ICMP()),
        bytes(eth(type=0x88CC) / (b"\x00" * 50)),
    ]
    r = run_element(el, others)
    assert r.outputs["out"] == others and not r.drops
    assert el.read_stats()["passed"] == 5


def test_drops_fragments_non_tcp_udp_and_refused_flows():
    el = make(2)
    frag = bytes(eth() / IP(src="198.18.1.1", dst=VIP, flags="MF") / UDP() / (b"x" * 8))
    icmp = bytes(eth() / IP(src="198.18.1.1", dst=VIP) / ICMP())
    r = run_element(el, [frag, icmp])
    assert r.drops == {"lb_fragment": 1, "lb_unsupported": 1}
    small = make(2, max_flows=2)
    r = run_element(small, client_flows(5))
    assert r.drops == {"lb_table_full": 3} and r.count("out") == 2


# expiry, export / import --------------------------------------------------------------------


def test_expired_flow_loses_its_reply_entry():
    el = make(1, idle_timeout=10)
    push(el, [tcp("198.18.1.1", 1000)], ts=[0])
    reply = tcp("198.19.0.1", 80, dst="198.18.1.1", dport=1000, flags="SA")
    assert Ether(push(el, [reply], ts=[5 * SEC]).packet(0))[IP].src == VIP  # refreshed at 5 s
    assert Ether(push(el, [reply], ts=[14 * SEC]).packet(0))[IP].src == VIP
    el.tables["flows"].sweep(30 * SEC)  # retires the flow (as a full table's sweep would)
    out = push(el, [reply], ts=[31 * SEC])
    assert out.packet(0) == reply  # not translated any more
    assert el.read_state()["flows"]["expired"] == 1


def test_export_import_keeps_flows_on_the_same_backends():
    a = make(4, table_size=65537, snat="198.19.255.1")
    pkts = client_flows(300)
    first = push(a, pkts)
    data = a.export_state().to_bytes()
    joined = [{"name": "z", "address": "198.19.0.50"}, *backends(4)[::-1]]
    b = make(4, table_size=65537, snat="198.19.255.1", backends=joined)
    assert dst_of(push(make(4, table_size=65537, backends=joined), pkts)) != dst_of(first)
    result = b.import_state(StateSnapshot.from_bytes(data))
    assert (result.added, result.refused) == (300, 0)
    again = push(b, pkts)
    assert again.packets() == first.packets()  # same backend, same SNAT port, same bytes
    assert b.read_stats()["new_flows"] == 0
    p = Ether(first.packet(0))
    reply = tcp(p[IP].dst, 80, dst="198.19.255.1", dport=p[TCP].sport, flags="SA")
    assert Ether(push(b, [reply]).packet(0))[IP].dst == Ether(pkts[0])[IP].src


def test_import_skips_flows_of_unknown_backends():
    a = make(2, table_size=65537)
    pkts = client_flows(100)
    on = dst_of(push(a, pkts))
    b = make(1, table_size=65537)  # only b0
    result = b.import_state(a.export_state())
    assert result.refused == on.count("198.19.0.2") and result.added == on.count("198.19.0.1")


# configuration and handlers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"vip": None}, "at least one VIP"),
        ({"mode": "dsr", "backends": [{"name": "x", "address": "198.19.0.1"}]}, "needs a mac"),
        ({"mode": "dsr", "snat": "198.19.255.1"}, "snat needs mode l3"),
        ({"backends": [{"name": "x", "address": "2001:db8::1"}]}, "one address family"),
        ({"backends": backends(1) * 2}, "used twice"),
        ({"table_size": 3}, "must exceed"),
        ({"vips": [{"address": VIP}]}, "listed twice"),
        ({"snat_ports": [5, 1]}, "not a range"),
    ],
)
def test_config_errors(cfg: dict[str, Any], message: str):
    with pytest.raises(ValidationError, match=message):
        make(4, **cfg)


def test_handlers_report_and_reject():
    el = make(3, backends=[*backends(2), {"name": "heavy", "address": "198.19.0.9", "weight": 2}])
    push(el, client_flows(50))
    report = el.read_backends()
    assert [b["name"] for b in report] == ["b0", "b1", "heavy"]
    assert sum(b["flows"] for b in report) == 50 == sum(b["packets"] for b in report)
    assert report[2]["table_share"] == pytest.approx(0.5, abs=0.03)
    table = el.read_table()
    assert table["size"] == 251 and table["backends"] == 3 and table["build_seconds"] >= 0
    assert el.read_state()["flows"]["live"] == 50
    with pytest.raises(HandlerError, match="no backend named nope"):
        el.write_health({"nope": "down"})
    with pytest.raises(HandlerError, match="expected a mapping"):
        el.write_health({"b0": "sideways"})
    with pytest.raises(HandlerError, match="set_backends"):
        el.write_backends([{"name": "x"}])
    assert el.call_handler("set_health", {"b1": "down"})["flushed"] == ["b1"]
    assert element_class("lb") is Lb
