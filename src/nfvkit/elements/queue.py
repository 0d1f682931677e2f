"""``queue``: a bounded FIFO that re-batches packets.

In a run-to-completion graph a queue collects the packets pushed into it (copying them out of
their source buffers) and releases them in bursts of at least ``burst`` packets, so elements after
it see large batches even when packets arrive one by one; whatever is left goes out when the
stream ends. When more than ``capacity`` packets wait, the newest ones are dropped
(``queue_full``, tail drop).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from pydantic import Field, model_validator

from nfvkit.elements.base import Element, ElementConfig, read_handler
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import drop_reason

QUEUE_FULL = drop_reason("queue_full", "arrived at a full queue (tail drop)")


class QueueConfig(ElementConfig):
    """Queue capacity and release burst, in packets."""

    capacity: int = Field(1024, ge=1, le=1 << 24, description="most packets held")
    burst: int = Field(256, ge=1, description="release once this many packets wait")

    @model_validator(mode="after")
    def _burst_fits(self) -> Self:
        if self.burst > self.capacity:
            raise ValueError(f"burst ({self.burst}) exceeds capacity ({self.capacity})")
        return self


class Queue(Element):
    """Hold packets and release them in bursts; tail-drop beyond capacity."""

    type_name = "queue"
    Config: ClassVar[type[ElementConfig]] = QueueConfig
    drop_reasons = (QUEUE_FULL,)

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        assert isinstance(config, QueueConfig)
        self.cfg = config
        self.held: list[PacketBatch] = []
        self.length = 0
        self.highwater = 0

    def process(self, batch: PacketBatch) -> PacketBatch | None:
        room = self.cfg.capacity - self.length
        if len(batch) > room:
            self.stats.drop(QUEUE_FULL, len(batch) - room)
            batch = batch.select(np.arange(room))
        if len(batch):
            self.held.append(batch.copy())
            self.length += len(batch)
            self.highwater = max(self.highwater, self.length)
        return self._release() if self.length >= self.cfg.burst else None

    def flush(self) -> PacketBatch | None:
        return self._release() if self.length else None

    def _release(self) -> PacketBatch:
        out = PacketBatch.concat(self.held) if len(self.held) > 1 else self.held[0]
        self.held = []
        self.length = 0
        out.fate.fill(0)
        return out

    @read_handler("length", "packets waiting now")
    def read_length(self) -> int:
        return self.length

    @read_handler("highwater", "most packets that ever waited at once")
    def read_highwater(self) -> int:
        return self.highwater

    @read_handler("state", "capacity, burst, length and high-water mark")
    def read_state(self) -> dict[str, Any]:
        return {
            "capacity": self.cfg.capacity,
            "burst": self.cfg.burst,
            "length": self.length,
            "highwater": self.highwater,
        }
