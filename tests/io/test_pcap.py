"""Classic pcap reading and writing: round trips, byte orders, oracles, chunking, errors."""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.all import IP, UDP, Ether, rdpcap, wrpcap  # type: ignore[attr-defined]

from nfvkit.errors import PcapError
from nfvkit.io import open_reader, open_writer
from nfvkit.packet.batch import PacketBatch

T0 = 1_700_000_000_123_456_789


def _packets(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 256, int(rng.integers(14, 300)), dtype=np.uint8).tobytes() for _ in range(n)
    ]


def _read_all(path: Path, **kw: int) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    pkts: list[bytes] = []
    ts, ports = [], []
    with open_reader(path, **kw) as reader:  # type: ignore[arg-type]
        for batch in reader:
            pkts += batch.packets()
            ts.append(batch.ts)
            ports.append(batch.port)
    cat = np.concatenate if ts else lambda x: np.zeros(0)
    return pkts, cat(ts), cat(ports)


def _pcap_file(
    packets: list[bytes], ts_ns: list[int], *, big: bool, ns: bool, linktype: int = 1
) -> bytes:
    o = ">" if big else "<"
    magic = 0xA1B23C4D if ns else 0xA1B2C3D4
    out = struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for pkt, t in zip(packets, ts_ns, strict=True):
        frac = t % 10**9 if ns else (t % 10**9) // 1000
        out += struct.pack(o + "IIII", t // 10**9, frac, len(pkt), len(pkt)) + pkt
    return out


@pytest.mark.parametrize("nanosecond", [True, False])
def test_round_trip(tmp_path: Path, nanosecond: bool) -> None:
    pkts = _packets(500)
    ts = T0 + np.arange(500, dtype=np.int64) * 1_234_567
    path = tmp_path / "rt.pcap"
    with open_writer(path, nanosecond=nanosecond) as w:
        w.write(PacketBatch.from_packets(pkts[:200], ts=ts[:200]))
        w.write(PacketBatch.from_packets(pkts[200:], ts=ts[200:]))
        w.write(PacketBatch.empty())
    got, got_ts, ports = _read_all(path, batch_size=64)
    assert got == pkts
    want = ts if nanosecond else ts // 1000 * 1000
    assert np.array_equal(got_ts, want)
    assert not ports.any()


def test_batches_zero_copy_with_headroom(tmp_path: Path) -> None:
    pkts = _packets(100)
    path = tmp_path / "z.pcap"
    with open_writer(path) as w:
        w.write(PacketBatch.from_packets(pkts, ts=np.arange(100)))
    with open_reader(path, batch_size=32) as r:
        batches = list(r)
        assert r.format == "pcap" and r.linktype == 1 and r.nanosecond
        assert r.packets == 100
    assert [len(b) for b in batches] == [32, 32, 32, 4]
    first = batches[0]
    assert all(b.data is first.data for b in batches)  # one chunk buffer, shared
    assert first.headroom == 16 and int(first.offset.min()) >= 16
    # writing into the headroom of every packet does not disturb any packet
    for b in batches:
        for off in b.offset:
            b.data[off - 16 : off] = 0xEE
    assert [p for b in batches for p in b.packets()] == pkts


@pytest.mark.parametrize("big", [True, False])
@pytest.mark.parametrize("ns", [True, False])
def test_hand_made_byte_orders(tmp_path: Path, big: bool, ns: bool) -> None:
    pkts = _packets(20)
    ts = [T0 + i * 1000 for i in range(20)]
    path = tmp_path / "h.pcap"
    path.write_bytes(_pcap_file(pkts, ts, big=big, ns=ns))
    got, got_ts, _ = _read_all(path)
    assert got == pkts
    assert list(got_ts) == (ts if ns else [t // 1000 * 1000 for t in ts])


@settings(max_examples=25)
@given(chunk=st.integers(1, 700), seed=st.integers(0, 3))
def test_records_straddle_chunks(
    tmp_path_factory: pytest.TempPathFactory, chunk: int, seed: int
) -> None:
    path = tmp_path_factory.mktemp("chunks") / "c.pcap"
    pkts = _packets(60, seed)
    path.write_bytes(_pcap_file(pkts, [T0 + i for i in range(60)], big=bool(seed & 1), ns=True))
    got, got_ts, _ = _read_all(path, batch_size=7, chunk_size=chunk)
    assert got == pkts
    assert list(got_ts) == [T0 + i for i in range(60)]


def test_oracles_read_what_we_write(tmp_path: Path) -> None:
    pkts = [bytes(Ether() / IP(dst="198.18.0.1") / UDP(dport=53) / (b"x" * i)) for i in range(50)]
    ts = T0 + np.arange(50, dtype=np.int64) * 1000
    path = tmp_path / "o.pcap"
    with open_writer(path) as w:
        w.write(PacketBatch.from_packets(pkts, ts=ts))
    with path.open("rb") as f:
        records = list(dpkt.pcap.Reader(f))
    assert [bytes(b) for _, b in records] == pkts
    assert [int(t * 10**9) for t, _ in records] == [int(t) for t in ts]  # ns survive
    sc = rdpcap(str(path))
    assert [bytes(p) for p in sc] == pkts
    assert [int(p.time * 10**9) for p in sc] == [int(t) for t in ts]


def test_we_read_what_oracles_write(tmp_path: Path) -> None:
    pkts = [bytes(Ether() / IP(dst="198.18.0.2") / UDP() / (b"y" * i)) for i in range(40)]
    scapy_path = tmp_path / "s.pcap"
    frames = [Ether(p) for p in pkts]
    for i, f in enumerate(frames):
        f.time = 1_700_000_000 + i / 1000
    wrpcap(str(scapy_path), frames)
    got, got_ts, _ = _read_all(scapy_path)
    assert got == pkts
    assert list(got_ts // 1000) == [1_700_000_000_000_000 + i * 1000 for i in range(40)]

    dpkt_path = tmp_path / "d.pcap"
    with dpkt_path.open("wb") as f:
        w = dpkt.pcap.Writer(f, nano=True)
        for i, p in enumerate(pkts):
            w.writepkt(p, ts=1_700_000_000 + i * 0.25)
    got, got_ts, _ = _read_all(dpkt_path)
    assert got == pkts
    assert list(got_ts) == [1_700_000_000 * 10**9 + i * 250_000_000 for i in range(40)]


def test_snaplen_truncates_on_write(tmp_path: Path) -> None:
    path = tmp_path / "s.pcap"
    with open_writer(path, snaplen=64) as w:
        w.write(PacketBatch.from_packets([bytes(range(100)), b"abc"]))
    assert _read_all(path)[0] == [bytes(range(64)), b"abc"]
    with path.open("rb") as f:
        assert [len(b) for _, b in dpkt.pcap.Reader(f)] == [64, 3]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a pcap or pcapng file"),
        (b"hello world, this is not a capture", r"not a pcap or pcapng file \(magic 0x68656c6c\)"),
        (struct.pack("<IHH", 0xA1B2C3D4, 2, 4), "truncated pcap file header"),
    ],
)
def test_garbage_files(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(PcapError, match=match) as info:
        open_reader(path)
    assert str(path) in str(info.value)


def test_absurd_caplen_is_corruption(tmp_path: Path) -> None:
    data = bytearray(_pcap_file(_packets(3), [T0] * 3, big=False, ns=True))
    second = 24 + 16 + (struct.unpack_from("<I", data, 24 + 8)[0])
    struct.pack_into("<I", data, second + 8, 300_000)
    path = tmp_path / "c.pcap"
    path.write_bytes(bytes(data))
    with pytest.raises(PcapError, match=f"captured length 300000 .* at byte offset {second}"):
        _read_all(path)


def test_truncated_last_record_policy(tmp_path: Path) -> None:
    pkts = _packets(10)
    raw = _pcap_file(pkts, [T0] * 10, big=False, ns=True)
    path = tmp_path / "t.pcap"
    path.write_bytes(raw[:-5])
    with open_reader(path) as r:
        got = [p for b in r for p in b.packets()]
        assert r.truncated
        assert r.warning is not None and "truncated last record" in r.warning
    assert got == pkts[:9]
    with pytest.raises(PcapError, match=r"truncated last record .* at byte offset"):
        _read_all(path, strict=True)
    path.write_bytes(raw[: -len(pkts[-1]) - 10])  # cut inside the record header
    with open_reader(path, chunk_size=50) as r:
        assert sum(len(b) for b in r) == 9 and r.truncated


def test_unsupported_linktype(tmp_path: Path) -> None:
    path = tmp_path / "raw.pcap"
    path.write_bytes(_pcap_file(_packets(2), [T0, T0], big=True, ns=False, linktype=101))
    with pytest.raises(PcapError, match=r"unsupported link type 101 \(RAW\)"):
        open_reader(path)


def test_writer_format_from_extension(tmp_path: Path) -> None:
    with pytest.raises(PcapError, match="extension"):
        open_writer(tmp_path / "x.cap")
    with open_writer(tmp_path / "x.cap", format="pcapng") as w:
        assert w.format == "pcapng"
    with open_reader(tmp_path / "x.cap") as r:
        assert r.format == "pcapng" and list(r) == []


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PcapError, match="cannot open"):
        open_reader(tmp_path / "nope.pcap")


def test_timestamp_outside_pcap_range(tmp_path: Path) -> None:
    with open_writer(tmp_path / "late.pcap") as w, pytest.raises(PcapError, match="pcap range"):
        w.write(PacketBatch.from_packets([b"x" * 60], ts=[5 * 10**18]))
    with open_writer(tmp_path / "late.pcapng") as w:
        w.write(PacketBatch.from_packets([b"x" * 60], ts=[5 * 10**18]))
    assert [int(b.ts[0]) for b in open_reader(tmp_path / "late.pcapng")] == [5 * 10**18]
