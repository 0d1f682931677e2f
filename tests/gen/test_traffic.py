"""The traffic generator, checked with scapy as the oracle: checksums, flows, sizes, TCP
conversations, malformed frames, determinism, address ranges, streaming and the CLI."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from scapy.all import (  # type: ignore[attr-defined]
    ICMP,
    IP,
    TCP,
    UDP,
    Dot1Q,
    Ether,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    IPv6,
    rdpcap,
)

from nfvkit.cli.gen import gen
from nfvkit.errors import ConfigError
from nfvkit.gen import MALFORMED_KINDS, TrafficProfile, generate
from nfvkit.io import open_reader

CHECKED = (IP, TCP, UDP, ICMP, IPv6, ICMPv6EchoRequest, ICMPv6EchoReply)
NET4 = ipaddress.ip_network("198.18.0.0/15")
NET6 = ipaddress.ip_network("2001:db8::/32")


def _frames(path: Path) -> list[bytes]:
    return [bytes(p) for p in rdpcap(str(path))]


def _checksums_ok(raw: bytes) -> bool:
    """Whether every checksum scapy knows in the frame equals scapy's recomputation."""
    frame = Ether(raw)
    fresh = Ether(raw)
    for layer in CHECKED:
        if layer in fresh and hasattr(fresh[layer], "chksum"):
            del fresh[layer].chksum
        if layer in fresh and layer in (IP, UDP) and hasattr(fresh[layer], "len"):
            del fresh[layer].len
        if layer is IP and IP in fresh:
            del fresh[IP].ihl
    rebuilt = Ether(bytes(fresh))
    for layer in CHECKED:
        has_sum = layer in frame and hasattr(frame[layer], "chksum")
        if has_sum and frame[layer].chksum != rebuilt[layer].chksum:
            return False
        if layer in frame and layer in (IP, UDP) and frame[layer].len != rebuilt[layer].len:
            return False
    return IP not in frame or frame[IP].ihl == 5


def _ip(frame: Any) -> Any:
    return frame[IP] if IP in frame else frame[IPv6]


def _flow_key(frame: Any) -> tuple[Any, ...]:
    ip = _ip(frame)
    l4 = ip.payload
    ports = (l4.sport, l4.dport) if TCP in frame or UDP in frame else (l4.id, l4.id)
    ends = sorted([(ip.src, ports[0]), (ip.dst, ports[1])])
    return (type(l4).__name__ if TCP in frame or UDP in frame else "icmp", *ends)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrafficProfile, Any, list[bytes]]:
    profile = TrafficProfile(packets=3000, flows=40, ipv6=0.3, vlan=0.25, seed=7, zipf=1.2)
    path = tmp_path_factory.mktemp("gen") / "mixed.pcap"
    summary = generate(profile, path)
    return profile, summary, _frames(path)


def test_every_frame_decodes_with_valid_checksums(mixed: Any) -> None:
    _, summary, frames = mixed
    assert len(frames) == summary.packets == 3000
    assert all(_checksums_ok(f) for f in frames)
    decoded = [Ether(f) for f in frames]
    assert all(IP in d or IPv6 in d for d in decoded)
    assert summary.by_kind["malformed"] == 0
    assert sum(Dot1Q in d for d in decoded) == summary.by_kind["vlan"] > 0
    assert sum(IPv6 in d for d in decoded) == summary.by_kind["ipv6"] > 0


def test_flow_count_and_protocol_shares(mixed: Any) -> None:
    profile, summary, frames = mixed
    keys = {_flow_key(Ether(f)) for f in frames}
    assert len(keys) == profile.flows == summary.flows
    by_proto = Counter(k[0] for k in keys)
    assert by_proto == {"TCP": 24, "UDP": 12, "icmp": 4}  # 60/30/10 % of 40, exact
    assert summary.by_kind["tcp_flows"] == 24


