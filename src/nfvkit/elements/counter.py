"""``counter``: a pass-through element that counts packets and bytes and measures the rate.

Rates are computed from packet timestamps (so replaying a trace reports the trace's own rate),
with the first and last timestamp seen.
"""

from __future__ import annotations

from typing import Any

from nfvkit.elements.base import Element, ElementConfig, read_handler
from nfvkit.packet.batch import PacketBatch


class Counter(Element):
    """Count packets and bytes that pass; report packet and bit rates from timestamps."""

    type_name = "counter"
    Config = ElementConfig

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        self.first_ts = -1
        self.last_ts = -1

    def process(self, batch: PacketBatch) -> PacketBatch:
        if len(batch):
            if self.first_ts < 0:
                self.first_ts = int(batch.ts[0])
            self.last_ts = int(batch.ts[-1])
        return batch

    @read_handler("count", "packets counted")
    def read_count(self) -> int:
        return self.stats.rx_packets

    @read_handler("byte_count", "bytes counted")
    def read_byte_count(self) -> int:
        return self.stats.rx_bytes

    @read_handler("rate", "packets/s and bits/s between the first and last timestamp seen")
    def read_rate(self) -> dict[str, Any]:
        span = (self.last_ts - self.first_ts) / 1e9
        if span <= 0:
            return {"pps": None, "bps": None, "seconds": 0.0}
        return {
            "pps": self.stats.rx_packets / span,
            "bps": self.stats.rx_bytes * 8 / span,
            "seconds": span,
        }
