"""``from_pcap``: read packets from a pcap or pcapng file, streamed in batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from nfvkit.elements.base import ElementConfig, read_handler
from nfvkit.elements.source import Source
from nfvkit.errors import InputFileError
from nfvkit.io.pcap import open_reader
from nfvkit.packet.batch import PacketBatch


class FromPcapConfig(ElementConfig):
    """The file to read and the batch size."""

    path: Path = Field(description="pcap or pcapng file")
    batch: int = Field(256, ge=1, le=65536, description="packets per batch")


class FromPcap(Source):
    """Stream a capture file as batches (timestamps kept to the nanosecond)."""

    type_name = "from_pcap"
    Config: ClassVar[type[ElementConfig]] = FromPcapConfig

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        assert isinstance(config, FromPcapConfig)
        self.cfg = config
        self._reader: Any = None
        self._it: Iterator[PacketBatch] | None = None

    def initialize(self) -> None:
        if not self.cfg.path.is_file():
            raise InputFileError("no such file", where=str(self.cfg.path))
        self._reader = open_reader(self.cfg.path, batch_size=self.cfg.batch)
        self._it = iter(self._reader)

    def pull(self) -> PacketBatch | None:
        assert self._it is not None, "from_pcap pulled before initialize"
        return next(self._it, None)

    def cleanup(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @read_handler("path", "the file being read")
    def read_path(self) -> str:
        return str(self.cfg.path)