def test_addresses_macs_and_timestamps(mixed: Any, tmp_path: Path) -> None:
    profile, _, frames = mixed
    for raw in frames:
        frame = Ether(raw)
        ip = _ip(frame)
        net = NET4 if IP in frame else NET6
        assert ipaddress.ip_address(ip.src) in net and ipaddress.ip_address(ip.dst) in net
        for mac in (frame.src, frame.dst):
            first = int(mac.split(":")[0], 16)
            assert first & 0x02 and not first & 0x01  # locally administered unicast
    path = tmp_path / "ts.pcap"
    generate(profile.model_copy(update={"rate_pps": 1000.0, "start_ns": 2 * 10**18}), path)
    with open_reader(path) as r:
        ts = np.concatenate([b.ts for b in r])
    assert np.array_equal(ts, 2 * 10**18 + np.arange(3000, dtype=np.int64) * 1_000_000)


def test_tcp_conversations(mixed: Any) -> None:
    _, _, frames = mixed
    convs: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for raw in frames:
        frame = Ether(raw)
        if TCP in frame:
            convs[_flow_key(frame)].append(frame)
    assert len(convs) == 24
    for segs in convs.values():
        client = (_ip(segs[0]).src, segs[0][TCP].sport)
        flags = [str(s[TCP].flags) for s in segs]
        assert flags[:3] == ["S", "SA", "A"] and flags[-4:] == ["FA", "A", "FA", "A"]
        data = segs[3:-4]
        dirs = {(_ip(s).src, s[TCP].sport) == client for s in data}
        assert dirs == {True, False}  # data both ways
        assert all(str(s[TCP].flags) == "PA" and len(s[TCP].payload) > 0 for s in data)
        nxt = {True: segs[0][TCP].seq, False: segs[1][TCP].seq}
        for s in segs:
            up = (_ip(s).src, s[TCP].sport) == client
            assert s[TCP].seq == nxt[up] % 2**32
            if s is not segs[0]:
                assert s[TCP].ack == nxt[not up] % 2**32
            tcp = s[TCP]
            size = len(tcp.payload) - (len(tcp.payload[0]) if tcp.payload.name == "Padding" else 0)
            nxt[up] += size + (1 if "S" in str(tcp.flags) or "F" in str(tcp.flags) else 0)


def test_icmp_echo_pairs(mixed: Any) -> None:
    _, _, frames = mixed
    echoes = [Ether(f) for f in frames if ICMP in Ether(f) or ICMPv6EchoRequest in Ether(f)
              or ICMPv6EchoReply in Ether(f)]  # fmt: skip
    assert echoes
    by_flow: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for e in echoes:
        by_flow[_flow_key(e)].append(e)
    for seq in by_flow.values():
        for req, rep in zip(seq[::2], seq[1::2], strict=False):
            assert bytes(_ip(req).payload.payload) == bytes(_ip(rep).payload.payload)
            assert _ip(req).src == _ip(rep).dst


@pytest.mark.parametrize(
    ("size", "want"),
    [
        ("imix", {60: 7, 566: 4, 1514: 1}),
        ("1500", {1496: 1}),
        (((100, 1.0), (200, 3.0)), {96: 1, 196: 3}),
    ],
)
def test_size_mix(tmp_path: Path, size: Any, want: dict[int, int]) -> None:
    profile = TrafficProfile(packets=12_000, flows=30, size=size, tcp=0, udp=1, icmp=0, seed=3)
    summary = generate(profile, tmp_path / "s.pcap")
    assert set(summary.by_size) == set(want)  # frame sizes are the mix minus the 4-byte FCS
    total = sum(want.values())
    for length, weight in want.items():
        assert summary.by_size[length] / 12_000 == pytest.approx(weight / total, abs=0.02)


def test_64_byte_frames_grow_only_when_headers_do_not_fit(tmp_path: Path) -> None:
    summary = generate(
        TrafficProfile(packets=2000, flows=20, size="64", seed=2), tmp_path / "a.pcap"
    )
    assert set(summary.by_size) == {60}  # IPv4 TCP/UDP/ICMP all fit into 60 bytes
    summary = generate(
        TrafficProfile(packets=2000, flows=20, size="64", ipv6=1, seed=2), tmp_path / "b.pcap"
    )
    assert set(summary.by_size) <= {62, 74, 75}  # UDP/ICMPv6 62, TCP control 74, data 75


