"""Property tests of the parser: scapy's and dpkt's dissection as oracles, truncation at every
offset, and byte fuzzing (every packet ends parsed or dropped for a declared reason, and no
byte beyond a packet's length changes the result)."""

from __future__ import annotations

from typing import Any

import dpkt
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw

from nfvkit.packet import flags as F
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import PARSE_DROP_REASONS, parse_batch

COLUMNS = ("fate", "l3_off", "l4_off", "l7_off", "ip_len", "ethertype", "proto", "flags",
           "vlan", "src", "dst", "sport", "dport")  # fmt: skip
DECLARED = np.array([r.fate for r in PARSE_DROP_REASONS], dtype=np.int16)


def eth() -> Packet:
    """An Ethernet header with fixed addresses (so scapy does not resolve any)."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


u16 = st.integers(0, 0xFFFF)
ipv4 = st.integers(0, 2**32 - 1).map(
    lambda v: ".".join(str((v >> s) & 255) for s in (24, 16, 8, 0))
)
ipv6 = st.binary(min_size=16, max_size=16).map(
    lambda b: ":".join(b[i : i + 2].hex() for i in range(0, 16, 2))
)


@st.composite
def l2(draw: st.DrawFn) -> Packet:
    pkt: Packet = eth()
    tags = draw(st.integers(0, 2))
    if tags == 2:
        pkt = pkt / Dot1AD(vlan=draw(st.integers(0, 4095)), prio=draw(st.integers(0, 7)))
    if tags >= 1:
        pkt = pkt / Dot1Q(vlan=draw(st.integers(0, 4095)), prio=draw(st.integers(0, 7)))
    return pkt


@st.composite
def l3(draw: st.DrawFn) -> tuple[Packet, bool]:
    if draw(st.booleans()):
        opts = b"\x01" * (4 * draw(st.integers(0, 3)))
        return IP(
            src=draw(ipv4), dst=draw(ipv4), ttl=draw(st.integers(1, 255)), options=opts
        ), False
    pkt: Packet = IPv6(src=draw(ipv6), dst=draw(ipv6), fl=draw(st.integers(0, 2**20 - 1)))
    if draw(st.booleans()):
        pkt = pkt / IPv6ExtHdrHopByHop()
    exts = [IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, IPv6ExtHdrFragment]
    for kind in draw(st.lists(st.sampled_from(exts), max_size=3)):
        if kind is IPv6ExtHdrFragment:
            pkt = pkt / IPv6ExtHdrFragment(offset=0, m=draw(st.integers(0, 1)))
        elif kind is IPv6ExtHdrRouting:
            pkt = pkt / IPv6ExtHdrRouting(addresses=[draw(ipv6)])
        else:
            pkt = pkt / kind()
    return pkt, True


@st.composite
def l4(draw: st.DrawFn, v6: bool) -> Packet:
    kind = draw(st.sampled_from(["tcp", "udp", "icmp", "other"]))
    if kind == "tcp":
        opts = [("NOP", None)] * draw(st.integers(0, 12))
        return TCP(sport=draw(u16), dport=draw(u16), options=opts)
    if kind == "udp":
        return UDP(sport=draw(u16), dport=draw(u16))
    if kind == "icmp":
        ident = draw(u16)
        return ICMPv6EchoRequest(id=ident) if v6 else ICMP(type=8, id=ident)
    return ICMP(type=3, code=draw(st.integers(0, 15))) if not v6 else ICMPv6EchoRequest()


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    net, v6 = draw(l3())
    pkt = draw(l2()) / net / draw(l4(v6)) / Raw(draw(st.binary(max_size=40)))
    return bytes(pkt) + bytes(draw(st.integers(0, 24)))


def parse(packets: list[bytes], fill: int = 0) -> PacketBatch:
    """Parse ``packets`` laid out in a buffer whose other bytes are all ``fill``."""
    room = 32
    lengths = np.array([len(p) for p in packets], dtype=np.int32)
    offsets = np.cumsum(np.concatenate(([room], lengths[:-1] + room))).astype(np.int64)
    data = np.full(int(lengths.sum()) + room * (len(packets) + 1), fill, dtype=np.uint8)
    for off, p in zip(offsets, packets, strict=True):
        data[off : off + len(p)] = np.frombuffer(p, dtype=np.uint8)
    batch = PacketBatch(data, offsets, lengths, headroom=room)
    parse_batch(batch)
    return batch


def columns(batch: PacketBatch) -> dict[str, Any]:
    return {c: getattr(batch, c).copy() for c in COLUMNS}


def oracle(raw: bytes) -> dict[str, Any]:
    """What scapy's dissection of ``raw`` says the columns must hold."""
    pkt = Ether(raw)
    tags = [
        t.prio << 13 | t.dei << 12 | t.vlan
        for t in (pkt.getlayer(Dot1AD), pkt.getlayer(Dot1Q))
        if t
    ]
    net = pkt.getlayer(IP) or pkt.getlayer(IPv6)
    assert net is not None
    l3_off = len(raw) - len(bytes(net))
    v6 = isinstance(net, IPv6)
    out = {
        "vlan": [*tags, 0, 0][:2],
        "l3_off": l3_off,
        "ip_len": 40 + net.plen if v6 else net.len,
        "ethertype": 0x86DD if v6 else 0x0800,
    }
    for layer, proto in ((TCP, 6), (UDP, 17), (ICMP, 1), (ICMPv6EchoRequest, 58)):
        seg = pkt.getlayer(layer)
        if seg is None:
            continue
        l4_off = len(raw) - len(bytes(seg))
        hdr = 8
        if layer is TCP:
            hdr = seg.dataofs * 4
        elif layer is ICMP and seg.type not in (0, 8):
            hdr = 4
        ports = (seg.sport, seg.dport) if layer in (TCP, UDP) else (getattr(seg, "id", 0),) * 2
        if layer is ICMP and seg.type not in (0, 8):
            ports = (0, 0)
        out.update(proto=proto, l4_off=l4_off, l7_off=l4_off + hdr, sport=ports[0], dport=ports[1])
        break
    return out


