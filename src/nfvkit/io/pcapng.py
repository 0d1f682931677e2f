"""The pcapng file format (draft-ietf-opsawg-pcapng): block walk kernel, the Section Header and
Interface Description Block parsers, and the block writers.

Every block is ``type, total length, body, total length`` (32-bit words in the byte order the
section's Section Header Block declares). We read:

* Section Header Blocks (``0x0A0D0D0A``): byte order, version 1.x; a new section forgets the
  interfaces of the previous one;
* Interface Description Blocks (1): link type, snaplen and the options ``if_tsresol`` (code 9;
  high bit clear: a negative power of 10, set: a negative power of 2; default 10^-6) and
  ``if_tsoffset`` (code 14, seconds added to every timestamp);
* Enhanced Packet Blocks (6) and Simple Packet Blocks (3; no interface id and no timestamp:
  they belong to interface 0 and get ``ts = 0``);

and skip every other block type. The kernel walks the packet blocks; it stops at the (rare)
SHB/IDB for :class:`PcapngState` to parse in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit
from numpy.typing import NDArray

from nfvkit.io._binary import i64, rd_u32, wr_le32
from nfvkit.io.pcapfile import (
    BLOCK,
    ERR_BLOCKLEN,
    ERR_CAPLEN,
    ERR_IFACE,
    ERR_TRAILER,
    MAX_CAPLEN,
    NEED_MORE,
)

SHB = 0x0A0D0D0A
IDB = 1
SPB = 3
EPB = 6
BYTE_ORDER_MAGIC = 0x1A2B3C4D
MAX_BLOCK = 16 << 20  # a bigger block is taken as corruption
OPT_TSRESOL = 9
OPT_TSOFFSET = 14
EPB_HEADER = 28  # bytes from the block start to the packet data
SPB_HEADER = 12

_NS = 1_000_000_000


class PcapngFormatError(ValueError):
    """A malformed SHB or IDB; the reader turns it into a PcapError with file and offset."""


@njit(cache=True, nogil=True)
def ts_to_ns(t: int, pow2: bool, exp: int, offset_ns: int) -> int:
    """Convert a timestamp of ``10**-exp`` (or ``2**-exp`` if ``pow2``) units to nanoseconds."""
    if pow2:
        sec = t >> exp
        frac = t & ((1 << exp) - 1)
        if exp > 33:  # keep frac * 1e9 inside int64
            frac >>= exp - 33
            exp = 33
        return offset_ns + sec * _NS + ((frac * _NS) >> exp)
    scale = 1
    if exp <= 9:
        for _ in range(9 - exp):
            scale *= 10
        return offset_ns + t * scale
    for _ in range(exp - 9):
        scale *= 10
    return offset_ns + t // scale


@njit(cache=True, nogil=True)
def walk_pcapng(
    buf: NDArray[np.uint8],
    pos: int,
    end: int,
    swap: bool,
    if_pow2: NDArray[np.bool_],
    if_exp: NDArray[np.int64],
    if_offset: NDArray[np.int64],
    if_snaplen: NDArray[np.int64],
    n_if: int,
    out_off: NDArray[np.int64],
    out_len: NDArray[np.int32],
    out_ts: NDArray[np.int64],
    out_port: NDArray[np.uint16],
) -> tuple[int, int, int, int, bool]:
    """Walk the blocks in ``buf[pos:end]``; fill the columns for EPBs and SPBs.

    Returns ``(records, pos, status, need, saw_spb)`` as :func:`walk_pcap` does, plus whether a
    Simple Packet Block (with only 12 bytes of headroom) was read.
    """
    n = 0
    saw_spb = False
    while True:
        if end - pos < 12:
            return n, pos, NEED_MORE, 12, saw_spb
        btype = rd_u32(buf, pos, swap)
        if btype == SHB:
            return n, pos, BLOCK, 0, saw_spb
        blen = rd_u32(buf, pos + 4, swap)
        if blen < 12 or blen % 4 != 0 or blen > MAX_BLOCK:
            return n, pos, ERR_BLOCKLEN, blen, saw_spb
        if end - pos < blen:
            return n, pos, NEED_MORE, blen, saw_spb
        if rd_u32(buf, pos + blen - 4, swap) != blen:
            return n, pos, ERR_TRAILER, blen, saw_spb
        if btype == IDB:
            return n, pos, BLOCK, 0, saw_spb
        if btype == EPB:
            if blen < 32:
                return n, pos, ERR_BLOCKLEN, blen, saw_spb
            ifid = rd_u32(buf, pos + 8, swap)
            if ifid >= n_if:
                return n, pos, ERR_IFACE, ifid, saw_spb
            caplen = rd_u32(buf, pos + 20, swap)
            if caplen > MAX_CAPLEN:
                return n, pos, ERR_CAPLEN, caplen, saw_spb
            if EPB_HEADER + caplen > blen - 4:
                return n, pos, ERR_BLOCKLEN, blen, saw_spb
            t = (rd_u32(buf, pos + 12, swap) << 32) | rd_u32(buf, pos + 16, swap)
            out_ts[n] = ts_to_ns(t, if_pow2[ifid], if_exp[ifid], if_offset[ifid])
            out_off[n] = pos + EPB_HEADER
            out_len[n] = caplen
            out_port[n] = ifid
            n += 1
        elif btype == SPB:
            if n_if == 0:
                return n, pos, ERR_IFACE, 0, saw_spb
            caplen = rd_u32(buf, pos + 8, swap)
            snap = if_snaplen[0]
            if 0 < snap < caplen:
                caplen = snap
            caplen = min(caplen, blen - 16)
            if caplen > MAX_CAPLEN:
                return n, pos, ERR_CAPLEN, caplen, saw_spb
            out_ts[n] = 0
            out_off[n] = pos + SPB_HEADER
            out_len[n] = caplen
            out_port[n] = 0
            saw_spb = True
            n += 1
        pos += blen


@dataclass
class PcapngState:
    """The current section of a pcapng file: byte order and interface table."""

    swap: bool = False
    linktypes: list[int] = field(default_factory=list)
    pow2: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(8, np.bool_))
    exp: NDArray[np.int64] = field(default_factory=lambda: np.zeros(8, np.int64))
    offset_ns: NDArray[np.int64] = field(default_factory=lambda: np.zeros(8, np.int64))
    snaplen: NDArray[np.int64] = field(default_factory=lambda: np.zeros(8, np.int64))
    sections: int = 0

    @property
    def n_if(self) -> int:
        return len(self.linktypes)

    def parse_block(self, buf: NDArray[np.uint8], pos: int, end: int) -> tuple[int, int]:
        """Parse the SHB or IDB at ``pos``; return ``(next_pos, 0)`` or ``(pos, need)``."""
        if end - pos < 12:
            return pos, 12
        if rd_u32(buf, pos, False) == SHB:
            magic = int.from_bytes(buf[pos + 8 : pos + 12].tobytes(), "little")
            if magic == BYTE_ORDER_MAGIC:
                swap = False
            elif magic == int.from_bytes(BYTE_ORDER_MAGIC.to_bytes(4, "big"), "little"):
                swap = True
            else:
                raise PcapngFormatError(f"bad byte-order magic 0x{magic:08x} in section header")
            blen = rd_u32(buf, pos + 4, swap)
            if blen < 28 or blen % 4 or blen > MAX_BLOCK:
                raise PcapngFormatError(f"bad section header block length {blen}")
            if end - pos < blen:
                return pos, blen
            major = int.from_bytes(buf[pos + 12 : pos + 14].tobytes(), "big" if swap else "little")
            if major != 1:
                raise PcapngFormatError(f"unsupported pcapng version {major}")
            self.swap = swap
            self.linktypes = []
            self.sections += 1
            return pos + blen, 0
        blen = rd_u32(buf, pos + 4, self.swap)
        self._parse_idb(buf[pos : pos + blen].tobytes())
        return pos + blen, 0

    def _parse_idb(self, block: bytes) -> None:
        order = "big" if self.swap else "little"
        if len(block) < 20:
            raise PcapngFormatError(f"interface description block too short ({len(block)})")
        linktype = int.from_bytes(block[8:10], order)  # type: ignore[arg-type]
        snaplen = int.from_bytes(block[12:16], order)  # type: ignore[arg-type]
        pow2, exp, offset = False, 6, 0
        for code, value in _options(block[16:-4], order):
            if code == OPT_TSRESOL and len(value) >= 1:
                pow2, exp = bool(value[0] & 0x80), value[0] & 0x7F
            elif code == OPT_TSOFFSET and len(value) >= 8:
                offset = int.from_bytes(value[:8], order, signed=True)  # type: ignore[arg-type]
        if (pow2 and exp > 62) or (not pow2 and exp > 18):
            raise PcapngFormatError(f"unsupported if_tsresol {exp} (power of {2 if pow2 else 10})")
        self._append(linktype, pow2, exp, offset * _NS, snaplen)

    def _append(self, linktype: int, pow2: bool, exp: int, offset_ns: int, snaplen: int) -> None:
        i = len(self.linktypes)
        if i >= self.exp.shape[0]:
            size = 2 * self.exp.shape[0]
            self.pow2 = np.resize(self.pow2, size)
            self.exp = np.resize(self.exp, size)
            self.offset_ns = np.resize(self.offset_ns, size)
            self.snaplen = np.resize(self.snaplen, size)
        self.linktypes.append(linktype)
        self.pow2[i] = pow2
        self.exp[i] = exp
        self.offset_ns[i] = offset_ns
        self.snaplen[i] = snaplen


def _options(raw: bytes, order: str) -> list[tuple[int, bytes]]:
    """The ``(code, value)`` options in ``raw``, up to ``opt_endofopt``."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos + 4 <= len(raw):
        code = int.from_bytes(raw[pos : pos + 2], order)  # type: ignore[arg-type]
        size = int.from_bytes(raw[pos + 2 : pos + 4], order)  # type: ignore[arg-type]
        if code == 0:
            break
        out.append((code, raw[pos + 4 : pos + 4 + size]))
        pos += 4 + ((size + 3) & ~3)
    return out