def test_malformed_frames(tmp_path: Path) -> None:
    profile = TrafficProfile(packets=3000, flows=20, malformed=0.05, seed=11)
    summary = generate(profile, tmp_path / "m.pcap")
    assert summary.by_kind["malformed"] == 150
    assert [summary.by_kind[f"malformed.{k}"] for k in MALFORMED_KINDS] == [30] * 5
    frames = _frames(tmp_path / "m.pcap")
    broken = [f for f in frames if len(f) < 42 or not _checksums_ok(f)]
    assert len(broken) == 150
    assert sum(len(f) < 42 for f in broken) == 30  # truncated inside the IPv4/UDP headers
    only = generate(
        profile.model_copy(update={"malformed_kinds": ("bad_ihl",)}), tmp_path / "i.pcap"
    )
    assert only.by_kind["malformed.bad_ihl"] == 150
    ihl = [Ether(f)[IP].ihl for f in _frames(tmp_path / "i.pcap") if IP in Ether(f)]
    assert sum(v != 5 for v in ihl) == 150


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    profile = TrafficProfile(packets=5000, flows=100, ipv6=0.5, vlan=0.5, malformed=0.01, seed=5)
    generate(profile, tmp_path / "a.pcap")
    generate(profile, tmp_path / "b.pcap")
    generate(profile.model_copy(update={"seed": 6}), tmp_path / "c.pcap")
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.pcap", "b.pcap", "c.pcap"))
    assert a == b and a != c


def test_streaming_large_trace_pcapng(tmp_path: Path) -> None:
    profile = TrafficProfile(packets=200_000, flows=5_000, ipv6=0.2, vlan=0.1, seed=9)
    summary = generate(profile, tmp_path / "big.pcapng")
    with open_reader(tmp_path / "big.pcapng", batch_size=2048) as r:
        n = 0
        lengths = Counter[int]()
        for batch in r:
            n += len(batch)
            lengths.update(batch.length.tolist())
    assert n == summary.packets == 200_000
    assert dict(lengths) == summary.by_size
    assert summary.file_bytes == (tmp_path / "big.pcapng").stat().st_size


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"tcp": 0.5}, "tcp + udp + icmp"),
        ({"client_net4": "10.0.0.0/16"}, "client_net4"),
        ({"server_net6": "2001:db9::/48"}, "server_net6"),
        ({"packets": 10, "flows": 5}, "at least 29"),
        ({"size": ((40, 1.0),)}, "frame size 40"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_profile_validation(changes: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(where)):
        TrafficProfile.model_validate({"packets": 1000, "flows": 10, **changes})


def test_cli_gen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.pcapng"
    gen(out, packets=1000, flows=10, size="64:1,1518:1", malformed=0.01, seed=3, rate_pps=1e5)
    text = capsys.readouterr().out
    assert "1,000 packets" in text and "malformed" in text and "file bytes" in text
    with open_reader(out) as r:
        assert sum(len(b) for b in r) == 1000


def test_cli_gen_reports_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        gen(tmp_path / "x.pcap", packets=0, flows=0, tcp=2.0, ipv6=-1)
    locations = {loc for loc, _ in info.value.errors}
    assert {"packets", "flows", "tcp", "ipv6"} <= locations
    assert len(info.value.details()) == len(info.value.errors)
    with pytest.raises(ConfigError, match="size"):
        gen(tmp_path / "x.pcap", size="64:x")


def test_servers_limits_the_server_addresses(tmp_path: Path) -> None:
    profile = TrafficProfile(packets=3000, flows=200, servers=4, icmp=0, tcp=0.5, udp=0.5, seed=3)
    generate(profile, tmp_path / "s.pcap")
    servers: set[str] = set()
    for f in _frames(tmp_path / "s.pcap"):
        ip = Ether(f)[IP]
        servers.update(a for a in (ip.src, ip.dst) if a.startswith("198.19."))
    assert servers == {"198.19.0.1", "198.19.0.2", "198.19.0.3", "198.19.0.4"}
