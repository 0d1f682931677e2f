"""Micro-benchmark of :func:`nfvkit.packet.parse.parse_batch` on 64-byte IPv4/TCP frames.

Run: ``.venv/bin/python benchmarks/bench_parse.py [--batch 2048] [--flows 1024] [--ghz 2.45]``.
Prints the best and median Mpps and cycles per packet (CPU time x GHz / packets).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import parse_batch

FRAME = 64  # bytes, without the Ethernet FCS


def make_parse_workload(n: int, flows: int, seed: int = 1) -> PacketBatch:
    """A batch of ``n`` 64-byte Ethernet/IPv4/TCP frames spread over ``flows`` 5-tuples."""
    rng = np.random.default_rng(seed)
    pkt = np.zeros(FRAME, dtype=np.uint8)
    pkt[0:6] = (2, 0, 0, 0, 0, 2)
    pkt[6:12] = (2, 0, 0, 0, 0, 1)
    pkt[12:14] = (0x08, 0x00)
    pkt[14:16] = (0x45, 0x00)
    pkt[16:18] = (0, 46)  # total length: 64 - 14 - 4 bytes of padding
    pkt[22:24] = (64, 6)
    pkt[26:30] = (198, 18, 0, 1)
    pkt[30:34] = (198, 19, 0, 1)
    pkt[46] = 0x50  # TCP data offset 5
    pkt[47] = 0x10  # ACK
    frames = np.tile(pkt, (n, 1))
    flow = rng.integers(0, max(flows, 1), size=n)
    frames[:, 32] = (flow >> 8) & 0xFF
    frames[:, 33] = flow & 0xFF
    sport = 1024 + (flow % 50000)
    frames[:, 34] = sport >> 8
    frames[:, 35] = sport & 0xFF
    frames[:, 36:38] = (0, 80)
    room = 64
    data = np.zeros(n * (FRAME + room), dtype=np.uint8)
    offset = np.arange(n, dtype=np.int64) * (FRAME + room) + room
    view = data.reshape(n, FRAME + room)
    view[:, room:] = frames
    length = np.full(n, FRAME, dtype=np.int32)
    return PacketBatch(data, offset, length, headroom=room)


def measure(batch: PacketBatch, seconds: float = 0.2) -> float:
    """CPU seconds per packet of ``parse_batch`` over repeated runs lasting ``seconds``."""
    runs = 0
    start = time.process_time()
    while True:
        parse_batch(batch)
        runs += 1
        spent = time.process_time() - start
        if spent >= seconds:
            return spent / (runs * len(batch))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--flows", type=int, default=1024)
    ap.add_argument("--ghz", type=float, default=2.45)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    batch = make_parse_workload(args.batch, args.flows)
    measure(batch, 0.3)  # warm-up (and JIT/cache load)
    per_packet = sorted(measure(batch) for _ in range(args.repeat))
    for label, sec in (("best", per_packet[0]), ("median", statistics.median(per_packet))):
        print(
            f"parse {label:6s}: {1e-6 / sec:7.2f} Mpps  {sec * args.ghz * 1e9:6.1f} cycles/packet "
            f"(batch {args.batch}, {args.flows} flows, {args.ghz} GHz)"
        )


if __name__ == "__main__":
    main()