def dpkt_addresses(raw: bytes, l3_off: int, v6: bool) -> tuple[bytes, bytes]:
    """Source and destination address as dpkt's dissection gives them (IPv4 as 4 bytes).

    dpkt 1.9.8 trips over some IPv6 extension chains, so it sees the fixed IPv6 header only
    (next header = 59, payload length 0).
    """
    if v6:
        hdr = bytearray(raw[l3_off : l3_off + 40])
        hdr[4:7] = b"\x00\x00\x3b"
        ip = dpkt.ip6.IP6(bytes(hdr))
    else:
        ip = dpkt.ip.IP(raw[l3_off:])
    return bytes(ip.src), bytes(ip.dst)


def addr_bytes(words: np.ndarray, v6: bool) -> bytes:
    raw = b"".join(int(w).to_bytes(4, "big") for w in words)
    return raw if v6 else raw[12:]


# properties ---------------------------------------------------------------------------------


@given(frames())
def test_well_formed_packets_parse_like_the_oracles(raw: bytes) -> None:
    batch = parse([raw])
    assert batch.fate[0] == 0
    got = {c: getattr(batch, c)[0] for c in COLUMNS}
    want = oracle(raw)
    for name, value in want.items():
        if name == "vlan":
            assert list(got["vlan"]) == value
        else:
            assert int(got[name]) == value, name
    v6 = bool(batch.flags[0] & F.IPV6)
    src, dst = dpkt_addresses(raw, int(batch.l3_off[0]), v6)
    assert addr_bytes(batch.src[0], v6) == src
    assert addr_bytes(batch.dst[0], v6) == dst


@given(frames())
def test_truncation_at_every_offset(raw: bytes) -> None:
    full = parse([raw])
    end = int(full.l3_off[0] + full.ip_len[0])
    prefixes = [raw[:k] for k in range(len(raw) + 1)]
    batch = parse(prefixes)
    fate = batch.fate
    assert (fate[:end] < 0).all()
    assert np.isin(fate[:end], DECLARED).all()
    assert (batch.flags[:end] & F.MALFORMED).all()
    for name in COLUMNS:  # a prefix that keeps the whole IP packet is the same packet
        col = getattr(batch, name)[end:]
        assert (col == getattr(full, name)[0]).all(), name
    other = parse(prefixes, fill=0xFF)
    for name, col in columns(batch).items():
        assert (col == getattr(other, name)).all(), name


TEMPLATES = [
    bytes(eth() / IP() / TCP(options=[("MSS", 1460)]) / b"data"),
    bytes(eth() / Dot1Q() / IP(options=b"\x01" * 4) / UDP() / b"data"),
    bytes(eth() / Dot1AD() / Dot1Q() / IPv6() / IPv6ExtHdrHopByHop() / TCP()),
    bytes(eth() / IPv6() / IPv6ExtHdrRouting() / IPv6ExtHdrFragment() / UDP() / b"d"),
    bytes(eth() / IP() / ICMP() / b"ping"),
    bytes(eth() / IPv6() / ICMPv6EchoRequest() / b"ping"),
    bytes(eth() / IP(flags="MF") / UDP()),
]


def fuzz_frames(seed: int, count: int) -> list[bytes]:
    """Random frames and mutated templates (flipped bytes near the headers, cut lengths)."""
    rng = np.random.default_rng(seed)
    out: list[bytes] = []
    for _ in range(count // 2):
        out.append(rng.integers(0, 256, size=int(rng.integers(0, 120)), dtype=np.uint8).tobytes())
    for _ in range(count - count // 2):
        pkt = bytearray(TEMPLATES[int(rng.integers(len(TEMPLATES)))])
        for _ in range(int(rng.integers(1, 5))):
            pos = int(rng.integers(12, min(len(pkt), 90)))
            pkt[pos] = int(rng.integers(0, 256))
        cut = int(rng.integers(len(pkt) // 2, len(pkt) + 1))
        out.append(bytes(pkt[:cut]))
    return out


@settings(max_examples=20)
@given(st.integers(0, 2**32 - 1))
def test_fuzzed_frames_end_parsed_or_dropped_for_a_declared_reason(seed: int) -> None:
    frames_ = fuzz_frames(seed, 2000)
    batch = parse(frames_)
    good = batch.fate == 0
    malformed = (batch.flags & F.MALFORMED) != 0
    assert (good == ~malformed).all()
    assert np.isin(batch.fate[~good], DECLARED).all()
    assert (batch.fate >= -1024).all()
    n = batch.length.astype(np.int64)
    ip = good & ((batch.flags & (F.IPV4 | F.IPV6)) != 0)
    end = batch.l3_off.astype(np.int64) + batch.ip_len
    assert (end[ip] <= n[ip]).all()
    has4 = good & (batch.l4_off >= 0)
    assert (batch.l4_off[has4] >= batch.l3_off[has4]).all()
    assert (batch.l4_off[has4] <= end[has4]).all()
    has7 = good & (batch.l7_off >= 0)
    assert (batch.l7_off[has7] <= end[has7]).all()
    other = parse(frames_, fill=0xFF)
    for name, col in columns(batch).items():
        assert (col == getattr(other, name)).all(), name
