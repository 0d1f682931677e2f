"""Streamed pcap/pcapng reading into :class:`PacketBatch` es and batch-at-a-time writing.

Reading: :func:`open_reader` detects classic pcap (either byte order, micro- or nanosecond
magic) or pcapng by the file's magic and returns a :class:`PcapReader`, an iterator of batches
of up to ``batch_size`` packets. The file is read in chunks (4 MiB by default) into fresh
buffers; each batch's ``data`` *is* the chunk buffer and its ``offset`` column points at the
packet bytes inside it (zero copy). The record header in front of every packet is the batch's
headroom: 16 bytes for pcap, 28 for pcapng EPBs (12 if the chunk held a Simple Packet Block).
A record cut by a chunk boundary is carried into the next chunk. Numba kernels walk the records.

Truncation policy: a file whose *last* record is cut short (a live capture that was killed) is
common. By default the reader yields every complete packet, then stops and records the fact in
:attr:`PcapReader.truncated` / :attr:`PcapReader.warning` (and logs a warning); with
``strict=True`` it raises :class:`PcapError` instead. Anything else wrong (bad magic, cut file
header, a captured length above 256 KiB, bad pcapng block lengths, an unknown interface, a link
type other than Ethernet) is a :class:`PcapError` naming the file and the byte offset.

Writing: :func:`open_writer` returns a :class:`PcapWriter` that lays out the records of a whole
batch in one kernel call and writes them with one ``write``. pcap files get the nanosecond magic
by default so timestamps survive a round trip; pcapng files get one Interface Description Block
per port seen (interface id = port, ``if_tsresol`` = 9) and Enhanced Packet Blocks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal

import numpy as np
from numpy.typing import NDArray

from nfvkit.errors import PcapError
from nfvkit.io import pcapfile, pcapng
from nfvkit.io.pcapfile import BLOCK, NEED_MORE, RECORD_HEADER_LEN
from nfvkit.packet.batch import COLUMNS, PacketBatch

log = logging.getLogger(__name__)

LINKTYPE_ETHERNET = 1
LINKTYPE_NAMES = {
    0: "NULL",
    1: "ETHERNET",
    101: "RAW",
    105: "IEEE802_11",
    113: "LINUX_SLL",
    127: "IEEE802_11_RADIOTAP",
    228: "IPV4",
    229: "IPV6",
    276: "LINUX_SLL2",
}
DEFAULT_CHUNK = 4 << 20
PCAP_TS_LIMIT = (1 << 32) * 1_000_000_000  # pcap seconds are unsigned 32-bit
Format = Literal["pcap", "pcapng"]

_STATUS_TEXT = {
    pcapfile.ERR_CAPLEN: "captured length {need} exceeds 262144 bytes (corrupt record)",
    pcapfile.ERR_BLOCKLEN: "impossible block length {need} (corrupt block)",
    pcapfile.ERR_TRAILER: "trailing block length differs from leading length {need} (corrupt)",
    pcapfile.ERR_IFACE: "packet refers to interface {need}, which no IDB describes",
}
_BLANK = tuple(c for c in COLUMNS if c not in ("offset", "length", "ts", "port"))


def _linktype_name(linktype: int) -> str:
    return f"{linktype} ({LINKTYPE_NAMES.get(linktype, 'unknown')})"


class PcapReader:
    """An iterator of :class:`PacketBatch` es read from a pcap or pcapng file (see module doc).

    Attributes: ``format``, ``linktype`` (of the first interface), ``linktypes`` (pcapng: per
    interface id of the current section), ``nanosecond`` (pcap magic), ``packets`` read so
    far, ``truncated`` and ``warning`` (set when the last record was cut short).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        batch_size: int = 256,
        *,
        chunk_size: int = DEFAULT_CHUNK,
        strict: bool = False,
    ) -> None:
        if batch_size < 1 or chunk_size < 1:
            raise ValueError("batch_size and chunk_size must be positive")
        self.path = Path(path)
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.strict = strict
        self.packets = 0
        self.truncated = False
        self.warning: str | None = None
        self.nanosecond = True
        self.linktype = LINKTYPE_ETHERNET
        self._pcap: pcapfile.PcapHeader | None = None
        self._ng = pcapng.PcapngState()
        try:
            self._file = open(self.path, "rb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise PcapError(f"cannot open: {exc.strerror}", where=str(self.path)) from exc
        try:
            self._base = self._read_magic()
        except BaseException:
            self._file.close()
            raise
        self._iter = self._batches()

    # header -----------------------------------------------------------------------------------

    def _fail(self, message: str, offset: int) -> PcapError:
        return PcapError(f"{message} at byte offset {offset}", where=str(self.path))

    def _read_magic(self) -> int:
        """Detect the format; return the file offset where records (or blocks) start."""
        head = self._file.read(pcapfile.FILE_HEADER_LEN)
        if len(head) < 4:
            raise self._fail(f"not a pcap or pcapng file (only {len(head)} bytes)", 0)
        if head[:4] == pcapng.SHB.to_bytes(4, "little"):
            self.format: Format = "pcapng"
            self._file.seek(0)
            return 0
        if not pcapfile.is_pcap_magic(head):
            raise self._fail(f"not a pcap or pcapng file (magic 0x{head[:4].hex()})", 0)
        if len(head) < pcapfile.FILE_HEADER_LEN:
            raise self._fail(f"truncated pcap file header ({len(head)} of 24 bytes)", len(head))
        header = pcapfile.parse_file_header(head)
        assert header is not None
        if header.linktype != LINKTYPE_ETHERNET:
            raise self._fail(
                f"unsupported link type {_linktype_name(header.linktype)}; "
                f"only LINKTYPE_ETHERNET (1) is supported",
                20,
            )
        self.format = "pcap"
        self._pcap = header
        self.nanosecond = header.nanosecond
        return pcapfile.FILE_HEADER_LEN

    @property
    def linktypes(self) -> dict[int, int]:
        """Link type per port (pcapng interface id of the current section; pcap: port 0)."""
        if self.format == "pcap":
            return {0: self.linktype}
        return dict(enumerate(self._ng.linktypes))

    # iteration --------------------------------------------------------------------------------

    def __iter__(self) -> PcapReader:
        return self

    def __next__(self) -> PacketBatch:
        return next(self._iter)

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (batches already yielded stay valid)."""
        self._file.close()

    def _fill(self, buf: NDArray[np.uint8], start: int) -> int:
        """Read into ``buf[start:]`` until it is full or the file ends; return the end."""
        view = memoryview(buf)  # type: ignore[arg-type]
        pos = start
        while pos < buf.shape[0]:
            got = self._file.readinto(view[pos:])
            if not got:
                break
            pos += got
        return pos

    def _batches(self) -> Iterator[PacketBatch]:
        carry = np.zeros(0, np.uint8)
        base = self._base  # file offset of buf[0]
        need = 0
        while True:
            want = max(self.chunk_size, need - carry.shape[0])
            buf = np.empty(carry.shape[0] + want, np.uint8)
            buf[: carry.shape[0]] = carry
            end = self._fill(buf, carry.shape[0])
            eof = end < buf.shape[0]
            pos, need = 0, 0
            while True:
                if self._pcap is not None:
                    n, pos2, status, need, cols = self._walk_pcap(buf, pos, end)
                    headroom = RECORD_HEADER_LEN
                else:
                    n, pos2, status, need, cols, spb = self._walk_ng(buf, pos, end)
                    headroom = pcapng.SPB_HEADER if spb else pcapng.EPB_HEADER
                yield from self._emit(buf, n, cols, headroom)
                pos = pos2
                if status == NEED_MORE:
                    break
                if status == BLOCK:
                    pos, need = self._parse_block(buf, pos, end, base)
                    if need:
                        break
                    continue
                raise self._fail(_STATUS_TEXT[status].format(need=need), base + pos)
            carry = buf[pos:end]
            base += pos
            if eof:
                if carry.shape[0]:
                    self._truncated(base, carry.shape[0], need)
                return

    def _walk_pcap(
        self, buf: NDArray[np.uint8], pos: int, end: int
    ) -> tuple[int, int, int, int, dict[str, NDArray[Any]]]:
        assert self._pcap is not None
        cap = (end - pos) // RECORD_HEADER_LEN + 1
        off, ln, ts = np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap, np.int64)
        n, pos, status, need = pcapfile.walk_pcap(
            buf, pos, end, self._pcap.swap, self._pcap.nanosecond, off, ln, ts
        )
        port = np.zeros(n, np.uint16)
        return n, pos, status, need, {"offset": off, "length": ln, "ts": ts, "port": port}

    def _walk_ng(
        self, buf: NDArray[np.uint8], pos: int, end: int
    ) -> tuple[int, int, int, int, dict[str, NDArray[Any]], bool]:
        ng = self._ng
        cap = (end - pos) // 12 + 1
        off, ln = np.empty(cap, np.int64), np.empty(cap, np.int32)
        ts, port = np.empty(cap, np.int64), np.empty(cap, np.uint16)
        n, pos, status, need, spb = pcapng.walk_pcapng(
            buf, pos, end, ng.swap, ng.pow2, ng.exp, ng.offset_ns, ng.snaplen, ng.n_if,
            off, ln, ts, port,
        )  # fmt: skip
        return n, pos, status, need, {"offset": off, "length": ln, "ts": ts, "port": port}, spb

    def _parse_block(
        self, buf: NDArray[np.uint8], pos: int, end: int, base: int
    ) -> tuple[int, int]:
        ng = self._ng
        before = ng.n_if
        try:
            pos2, need = ng.parse_block(buf, pos, end)
        except pcapng.PcapngFormatError as exc:
            raise self._fail(str(exc), base + pos) from exc
        if ng.n_if > before:
            iface, linktype = ng.n_if - 1, ng.linktypes[-1]
            if linktype != LINKTYPE_ETHERNET:
                raise self._fail(
                    f"interface {iface} has unsupported link type {_linktype_name(linktype)}; "
                    f"only LINKTYPE_ETHERNET (1) is supported",
                    base + pos,
                )
            if iface == 0:
                self.linktype = linktype
        return pos2, need

    def _emit(
        self, buf: NDArray[np.uint8], n: int, cols: dict[str, NDArray[Any]], headroom: int
    ) -> Iterator[PacketBatch]:
        """Cut the ``n`` records of one walk into batches sharing ``buf`` (zero copy)."""
        if n == 0:
            return
        blank = {name: np.zeros((n, *COLUMNS[name][1]), COLUMNS[name][0]) for name in _BLANK}
        for name in ("l3_off", "l4_off", "l7_off"):
            blank[name].fill(-1)
        size = self.batch_size
        for s in range(0, n, size):
            e = min(n, s + size)
            batch = PacketBatch(
                buf,
                cols["offset"][s:e],
                cols["length"][s:e],
                headroom=headroom,
                ts=cols["ts"][s:e],
                port=cols["port"][s:e],
                **{name: col[s:e] for name, col in blank.items()},
            )
            self.packets += e - s
            yield batch

    def _truncated(self, offset: int, have: int, need: int) -> None:
        what = "record" if self.format == "pcap" else "block"
        message = f"truncated last {what} ({have} of {max(need, have + 1)} bytes)"
        if self.format == "pcapng" and self._ng.sections == 0:
            message = f"truncated section header block ({have} of {max(need, 28)} bytes)"
            raise self._fail(message, offset)
        if self.strict:
            raise self._fail(message, offset)
        self.truncated = True
        self.warning = f"{self.path}: {message} at byte offset {offset}; stopped there"
        log.warning("%s", self.warning)


def open_reader(
    path: str | os.PathLike[str],
    batch_size: int = 256,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    strict: bool = False,
) -> PcapReader:
    """Open a pcap or pcapng file for streamed reading in batches of up to ``batch_size``."""
    return PcapReader(path, batch_size, chunk_size=chunk_size, strict=strict)


class PcapWriter:
    """Writes batches to a pcap or pcapng file (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        format: Format,
        nanosecond: bool = True,
        snaplen: int = 262144,
        linktype: int = LINKTYPE_ETHERNET,
    ) -> None:
        self.path = Path(path)
        self.format = format
        self.nanosecond = nanosecond
        self.snaplen = snaplen
        self.linktype = linktype
        self.packets = 0
        self.bytes_written = 0
        self._interfaces = 0
        try:
            self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115
        except OSError as exc:
            raise PcapError(f"cannot create: {exc.strerror}", where=str(self.path)) from exc
        if format == "pcap":
            self._put(pcapfile.file_header(nanosecond, snaplen, linktype))
        else:
            self._put(pcapng.section_header())

    def _put(self, raw: bytes | NDArray[np.uint8]) -> None:
        self._file.write(raw)  # type: ignore[arg-type]
        self.bytes_written += len(raw)

    def write(self, batch: PacketBatch) -> None:
        """Append every packet of ``batch`` with its timestamp (and, for pcapng, its port)."""
        n = len(batch)
        if n == 0:
            return
        if self.format == "pcap":
            self._check_ts(batch.ts)
            size = int(np.minimum(batch.length, self.snaplen).sum()) + RECORD_HEADER_LEN * n
            out = np.empty(size, np.uint8)
            pcapfile.write_pcap_records(
                batch.data, batch.offset, batch.length, batch.ts, self.snaplen,
                self.nanosecond, out,
            )  # fmt: skip
        else:
            self._describe_ports(int(batch.port.max()))
            out = np.empty(pcapng.epb_bytes(batch.length, self.snaplen), np.uint8)
            pcapng.write_epbs(
                batch.data, batch.offset, batch.length, batch.ts, batch.port, self.snaplen,
                1 if self.nanosecond else 1000, out,
            )  # fmt: skip
        self._put(out)
        self.packets += n

    def _check_ts(self, ts: NDArray[np.int64]) -> None:
        """pcap stores unsigned 32-bit seconds: reject timestamps it cannot hold."""
        if int(ts.min()) < 0 or int(ts.max()) >= PCAP_TS_LIMIT:
            raise PcapError(
                "timestamp outside the pcap range (1970 to 2106); use pcapng",
                where=str(self.path),
            )

    def _describe_ports(self, top: int) -> None:
        """Write the IDBs for interfaces up to ``top`` (interface id = port)."""
        tsresol = 9 if self.nanosecond else 6
        while self._interfaces <= top:
            self._put(pcapng.interface_description(self.linktype, self.snaplen, tsresol))
            self._interfaces += 1

    def close(self) -> None:
        """Flush and close the file; a pcapng file gets at least one IDB."""
        if self._file.closed:
            return
        if self.format == "pcapng":
            self._describe_ports(0)
        self._file.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_writer(
    path: str | os.PathLike[str],
    format: Format | None = None,
    nanosecond: bool = True,
    snaplen: int = 262144,
    linktype: int = LINKTYPE_ETHERNET,
) -> PcapWriter:
    """Create a pcap or pcapng file; ``format`` defaults to the extension (.pcap/.pcapng)."""
    if format is None:
        suffix = Path(path).suffix.lower()
        if suffix not in (".pcap", ".pcapng"):
            raise PcapError(
                f"cannot tell the format from the extension {suffix!r}; "
                "use .pcap or .pcapng or pass format=",
                where=str(path),
            )
        format = "pcap" if suffix == ".pcap" else "pcapng"
    if format not in ("pcap", "pcapng"):
        raise PcapError(f"unknown format {format!r}", where=str(path))
    return PcapWriter(path, format, nanosecond, snaplen, linktype)
