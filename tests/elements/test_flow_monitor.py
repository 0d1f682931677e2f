"""Golden tests of the ``flow_monitor`` element: counts, TCP flags, expiry reasons, exported
files (JSON lines and CSV read back with the standard library), IPv6, biflow, top-N, state."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from nfvkit.elements.flow_monitor import FlowMonitor
from nfvkit.elements.registry import element_class
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import parse_batch
from nfvkit.testing import run_element

S = 1_000_000_000
MS = 1_000_000
A, B, C = "198.18.0.1", "198.19.0.1", "198.19.0.2"


def eth(l3: Any) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / l3)


def tcp(src: str, dst: str, sport: int, dport: int, flags: str = "A", payload: int = 0) -> bytes:
    return eth(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags) / (b"x" * payload))


def udp(src: str, dst: str, sport: int, dport: int, payload: int = 0) -> bytes:
    return eth(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / (b"x" * payload))


def ip_len(frame: bytes) -> int:
    layer = Ether(frame).payload
    return len(bytes(layer))


def monitor(tmp_path: Path, **config: Any) -> FlowMonitor:
    config.setdefault("export_file", str(tmp_path / "flows.out"))
    el = FlowMonitor.configure("fm", config)
    assert isinstance(el, FlowMonitor)
    el.initialize()
    el.start()
    return el


def feed(el: FlowMonitor, pkts: list[bytes], ts: list[int]) -> PacketBatch:
    batch = PacketBatch.from_packets(pkts, ts=ts)
    parse_batch(batch)
    assert (batch.fate == 0).all()
    out = el.process(batch)
    assert out is batch and (batch.fate == 0).all()
    return batch


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_ports(recs: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    return {(r["sourceTransportPort"], r["destinationTransportPort"]): r for r in recs}


# counting -----------------------------------------------------------------------------------


def test_known_trace_gives_exact_records_at_stop(tmp_path: Path) -> None:
    p1 = tcp(A, B, 1000, 80, "S")
    p2 = tcp(A, B, 1000, 80, "PA", payload=100)
    p3 = tcp(A, B, 1000, 80, "F")
    q = udp(A, C, 5000, 53, payload=20)
    el = monitor(tmp_path)
    feed(el, [p1, q, p2], [10 * MS, 11 * MS, 12 * MS])
    feed(el, [q, p3], [20 * MS, 30 * MS])
    el.stop()
    recs = by_ports(records(tmp_path / "flows.out"))
    assert set(recs) == {(1000, 80), (5000, 53)}
    t = recs[(1000, 80)]
    assert t == {
        "sourceIPv4Address": A,
        "destinationIPv4Address": B,
        "sourceTransportPort": 1000,
        "destinationTransportPort": 80,
        "protocolIdentifier": 6,
        "packetDeltaCount": 3,
        "octetDeltaCount": ip_len(p1) + ip_len(p2) + ip_len(p3),
        "flowStartNanoseconds": 10 * MS,
        "flowEndNanoseconds": 30 * MS,
        "tcpControlBits": 0x02 | 0x18 | 0x01,
        "flowEndReason": 4,
    }
    u = recs[(5000, 53)]
    assert (u["protocolIdentifier"], u["packetDeltaCount"]) == (17, 2)
    assert u["octetDeltaCount"] == 2 * ip_len(q) == 2 * 48
    assert (u["flowStartNanoseconds"], u["flowEndNanoseconds"]) == (11 * MS, 20 * MS)
    assert u["tcpControlBits"] == 0
    assert el.read_export()["by_reason"]["forced_end"] == 2


def test_packets_pass_unchanged_and_non_ip_is_counted(tmp_path: Path) -> None:
    pkts = [tcp(A, B, 1, 2), eth(ARP(psrc=A, pdst=B)), udp(B, A, 3, 4)]
    el = FlowMonitor.configure("fm", {})
    result = run_element(el, pkts, ts=[1, 2, 3])
    assert result.outputs == {"out": pkts}
    assert result.drops == {}
    assert el.read_flows()["non_ip"] == 1
    assert el.read_export()["by_reason"]["forced_end"] == 2


def test_tcp_flags_are_ored_with_the_ns_bit_as_bit_8(tmp_path: Path) -> None:
    el = monitor(tmp_path)
    flags = ["S", "A", "PA", "UA", "EA", "CA", "R"]
    feed(el, [tcp(A, B, 1, 2, f) for f in flags], list(range(len(flags))))
    ns = bytearray(tcp(A, B, 1, 2, "A"))
    ns[14 + 20 + 12] |= 0x01  # the NS bit, in the data-offset byte
    feed(el, [bytes(ns)], [100])
    el.stop()
    (rec,) = records(tmp_path / "flows.out")
    assert rec["tcpControlBits"] == 0x02 | 0x10 | 0x08 | 0x20 | 0x40 | 0x80 | 0x04 | 0x100


# ending flows ---------------------------------------------------------------------------------


def test_idle_flow_is_exported_with_reason_1_once_its_timeout_has_passed(tmp_path: Path) -> None:
    el = monitor(tmp_path, idle_timeout=1.0, scan_interval=0.1)
    out = tmp_path / "flows.out"
    feed(el, [tcp(A, B, 1, 2), tcp(A, B, 1, 2)], [0, 200 * MS])
    feed(el, [udp(A, C, 3, 4)], [1100 * MS])  # A->B idle for 0.9 s: still live
    assert out.read_text() == ""
    feed(el, [udp(A, C, 3, 4)], [1200 * MS])  # idle for exactly 1 s now
    (rec,) = records(out)
    assert rec["flowEndReason"] == 1 and rec["packetDeltaCount"] == 2
    assert (rec["flowStartNanoseconds"], rec["flowEndNanoseconds"]) == (0, 200 * MS)
    assert el.read_flows()["live"] == 1


def test_long_flow_reports_every_active_timeout_and_restarts(tmp_path: Path) -> None:
    el = monitor(tmp_path, idle_timeout=10.0, active_timeout=1.0)
    ts = [k * 300 * MS for k in range(8)]  # 0 .. 2.1 s
    for t in ts:
        feed(el, [udp(A, B, 1, 2, payload=10)], [t])
    el.stop()
    first, second = records(tmp_path / "flows.out")
    assert first["flowEndReason"] == 2 and second["flowEndReason"] == 4
    assert (first["packetDeltaCount"], second["packetDeltaCount"]) == (4, 4)
    assert (first["flowStartNanoseconds"], first["flowEndNanoseconds"]) == (0, 900 * MS)
    assert (second["flowStartNanoseconds"], second["flowEndNanoseconds"]) == (1200 * MS, 2100 * MS)


def test_full_table_evicts_with_reason_5(tmp_path: Path) -> None:
    el = monitor(tmp_path, max_flows=1, on_full="evict")
    feed(el, [tcp(A, B, 1, 2), tcp(A, C, 3, 4)], [0, S])
    el.stop()
    evicted, forced = records(tmp_path / "flows.out")
    assert (evicted["destinationIPv4Address"], evicted["flowEndReason"]) == (B, 5)
    assert (forced["destinationIPv4Address"], forced["flowEndReason"]) == (C, 4)
    assert el.read_flows()["evicted"] == 1


def test_full_table_refuses_new_flows_but_passes_their_packets(tmp_path: Path) -> None:
    el = FlowMonitor.configure("fm", {"max_flows": 1, "export_file": str(tmp_path / "f")})
    pkts = [tcp(A, B, 1, 2), tcp(A, C, 3, 4), tcp(A, C, 3, 4), tcp(A, B, 1, 2)]
    result = run_element(el, pkts, ts=[0, 1, 2, 3])
    assert result.outputs == {"out": pkts}
    assert el.read_flows()["untracked"] == 2
    (rec,) = records(tmp_path / "f")
    assert rec["packetDeltaCount"] == 2 and rec["destinationIPv4Address"] == B


def test_fin_ends_a_flow_with_reason_3_when_asked(tmp_path: Path) -> None:
    el = monitor(tmp_path, end_on_fin=True)
    feed(el, [tcp(A, B, 1, 2, "S"), tcp(A, B, 1, 2, "FA"), tcp(A, B, 1, 2, "A")], [0, 1, 2])
    el.stop()
    ended, after = records(tmp_path / "flows.out")
    assert (ended["flowEndReason"], ended["packetDeltaCount"]) == (3, 2)
    assert (after["flowEndReason"], after["packetDeltaCount"]) == (4, 1)
    assert el.read_flows()["ended_by_fin"] == 1


# export formats -------------------------------------------------------------------------------


def test_csv_file_reads_back_with_the_csv_module(tmp_path: Path) -> None:
    el = monitor(tmp_path, format="csv", time_unit="milliseconds")
    v6 = eth(IPv6(src="2001:db8::1", dst="2001:db8:0:1::2") / UDP(sport=7, dport=9))
    feed(el, [tcp(A, B, 1, 2, "S"), v6], [5 * MS + 7, 6 * MS])
    el.stop()
    with (tmp_path / "flows.out").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "sourceIPv4Address", "sourceIPv6Address", "destinationIPv4Address",
        "destinationIPv6Address", "sourceTransportPort", "destinationTransportPort",
        "protocolIdentifier", "packetDeltaCount", "octetDeltaCount", "flowStartMilliseconds",
        "flowEndMilliseconds", "tcpControlBits", "flowEndReason",
    ]  # fmt: skip
    v4row, v6row = sorted(rows, key=lambda r: r["sourceIPv6Address"])
    assert (v4row["sourceIPv4Address"], v4row["destinationIPv4Address"]) == (A, B)
    assert v4row["sourceIPv6Address"] == v4row["destinationIPv6Address"] == ""
    assert (v4row["flowStartMilliseconds"], v4row["tcpControlBits"]) == ("5", "2")
    assert (v6row["sourceIPv6Address"], v6row["destinationIPv6Address"]) == (
        "2001:db8::1",
        "2001:db8:0:1::2",
    )
    assert v6row["sourceIPv4Address"] == "" and v6row["protocolIdentifier"] == "17"
    assert v6row["octetDeltaCount"] == str(40 + 8)


def test_ipv6_flows_in_json_lines(tmp_path: Path) -> None:
    el = monitor(tmp_path)
    pkt = eth(IPv6(src="2001:db8::a", dst="2001:db8::b") / TCP(sport=443, dport=50000, flags="SA"))
    feed(el, [pkt, pkt], [1, 2])
    el.stop()
    (rec,) = records(tmp_path / "flows.out")
    assert (
        rec["sourceIPv6Address"] == "2001:db8::a" and rec["destinationIPv6Address"] == "2001:db8::b"
    )
    assert "sourceIPv4Address" not in rec
    assert (rec["packetDeltaCount"], rec["octetDeltaCount"], rec["tcpControlBits"]) == (
        2,
        120,
        0x12,
    )


def test_biflow_counts_both_directions_with_the_initiator_as_source(tmp_path: Path) -> None:
    el = monitor(tmp_path, biflow=True)
    # B (the upper address) initiates; A answers
    req, rep = tcp(B, A, 40000, 22, "S"), tcp(A, B, 22, 40000, "SA", payload=10)
    feed(el, [req, rep, req], [0, 1, 2])
    el.stop()
    (rec,) = records(tmp_path / "flows.out")
    assert (rec["sourceIPv4Address"], rec["sourceTransportPort"]) == (B, 40000)
    assert (rec["destinationIPv4Address"], rec["destinationTransportPort"]) == (A, 22)
    assert (rec["packetDeltaCount"], rec["reversePacketDeltaCount"]) == (2, 1)
    assert (rec["octetDeltaCount"], rec["reverseOctetDeltaCount"]) == (80, 50)
    assert (rec["tcpControlBits"], rec["reverseTcpControlBits"]) == (0x02, 0x12)


# handlers and state ---------------------------------------------------------------------------


def test_top_lists_flows_by_bytes(tmp_path: Path) -> None:
    el = monitor(tmp_path, top_n=3)
    pkts, ts = [], []
    for k, size in enumerate([10, 500, 40, 300, 0]):
        pkts += [udp(A, B, 1000 + k, 53, payload=size)] * 2
        ts += [k, k]
    feed(el, pkts, ts)
    top = el.call_handler("top")
    assert [t["sport"] for t in top] == [1001, 1003, 1002]
    assert top[0] == {
        "src": A, "dst": B, "sport": 1001, "dport": 53, "proto": 17, "packets": 2,
        "bytes": 2 * (28 + 500), "first": 1, "last": 1,
    }  # fmt: skip


def test_state_round_trip_keeps_the_flow_counts(tmp_path: Path) -> None:
    one = monitor(tmp_path, export_file=str(tmp_path / "one"))
    feed(one, [tcp(A, B, 1, 2, "S"), tcp(A, B, 1, 2, "A")], [0, 5])
    two = monitor(tmp_path, export_file=str(tmp_path / "two"))
    result = two.import_state(one.export_state())
    assert result.added == 1
    feed(two, [tcp(A, B, 1, 2, "F")], [9])
    two.stop()
    (rec,) = records(tmp_path / "two")
    assert (rec["packetDeltaCount"], rec["tcpControlBits"]) == (3, 0x13)
    assert (rec["flowStartNanoseconds"], rec["flowEndNanoseconds"]) == (0, 9)


def test_config_is_checked_and_the_element_is_registered() -> None:
    assert element_class("flow_monitor") is FlowMonitor
    for bad in ({"idle_timeout": -1}, {"format": "xml"}, {"top_n": 0}, {"colour": 1}):
        with pytest.raises(ValidationError):
            FlowMonitor.configure("fm", bad)
