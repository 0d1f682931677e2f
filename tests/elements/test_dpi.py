"""Golden tests of the ``dpi`` element: rule language, matching, actions, alerts, handlers."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from nfvkit.elements.classify.textform import RuleSyntaxError
from nfvkit.elements.dpi import Dpi
from nfvkit.elements.dpi_rules import DpiRule, build_automaton, load_rules
from nfvkit.errors import HandlerError
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.flow import flow_hash
from nfvkit.packet.parse import parse_batch
from nfvkit.testing import run_element


def eth() -> Ether:
    """Fixed MAC addresses: scapy would otherwise try to resolve them on the network."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def dpi(rules: list[Any], **config: Any) -> Dpi:
    el = Dpi.configure("ids", {"rules": rules, **config})
    assert isinstance(el, Dpi)
    return el


def tcp(payload: bytes, dport: int = 80, sport: int = 40000, **ip: Any) -> bytes:
    ip = {"src": "198.18.0.1", "dst": "198.19.0.1", **ip}
    return bytes(eth() / IP(**ip) / TCP(sport=sport, dport=dport, flags="PA") / Raw(payload))


def udp(payload: bytes, dport: int = 53, sport: int = 5353, **ip: Any) -> bytes:
    ip = {"src": "198.18.0.1", "dst": "198.19.0.1", **ip}
    return bytes(eth() / IP(**ip) / UDP(sport=sport, dport=dport) / Raw(payload))


def tcp6(
    payload: bytes, dport: int = 80, src: str = "2001:db8::1", dst: str = "2001:db8:1::2"
) -> bytes:
    return bytes(eth() / IPv6(src=src, dst=dst) / TCP(sport=40000, dport=dport) / Raw(payload))


