"""Packet I/O ports: streamed pcap/pcapng reading into batches and batch writing."""

from nfvkit.io.pcap import (
    LINKTYPE_ETHERNET,
    PcapReader,
    PcapWriter,
    open_reader,
    open_writer,
)

__all__ = ["LINKTYPE_ETHERNET", "PcapReader", "PcapWriter", "open_reader", "open_writer"]
