"""Golden packet tests of vlan_push and vlan_pop, checked against scapy's decoding."""

import numpy as np
import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from nfvkit.elements.vlan_pop import VlanPop
from nfvkit.elements.vlan_push import VlanPush
from nfvkit.packet import flags as F
from nfvkit.testing import run_element

L3 = IP(src="198.18.0.1", dst="198.19.0.2") / TCP(sport=1234, dport=80) / b"hello"
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def test_push_onto_untagged_frame():
    res = run_element(VlanPush.configure("p", {"vid": 100, "pcp": 5}), [bytes(ETH / L3)])
    [out] = res.outputs["out"]
    assert out == bytes(ETH / Dot1Q(vlan=100, prio=5) / L3)
    (_, batch) = res.batches[0]
    assert batch.flags[0] & F.VLAN and not batch.flags[0] & F.QINQ
    assert batch.vlan[0, 0] == (5 << 13) | 100
    assert batch.l3_off[0] == 18 and batch.l4_off[0] == 38


def test_push_802_1ad_over_a_tag_makes_qinq():
    inner = bytes(ETH / Dot1Q(vlan=10) / L3)
    res = run_element(VlanPush.configure("p", {"vid": 200, "tpid": "802.1ad"}), [inner])
    [out] = res.outputs["out"]
    assert out == bytes(ETH / Dot1AD(vlan=200) / Dot1Q(vlan=10) / L3)
    (_, batch) = res.batches[0]
    assert batch.flags[0] & F.QINQ
    assert list(batch.vlan[0]) == [200, 10]


def test_push_onto_two_tags_is_dropped_by_reason():
    qinq = bytes(ETH / Dot1AD(vlan=1) / Dot1Q(vlan=2) / L3)
    res = run_element(VlanPush.configure("p", {"vid": 3}), [qinq])
    assert res.outputs == {} and res.drops == {"vlan_too_many_tags": 1}


def test_pop_restores_the_original_frame_and_columns():
    plain = bytes(ETH / L3)
    res = run_element(VlanPop.configure("p"), [bytes(ETH / Dot1Q(vlan=7) / L3)])
    assert res.outputs["out"] == [plain]
    (_, batch) = res.batches[0]
    assert not batch.flags[0] & F.VLAN
    assert batch.l3_off[0] == 14 and batch.l4_off[0] == 34


def test_pop_qinq_leaves_inner_tag():
    res = run_element(VlanPop.configure("p"), [bytes(ETH / Dot1AD(vlan=1) / Dot1Q(vlan=2) / L3)])
    assert res.outputs["out"] == [bytes(ETH / Dot1Q(vlan=2) / L3)]
    (_, batch) = res.batches[0]
    assert batch.flags[0] & F.VLAN and not batch.flags[0] & F.QINQ
    assert batch.vlan[0, 0] & 0xFFF == 2


@pytest.mark.parametrize(("untagged", "expect_out"), [("pass", 1), ("drop", 0)])
def test_pop_untagged_policy(untagged, expect_out):
    res = run_element(VlanPop.configure("p", {"untagged": untagged}), [bytes(ETH / L3)])
    assert res.count("out") == expect_out
    assert res.drops == ({} if expect_out else {"vlan_untagged": 1})


def test_pop_only_matching_vid():
    frames = [bytes(ETH / Dot1Q(vlan=5) / L3), bytes(ETH / Dot1Q(vlan=6) / L3)]
    res = run_element(VlanPop.configure("p", {"vid": 5}), frames)
    assert res.outputs["out"] == [bytes(ETH / L3), frames[1]]


def test_push_then_pop_round_trip_over_many_frames_without_headroom():
    frames = [bytes(ETH / IP(src="198.18.0.1", dst="198.19.0.2", id=i) / TCP()) for i in range(50)]
    pushed = run_element(VlanPush.configure("p", {"vid": 42}), frames).outputs["out"]
    assert all(Ether(f)[Dot1Q].vlan == 42 for f in pushed)
    popped = run_element(VlanPop.configure("q"), pushed).outputs["out"]
    assert popped == frames


def test_push_copies_when_batch_lacks_headroom():
    from nfvkit.packet.batch import PacketBatch
    from nfvkit.packet.parse import parse_batch

    batch = PacketBatch.from_packets([bytes(ETH / L3)] * 3, headroom=0)
    parse_batch(batch)
    before = batch.data
    el = VlanPush.configure("p", {"vid": 9})
    el.process(batch)
    assert batch.data is not before
    assert np.all(batch.fate == 0)
    assert Ether(batch.packet(2))[Dot1Q].vlan == 9
