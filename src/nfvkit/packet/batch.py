"""``PacketBatch``: the unit of work of the data plane, a struct of NumPy arrays.

Packet bytes live in one contiguous ``data`` buffer (which may be a zero-copy view of a file
chunk or an I/O ring); packet ``i`` is ``data[offset[i] : offset[i] + length[i]]``. Every packet
owns at least ``headroom`` free bytes in front of it, so encapsulations (VLAN push, later NSH and
VXLAN) grow a packet in place; :meth:`PacketBatch.ensure_headroom` copies into a fresh buffer
only when a batch has too little.

Metadata columns, one entry per packet:

=========== ========= ======================================================================
column      dtype     meaning
=========== ========= ======================================================================
offset      int64     start of the packet in ``data``
length      int32     packet length in bytes
ts          int64     timestamp, nanoseconds since the Unix epoch
port        uint16    input port the packet arrived on
fate        int16     output port (``>= 0``) or negated drop-reason code (``< 0``)
l3_off      int16     offset of the L3 header from the packet start, -1 if none
l4_off      int16     offset of the L4 header, -1 if none (non-first fragment, unknown proto)
l7_off      int16     offset of the L4 payload, -1 if none
ip_len      int32     length of the IP packet as its header claims (IPv4 total length,
                      IPv6 40 + payload length); 0 if not IP
ethertype   uint16    EtherType of the L3 header after any VLAN tags
proto       uint8     L4 protocol number after IPv6 extension headers (0 if not IP)
flags       uint16    :mod:`nfvkit.packet.flags` bits
vlan        uint16[2] TCI of the outer and inner VLAN tag (valid when flags say so)
src, dst    uint32[4] IP addresses as four big-endian-ordered 32-bit words; IPv4 is stored
                      IPv4-mapped (``::ffff:a.b.c.d``: words 0, 0, 0xffff, address)
sport/dport uint16    transport ports; for ICMP echo both hold the identifier, else 0
hash        uint32    flow hash, filled by :mod:`nfvkit.packet.flow` on demand
=========== ========= ======================================================================
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
from numba import njit
from numpy.typing import NDArray

DEFAULT_HEADROOM = 128

# name -> (dtype, trailing shape). ``offset`` and ``length`` come first; all are per-packet.
COLUMNS: dict[str, tuple[type[np.generic], tuple[int, ...]]] = {
    "offset": (np.int64, ()),
    "length": (np.int32, ()),
    "ts": (np.int64, ()),
    "port": (np.uint16, ()),
    "fate": (np.int16, ()),
    "l3_off": (np.int16, ()),
    "l4_off": (np.int16, ()),
    "l7_off": (np.int16, ()),
    "ip_len": (np.int32, ()),
    "ethertype": (np.uint16, ()),
    "proto": (np.uint8, ()),
    "flags": (np.uint16, ()),
    "vlan": (np.uint16, (2,)),
    "src": (np.uint32, (4,)),
    "dst": (np.uint32, (4,)),
    "sport": (np.uint16, ()),
    "dport": (np.uint16, ()),
    "hash": (np.uint32, ()),
}
META_COLUMNS = tuple(c for c in COLUMNS if c not in ("offset",))


@njit(cache=True, nogil=True)
def _gather(
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    out: NDArray[np.uint8],
    new_offset: NDArray[np.int64],
    headroom: int,
) -> None:
    pos = 0
    for i in range(offset.shape[0]):
        pos += headroom
        new_offset[i] = pos
        n = length[i]
        src = offset[i]
        for j in range(n):
            out[pos + j] = data[src + j]
        pos += n


@njit(cache=True, nogil=True, inline="always")
def shift_header_offsets(
    l3: NDArray[np.int16], l4: NDArray[np.int16], l7: NDArray[np.int16], i: int, delta: int
) -> None:
    """Move packet ``i``'s parsed header offsets by ``delta`` bytes (after a push or a pop in
    front of them); absent headers (-1) stay absent."""
    if l3[i] >= 0:
        l3[i] += delta
    if l4[i] >= 0:
        l4[i] += delta
    if l7[i] >= 0:
        l7[i] += delta


class PacketBatch:
    """A batch of packets with per-packet metadata columns (see the module docstring)."""

    __slots__ = ("data", "headroom", *COLUMNS)
    COLUMNS: ClassVar[dict[str, tuple[type[np.generic], tuple[int, ...]]]] = COLUMNS

    data: NDArray[np.uint8]
    headroom: int
    offset: NDArray[np.int64]
    length: NDArray[np.int32]
    ts: NDArray[np.int64]
    port: NDArray[np.uint16]
    fate: NDArray[np.int16]
    l3_off: NDArray[np.int16]
    l4_off: NDArray[np.int16]
    l7_off: NDArray[np.int16]
    ip_len: NDArray[np.int32]
    ethertype: NDArray[np.uint16]
    proto: NDArray[np.uint8]
    flags: NDArray[np.uint16]
    vlan: NDArray[np.uint16]
    src: NDArray[np.uint32]
    dst: NDArray[np.uint32]
    sport: NDArray[np.uint16]
    dport: NDArray[np.uint16]
    hash: NDArray[np.uint32]

    def __init__(
        self,
        data: NDArray[np.uint8],
        offset: NDArray[np.int64],
        length: NDArray[np.int32],
        headroom: int = 0,
        **columns: NDArray[Any],
    ) -> None:
        n = offset.shape[0]
        if length.shape[0] != n:
            raise ValueError("offset and length columns differ in length")
        self.data = data
        self.headroom = headroom
        self.offset = offset
        self.length = length
        for name, (dtype, shape) in COLUMNS.items():
            if name in ("offset", "length"):
                continue
            col = columns.pop(name, None)
            if col is None:
                col = np.zeros((n, *shape), dtype=dtype)
                if name in ("l3_off", "l4_off", "l7_off"):
                    col.fill(-1)
            setattr(self, name, col)
        if columns:
            raise TypeError(f"unknown batch columns: {sorted(columns)}")

    # construction ---------------------------------------------------------------------------

    @classmethod
    def from_packets(
        cls,
        packets: Sequence[bytes],
        ts: Sequence[int] | NDArray[np.int64] | None = None,
        port: int = 0,
        headroom: int = DEFAULT_HEADROOM,
    ) -> PacketBatch:
        """Copy ``packets`` into a fresh batch (each with ``headroom`` free bytes in front)."""
        n = len(packets)
        lengths = np.fromiter((len(p) for p in packets), dtype=np.int32, count=n)
        offsets = np.empty(n, dtype=np.int64)
        total = int(lengths.sum()) + headroom * n
        data = np.empty(total, dtype=np.uint8)
        pos = 0
        for i, pkt in enumerate(packets):
            pos += headroom
            offsets[i] = pos
            data[pos : pos + len(pkt)] = np.frombuffer(pkt, dtype=np.uint8)
            pos += len(pkt)
        batch = cls(data, offsets, lengths, headroom=headroom)
        if ts is not None:
            batch.ts[:] = np.asarray(ts, dtype=np.int64)
        batch.port.fill(port)
        return batch

    @classmethod
    def empty(cls) -> PacketBatch:
        """A batch of no packets."""
        return cls(np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int32))

    # access -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    def packet(self, i: int) -> bytes:
        """The bytes of packet ``i``."""
        start = int(self.offset[i])
        return self.data[start : start + int(self.length[i])].tobytes()

    def packets(self) -> list[bytes]:
        """The bytes of every packet, in order."""
        return [self.packet(i) for i in range(len(self))]

    @property
    def nbytes(self) -> int:
        """Sum of the packet lengths."""
        return int(self.length.sum())

    # reshaping --------------------------------------------------------------------------------

    def select(self, index: NDArray[Any]) -> PacketBatch:
        """A new batch of the packets that ``index`` (positions or a boolean mask) picks.

        Packet bytes are shared with this batch (no copy); metadata columns are gathered. Two
        batches selected with disjoint indices may each be modified in place.
        """
        cols = {name: getattr(self, name)[index] for name in COLUMNS}
        offset = cols.pop("offset")
        length = cols.pop("length")
        return PacketBatch(self.data, offset, length, headroom=self.headroom, **cols)

    def copy(self, headroom: int | None = None) -> PacketBatch:
        """A deep copy: packet bytes packed into a fresh buffer, metadata copied."""
        room = DEFAULT_HEADROOM if headroom is None else headroom
        n = len(self)
        out = np.empty(self.nbytes + room * n, dtype=np.uint8)
        new_offset = np.empty(n, dtype=np.int64)
        _gather(self.data, self.offset, self.length, out, new_offset, room)
        cols = {name: getattr(self, name).copy() for name in META_COLUMNS if name != "length"}
        return PacketBatch(out, new_offset, self.length.copy(), headroom=room, **cols)

    def ensure_headroom(self, need: int) -> None:
        """Make sure every packet has ``need`` free bytes in front of it (copies if not)."""
        if self.headroom >= need:
            return
        fresh = self.copy(headroom=max(need, DEFAULT_HEADROOM))
        self.data = fresh.data
        self.offset = fresh.offset
        self.headroom = fresh.headroom

    @staticmethod
    def concat(batches: Iterable[PacketBatch], headroom: int = DEFAULT_HEADROOM) -> PacketBatch:
        """One batch holding the packets of ``batches`` in order (bytes copied)."""
        parts = [b for b in batches if len(b)]
        if not parts:
            return PacketBatch.empty()
        if len(parts) == 1:
            return parts[0].copy(headroom)
        total_bytes = sum(b.nbytes for b in parts)
        n = sum(len(b) for b in parts)
        out = np.empty(total_bytes + headroom * n, dtype=np.uint8)
        new_offset = np.empty(n, dtype=np.int64)
        pos, first = 0, 0
        for b in parts:
            k = len(b)
            _gather(b.data, b.offset, b.length, out[pos:], new_offset[first : first + k], headroom)
            new_offset[first : first + k] += pos
            pos += b.nbytes + headroom * k
            first += k
        cols = {
            name: np.concatenate([getattr(b, name) for b in parts])
            for name in META_COLUMNS
            if name != "length"
        }
        length = np.concatenate([b.length for b in parts])
        return PacketBatch(out, new_offset, length, headroom=headroom, **cols)

    def __repr__(self) -> str:
        return f"PacketBatch({len(self)} packets, {self.nbytes} bytes)"