def sids(el: Dpi, packets: list[bytes]) -> list[list[int]]:
    """The sids logged for each packet (through the alerts file), in packet order."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "alerts.json"
        el.alerts.path = str(path)
        run_element(el, packets, ts=list(range(len(packets))))
        lines = [json.loads(x) for x in path.read_text().splitlines()]
    out: list[list[int]] = [[] for _ in packets]
    for rec in lines:
        out[rec["ts_ns"]].append(rec["sid"])
    return [sorted(s) for s in out]


def alert(content: str, sid: int = 1, head: str = "tcp any any -> any any", opts: str = "") -> str:
    return f'alert {head} (msg:"m{sid}"; content:"{content}"; {opts} sid:{sid};)'


# matching ----------------------------------------------------------------------------------


def test_content_match_alerts_and_forwards() -> None:
    el = dpi([alert("GET /admin", 1001, "tcp any any -> any 80")])
    hit, miss = tcp(b"GET /admin HTTP/1.1\r\n"), tcp(b"GET /index HTTP/1.1\r\n")
    result = run_element(el, [hit, miss])
    assert result.outputs["out"] == [hit, miss]
    assert result.drops == {}
    assert el.call_handler("alerts")["by_sid"] == {
        "1001": {"msg": "m1001", "action": "alert", "count": 1}
    }
    assert [r["hits"] for r in el.call_handler("rules")] == [1]


def test_nocase_and_exact_case() -> None:
    el = dpi([alert("GET /admin", 1, opts="nocase;"), alert("Secret", 2)])
    packets = [tcp(b"get /ADMIN"), tcp(b"xx Secret"), tcp(b"xx secret"), tcp(b"SECRET gEt /AdMiN")]
    assert sids(el, packets) == [[1], [2], [], [1]]


def test_hex_bytes_and_escapes() -> None:
    el = dpi(
        [
            'alert udp any any -> any any (content:"|de ad be ef|"; sid:1;)',
            'alert udp any any -> any any (content:"ab|0d0a|c"; sid:2;)',
            'alert udp any any -> any any (content:"say \\"hi\\"\\; ok"; sid:3;)',
            'alert udp any any -> any any (content:"|7c|pipe|7C|"; sid:4;)',
        ]
    )
    packets = [
        udp(b"\x00\xde\xad\xbe\xef\x00"),
        udp(b"\xde\xad\xbe"),
        udp(b"ab\r\nc"),
        udp(b'say "hi"; ok'),
        udp(b"|pipe|"),
    ]
    assert sids(el, packets) == [[1], [], [2], [3], [4]]


def test_pattern_at_payload_start_and_end() -> None:
    el = dpi([alert("HEAD", 1), alert("TAIL", 2), alert("HEADTAIL", 3)])
    assert sids(el, [tcp(b"HEAD....TAIL"), tcp(b"HEADTAIL"), tcp(b"HEA"), tcp(b"AIL")]) == [
        [1, 2],
        [1, 2, 3],
        [],
        [],
    ]


def test_overlapping_and_suffix_patterns_all_found() -> None:
    el = dpi([alert("abcd", 1), alert("bc", 2), alert("d", 3), alert("cdx", 4)])
    assert sids(el, [tcp(b"xabcdx"), tcp(b"abc")]) == [[1, 2, 3, 4], [2]]


def test_long_payloads_walked_in_pairs_match_like_short_ones() -> None:
    el = dpi([alert("needle", 1), alert("Tail", 2), alert("x|00|y", 3)])
    filler = b"." * 70
    packets = [
        filler + b"needle",  # paired with the next one; match beyond the shorter payload
        b"needle" + filler[:60],
        b"short needle",  # walked alone, between a pair
        filler + b"Tail" + filler,
        filler * 3 + b"tail",  # case differs
        b"x\x00y" + filler,  # the last long one, walked alone
    ]
    assert sids(el, [tcp(p) for p in packets]) == [[1], [1], [1], [2], [], [3]]
    stats = el.call_handler("stats")
    assert stats["scanned_bytes"] == sum(len(p) for p in packets)


def test_pattern_across_packet_boundary_is_not_matched() -> None:
    el = dpi([alert("attack", 1)])
    first, second = tcp(b"..att"), tcp(b"ack..")
    assert sids(el, [first, second]) == [[], []]
    assert sids(el, [tcp(b"..attack..")]) == [[1]]


def test_ethernet_padding_is_not_scanned() -> None:
    frame = bytearray(udp(b"hi"))
    assert len(frame) == 44
    frame += b"EVILPAD" + bytes(60 - len(frame) - 7)  # Ethernet pads to 60 bytes
    assert len(frame) == 60
    el = dpi(
        [
            'alert udp any any -> any any (content:"EVIL"; sid:1;)',
            alert("hi", 2, "udp any any -> any any"),
        ]
    )
    assert sids(el, [bytes(frame)]) == [[2]]
    assert el.call_handler("stats")["scanned_bytes"] == 2


def test_header_only_or_payloadless_packets_are_skipped() -> None:
    el = dpi([alert("x", 1, "ip any any -> any any")])
    empty = bytes(eth() / IP() / TCP())
    icmp = bytes(eth() / IP() / ICMP() / Raw(b"x"))
    assert sids(el, [empty, icmp]) == [[], [1]]
    assert el.call_handler("stats")["scanned_packets"] == 1


# header constraints -------------------------------------------------------------------------


def test_port_and_protocol_constraints() -> None:
    el = dpi(
        [
            alert("x", 1, "tcp any any -> any 80"),
            alert("x", 2, "udp any any -> any 53"),
            alert("x", 3, "ip any any -> any any"),
            alert("x", 4, "tcp any 1024: -> any [80,443,8000:8080]"),
            alert("x", 5, "tcp any any -> any !80"),
            alert("x", 6, "icmp any any -> any any"),
        ]
    )
    packets = [
        tcp(b"x"),
        tcp(b"x", dport=8080),
        udp(b"x"),
        udp(b"x", dport=80),
        tcp(b"x", sport=80),
    ]
    packets.append(bytes(eth() / IP() / ICMP() / Raw(b"x")))
    assert sids(el, packets) == [[1, 3, 4], [3, 4, 5], [2, 3], [3], [1, 3], [3, 6]]


def test_address_constraints_v4_v6_lists_negation() -> None:
    el = dpi(
        [
            alert("x", 1, "tcp 198.18.0.0/16 any -> any any"),
            alert("x", 2, "tcp any any -> [198.19.0.0/16,!198.19.9.0/24] any"),
            alert("x", 3, "tcp 2001:db8::/32 any -> any any"),
            alert("x", 4, "tcp !198.18.0.1 any -> any any"),
            alert("x", 5, "tcp any any -> ::/0 any"),
        ]
    )
    packets = [
        tcp(b"x"),
        tcp(b"x", src="10.0.0.1", dst="198.19.9.1"),
        tcp6(b"x"),
        tcp6(b"x", src="2001:db9::1"),
    ]
    assert sids(el, packets) == [[1, 2], [4], [3, 4, 5], [4, 5]]


def test_bidirectional_rule_matches_both_ways() -> None:
    el = dpi(
        [
            alert("x", 1, "tcp 198.18.0.1 any <> 198.19.0.1 80"),
            alert("x", 2, "tcp 198.18.0.1 any -> any any"),
        ]
    )
    reply = tcp(b"x", src="198.19.0.1", dst="198.18.0.1", sport=80, dport=40000)
    assert sids(el, [tcp(b"x"), reply, tcp(b"x", dport=81)]) == [[1, 2], [1], [2]]


def test_vars_expand_in_addresses_and_ports() -> None:
    el = dpi(
        [alert("x", 1, "tcp $EXT any -> $HOME $WEB")],
        vars={"HOME": "[198.19.0.0/16]", "EXT": "!$HOME", "WEB": "[80,443]"},
    )
    assert sids(el, [tcp(b"x"), tcp(b"x", dport=22), tcp(b"x", src="198.19.5.5")]) == [[1], [], []]


# actions ------------------------------------------------------------------------------------


def test_drop_alert_pass_priorities() -> None:
    el = dpi(
        [
            alert("evil", 1),
            'drop tcp any any -> any any (msg:"block"; content:"evil"; content:"payload"; sid:2;)',
            'pass tcp any any -> any any (content:"trusted"; sid:3;)',
        ]
    )
    only_alert = tcp(b"evil")
    dropped = tcp(b"evil payload")
    passed = tcp(b"trusted evil payload")
    assert sids(el, [only_alert, dropped, passed]) == [[1], [2], []]
    el2 = dpi(el.cfg.rules)
    result = run_element(el2, [only_alert, dropped, passed])
    assert result.outputs["out"] == [only_alert, passed]
    assert result.drops == {"dpi_drop": 1}
    stats = el2.call_handler("stats")
    assert (stats["matched_packets"], stats["dropped"], stats["passed"], stats["alerts"]) == (
        3,
        1,
        1,
        2,
    )
    assert [r["hits"] for r in el2.call_handler("rules")] == [1, 1, 1]


def test_multi_content_and_with_offset_depth() -> None:
    el = dpi(
        [
            'alert tcp any any -> any any (content:"foo"; content:"bar"; sid:1;)',
            'alert tcp any any -> any any (content:"GET"; depth:3; content:"x"; offset:5; sid:2;)',
            {"action": "alert", "sid": 3, "content": ["ab", "ab"], "offset": 2, "depth": 4},
        ]
    )
    packets = [
        tcp(b"bar..foo"),
        tcp(b"foo"),
        tcp(b"GET /x"),
        tcp(b" GET /x"),
        tcp(b"GET x"),
        tcp(b"..ab.."),
    ]
    assert sids(el, packets) == [[1], [], [2], [], [], [3]]


def test_max_alerts_per_packet_counts_lost() -> None:
    el = dpi([alert("a", 1), alert("b", 2), alert("c", 3)], max_alerts_per_packet=2)
    assert sids(el, [tcp(b"abc")]) == [[1, 2]]
    assert el.call_handler("alerts")["lost"] == 1


# alert records ------------------------------------------------------------------------------


def test_alert_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    el = dpi(
        ['drop tcp any any -> any 80 (msg:"a \\"quoted\\" msg"; content:"boom"; sid:7; rev:3;)'],
        alerts_file=str(path),
    )
    fwd = tcp(b"..boom..", src="198.18.0.9", dst="198.19.0.7", sport=1234)
    ts = 1_714_564_800_000_001_500
    run_element(el, [tcp(b"quiet"), fwd], ts=[ts - 1, ts])
    assert path.read_text().endswith("\n")
    (rec,) = [json.loads(x) for x in path.read_text().splitlines()]
    rev = PacketBatch.from_packets(
        [tcp(b"", src="198.19.0.7", dst="198.18.0.9", sport=80, dport=1234)]
    )
    parse_batch(rev)
    assert rec == {
        "timestamp": "2024-05-01T12:00:00.000001+00:00",
        "ts_ns": ts,
        "element": "ids",
        "sid": 7,
        "rev": 3,
        "msg": 'a "quoted" msg',
        "action": "drop",
        "proto": "tcp",
        "src_ip": "198.18.0.9",
        "src_port": 1234,
        "dest_ip": "198.19.0.7",
        "dest_port": 80,
        "flow_hash": int(flow_hash(rev, symmetric=True)[0]),
    }
    assert el.call_handler("alerts")["written"] == 1


def test_alerts_file_is_written_at_stop_only(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    el = dpi([alert("x", 1)], alerts_file=str(path))
    el.start()
    batch = PacketBatch.from_packets([tcp(b"x"), tcp(b"y")])
    parse_batch(batch)
    el.process(batch)
    assert path.read_text() == ""
    assert el.call_handler("alerts")["pending"] == 1
    el.stop()
    assert len(path.read_text().splitlines()) == 1


# rule language and errors -------------------------------------------------------------------


def test_text_and_structured_forms_agree() -> None:
    text = load_rules(
        ['alert tcp any any -> any 80 (msg:"x"; content:"GET /admin"; nocase; sid:1001;)']
    )
    structured = load_rules(
        [
            {
                "action": "alert",
                "proto": "tcp",
                "dport": 80,
                "msg": "x",
                "content": ["GET /admin"],
                "nocase": True,
                "sid": 1001,
            }
        ]
    )
    assert text == structured
    (rule,) = text
    assert rule.contents[0].data == b"GET /admin"
    assert load_rules([rule.text()]) == text


def test_rules_file_text_and_yaml(tmp_path: Path) -> None:
    txt = tmp_path / "local.rules"
    txt.write_text(
        '# comment\n\nalert tcp any any -> any any (content:"a"; \\\n  sid:1;)\n'
        'drop udp any any -> any 53 (content:"|00|"; sid:2;)\n'
    )
    yml = tmp_path / "more.yaml"
    yml.write_text("- {action: pass, content: [b], sid: 3}\n")
    el = dpi([alert("c", 4)], rules_file=str(txt))
    assert [r["sid"] for r in el.call_handler("rules")] == [4, 1, 2]
    assert [r.sid for r in load_rules([], yml)] == [3]


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ('alert tcp any any -> any 80 (content:"x" sid:1;)', "'content' needs a double-quoted"),
        ('alert tcp any any -> any 80 (content:"|de ad b|"; sid:1;)', "bad hex byte"),
        ('alert tcp any any -> any 80 (content:"|de ad"; sid:1;)', "unterminated |hex|"),
        ('alert tcp any any -> any 80 (content:"abc; sid:1;)', "unterminated quoted"),
        ('alert tcp any any -> any 80 (content:""; sid:1;)', "empty content"),
        ('alert tcp any any -> any 80 (content:"a\\x"; sid:1;)', "unknown escape"),
        ('alert tcp any any -> any 80 (content:!"a"; sid:1;)', "negated content"),
        ('alert tcp any any -> any 80 (nocase; content:"a"; sid:1;)', "must follow a content"),
        ('alert tcp any any -> any 80 (content:"abc"; depth:2; sid:1;)', "depth 2 is shorter"),
        ('alert tcp any any -> any 80 (content:"a"; offset:x; sid:1;)', "'offset' needs a number"),
        (
            'alert tcp any any -> any 80 (content:"a"; pcre:"/a/"; sid:1;)',
            "'pcre' is not supported",
        ),
        ('alert tcp any any -> any 80 (content:"a";)', "sid"),
        ('alert tcp any any -> any 80 (msg:"no content"; sid:1;)', "contents"),
        ('reject tcp any any -> any 80 (content:"a"; sid:1;)', "action"),
        ('alert sctp any any -> any 80 (content:"a"; sid:1;)', "proto"),
        ('alert tcp any any => any 80 (content:"a"; sid:1;)', "direction"),
        ('alert tcp any any -> any (content:"a"; sid:1;)', "7 fields"),
        ('alert tcp any any -> any 80 content:"a"; sid:1;', "no option list"),
        ('alert tcp 10.0.0.1/8 any -> any 80 (content:"a"; sid:1;)', "src"),
        ('alert tcp any any -> any 70000 (content:"a"; sid:1;)', "dport"),
        ('alert tcp any any -> $NET 80 (content:"a"; sid:1;)', "unknown variable $NET"),
        ('alert ip any any -> any 80 (content:"a"; sid:1;)', "ports need proto tcp or udp"),
    ],
)
def test_bad_rules_name_rule_and_problem(rule: str, words: str) -> None:
    good = alert("ok", 99)
    with pytest.raises(ValidationError) as info:
        Dpi.Config.model_validate({"rules": [good, rule]})
    text = str(info.value)
    assert "rules[1]" in text
    assert words in text


def test_errors_are_all_reported_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.rules"
    path.write_text(f"{alert('a', 1)}\n\nalert tcp any any -> any 80 (sid:2;)\n{alert('b', 1)}\n")
    with pytest.raises(RuleSyntaxError) as info:
        load_rules([{"action": "alert", "content": "x", "sid": 5, "depth": 0}], path)
    assert [loc for loc, _ in info.value.errors] == [
        "rules[0]: contents.0.depth",
        f"{path}:3: contents",
        f"{path}:4",
    ]
    assert "sid 1 is already used by the rule at " + f"{path}:1" in str(info.value)


def test_missing_rules_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        Dpi.Config.model_validate({"rules_file": str(tmp_path / "nope.rules")})


# handlers -----------------------------------------------------------------------------------


def test_set_rules_compiles_then_swaps() -> None:
    el = dpi([alert("old", 1)])
    assert sids(el, [tcp(b"old new")]) == [[1]]
    el.call_handler("set_rules", [alert("new", 2), {"action": "drop", "content": "zz", "sid": 3}])
    assert sids(el, [tcp(b"old new")]) == [[2]]
    with pytest.raises(HandlerError, match=r"set_rules\[1\]: contents.0.pattern"):
        el.call_handler(
            "set_rules", [alert("a", 5), {"action": "alert", "content": "|zz|", "sid": 6}]
        )
    with pytest.raises(HandlerError, match="set_rules:2"):
        el.call_handler("set_rules", f"{alert('a', 5)}\nalert tcp (sid:6;)\n")
    assert [r["sid"] for r in el.call_handler("rules")] == [2, 3]
    el.call_handler("set_rules", alert("text", 9))
    assert el.read_config()["rules"] == [alert("text", 9)]
    assert sids(el, [tcp(b"text")]) == [[9]]


def test_stats_report_automaton_size() -> None:
    el = dpi([alert("abc", 1), alert("abd", 2, opts="nocase;"), alert("ABD", 3, opts="nocase;")])
    stats = el.call_handler("stats")
    assert (stats["rules"], stats["patterns"], stats["contents"]) == (3, 2, 3)
    assert stats["states"] == 5  # root, a, ab, abc, abd
    assert stats["classes"] == 5  # a, b, c, d, everything else
    assert stats["table_bytes"] == 5 * 5 * 4


# automaton and property test ----------------------------------------------------------------


def test_byte_classes_stay_compact() -> None:
    rng = np.random.default_rng(1)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz0123456789 ./-", dtype=np.uint8)
    words = [bytes(rng.choice(letters, int(rng.integers(6, 17)))) for _ in range(1000)]
    ac = build_automaton(words)
    assert ac.nclasses == len(letters) + 1
    assert ac.classes[ord("A")] == ac.classes[ord("a")]
    assert ac.nstates < sum(len(w) for w in words)


def _reference(rules: list[DpiRule], payload: bytes) -> list[int]:
    """Naive: a rule matches if each content is found (bytes.find) inside its window."""
    found = []
    for rule in rules:
        ok = True
        for c in rule.contents:
            hay, needle = (payload.lower(), c.data.lower()) if c.nocase else (payload, c.data)
            end = len(hay) if c.depth is None else c.offset + c.depth
            ok = ok and hay.find(needle, c.offset, end) >= 0
        if ok:
            found.append(rule.sid)
    return sorted(found)


_alphabet = st.sampled_from(b"abAB\x00\xff")
_pattern = st.binary(min_size=1, max_size=4).map(lambda b: bytes(_alphabet_map(x) for x in b))


def _alphabet_map(x: int) -> int:
    return b"abAB\x00\xff"[x % 6]


_short = st.binary(max_size=30).map(lambda b: bytes(_alphabet_map(x) for x in b))
_content = st.fixed_dictionaries(
    {"pattern": _pattern, "nocase": st.booleans()},
    optional={"offset": st.integers(0, 40), "depth": st.integers(4, 40)},
)


@settings(max_examples=60, deadline=None)
@given(
    contents=st.lists(st.lists(_content, min_size=1, max_size=3), min_size=1, max_size=8),
    payloads=st.lists(
        st.tuples(_short, st.integers(0, 100), _short).map(lambda t: t[0] + b"." * t[1] + t[2]),
        min_size=1,
        max_size=6,
    ),
)
def test_matches_agree_with_naive_find(
    contents: list[list[dict[str, Any]]], payloads: list[bytes]
) -> None:
    raw = []
    for sid, group in enumerate(contents, start=1):
        items = [{**c, "pattern": "|" + c["pattern"].hex() + "|"} for c in group]
        raw.append({"action": "alert", "sid": sid, "contents": items})
    try:
        rules = load_rules(raw)
    except RuleSyntaxError:  # depth shorter than the pattern: rejected, as it should be
        return
    el = dpi(raw, max_alerts_per_packet=16)
    assert sids(el, [udp(p) for p in payloads]) == [_reference(rules, p) for p in payloads]


# stream mode ---------------------------------------------------------------------------------


def seg(payload: bytes, seq: int, sport: int = 40000, flags: str = "PA") -> bytes:
    ip = IP(src="198.18.0.1", dst="198.19.0.1")
    return bytes(eth() / ip / TCP(sport=sport, dport=80, seq=seq, flags=flags) / Raw(payload))


def test_stream_mode_matches_across_in_order_segments() -> None:
    rules = [alert("attack", 1), alert("Secret", 2)]
    packets = [seg(b"..att", 100), seg(b"ack..Sec", 105), seg(b"ret", 113)]
    assert sids(dpi(rules), packets) == [[], [], []]
    el = dpi(rules, stream=True)
    assert sids(el, packets) == [[], [1], [2]]
    stats = el.call_handler("stats")
    assert (stats["stream_new"], stats["stream_continued"], stats["stream_resyncs"]) == (1, 2, 0)


def test_stream_mode_restarts_on_gaps_and_keeps_flows_apart() -> None:
    el = dpi([alert("attack", 1), alert("Secret", 2)], stream=True)
    packets = [
        seg(b"..att", 100),
        seg(b"xxSec", 500, sport=1),  # another flow in between
        seg(b"ack", 106),  # one byte missing: no resume
        seg(b"ret", 505, sport=1),
        seg(b"..sec", 508, sport=1),
        seg(b"ret", 513, sport=1),  # case differs from the pattern across the boundary
    ]
    assert sids(el, packets) == [[], [], [], [2], [], []]
    assert el.call_handler("stats")["stream_resyncs"] == 1


def test_stream_mode_depth_counts_from_flow_start_and_fin_ends_flow() -> None:
    el = dpi(['alert tcp any any -> any any (content:"GET"; depth:3; sid:1;)'], stream=True)
    packets = [seg(b"GET /", 1), seg(b"GET /", 6), seg(b"x", 11, flags="FA"), seg(b"GET", 12)]
    assert sids(el, packets) == [[1], [], [], [1]]
    el2 = dpi(el.cfg.rules, stream=True)
    run_element(el2, [seg(b"GET /", 1), seg(b"x", 6, flags="FA")])
    assert el2.call_handler("stats")["stream_new"] == 1


def test_stream_state_survives_export_import_but_not_new_rules() -> None:
    rules = [alert("attack", 1)]
    a = dpi(rules, stream=True)
    batch = PacketBatch.from_packets([seg(b"..att", 100)])
    parse_batch(batch)
    a.process(batch)
    snap = a.export_state()
    assert len(snap) == 1
    b = dpi(rules, stream=True)
    b.import_state(snap)
    assert sids(b, [seg(b"ack", 105)]) == [[1]]
    c = dpi([alert("attack", 7)], stream=True)
    c.import_state(snap)
    assert sids(c, [seg(b"ack", 105)]) == [[]]
    assert c.call_handler("stats")["stream_resyncs"] == 1
