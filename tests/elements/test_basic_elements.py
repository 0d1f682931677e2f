"""Golden packet tests of the basic elements: counter, discard, sink, tee, check_length,
queue."""

import pytest
from pydantic import ValidationError
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from nfvkit.elements.check_length import CheckLength
from nfvkit.elements.counter import Counter
from nfvkit.elements.discard import Discard
from nfvkit.elements.queue import Queue
from nfvkit.elements.sink import Sink
from nfvkit.elements.tee import Tee
from nfvkit.testing import run_element


def pkt(i: int = 0, size: int = 0) -> bytes:
    p = Ether() / IP(src="198.18.0.1", dst="198.19.0.1") / UDP(sport=1000 + i, dport=53)
    raw = bytes(p)
    return raw + b"\x00" * max(0, size - len(raw))


def test_counter_passes_everything_and_counts_rate_from_timestamps():
    el = Counter.configure("c")
    pkts = [pkt(i) for i in range(10)]
    res = run_element(el, pkts, ts=[i * 100_000_000 for i in range(10)])  # 10 pkts over 0.9 s
    assert res.outputs["out"] == pkts
    assert el.call_handler("count") == 10
    assert el.call_handler("byte_count") == sum(map(len, pkts))
    rate = el.call_handler("rate")
    assert rate["pps"] == pytest.approx(10 / 0.9)
    assert rate["bps"] == pytest.approx(sum(map(len, pkts)) * 8 / 0.9)


def test_discard_drops_with_named_reason():
    el = Discard.configure("d")
    res = run_element(el, [pkt(1), pkt(2)])
    assert res.outputs == {}
    assert res.drops == {"discarded": 2}


def test_sink_consumes_and_counts_as_received_not_dropped():
    el = Sink.configure("s")
    res = run_element(el, [pkt(1), pkt(2), pkt(3)])
    assert res.outputs == {} and res.drops == {}
    assert el.read_counters()["rx_packets"] == 3


def test_tee_copies_are_independent():
    el = Tee.configure("t", {"outputs": 3})
    assert el.outputs == ("out0", "out1", "out2")
    pkts = [pkt(i) for i in range(4)]
    res = run_element(el, pkts)
    for port in el.outputs:
        assert res.outputs[port] == pkts
    (_, b0), (_, b1), _ = res.batches
    b1.data[b1.offset[0]] ^= 0xFF  # writing into a copy leaves the original alone
    assert b0.packet(0) == pkts[0]
    assert el.read_counters()["tx_packets"] == {"out0": 4, "out1": 4, "out2": 4}


def test_check_length_drops_by_reason():
    el = CheckLength.configure("cl", {"min": 60, "max": 100})
    short, ok, long_ = pkt(0), pkt(1, 80), pkt(2, 150)
    assert len(short) < 60
    res = run_element(el, [short, ok, long_])
    assert res.outputs["out"] == [ok]
    assert res.drops == {"too_short": 1, "too_long": 1}


def test_check_length_rejects_inverted_bounds():
    with pytest.raises(ValidationError, match="greater than max"):
        CheckLength.configure("cl", {"min": 100, "max": 60})


def test_config_rejects_unknown_keys_with_the_key_name():
    with pytest.raises(ValidationError) as err:
        CheckLength.configure("cl", {"maxx": 3})
    assert err.value.errors()[0]["loc"] == ("maxx",)


def test_queue_rebatches_and_flushes_the_rest_in_order():
    el = Queue.configure("q", {"capacity": 100, "burst": 4})
    groups = [[pkt(i)] for i in range(10)]  # ten batches of one packet
    res = run_element(el, groups)
    assert res.outputs["out"] == [g[0] for g in groups]
    sizes = [len(b) for _, b in res.batches]
    assert sizes == [4, 4, 2]  # two bursts, then the flush at the end of the stream
    assert el.call_handler("highwater") == 4


def test_queue_tail_drops_beyond_capacity():
    el = Queue.configure("q", {"capacity": 5, "burst": 5})
    pkts = [pkt(i) for i in range(8)]
    res = run_element(el, pkts)
    assert res.outputs["out"] == pkts[:5]
    assert res.drops == {"queue_full": 3}


def test_queue_keeps_packets_after_the_source_buffer_is_reused():
    el = Queue.configure("q", {"capacity": 10, "burst": 10})
    first = [pkt(1)]
    res = run_element(el, [first, [pkt(2)]])
    assert res.outputs["out"] == [first[0], pkt(2)]


def test_tcp_packets_flow_through_unchanged():
    p = bytes(Ether() / IP(src="198.18.0.1", dst="198.19.0.9") / TCP(sport=1, dport=80))
    assert run_element(Counter.configure("c"), [p]).outputs["out"] == [p]
