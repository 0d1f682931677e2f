"""pcapng reading and writing: blocks in either byte order, timestamp resolutions, sections,
unknown blocks, chunking, oracles and errors."""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import numpy as np
import pytest
from scapy.all import IP, UDP, Ether, rdpcap  # type: ignore[attr-defined]
from scapy.utils import PcapNgWriter

from nfvkit.errors import PcapError
from nfvkit.io import open_reader, open_writer
from nfvkit.packet.batch import PacketBatch

T0 = 1_700_000_000_123_456_789


class Ng:
    """Builds pcapng blocks by hand in one byte order."""

    def __init__(self, big: bool = False) -> None:
        self.o = ">" if big else "<"

    def block(self, btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        n = 12 + len(body)
        return struct.pack(self.o + "II", btype, n) + body + struct.pack(self.o + "I", n)

    def shb(self) -> bytes:
        return self.block(0x0A0D0D0A, struct.pack(self.o + "IHHq", 0x1A2B3C4D, 1, 0, -1))

    def idb(
        self, linktype: int = 1, tsresol: int | None = None, tsoffset: int = 0, snap: int = 0
    ) -> bytes:
        opts = b""
        if tsresol is not None:
            opts += struct.pack(self.o + "HH", 9, 1) + bytes([tsresol, 0, 0, 0])
        if tsoffset:
            opts += struct.pack(self.o + "HHq", 14, 8, tsoffset)
        opts += struct.pack(self.o + "HH", 0, 0)
        return self.block(1, struct.pack(self.o + "HHI", linktype, 0, snap) + opts)

    def epb(self, iface: int, units: int, pkt: bytes) -> bytes:
        head = struct.pack(
            self.o + "IIIII", iface, units >> 32, units & 0xFFFFFFFF, len(pkt), len(pkt)
        )
        return self.block(6, head + pkt)

    def spb(self, pkt: bytes) -> bytes:
        return self.block(3, struct.pack(self.o + "I", len(pkt)) + pkt)


def _pkts(n: int) -> list[bytes]:
    return [bytes([i & 0xFF]) * (14 + 7 * i % 200) for i in range(n)]


def _read(path: Path, **kw: int) -> list[tuple[bytes, int, int]]:
    with open_reader(path, **kw) as r:  # type: ignore[arg-type]
        return [(b.packet(i), int(b.ts[i]), int(b.port[i])) for b in r for i in range(len(b))]


def test_round_trip_ports_and_ns(tmp_path: Path) -> None:
    pkts = _pkts(300)
    ts = T0 + np.arange(300, dtype=np.int64) * 777
    batch = PacketBatch.from_packets(pkts, ts=ts)
    batch.port[:] = np.arange(300) % 3
    batch.port[0] = 0
    path = tmp_path / "rt.pcapng"
    with open_writer(path) as w:
        w.write(batch.select(np.arange(0, 150)))
        w.write(batch.select(np.arange(150, 300)))
    got = _read(path, batch_size=50)
    assert got == [(p, int(t), int(q)) for p, t, q in zip(pkts, ts, batch.port, strict=True)]
    with open_reader(path) as r:
        list(r)
        assert r.format == "pcapng" and r.linktypes == {0: 1, 1: 1, 2: 1}
        b = next(iter(open_reader(path)))
        assert b.headroom == 28


@pytest.mark.parametrize("big", [False, True])
def test_hand_made_blocks(tmp_path: Path, big: bool) -> None:
    ng = Ng(big)
    pkts = _pkts(6)
    raw = (
        ng.shb()
        + ng.block(4, b"\x00" * 8)  # name resolution block: skipped
        + ng.idb()  # default resolution: microseconds
        + ng.idb(tsresol=3, tsoffset=100)  # milliseconds, 100 s offset
        + ng.block(0x00000BAD, b"custom block")  # custom: skipped
        + ng.idb(tsresol=0x80 | 20)  # 2**-20 s
        + ng.idb(tsresol=12)  # picoseconds
        + ng.epb(0, 1_700_000_000_000_001, pkts[0])
        + ng.epb(1, 5_000, pkts[1])
        + ng.epb(2, (3 << 20) | (1 << 19), pkts[2])
        + ng.epb(3, 1_000_000_000_123_456, pkts[3])
        + ng.block(5, b"interface statistics")
        + ng.spb(pkts[4])
        + ng.epb(1, 1, pkts[5])
    )
    path = tmp_path / "h.pcapng"
    path.write_bytes(raw)
    assert _read(path) == [
        (pkts[0], 1_700_000_000_000_001_000, 0),
        (pkts[1], 105_000_000_000, 1),
        (pkts[2], 3_500_000_000, 2),
        (pkts[3], 1_000_000_000_123, 3),
        (pkts[4], 0, 0),
        (pkts[5], 100_001_000_000, 1),
    ]
    with open_reader(path) as r:
        assert min(b.headroom for b in r) == 12  # the chunk held a simple packet block


def test_sections_switch_byte_order_and_interfaces(tmp_path: Path) -> None:
    le, be = Ng(False), Ng(True)
    pkts = _pkts(4)
    raw = (
        le.shb() + le.idb(tsresol=9) + le.epb(0, 10, pkts[0]) + le.epb(0, 11, pkts[1])
        + be.shb() + be.idb(tsresol=6) + be.epb(0, 12, pkts[2]) + be.epb(0, 13, pkts[3])
    )  # fmt: skip
    path = tmp_path / "s.pcapng"
    path.write_bytes(raw)
    assert _read(path) == [
        (pkts[0], 10, 0),
        (pkts[1], 11, 0),
        (pkts[2], 12_000, 0),
        (pkts[3], 13_000, 0),
    ]
    bad = le.shb() + le.idb() + le.epb(0, 1, pkts[0]) + be.shb() + be.epb(0, 2, pkts[1])
    path.write_bytes(bad)  # a new section forgets the interfaces of the last one
    with pytest.raises(PcapError, match="interface 0, which no IDB describes"):
        _read(path)


@pytest.mark.parametrize("chunk", [1, 13, 64, 100, 333, 1000])
def test_blocks_straddle_chunks(tmp_path: Path, chunk: int) -> None:
    ng = Ng(True)
    pkts = _pkts(80)
    raw = ng.shb() + ng.idb(tsresol=9) + ng.idb(tsresol=9)
    for i, p in enumerate(pkts):
        raw += ng.epb(i % 2, T0 + i, p) + (ng.block(0x40, b"z" * (i % 9)) if i % 5 == 0 else b"")
    path = tmp_path / "c.pcapng"
    path.write_bytes(raw)
    assert _read(path, batch_size=9, chunk_size=chunk) == [
        (p, T0 + i, i % 2) for i, p in enumerate(pkts)
    ]


def test_oracles(tmp_path: Path) -> None:
    pkts = [bytes(Ether() / IP(dst="198.18.0.9") / UDP() / (b"q" * i)) for i in range(30)]
    ts = T0 + np.arange(30, dtype=np.int64) * 1_000_001
    ours = tmp_path / "ours.pcapng"
    with open_writer(ours) as w:
        w.write(PacketBatch.from_packets(pkts, ts=ts))
    sc = rdpcap(str(ours))
    assert [bytes(p) for p in sc] == pkts
    assert [int(p.time * 10**9) for p in sc] == [int(t) for t in ts]
    with ours.open("rb") as f:
        assert [bytes(b) for _, b in dpkt.pcapng.Reader(f)] == pkts

    theirs = tmp_path / "theirs.pcapng"
    writer = PcapNgWriter(str(theirs))
    for i, p in enumerate(pkts):
        frame = Ether(p)
        frame.time = 1_700_000_000 + i / 100
        writer.write(frame)
    writer.close()
    got = _read(theirs)
    assert [g[0] for g in got] == pkts
    assert [g[1] // 1000 for g in got] == [1_700_000_000_000_000 + i * 10_000 for i in range(30)]


def test_unsupported_linktype_names_interface(tmp_path: Path) -> None:
    ng = Ng()
    path = tmp_path / "l.pcapng"
    path.write_bytes(ng.shb() + ng.idb() + ng.idb(linktype=113) + ng.epb(0, 1, b"x" * 20))
    with pytest.raises(PcapError, match=r"interface 1 has unsupported link type 113 \(LINUX_SLL\)"):
        _read(path)


@pytest.mark.parametrize(
    ("mangle", "match"),
    [
        (lambda b: b[:-68] + struct.pack("<I", 999) + b[-64:], "impossible block length 999"),
        (lambda b: b[:-4] + struct.pack("<I", 44), "trailing block length differs"),
        (lambda b: b[:8] + struct.pack("<I", 0x11111111) + b[12:], "bad byte-order magic"),
    ],
)
def test_corrupt_blocks(tmp_path: Path, mangle: object, match: str) -> None:
    ng = Ng()
    raw = ng.shb() + ng.idb() + ng.epb(0, 1, b"y" * 40)
    path = tmp_path / "b.pcapng"
    path.write_bytes(mangle(raw))  # type: ignore[operator]
    with pytest.raises(PcapError, match=match) as info:
        _read(path)
    assert "at byte offset" in str(info.value) and str(path) in str(info.value)


def test_absurd_caplen(tmp_path: Path) -> None:
    ng = Ng()
    epb = bytearray(ng.epb(0, 1, b"y" * 40))
    struct.pack_into("<I", epb, 20, 400_000)
    path = tmp_path / "a.pcapng"
    head = ng.shb() + ng.idb()
    path.write_bytes(head + bytes(epb))
    with pytest.raises(PcapError, match=f"captured length 400000 .* at byte offset {len(head)}"):
        _read(path)


def test_truncated_section_header_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "h.pcapng"
    path.write_bytes(Ng().shb()[:20])
    with pytest.raises(PcapError, match=r"truncated section header block .* at byte offset 0"):
        _read(path)


def test_truncated_last_block(tmp_path: Path) -> None:
    ng = Ng()
    pkts = _pkts(5)
    raw = ng.shb() + ng.idb() + b"".join(ng.epb(0, i, p) for i, p in enumerate(pkts))
    path = tmp_path / "t.pcapng"
    path.write_bytes(raw[:-3])
    with open_reader(path) as r:
        assert [p for b in r for p in b.packets()] == pkts[:4]
        assert r.truncated and r.warning is not None and "truncated last block" in r.warning
    with pytest.raises(PcapError, match="truncated last block"):
        _read(path, strict=True)
