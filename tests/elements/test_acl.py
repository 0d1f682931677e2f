"""Golden packet tests of the ``acl`` element: decisions, drop reasons, counters, state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from nfvkit.elements.acl import Acl
from nfvkit.elements.classify.textform import RuleSyntaxError, parse_line
from nfvkit.elements.registry import element_class
from nfvkit.errors import HandlerError
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import parse_batch
from nfvkit.vnf.state import StateSnapshot
from nfvkit.vnf.state.keys import flow_columns

S = 1_000_000_000
CLIENT, SERVER = "198.18.0.1", "198.19.0.1"


def acl(**config: Any) -> Acl:
    el = Acl.configure("acl0", config)
    assert isinstance(el, Acl)
    el.initialize()
    return el


def run(el: Acl, pkts: list[Any], ts: list[int] | None = None) -> list[int]:
    batch = PacketBatch.from_packets([bytes(p) for p in pkts], ts=ts)
    parse_batch(batch)
    assert (batch.fate == 0).all(), "test packets must parse"
    el.stats.receive(batch)
    el.process(batch)
    el.stats.tally(batch)
    return [int(f) for f in batch.fate]


def eth(l3: Any) -> Any:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / l3


def tcp(src: str, dst: str, sport: int, dport: int, flags: str = "A") -> Any:
    return eth(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags))


def c2s(flags: str, sport: int = 40000) -> Any:
    return tcp(CLIENT, SERVER, sport, 80, flags)


def s2c(flags: str, dport: int = 40000) -> Any:
    return tcp(SERVER, CLIENT, 80, dport, flags)


RULES = [
    {
        "action": "allow",
        "proto": "tcp",
        "src": "198.18.0.0/16",
        "dst": "198.19.0.0/16",
        "dport": 80,
    },
    {"action": "deny", "proto": "udp", "dport": 53},
    {"action": "allow", "proto": "icmp", "icmp_type": 8},
    {"action": "allow", "ip_version": 6, "dst": "2001:db8:1::/48"},
]


def test_registered_under_its_type_name() -> None:
    assert element_class("acl") is Acl
    assert Acl.outputs_for(Acl.Config()) == ("out",)


def test_stateless_decisions_reasons_and_counters() -> None:
    el = acl(rules=RULES)
    deny = -el.drop_reasons[0].code
    default = -el.drop_reasons[1].code
    pkts = [
        c2s("S"),  # rule 0
        tcp(CLIENT, SERVER, 40000, 81, "S"),  # no rule
        eth(IP(src=CLIENT, dst=SERVER) / UDP(sport=5000, dport=53)),  # rule 1: deny
        eth(IP(src=CLIENT, dst=SERVER) / ICMP(type=8)),  # rule 2
        eth(IP(src=SERVER, dst=CLIENT) / ICMP(type=0)),  # no rule
        eth(ARP(psrc=CLIENT, pdst=SERVER)),  # no rule (no IP fields)
        eth(IPv6(src="2001:db8::1", dst="2001:db8:1::5") / UDP(sport=1, dport=53)),  # rule 1
        eth(IPv6(src="2001:db8::1", dst="2001:db8:1::5") / UDP(sport=1, dport=54)),  # rule 3
        eth(IPv6(src="2001:db8::1", dst="2001:db8:2::5") / TCP(dport=80)),  # v4 prefix: no
    ]
    fates = run(el, pkts)
    assert fates == [0, default, deny, 0, default, default, deny, 0, default]
    counters = el.read_counters()
    assert counters["rx_packets"] == 9
    assert counters["tx_packets"] == {"out": 3}
    assert counters["drops"] == {"acl_deny": 2, "acl_default_deny": 4}
    hits = el.call_handler("hits")
    assert [r["hits"] for r in hits["rules"]] == [1, 2, 1, 1]
    assert hits["default"] == 4


def test_default_allow_passes_unmatched() -> None:
    el = acl(rules=RULES, default="allow")
    fates = run(el, [tcp(CLIENT, SERVER, 1, 22), eth(IP() / UDP(dport=53))])
    assert fates == [0, -el.drop_reasons[0].code]
    assert el.read_counters()["drops"] == {"acl_deny": 1}


def test_empty_rules_apply_the_default() -> None:
    assert run(acl(), [c2s("S")]) == [-acl().drop_reasons[1].code]
    assert run(acl(default="allow"), [c2s("S")]) == [0]


CONVERSATION = [
    (c2s("S"), 0),
    (s2c("SA"), 1),
    (c2s("A"), 2),
    (c2s("PA") / b"GET / HTTP/1.0\r\n\r\n", 3),
    (s2c("PA") / b"HTTP/1.0 200 OK\r\n\r\n", 4),
    (c2s("FA"), 5),
    (s2c("A"), 6),
    (s2c("FA"), 7),
    (c2s("A"), 8),
]


def test_stateful_conversation_passes_in_both_directions() -> None:
    el = acl(rules=[RULES[0]], stateful=True)
    pkts = [p for p, _ in CONVERSATION]
    fates = run(el, pkts, ts=[t * S // 1000 for _, t in CONVERSATION])
    assert fates == [0] * len(pkts)
    flows = el.call_handler("flows")
    assert flows["created"] == 1
    assert flows["reverse"] == 4
    assert el.read_counters()["tx_packets"] == {"out": 9}


def test_stateless_acl_denies_the_replies() -> None:
    el = acl(rules=[RULES[0]])
    fates = run(el, [p for p, _ in CONVERSATION])
    assert fates.count(0) == 5
    assert el.read_counters()["drops"] == {"acl_default_deny": 4}


def test_unsolicited_server_packet_is_dropped() -> None:
    el = acl(rules=[RULES[0]], stateful=True)
    run(el, [c2s("S")], ts=[0])
    fates = run(el, [s2c("SA", dport=40001), tcp(SERVER, "198.18.0.2", 80, 40000, "SA")], ts=[1, 2])
    assert fates == [-el.drop_reasons[1].code] * 2
    assert el.call_handler("flows")["reverse"] == 0


def test_idle_timeout_expires_the_flow() -> None:
    el = acl(rules=[RULES[0]], stateful=True, idle_timeout=30)
    run(el, [c2s("S")], ts=[0])
    assert run(el, [s2c("SA")], ts=[29 * S]) == [0]  # refreshes: now lives until 59 s
    assert run(el, [s2c("A")], ts=[58 * S]) == [0]
    assert run(el, [s2c("A")], ts=[89 * S]) == [-el.drop_reasons[1].code]
    flows = el.call_handler("flows")
    assert flows["expired"] == 1
    assert flows["active"] == 0


def test_fin_shortens_the_lifetime() -> None:
    el = acl(rules=[RULES[0]], stateful=True, idle_timeout=300, closing_timeout=5)
    run(el, [c2s("S"), s2c("SA"), c2s("FA")], ts=[0, 1, 2])
    assert run(el, [s2c("FA")], ts=[4 * S]) == [0]
    assert run(el, [s2c("A")], ts=[10 * S]) == [-el.drop_reasons[1].code]


def test_rst_from_the_server_closes_too() -> None:
    el = acl(rules=[RULES[0]], stateful=True, closing_timeout=1)
    run(el, [c2s("S"), s2c("R")], ts=[0, 1])
    assert run(el, [s2c("A")], ts=[2 * S]) == [-el.drop_reasons[1].code]


def test_full_table_refuses_new_flows() -> None:
    el = acl(rules=[RULES[0]], stateful=True, max_flows=2)
    run(el, [c2s("S", 1), c2s("S", 2), c2s("S", 3)], ts=[0, 1, 2])
    flows = el.call_handler("flows")
    assert (flows["created"], flows["refused"], flows["active"]) == (2, 1, 2)
    fates = run(el, [s2c("SA", 1), s2c("SA", 2), s2c("SA", 3)], ts=[3, 4, 5])
    assert fates == [0, 0, -el.drop_reasons[1].code]


def test_full_table_can_evict_the_oldest() -> None:
    el = acl(rules=[RULES[0]], stateful=True, max_flows=2, on_full="evict")
    run(el, [c2s("S", 1), c2s("S", 2), c2s("S", 3)], ts=[0, 1, 2])
    flows = el.call_handler("flows")
    assert (flows["evicted"], flows["refused"]) == (1, 0)
    fates = run(el, [s2c("SA", 1), s2c("SA", 2), s2c("SA", 3)], ts=[3, 4, 5])
    assert fates == [-el.drop_reasons[1].code, 0, 0]


def test_expired_flows_make_room_in_a_full_table() -> None:
    el = acl(rules=[RULES[0]], stateful=True, max_flows=2, idle_timeout=10)
    run(el, [c2s("S", 1), c2s("S", 2)], ts=[0, 1])
    run(el, [c2s("S", 3)], ts=[20 * S])
    flows = el.call_handler("flows")
    assert (flows["refused"], flows["expired"], flows["active"]) == (0, 2, 1)
    assert flows["memory_bytes"] > 0


def test_many_flows_stay_bounded_and_rehash() -> None:
    el = acl(rules=[RULES[0]], stateful=True, max_flows=64, idle_timeout=1)
    for rnd in range(20):
        pkts = [c2s("S", 1000 + rnd * 100 + k) for k in range(50)]
        run(el, pkts, ts=[rnd * 2 * S + k for k in range(50)])
    flows = el.call_handler("flows")
    assert flows["active"] <= 64
    assert flows["slots"] == 128
    assert flows["refused"] == 0
    assert flows["created"] == 1000


def test_flows_handler_without_state() -> None:
    assert acl().call_handler("flows") == {"stateful": False}


# rule files ---------------------------------------------------------------------------------

TEXT_RULES = """\
# web from the clients
allow tcp 198.18.0.0/16 any -> 198.19.0.0/16 80
deny  udp any -> any 53        # no DNS
allow icmp any -> any icmp_type=8
allow any 2001:db8::/32 -> any
"""


def test_text_rules_file(tmp_path: Path) -> None:
    path = tmp_path / "acl.rules"
    path.write_text(TEXT_RULES)
    el = acl(rules_file=str(path))
    assert [r["action"] for r in el.call_handler("rules")] == ["allow", "deny", "allow", "allow"]
    fates = run(
        el,
        [
            c2s("S"),
            eth(IP() / UDP(dport=53)),
            eth(IP(src=SERVER, dst=CLIENT) / ICMP(type=8)),
            eth(IPv6(src="2001:db8::1", dst="2001:db9::1") / UDP(dport=9)),
        ],
    )
    assert fates == [0, -el.drop_reasons[0].code, 0, 0]


def test_yaml_rules_file_after_inline_rules(tmp_path: Path) -> None:
    path = tmp_path / "acl.yaml"
    path.write_text("- {action: allow, proto: udp, dport: 53}\n- {action: deny}\n")
    el = acl(
        rules=[{"action": "deny", "proto": "udp", "dport": 53, "src": "10.0.0.0/8"}],
        rules_file=str(path),
    )
    fates = run(
        el, [eth(IP(src="10.1.1.1") / UDP(dport=53)), eth(IP(src="11.1.1.1") / UDP(dport=53))]
    )
    assert fates == [-el.drop_reasons[0].code, 0]


def test_text_line_grammar() -> None:
    assert parse_line("allow tcp 10.0.0.0/8 1024-65535 -> any 443 dscp=ef") == {
        "action": "allow",
        "proto": "tcp",
        "src": "10.0.0.0/8",
        "sport": "1024-65535",
        "dst": "any",
        "dport": "443",
        "dscp": "ef",
    }
    assert parse_line("deny any any -> any") == {"action": "deny", "src": "any", "dst": "any"}


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("allow tcp any any", "expected"),
        ("allow tcp any -> any 80 90", "dst must be"),
        ("allow tcp any -> any vlan=3 80", "must come after"),
        ("allow tcp any -> any 70000", "dport"),
        ("permit tcp any -> any", "action"),
        ("allow tcp 10.0.0.1/8 -> any", "src"),
        ("allow tcp any -> any colour=red", "colour"),
    ],
)
def test_text_errors_name_line_and_field(tmp_path: Path, line: str, words: str) -> None:
    path = tmp_path / "bad.rules"
    path.write_text(f"allow any any -> any\n\n{line}\n")
    with pytest.raises(ValidationError) as info:
        Acl.Config.model_validate({"rules_file": str(path)})
    text = str(info.value)
    assert f"{path}:3" in text
    assert words in text


def test_yaml_file_errors_name_index_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- {action: allow}\n- {action: allow, dport: 1-0}\n")
    with pytest.raises(ValidationError, match=r"\[1\]\.dport"):
        Acl.Config.model_validate({"rules_file": str(path)})


def test_missing_rules_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        Acl.Config.model_validate({"rules_file": str(tmp_path / "nope.rules")})


def test_rule_syntax_error_lists_every_problem() -> None:
    from nfvkit.elements.classify.textform import parse_text

    with pytest.raises(RuleSyntaxError) as info:
        parse_text("allow tcp any -> any 99999\nallow tcp any -> any 1\nfoo\n", "t")
    assert [loc for loc, _ in info.value.errors] == ["t:1: dport", "t:3"]


# config errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "loc"),
    [
        ({"action": "allow", "dport": "90-80"}, ("rules", 2, "dport")),
        ({"action": "allow", "sport": -1}, ("rules", 2, "sport")),
        ({"action": "allow", "src": "10.0.0.0/40"}, ("rules", 2, "src")),
        ({"action": "allow", "proto": "tcpv9"}, ("rules", 2, "proto")),
        ({"action": "permit"}, ("rules", 2, "action")),
        ({"action": "allow", "port": 3}, ("rules", 2, "port")),
        ({"action": "allow", "src": "10.0.0.0/8", "dst": "::/0"}, ("rules", 2)),
    ],
)
def test_bad_rule_names_index_and_field(rule: dict[str, Any], loc: tuple[Any, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        Acl.Config.model_validate({"rules": [RULES[0], RULES[1], rule]})
    assert info.value.errors()[0]["loc"] == loc


def test_bad_element_options() -> None:
    for raw in ({"default": "maybe"}, {"max_flows": 0}, {"idle_timeout": 0}, {"stateful": "x"}):
        with pytest.raises(ValidationError):
            Acl.Config.model_validate(raw)


# runtime replacement ------------------------------------------------------------------------


def test_set_rules_swaps_the_rule_set() -> None:
    el = acl(rules=[RULES[0]])
    assert run(el, [c2s("S")]) == [0]
    el.call_handler("set_rules", [{"action": "deny", "dport": 80}])
    assert run(el, [c2s("S")]) == [-el.drop_reasons[0].code]
    assert el.call_handler("hits") == {
        "rules": [{"index": 0, "rule": "deny dport=80", "hits": 1}],
        "default": 0,
    }
    assert [{k: v for k, v in r.items() if v is not None} for r in el.read_config()["rules"]] == [
        {"action": "deny", "dport": 80}
    ]
    el.call_handler("set_rules", "allow tcp any -> any 80\n")
    assert run(el, [c2s("S")]) == [0]
    assert el.call_handler("compile")["rules"] == 1


def test_set_rules_rejects_bad_rules_and_keeps_the_old_ones() -> None:
    el = acl(rules=[RULES[0]])
    with pytest.raises(HandlerError, match=r"set_rules\[1\]\.dport"):
        el.call_handler("set_rules", [{"action": "deny"}, {"action": "deny", "dport": "x"}])
    with pytest.raises(HandlerError, match="set_rules:1"):
        el.call_handler("set_rules", "allow tcp any -> any 99999")
    assert run(el, [c2s("S")]) == [0]


def test_connections_move_to_another_instance_by_export_and_import() -> None:
    first = acl(rules=[RULES[0]], stateful=True)
    run(first, [c2s("S", 1), c2s("S", 2)], ts=[0, 1])

    def not_port_2(_table: str, rec: Any) -> Any:
        cols = flow_columns(rec)
        return (cols["sport"] != 2) & (cols["dport"] != 2)

    snap = first.export_state(select=not_port_2)
    assert len(snap) == 1
    second = acl(rules=[RULES[0]], stateful=True)
    second.import_state(StateSnapshot.from_bytes(snap.to_bytes()))
    fates = run(second, [s2c("SA", 1), s2c("SA", 2)], ts=[2, 3])
    assert fates == [0, -second.drop_reasons[1].code]  # only the exported connection moved
    assert second.call_handler("state")["connections"]["live"] == 1
