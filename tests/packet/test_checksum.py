"""Checksums: verification and repair against scapy's values, and RFC 1624 incremental updates
equal to full recomputation."""

from __future__ import annotations

from ipaddress import IPv4Address

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet

from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.checksum import (
    csum_add,
    csum_fold,
    csum_update16,
    csum_update32,
    fix_checksums,
    ipv4_header_checksum,
    verify_checksums,
)
from nfvkit.packet.parse import parse_batch


def eth() -> Packet:
    """An Ethernet header with fixed addresses (so scapy does not resolve any)."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


A4, B4 = "198.18.0.1", "198.19.7.9"
A6, B6 = "2001:db8::1", "2001:db8:1::2"

GOOD: list[Packet] = [
    eth() / IP(src=A4, dst=B4) / TCP(sport=1, dport=2) / b"abc",
    eth() / IP(src=A4, dst=B4, options=b"\x01" * 4) / UDP(sport=1, dport=2) / b"odd",
    eth() / IP(src=A4, dst=B4) / ICMP(id=5) / b"ping",
    eth() / Dot1Q(vlan=3) / IPv6(src=A6, dst=B6) / TCP() / b"x",
    eth() / IPv6(src=A6, dst=B6) / IPv6ExtHdrDestOpt() / UDP() / b"hello",
    eth() / IPv6(src=A6, dst=B6) / ICMPv6EchoRequest(id=9) / b"ping!",
]


def parsed(packets: list[Packet | bytes]) -> PacketBatch:
    batch = PacketBatch.from_packets([bytes(p) for p in packets])
    parse_batch(batch)
    return batch


def words_sum(words: list[int]) -> int:
    """Reference one's complement sum of 16-bit words."""
    acc = 0
    for w in words:
        acc += w
        acc = (acc & 0xFFFF) + (acc >> 16)
    return acc


def words_checksum(words: list[int]) -> int:
    return ~words_sum(words) & 0xFFFF


def test_scapy_packets_verify() -> None:
    assert verify_checksums(parsed(list(GOOD))).all()


@pytest.mark.parametrize("index", range(len(GOOD)))
def test_corruption_is_detected_and_fix_restores_scapys_bytes(index: int) -> None:
    raw = bytes(GOOD[index])
    batch = parsed([raw])
    start = int(batch.offset[0])
    batch.data[start + len(raw) - 1] ^= 0x5A  # last payload byte
    assert not verify_checksums(batch)[0]
    fix_checksums(batch)
    assert verify_checksums(batch)[0]
    batch.data[start + len(raw) - 1] ^= 0x5A
    fix_checksums(batch)
    assert batch.packet(0) == raw


def test_ipv4_header_corruption_is_detected() -> None:
    batch = parsed([GOOD[0]])
    batch.data[int(batch.offset[0]) + 14 + 8] ^= 1  # TTL
    assert not verify_checksums(batch)[0]


def test_fix_writes_what_scapy_computes_from_zeroed_fields() -> None:
    zeroed = [p.copy() for p in GOOD]
    for p in zeroed:
        for layer in (IP, TCP, UDP, ICMP):
            if layer in p:
                p[layer].chksum = 0
        if ICMPv6EchoRequest in p:
            p[ICMPv6EchoRequest].cksum = 0
    batch = parsed(list(zeroed))
    assert not verify_checksums(batch).any()
    fix_checksums(batch)
    assert batch.packets() == [bytes(p) for p in GOOD]


def test_udp_zero_checksum_is_valid_over_ipv4_only() -> None:
    batch = parsed(
        [
            eth() / IP(src=A4, dst=B4) / UDP(chksum=0) / b"x",
            eth() / IPv6(src=A6, dst=B6) / UDP(chksum=0) / b"x",
        ]
    )
    assert verify_checksums(batch).tolist() == [True, False]


def test_computed_zero_udp_checksum_is_sent_as_ffff() -> None:
    pkt = eth() / IP(src=A4, dst=B4) / UDP(sport=0, dport=0, chksum=0)
    raw = bytearray(bytes(pkt))
    batch = parsed([bytes(raw)])
    fix_checksums(batch)
    value = int.from_bytes(batch.packet(0)[40:42], "big")
    # find payload bytes that make the sum -0: put the complement of the rest into sport
    start = int(batch.offset[0])
    batch.data[start + 34 : start + 36] = np.frombuffer(value.to_bytes(2, "big"), np.uint8)
    batch.data[start + 40 : start + 42] = 0
    fix_checksums(batch)
    assert batch.packet(0)[40:42] == b"\xff\xff"
    assert verify_checksums(batch)[0]


