"""Flow keys and hashes: MurmurHash3 of the 37-byte key, symmetry, seeds, non-IP frames."""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet, Raw

from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.flow import FLOW_KEY_DTYPE, flow_hash, flow_keys, hash_row, hash_row_symmetric
from nfvkit.packet.parse import parse_batch

M1 = "02:00:00:00:00:01"
M2 = "02:00:00:00:00:02"


def murmur3_32(key: bytes, seed: int = 0) -> int:
    """Reference MurmurHash3 x86_32."""
    c1, c2, m = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF

    def mix(k: int) -> int:
        k = (k * c1) & m
        k = ((k << 15) | (k >> 17)) & m
        return (k * c2) & m

    h = seed & m
    nblocks = len(key) // 4
    for (k,) in struct.iter_unpack("<I", key[: nblocks * 4]):
        h ^= mix(k)
        h = ((h << 13) | (h >> 19)) & m
        h = (h * 5 + 0xE6546B64) & m
    tail = key[nblocks * 4 :]
    if tail:
        h ^= mix(int.from_bytes(tail, "little"))
    h ^= len(key)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & m
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & m
    return h ^ (h >> 16)


def key_bytes(src: list[int], dst: list[int], sport: int, dport: int, proto: int) -> bytes:
    return struct.pack(">4I4IHHB", *src, *dst, sport, dport, proto)


def parsed(*packets: Packet | bytes) -> PacketBatch:
    batch = PacketBatch.from_packets([bytes(p) for p in packets])
    parse_batch(batch)
    return batch


def test_reference_murmur3_vectors() -> None:
    assert murmur3_32(b"") == 0
    assert murmur3_32(b"", 1) == 0x514E28B7
    assert murmur3_32(b"hello") == 0x248BFA47
    assert murmur3_32(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723


word = st.integers(0, 2**32 - 1)
addr = st.lists(word, min_size=4, max_size=4)
port = st.integers(0, 0xFFFF)


@given(addr, addr, port, port, st.integers(0, 255), word)
def test_hash_row_is_murmur3_of_the_key(
    src: list[int], dst: list[int], sp: int, dp: int, proto: int, seed: int
) -> None:
    s = np.array([src], dtype=np.uint32)
    d = np.array([dst], dtype=np.uint32)
    assert hash_row(s, d, 0, sp, dp, proto, seed) == murmur3_32(
        key_bytes(src, dst, sp, dp, proto), seed
    )
    sym = hash_row_symmetric(s, d, 0, sp, dp, proto, seed)
    assert sym == hash_row_symmetric(d, s, 0, dp, sp, proto, seed)
    assert sym in (hash_row(s, d, 0, sp, dp, proto, seed), hash_row(d, s, 0, dp, sp, proto, seed))


PAIRS: list[tuple[Packet, Packet]] = [
    (
        Ether(src=M1, dst=M2) / IP(src="198.18.0.1", dst="198.19.0.1") / TCP(sport=1000, dport=80),
        Ether(src=M2, dst=M1) / IP(src="198.19.0.1", dst="198.18.0.1") / TCP(sport=80, dport=1000),
    ),
    (
        Ether(src=M1, dst=M2)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / UDP(sport=53, dport=53),
        Ether(src=M2, dst=M1)
        / IPv6(src="2001:db8::2", dst="2001:db8::1")
        / UDP(sport=53, dport=53),
    ),
    (
        Ether(src=M1, dst=M2) / IP(src="198.18.0.1", dst="198.19.0.1") / ICMP(type=8, id=7),
        Ether(src=M2, dst=M1) / IP(src="198.19.0.1", dst="198.18.0.1") / ICMP(type=0, id=7),
    ),
    (
        Ether(src=M1, dst=M2)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / ICMPv6EchoRequest(id=3),
        Ether(src=M2, dst=M1) / IPv6(src="2001:db8::2", dst="2001:db8::1") / ICMPv6EchoReply(id=3),
    ),
    (Ether(src=M1, dst=M2) / ARP(op=1), Ether(src=M2, dst=M1) / ARP(op=2)),
    (
        Ether(src=M1, dst=M2, type=0x88CC) / Raw(bytes(40)),
        Ether(src=M2, dst=M1, type=0x88CC) / Raw(bytes(40)),
    ),
]


def test_symmetric_hash_is_the_same_both_ways_and_directional_is_not() -> None:
    batch = parsed(*[p for pair in PAIRS for p in pair])
    directional = flow_hash(batch).copy()
    symmetric = flow_hash(batch, symmetric=True).copy()
    assert (batch.hash == symmetric).all()
    assert (symmetric[0::2] == symmetric[1::2]).all()
    assert (directional[0::2] != directional[1::2]).all()
    assert len(set(symmetric[0::2].tolist())) == len(PAIRS)


def test_ipv4_hash_is_murmur3_of_the_mapped_key() -> None:
    batch = parsed(PAIRS[0][0])
    key = key_bytes([0, 0, 0xFFFF, 0xC6120001], [0, 0, 0xFFFF, 0xC6130001], 1000, 80, 6)
    assert flow_hash(batch, seed=42)[0] == murmur3_32(key, 42)


def test_non_ip_hash_uses_the_mac_addresses_and_ethertype() -> None:
    batch = parsed(PAIRS[5][0])
    key = key_bytes([0, 0, 0x0200, 0x00000001], [0, 0, 0x0200, 0x00000002], 0x88CC, 0x88CC, 0)
    assert flow_hash(batch)[0] == murmur3_32(key)


def test_malformed_packets_hash_to_zero() -> None:
    batch = parsed(
        b"", b"\x00" * 10, Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(ihl=3)
    )
    assert flow_hash(batch).tolist() == [0, 0, 0]


def test_seed_changes_the_hash() -> None:
    batch = parsed(PAIRS[0][0])
    assert flow_hash(batch, seed=1)[0] != flow_hash(batch, seed=2)[0]


def test_flow_keys() -> None:
    batch = parsed(PAIRS[0][0], PAIRS[1][1])
    keys = flow_keys(batch)
    assert keys.dtype == FLOW_KEY_DTYPE
    assert keys.dtype.itemsize == 37
    assert keys[0]["src"].tolist() == [0, 0, 0xFFFF, 0xC6120001]
    assert (int(keys[0]["sport"]), int(keys[0]["dport"]), int(keys[0]["proto"])) == (1000, 80, 6)
    assert keys[1]["src"].tolist() == [0x20010DB8, 0, 0, 2]
    assert int(keys[1]["proto"]) == 17


def test_hash_spreads_flows_evenly() -> None:
    n = 1 << 14
    src = np.zeros((n, 4), dtype=np.uint32)
    dst = np.zeros((n, 4), dtype=np.uint32)
    src[:, 2] = dst[:, 2] = 0xFFFF
    src[:, 3] = 0xC6120000 + np.arange(n) // 64
    dst[:, 3] = 0xC6130001
    hashes = np.array([hash_row(src, dst, i, 1024 + i % 64, 80, 6, 0) for i in range(n)])
    assert len(np.unique(hashes)) == n
    buckets = np.bincount(hashes & 63, minlength=64)
    expected = n / 64
    chi2 = float(((buckets - expected) ** 2 / expected).sum())
    assert chi2 < 120  # 63 degrees of freedom: p < 1e-5 above ~120
