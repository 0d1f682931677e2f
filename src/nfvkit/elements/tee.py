"""``tee``: mirror every packet to several outputs.

Output ``out0`` gets the original packets; every other output gets a copy (bytes and
metadata), so elements after one branch may rewrite packets without touching the others.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from nfvkit.elements.base import Element, ElementConfig
from nfvkit.packet.batch import PacketBatch


class TeeConfig(ElementConfig):
    """How many outputs the tee has."""

    outputs: int = Field(2, ge=2, le=64, description="number of output ports (out0, out1, ...)")


class Tee(Element):
    """Send the same packets to every output (copies for all but the first)."""

    type_name = "tee"
    Config: ClassVar[type[ElementConfig]] = TeeConfig

    @classmethod
    def outputs_for(cls, config: ElementConfig) -> tuple[str, ...]:
        assert isinstance(config, TeeConfig)
        return tuple(f"out{i}" for i in range(config.outputs))

    def process(self, batch: PacketBatch) -> list[PacketBatch]:
        out = [batch]
        for port in range(1, len(self.outputs)):
            clone = batch.copy()
            clone.fate.fill(port)
            out.append(clone)
        return out
