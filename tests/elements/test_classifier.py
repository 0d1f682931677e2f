"""Golden packet tests of the ``classifier`` element: output ports, drops, counters, handlers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from nfvkit.elements.classifier import Classifier
from nfvkit.elements.registry import element_class
from nfvkit.errors import HandlerError
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import parse_batch

CONFIG: dict[str, Any] = {
    "outputs": ["web", "dns", "ping", "tagged"],
    "default": "drop",
    "rules": [
        {"match": {"proto": "tcp", "dport": 80}, "port": "web"},
        {"match": {"proto": "tcp", "dport": "443"}, "port": "web"},
        {"match": {"proto": "udp", "dport": 53}, "port": "dns"},
        {"match": {"proto": "icmp", "icmp_type": 8}, "port": "ping"},
        {"match": {"proto": "icmpv6", "icmp_type": 128}, "port": "ping"},
        {"match": {"vlan": "100-199"}, "port": "tagged"},
        {"match": {"tcp_flags": "syn,!ack", "dst": "2001:db8::/32"}, "port": "web"},
    ],
}


def classifier(config: dict[str, Any] = CONFIG) -> Classifier:
    el = Classifier.configure("cls0", config)
    assert isinstance(el, Classifier)
    return el


def run(el: Classifier, pkts: list[Any]) -> list[int]:
    batch = PacketBatch.from_packets([bytes(p) for p in pkts])
    parse_batch(batch)
    assert (batch.fate == 0).all(), "test packets must parse"
    el.stats.receive(batch)
    el.process(batch)
    el.stats.tally(batch)
    return [int(f) for f in batch.fate]


def eth(*layers: Any) -> Any:
    pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    for layer in layers:
        pkt = pkt / layer
    return pkt


def test_registered_and_ports_from_config() -> None:
    assert element_class("classifier") is Classifier
    el = classifier()
    assert el.outputs == ("web", "dns", "ping", "tagged")
    assert Classifier.outputs_for(el.config) == el.outputs


def test_packets_go_to_their_ports() -> None:
    el = classifier()
    drop = -el.drop_reasons[0].code
    pkts = [
        eth(IP(dst="198.19.0.1"), TCP(dport=80)),
        eth(IP(dst="198.19.0.1"), TCP(dport=443)),
        eth(IP(dst="198.19.0.1"), TCP(dport=22)),
        eth(IP(dst="198.19.0.53"), UDP(dport=53)),
        eth(IP(dst="198.19.0.1"), ICMP(type=8)),
        eth(IPv6(dst="2001:db8::1"), ICMPv6EchoRequest()),
        eth(Dot1Q(vlan=150), IP(), UDP(dport=9)),
        eth(Dot1Q(vlan=200), IP(), UDP(dport=9)),
        eth(IPv6(dst="2001:db8::1"), TCP(dport=22, flags="S")),
        eth(IPv6(dst="2001:db8::1"), TCP(dport=22, flags="SA")),
        eth(ARP()),
    ]
    assert run(el, pkts) == [0, 0, drop, 1, 2, 2, 3, drop, 0, drop, drop]
    counters = el.read_counters()
    assert counters["tx_packets"] == {"web": 3, "dns": 1, "ping": 2, "tagged": 1}
    assert counters["drops"] == {"classifier_no_match": 4}
    hits = el.call_handler("hits")
    assert [r["hits"] for r in hits["rules"]] == [1, 1, 1, 1, 1, 1, 1]
    assert hits["default"] == 4
    assert hits["rules"][2] == {"index": 2, "match": "dport=53 proto=17", "port": "dns", "hits": 1}


def test_default_port_instead_of_drop() -> None:
    el = classifier({**CONFIG, "default": "dns"})
    assert run(el, [eth(ARP()), eth(IP(), TCP(dport=80))]) == [1, 0]
    assert el.read_counters()["drops"] == {}


def test_no_rules_sends_everything_to_default() -> None:
    el = classifier({"outputs": ["a", "b"], "default": "b"})
    assert run(el, [eth(ARP()), eth(IP(), TCP())]) == [1, 1]


def test_first_matching_rule_wins() -> None:
    el = classifier(
        {
            "outputs": ["a", "b"],
            "rules": [
                {"match": {"dst": "198.19.0.0/24"}, "port": "b"},
                {"match": {"dst": "198.19.0.0/16"}, "port": "a"},
                {"port": "b"},
            ],
        }
    )
    pkts = [eth(IP(dst="198.19.0.9"), UDP()), eth(IP(dst="198.19.1.9"), UDP()), eth(ARP())]
    assert run(el, pkts) == [1, 0, 1]


def test_set_rules_replaces_atomically() -> None:
    el = classifier()
    el.call_handler("set_rules", [{"match": {"proto": "udp"}, "port": "tagged"}])
    assert run(el, [eth(IP(), UDP(dport=53)), eth(IP(), TCP(dport=80))]) == [
        3,
        -el.drop_reasons[0].code,
    ]
    assert el.call_handler("hits")["rules"][0]["hits"] == 1
    assert len(el.call_handler("rules")) == 1
    assert el.call_handler("compile")["rules"] == 1


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([{"match": {"dport": "x"}, "port": "web"}], r"0\.match\.dport"),
        ([{"match": {}, "port": "web"}, {"port": "nowhere"}], r"rules\[1\]\.port"),
        ("not a list", "list"),
    ],
)
def test_set_rules_rejects_bad_input(value: Any, words: str) -> None:
    el = classifier()
    with pytest.raises(HandlerError, match=words):
        el.call_handler("set_rules", value)
    assert len(el.call_handler("rules")) == len(CONFIG["rules"])


@pytest.mark.parametrize(
    ("config", "loc", "words"),
    [
        ({"outputs": []}, ("outputs",), "at least 1"),
        ({"outputs": ["a", "a"]}, (), "duplicate"),
        ({"outputs": ["a", "drop"]}, (), "reserved"),
        ({"outputs": ["a"], "default": "b"}, (), "default"),
        ({"outputs": ["a"], "rules": [{"port": "a"}, {"port": "b"}]}, (), r"rules\[1\]\.port"),
        (
            {"outputs": ["a"], "rules": [{"port": "a"}, {"match": {"dport": 1e6}, "port": "a"}]},
            ("rules", 1, "match", "dport"),
            "number",
        ),
        (
            {"outputs": ["a"], "rules": [{"match": {"src": "1.2.3.4/33"}, "port": "a"}]},
            ("rules", 0, "match", "src"),
            "bad prefix",
        ),
        (
            {"outputs": ["a"], "rules": [{"match": {}, "port": "a", "x": 1}]},
            ("rules", 0, "x"),
            "Extra",
        ),
    ],
)
def test_config_errors_are_located(
    config: dict[str, Any], loc: tuple[Any, ...], words: str
) -> None:
    with pytest.raises(ValidationError, match=words) as info:
        Classifier.Config.model_validate(config)
    assert info.value.errors()[0]["loc"] == loc
