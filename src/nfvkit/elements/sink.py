"""``sink``: the end of a graph that delivers nothing further and counts what reaches it.

Packets that reach a sink are counted as delivered (rx), not as drops.
"""

from __future__ import annotations

from nfvkit.elements.base import Element, ElementConfig
from nfvkit.packet.batch import PacketBatch


class Sink(Element):
    """Consume packets, counting packets and bytes (the default graph ``output``)."""

    type_name = "sink"
    Config = ElementConfig
    output_ports = ()

    def process(self, batch: PacketBatch) -> None:
        return None
