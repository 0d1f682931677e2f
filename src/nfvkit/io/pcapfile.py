"""The classic libpcap file format: file header, record walk kernel and record writer kernel.

Layout (tcpdump.org ``pcap-savefile(5)``, draft-ietf-opsawg-pcap): a 24-byte file header
(magic, version 2.4, thiszone, sigfigs, snaplen, link type) followed by records of a 16-byte
header (seconds, fraction, captured length, original length) and the captured bytes. The magic
``0xa1b2c3d4`` means microsecond fractions, ``0xa1b23c4d`` nanoseconds; reading it byte-swapped
means the file was written in the other byte order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from nfvkit.io._binary import i64, rd_u32, wr_le32

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
FILE_HEADER_LEN = 24
RECORD_HEADER_LEN = 16
MAX_CAPLEN = 262144  # 256 KiB: anything longer is taken as corruption

# walk-kernel status codes (shared with the pcapng kernel)
NEED_MORE = 0  # the record at ``pos`` is not complete in the buffer; ``need`` bytes are needed
BLOCK = 1  # a block the Python side parses (pcapng SHB, IDB) starts at ``pos``
ERR_CAPLEN = -1  # captured length above MAX_CAPLEN; ``need`` holds it
ERR_BLOCKLEN = -2  # pcapng block length impossible
ERR_TRAILER = -3  # pcapng trailing block length differs from the leading one
ERR_IFACE = -4  # pcapng packet refers to an interface not described (yet)

_NS = 1_000_000_000


@dataclass(frozen=True)
class PcapHeader:
    """The decoded 24-byte pcap file header."""

    swap: bool
    nanosecond: bool
    version: tuple[int, int]
    snaplen: int
    linktype: int


def parse_file_header(raw: bytes) -> PcapHeader | None:
    """Decode a pcap file header; ``None`` if the magic is not a pcap magic.

    ``raw`` must hold at least 24 bytes (the caller checks, so it can report truncation).
    """
    le = int.from_bytes(raw[:4], "little")
    be = int.from_bytes(raw[:4], "big")
    if le in (MAGIC_US, MAGIC_NS):
        order, magic = "little", le
    elif be in (MAGIC_US, MAGIC_NS):
        order, magic = "big", be
    else:
        return None

    def field(a: int, b: int) -> int:
        return int.from_bytes(raw[a:b], order)  # type: ignore[arg-type]

    return PcapHeader(
        swap=order == "big",
        nanosecond=magic == MAGIC_NS,
        version=(field(4, 6), field(6, 8)),
        snaplen=field(16, 20),
        linktype=field(20, 24) & 0xFFFF,  # upper bits: FCS length flags, unused here
    )


def is_pcap_magic(raw: bytes) -> bool:
    """Whether the first four bytes are a pcap magic in either byte order."""
    return any(int.from_bytes(raw[:4], o) in (MAGIC_US, MAGIC_NS) for o in ("little", "big"))


def file_header(nanosecond: bool, snaplen: int, linktype: int) -> bytes:
    """A little-endian pcap file header."""
    magic = MAGIC_NS if nanosecond else MAGIC_US
    return (
        magic.to_bytes(4, "little")
        + (2).to_bytes(2, "little")
        + (4).to_bytes(2, "little")
        + bytes(8)
        + snaplen.to_bytes(4, "little")
        + linktype.to_bytes(4, "little")
    )


@njit(cache=True, nogil=True)
def walk_pcap(
    buf: NDArray[np.uint8],
    pos: int,
    end: int,
    swap: bool,
    nanosecond: bool,
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    ts: NDArray[np.int64],
) -> tuple[int, int, int, int]:
    """Walk the records in ``buf[pos:end]``; fill the output columns.

    Returns ``(records, pos, status, need)``: ``pos`` is where the walk stopped (the start of an
    incomplete or bad record), ``status`` one of the status codes and ``need`` the number of
    bytes the record at ``pos`` needs (or the bad captured length).
    """
    n = 0
    mul = 1 if nanosecond else 1000
    while True:
        if end - pos < RECORD_HEADER_LEN:
            return n, pos, NEED_MORE, RECORD_HEADER_LEN
        caplen = rd_u32(buf, pos + 8, swap)
        if caplen > MAX_CAPLEN:
            return n, pos, ERR_CAPLEN, caplen
        if end - pos < RECORD_HEADER_LEN + caplen:
            return n, pos, NEED_MORE, RECORD_HEADER_LEN + caplen
        ts[n] = rd_u32(buf, pos, swap) * _NS + rd_u32(buf, pos + 4, swap) * mul
        offset[n] = pos + RECORD_HEADER_LEN
        length[n] = caplen
        n += 1
        pos += RECORD_HEADER_LEN + caplen


@njit(cache=True, nogil=True)
def write_pcap_records(
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    ts: NDArray[np.int64],
    snaplen: int,
    nanosecond: bool,
    out: NDArray[np.uint8],
) -> int:
    """Lay out one little-endian pcap record per packet in ``out``; return the bytes written."""
    pos = 0
    div = 1 if nanosecond else 1000
    for i in range(offset.shape[0]):
        size = i64(length[i])
        cap = min(size, snaplen)
        t = ts[i]
        sec = t // _NS
        wr_le32(out, pos, sec)
        wr_le32(out, pos + 4, (t - sec * _NS) // div)
        wr_le32(out, pos + 8, cap)
        wr_le32(out, pos + 12, size)
        src = offset[i]
        pos += RECORD_HEADER_LEN
        for j in range(cap):
            out[pos + j] = data[src + j]
        pos += cap
    return pos
