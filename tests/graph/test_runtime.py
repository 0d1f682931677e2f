"""The run-to-completion runtime: routing by fate, splitting, flushing, life-cycle undo."""

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from nfvkit.elements.base import Element, ElementConfig, Stage
from nfvkit.elements.from_memory import FromMemory
from nfvkit.elements.registry import BUILTIN, register
from nfvkit.elements.sink import Sink
from nfvkit.graph.build import build
from nfvkit.graph.runtime import Runtime
from nfvkit.graph.spec import load_text
from nfvkit.packet.batch import PacketBatch


def frame(i: int, size: int = 64) -> bytes:
    raw = bytes(Ether() / IP(src="198.18.0.1", dst="198.19.0.1", id=i) / UDP(sport=i, dport=9))
    return raw + b"\x00" * max(0, size - len(raw))


def run_graph(text: str, batches: list[list[bytes]]):
    src = FromMemory.configure("input")
    src.load([PacketBatch.from_packets(b) for b in batches])
    g = build(load_text(text, "t"), {"input": src, "output": Sink.configure("output")})
    rt = Runtime(g)
    with rt:
        rt.run()
    return g, rt


def test_counts_add_up_through_branches():
    small, big = frame(1, 64), frame(2, 200)
    garbage = b"\x00" * 5  # malformed: dropped at ingress with its reason
    g, rt = run_graph(
        """
        elements:
          cl: {type: check_length, config: {max: 100}}
          t: {type: tee}
        graph: |
          input -> t
          t[out0] -> cl -> output
          t[out1] -> c :: counter -> discard
        """,
        [[small, big, garbage], [small]],
    )
    c = {n.name: n.element.read_counters() for n in g.nodes}
    assert rt.stats.packets == 4
    assert sum(c["input"]["drops"].values()) == 1
    assert c["t"]["rx_packets"] == 3
    assert c["cl"]["drops"] == {"too_long": 1}
    assert c["output"]["rx_packets"] == 2
    assert c["c"]["rx_packets"] == 3
    assert c["discard@1"]["drops"] == {"discarded": 3}


def test_queue_flush_reaches_the_end():
    g, _rt = run_graph("graph: 'input -> q :: queue -> output'", [[frame(i)] for i in range(7)])
    assert g.node("output").element.stats.rx_packets == 7


class _Exploding(Element):
    """Fails to initialize (for the undo test)."""

    type_name = "test_exploding"
    Config = ElementConfig

    def initialize(self) -> None:
        raise RuntimeError("boom")


def test_failed_open_undoes_only_what_was_done():
    if "test_exploding" not in BUILTIN:
        register(_Exploding)
    src = FromMemory.configure("input")
    g = build(
        load_text("graph: 'input -> a :: counter -> b :: test_exploding -> output'", "t"),
        {"input": src, "output": Sink.configure("output")},
    )
    rt = Runtime(g)
    with pytest.raises(RuntimeError, match="boom"):
        rt.open()
    stages = {n.name: n.element.stage for n in g.nodes}
    assert stages["input"] == Stage.CLEANED and stages["a"] == Stage.CLEANED
    assert stages["b"] == Stage.CONFIGURED and stages["output"] == Stage.CONFIGURED