# writing --------------------------------------------------------------------------------------


def section_header() -> bytes:
    """A little-endian Section Header Block, version 1.0, section length unknown (-1)."""
    body = (
        BYTE_ORDER_MAGIC.to_bytes(4, "little")
        + (1).to_bytes(2, "little")
        + (0).to_bytes(2, "little")
        + (-1).to_bytes(8, "little", signed=True)
    )
    return _block(SHB, body)


def interface_description(linktype: int, snaplen: int, tsresol: int) -> bytes:
    """An Interface Description Block with an ``if_tsresol`` option (10**-tsresol)."""
    opts = (
        OPT_TSRESOL.to_bytes(2, "little")
        + (1).to_bytes(2, "little")
        + bytes([tsresol, 0, 0, 0])
        + bytes(4)  # opt_endofopt
    )
    body = linktype.to_bytes(2, "little") + bytes(2) + snaplen.to_bytes(4, "little") + opts
    return _block(IDB, body)


def _block(btype: int, body: bytes) -> bytes:
    blen = (12 + len(body)).to_bytes(4, "little")
    return btype.to_bytes(4, "little") + blen + body + blen


@njit(cache=True, nogil=True)
def write_epbs(
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    ts: NDArray[np.int64],
    port: NDArray[np.uint16],
    snaplen: int,
    ts_div: int,
    out: NDArray[np.uint8],
) -> int:
    """Lay out one little-endian Enhanced Packet Block per packet; return the bytes written.

    Timestamps are written in units of ``ts_div`` nanoseconds (1 for if_tsresol 9).
    """
    pos = 0
    for i in range(offset.shape[0]):
        size = i64(length[i])
        cap = min(size, snaplen)
        padded = (cap + 3) & ~3
        blen = 32 + padded
        t = ts[i] // ts_div
        wr_le32(out, pos, EPB)
        wr_le32(out, pos + 4, blen)
        wr_le32(out, pos + 8, i64(port[i]))
        wr_le32(out, pos + 12, t >> 32)
        wr_le32(out, pos + 16, t & 0xFFFFFFFF)
        wr_le32(out, pos + 20, cap)
        wr_le32(out, pos + 24, size)
        src = offset[i]
        p = pos + EPB_HEADER
        for j in range(cap):
            out[p + j] = data[src + j]
        for j in range(p + cap, p + padded):
            out[j] = 0
        wr_le32(out, pos + blen - 4, blen)
        pos += blen
    return pos


def epb_bytes(length: NDArray[np.int32], snaplen: int) -> int:
    """The size of the EPBs :func:`write_epbs` writes for packets of ``length``."""
    cap = np.minimum(length.astype(np.int64), snaplen)
    return int((((cap + 3) & ~3) + 32).sum())
