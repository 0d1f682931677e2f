"""``to_pcap``: write the packets that reach it to a pcap or pcapng file (by extension)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from nfvkit.elements.base import Element, ElementConfig
from nfvkit.io.pcap import open_writer
from nfvkit.packet.batch import PacketBatch


class ToPcapConfig(ElementConfig):
    """The file to write."""

    path: Path = Field(description="output file; .pcapng writes pcapng, anything else pcap")
    format: Literal["pcap", "pcapng"] | None = Field(None, description="override the extension")


class ToPcap(Element):
    """Write every packet it receives to a capture file (nanosecond timestamps)."""

    type_name = "to_pcap"
    Config: ClassVar[type[ElementConfig]] = ToPcapConfig
    output_ports = ()

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        assert isinstance(config, ToPcapConfig)
        self.cfg = config
        self._writer: Any = None

    def initialize(self) -> None:
        self._writer = open_writer(self.cfg.path, format=self.cfg.format)

    def process(self, batch: PacketBatch) -> None:
        self._writer.write(batch)

    def cleanup(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
