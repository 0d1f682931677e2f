"""``discard``: drop every packet, counted under the reason ``discarded``."""

from __future__ import annotations

from nfvkit.elements.base import Element, ElementConfig
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import drop_reason

DISCARDED = drop_reason("discarded", "sent to a discard element on purpose")


class Discard(Element):
    """Drop every packet it receives (a deliberate drop, counted as ``discarded``)."""

    type_name = "discard"
    Config = ElementConfig
    output_ports = ()
    drop_reasons = (DISCARDED,)

    def process(self, batch: PacketBatch) -> PacketBatch:
        batch.fate.fill(DISCARDED.fate)
        return batch
