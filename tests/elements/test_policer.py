"""Golden tests of the ``policer`` element: RFC 2697 colours on a hand-computed sequence, the
single-rate policer's drop count, per-flow isolation, DSCP remarking, class rules, config."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from nfvkit.elements.policer import POLICER_RED, Policer
from nfvkit.elements.registry import element_class
from nfvkit.errors import HandlerError
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import parse_batch
from nfvkit.testing import run_element

S = 1_000_000_000
MS = 1_000_000
A, B = "198.18.0.1", "198.19.0.1"


def udp(ip_len: int, sport: int = 1000, dport: int = 2000, src: str = A, tos: int = 0) -> bytes:
    """An Ethernet/IPv4/UDP frame whose IP packet is ``ip_len`` bytes long."""
    ip = IP(src=src, dst=B, tos=tos) / UDP(sport=sport, dport=dport) / (b"x" * (ip_len - 28))
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip)


def policer(**config: Any) -> Policer:
    el = Policer.configure("pol", config)
    assert isinstance(el, Policer)
    return el


def feed(el: Policer, pkts: list[bytes], ts: list[int]) -> PacketBatch:
    batch = PacketBatch.from_packets(pkts, ts=ts)
    parse_batch(batch)
    assert (batch.fate == 0).all()
    el.process(batch)
    return batch


# RFC 2697 ------------------------------------------------------------------------------------

# CIR 8000 bit/s = 1 byte per ms, CBS 300 bytes, EBS 200 bytes, colour-blind.
# Worked by hand with the RFC's update and marking rules (tokens fill Tc to CBS, then Te):
SEQUENCE = [  # (time ms, IP bytes, colour, Tc after, Te after)
    (0, 100, "green", 200, 200),
    (0, 150, "green", 50, 200),
    (0, 100, "yellow", 50, 100),
    (0, 100, "yellow", 50, 0),
    (0, 50, "green", 0, 0),
    (0, 100, "red", 0, 0),
    (120, 100, "green", 20, 0),  # +120 bytes
    (520, 200, "green", 100, 120),  # +400: Tc 20 -> 300 (CBS), the 120 left over go to Te
    (520, 150, "red", 100, 120),
    (520, 120, "yellow", 100, 0),
    (10_000, 300, "green", 0, 200),  # long gap: both buckets full, no more
    (10_000, 250, "red", 0, 200),  # larger than EBS: red although Te is full
]


def test_srtcm_colours_a_hand_computed_sequence() -> None:
    el = policer(
        classes=[{"name": "all", "cir": 8000, "cbs": 300, "ebs": 200}],
        colour_ports=True,
        drop_red=False,
    )
    pkts = [udp(size, sport=1000 + k) for k, (_, size, *_) in enumerate(SEQUENCE)]
    result = run_element(el, pkts, ts=[t * MS for t, *_ in SEQUENCE])
    for colour in ("green", "yellow", "red"):
        want = [p for p, (_, _, c, _, _) in zip(pkts, SEQUENCE, strict=True) if c == colour]
        assert result.outputs.get(colour, []) == want, colour
    assert result.drops == {}
    assert el.read_colours()["all"] == {"green": 6, "yellow": 3, "red": 3}


def test_srtcm_bucket_levels_after_each_packet() -> None:
    el = policer(classes=[{"name": "all", "cir": 8000, "cbs": 300, "ebs": 200}])
    for k, (t, size, colour, tc, te) in enumerate(SEQUENCE):
        batch = feed(el, [udp(size, sport=1000 + k)], [t * MS])
        (bucket,) = el.read_buckets()
        assert (bucket["tc"], bucket["te"]) == (tc, te), k
        assert int(batch.fate[0]) == (POLICER_RED.fate if colour == "red" else 0), k
    assert bucket["updated_at"] == 10 * S


def test_red_is_dropped_by_default_and_colour_aware_mode_respects_precolour() -> None:
    el = policer(
        classes=[{"name": "all", "cir": 0, "cbs": 1000, "ebs": 100}],
        colour_aware={"yellow": ["af12"], "red": ["af13"]},
    )
    af12, af13 = 12 << 2, 14 << 2
    pkts = [udp(100, tos=af13), udp(100, tos=af12), udp(100), udp(100, tos=af12)]
    result = run_element(el, pkts, ts=[0, 0, 0, 0])
    # red takes nothing; yellow takes Te (100 -> 0); green takes Tc; the next yellow finds Te empty
    assert result.outputs["out"] == pkts[1:3]
    assert result.drops == {"policer_red": 2}
    (bucket,) = el.read_buckets()
    assert (bucket["tc"], bucket["te"]) == (900, 0)


# single-rate policing --------------------------------------------------------------------------


def test_police_mode_drop_count_over_a_synthetic_second() -> None:
    # 800 kbit/s = 100 bytes per ms; CBS 1000 bytes; 2000 packets of 100 bytes every 0.5 ms.
    # Tokens by the last packet: 1000 + 50 * 1999 = 100950 bytes -> 1009 packets conform.
    el = policer(mode="police", classes=[{"name": "all", "cir": "800k", "cbs": 1000}])
    pkt = udp(100)
    result = run_element(el, [pkt] * 2000, ts=[k * MS // 2 for k in range(2000)])
    assert result.count("out") == 1009
    assert result.drops == {"rate_exceeded": 991}


def test_refill_stops_at_the_bucket_size() -> None:
    el = policer(mode="police", classes=[{"name": "all", "cir": 8000, "cbs": 500}])
    feed(el, [udp(500)], [0])  # empties the bucket
    batch = feed(el, [udp(100)] * 8, [100 * S] * 8)  # 100 s later: 500 bytes, not 100000
    assert list(batch.fate[:5]) == [0] * 5
    assert (batch.fate[5:] < 0).all()
    assert el.read_buckets()[0]["tc"] == 0


def test_packet_unit_meters_count_packets() -> None:
    el = policer(mode="police", default={"cir": 10, "cbs": 3, "unit": "packets"})
    batch = feed(el, [udp(60), udp(1400), udp(60), udp(60), udp(60)], [0, 0, 0, 0, 100 * MS])
    assert list(batch.fate >= 0) == [True, True, True, False, True]  # 3 + one after 0.1 s


# per flow ------------------------------------------------------------------------------------


def test_per_flow_meters_isolate_flows() -> None:
    el = policer(mode="police", per_flow={"cir": 8000, "cbs": 1000})
    heavy = [udp(100, sport=1)] * 50
    light = [udp(100, sport=2)] * 5
    pkts = heavy[:25] + light + heavy[25:]
    result = run_element(el, pkts, ts=[0] * len(pkts))
    assert result.outputs["out"] == heavy[:10] + light
    assert result.drops == {"rate_exceeded": 40}
    assert el.read_colours()["per_flow"] == {"green": 15, "yellow": 0, "red": 40}


def test_per_flow_table_full_passes_or_drops_as_configured() -> None:
    flows = [udp(100, sport=1), udp(100, sport=2), udp(100, sport=2)]
    el = policer(mode="police", per_flow={"cir": 8000, "cbs": 1000, "max_flows": 1})
    result = run_element(el, flows, ts=[0, 0, 0])
    assert result.count("out") == 3 and el.read_colours()["flow_unmetered"] == 2
    assert el.read_colours()["unpoliced"] == 2
    el = policer(
        mode="police", per_flow={"cir": 8000, "cbs": 1000, "max_flows": 1, "on_full": "drop"}
    )
    result = run_element(el, flows, ts=[0, 0, 0])
    assert result.outputs["out"] == flows[:1]
    assert result.drops == {"policer_no_flow_state": 2}


def test_per_flow_buckets_survive_export_and_import() -> None:
    cfg = {"mode": "police", "per_flow": {"cir": 8000, "cbs": 300}}
    one = policer(**cfg)
    feed(one, [udp(100)] * 3, [0, 0, 0])  # the flow's bucket is now empty
    two = policer(**cfg)
    assert two.import_state(one.export_state()).added == 1
    batch = feed(two, [udp(100), udp(100, sport=9)], [50 * MS, 50 * MS])
    assert list(batch.fate >= 0) == [False, True]  # 50 bytes refilled < 100; a new flow is full


# classes and remarking ---------------------------------------------------------------------------


def test_classes_come_from_compiled_rules_and_unmatched_packets_pass() -> None:
    el = policer(
        mode="police",
        classes=[
            {"name": "dns", "match": {"proto": "udp", "dport": 53}, "cir": 0, "cbs": 100},
            {"name": "web", "match": {"proto": "tcp"}, "cir": 0, "cbs": 10_000},
        ],
    )
    dns = udp(100, dport=53)
    web = bytes(Ether() / IP(src=A, dst=B) / TCP(dport=443))
    ping = bytes(Ether() / IP(src=A, dst=B) / ICMP())
    result = run_element(el, [dns, dns, web, ping, web], ts=[0] * 5)
    assert result.outputs["out"] == [dns, web, ping, web]
    assert result.drops == {"rate_exceeded": 1}
    colours = el.read_colours()
    assert colours["dns"] == {"green": 1, "yellow": 0, "red": 1}
    assert colours["web"]["green"] == 2 and colours["unpoliced"] == 1


def test_dscp_remark_keeps_a_valid_ipv4_checksum_and_the_ecn_bits() -> None:
    el = policer(
        classes=[{"name": "all", "cir": 0, "cbs": 100, "ebs": 100}],
        remark={"green": "ef", "yellow": 10},
    )
    pkts = [udp(100, tos=0x01), udp(100, tos=0x02), udp(100, tos=0xB8)]
    result = run_element(el, pkts, ts=[0, 0, 0])
    green, yellow = result.outputs["out"]
    for frame, tos in ((green, (46 << 2) | 1), (yellow, (10 << 2) | 2)):
        ip = Ether(frame)[IP]
        assert ip.tos == tos
        fresh = IP(bytes(ip))
        del fresh.chksum
        assert IP(bytes(fresh)).chksum == ip.chksum
    assert el.read_colours()["remarked"] == 2


def test_dscp_remark_of_ipv6_traffic_class() -> None:
    el = policer(default={"cir": 0, "cbs": 1000}, remark={"green": "af41"})
    v6 = bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0x03) / UDP())
    result = run_element(el, [v6], ts=[0])
    (out,) = result.outputs["out"]
    assert Ether(out)[IPv6].tc == (34 << 2) | 3
    assert out[:14] == v6[:14] and out[16:] == v6[16:]


# handlers and configuration -------------------------------------------------------------------


def test_set_rate_changes_a_class_and_clamps_its_tokens() -> None:
    el = policer(mode="police", classes=[{"name": "all", "cir": 8000, "cbs": 1000}])
    el.call_handler("set_rate", {"class": "all", "cir": "16k", "cbs": 200})
    (bucket,) = el.read_buckets()
    assert (bucket["cir"], bucket["cbs"], bucket["tc"]) == (16000, 200, 200)
    with pytest.raises(HandlerError):
        el.call_handler("set_rate", {"class": "nope", "cir": 1})
    with pytest.raises(HandlerError):
        el.call_handler("set_rate", {"class": "all", "cir": -5})
    with pytest.raises(HandlerError):
        el.call_handler("set_rate", {"class": "all", "ebs": 10})  # police mode: no EBS
    with pytest.raises(HandlerError):
        el.call_handler("set_rate", {"class": "all", "match": {"proto": "udp"}})
    assert el.read_buckets()[0]["cir"] == 16000  # failed calls changed nothing


@pytest.mark.parametrize(
    "config",
    [
        {"classes": [{"name": "a", "cir": -1, "cbs": 100}]},
        {"classes": [{"name": "a", "cir": 1000, "cbs": 0, "ebs": 0}]},
        {"classes": [{"name": "a", "cir": "lots", "cbs": 100}]},
        {"mode": "police", "default": {"cir": 1000, "cbs": 100, "ebs": 100}},
        {"mode": "police", "default": {"cir": 1000, "cbs": 100}, "colour_ports": True},
        {"classes": [{"name": "a", "cir": 1, "cbs": 1}, {"name": "a", "cir": 1, "cbs": 1}]},
        {"per_flow": {"cir": 0, "cbs": 100}},
        {"remark": {"green": 64}, "default": {"cir": 1, "cbs": 1}},
        {},
    ],
)
def test_bad_configs_are_rejected(config: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Policer.configure("pol", config)


def test_ports_and_registry() -> None:
    assert element_class("policer") is Policer
    assert policer(default={"cir": "1.5M", "cbs": "15k"}).outputs == ("out",)
    el = policer(default={"cir": "1.5M", "cbs": "15k"}, colour_ports=True)
    assert el.outputs == ("green", "yellow", "red")
    assert el.read_buckets()[0]["cir"] == 1_500_000 and el.read_buckets()[0]["tc"] == 15_000
