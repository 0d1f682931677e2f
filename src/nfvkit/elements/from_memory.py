"""``from_memory``: replay batches held in memory, at full speed (for benchmarks and tests).

The batches are given through :meth:`FromMemory.load`; ``repeat`` replays them several times.
Each pulled batch is a fresh copy of the metadata over the same packet bytes, so elements that
rewrite packets see what they wrote on the previous round — use read-only graphs for repeated
benchmarks, or ``copy: true`` to replay pristine copies (slower).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from nfvkit.elements.base import ElementConfig
from nfvkit.elements.source import Source
from nfvkit.packet.batch import COLUMNS, PacketBatch


class FromMemoryConfig(ElementConfig):
    """How often to replay, and whether to copy packet bytes for each round."""

    repeat: int = Field(1, ge=1, description="rounds over the loaded batches")
    copy_bytes: bool = Field(False, alias="copy", description="replay pristine byte copies")


class FromMemory(Source):
    """Replay loaded batches ``repeat`` times."""

    type_name = "from_memory"
    Config: ClassVar[type[ElementConfig]] = FromMemoryConfig

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        assert isinstance(config, FromMemoryConfig)
        self.cfg = config
        self.batches: list[PacketBatch] = []
        self._round = 0
        self._next = 0

    def load(self, batches: list[PacketBatch]) -> None:
        """Set the batches to replay (kept by reference)."""
        self.batches = batches
        self._round = 0
        self._next = 0

    def pull(self) -> PacketBatch | None:
        if self._next >= len(self.batches):
            self._round += 1
            self._next = 0
        if self._round >= self.cfg.repeat or not self.batches:
            return None
        src = self.batches[self._next]
        self._next += 1
        if self.cfg.copy_bytes:
            return src.copy(headroom=src.headroom)
        cols = {name: getattr(src, name).copy() for name in COLUMNS}
        return PacketBatch(src.data, cols.pop("offset"), cols.pop("length"), src.headroom, **cols)