def test_non_ip_is_valid_and_malformed_is_not() -> None:
    batch = parsed([eth() / ARP(), b"\x00" * 5])
    assert verify_checksums(batch).tolist() == [True, False]


def test_fragments_check_the_ip_header_only() -> None:
    frag4 = eth() / IP(src=A4, dst=B4, flags="MF") / UDP(chksum=0x1234) / b"abcd"
    frag6 = eth() / IPv6() / IPv6ExtHdrFragment(m=1) / UDP(chksum=0x1234) / b"abcd"
    batch = parsed([frag4, frag6])
    assert verify_checksums(batch).all()
    before = batch.packets()
    fix_checksums(batch)
    assert batch.packets() == before


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.integers(0, 10).map(lambda k: b"\x01" * (4 * k)),
)
def test_ipv4_header_checksum_matches_scapy(
    src: int, dst: int, ttl: int, ident: int, opts: bytes
) -> None:
    raw = bytes(
        IP(src=str(IPv4Address(src)), dst=str(IPv4Address(dst)), ttl=ttl, id=ident, options=opts)
    )
    data = np.frombuffer(raw, dtype=np.uint8)
    assert ipv4_header_checksum(data, 0, (raw[0] & 15) * 4) == int.from_bytes(raw[10:12], "big")


# RFC 1624 incremental update ----------------------------------------------------------------


def test_rfc1624_section4_example() -> None:
    # HC = 0xDD2F, m = 0x5555 -> m' = 0x3285: eqn. 3 gives 0x0000 (eqn. 2 would give 0xFFFF)
    assert csum_update16(0xDD2F, 0x5555, 0x3285) == 0x0000


def test_unchanged_field_keeps_a_zero_checksum() -> None:
    # RFC 1624 errata 4782 worries that HC = 0 with m' = m becomes 0xFFFF: it does not
    assert csum_update16(0x0000, 0x5555, 0x5555) == 0x0000
    assert csum_update32(0x0000, 0xC6120001, 0xC6120001) == 0x0000


def test_csum_add_handles_odd_lengths() -> None:
    data = np.frombuffer(b"\x12\x34\x56", dtype=np.uint8)
    assert csum_fold(csum_add(data, 0, 3, 0)) == 0x1234 + 0x5600


words = st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=40)


def make_zero_sum(ws: list[int]) -> list[int]:
    """Append a word so that the full checksum of the list is 0x0000 (sum is -0)."""
    return [*ws, ~words_sum(ws) & 0xFFFF]


@given(words, st.data(), st.booleans())
def test_incremental16_equals_full_recomputation(
    ws: list[int], data: st.DataObject, zero: bool
) -> None:
    if zero:
        ws = make_zero_sum(ws)
    j = data.draw(st.integers(0, len(ws) - 1))
    new = data.draw(
        st.sampled_from([0x0000, 0xFFFF, ws[j], ~ws[j] & 0xFFFF]) | st.integers(0, 0xFFFF)
    )
    after = [*ws[:j], new, *ws[j + 1 :]]
    assume(any(after))  # all-zero data is the one case where the representations of 0 differ
    assert csum_update16(words_checksum(ws), ws[j], new) == words_checksum(after)


@given(words, st.data(), st.integers(0, 2**32 - 1))
def test_incremental32_equals_full_recomputation(
    ws: list[int], data: st.DataObject, new: int
) -> None:
    j = data.draw(st.integers(0, len(ws) - 2))
    old = ws[j] << 16 | ws[j + 1]
    after = [*ws[:j], new >> 16, new & 0xFFFF, *ws[j + 2 :]]
    assume(any(after))
    assert csum_update32(words_checksum(ws), old, new) == words_checksum(after)


@given(words)
def test_incremental_to_a_zero_checksum(ws: list[int]) -> None:
    # change the last word so that the new full checksum is exactly 0x0000
    target = make_zero_sum(ws[:-1])
    assume(any(target))
    assert words_checksum(target) == 0x0000
    assert csum_update16(words_checksum(ws), ws[-1], target[-1]) == 0x0000
