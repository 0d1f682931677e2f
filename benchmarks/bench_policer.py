"""Benchmark of the ``policer`` element: srTCM per class and per flow over 100k flows, one core.

Run: ``.venv/bin/python benchmarks/bench_policer.py [--packets N] [--flows 100000]
[--batch 1024] [--repeat 5] [--quick]``.

Workload: ``bench_core``'s 64-byte IPv4 TCP/UDP frames over ``--flows`` random 5-tuples,
parsed once outside the timed region, timestamps 100 ns apart (10 Mpps of packet time). Rows:

* ``per-class`` -- srTCM, colour-blind, 8 classes matched by compiled rules (protocol and
  destination port) plus a default class, red dropped, yellow remarked (DSCP rewrite);
* ``per-flow`` -- one srTCM per flow (state table of 100k+ entries), no classes;
* ``per-flow + per-class`` -- both, the class meter colour-aware on the flow's colour;
* ``police`` -- the single-rate policer over the same classes.

Rates are set so that all three colours occur; timestamps keep advancing from pass to pass,
so every pass sees the same offered load (the colour mix is shown). Each row is the best of
``--repeat`` passes: Mpps and cycles per packet (CPU seconds × GHz ÷ packets); ``[ring]`` rows
replay a cache-resident ``--pool`` of packets. :func:`build` is the reusable setup.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import DPORTS, make_frames
from nfvkit.bench.cpu import cpu_ghz
from nfvkit.bench.measure import Row, pin_one_cpu, split
from nfvkit.elements.policer import Policer
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import parse_batch

GAP_NS = 100  # packet time between consecutive packets


def workload(flows: int, packets: int, batch: int = 1024) -> list[PacketBatch]:
    """Parsed batches of 64-byte frames over ``flows`` 5-tuples, timestamps ``GAP_NS`` apart."""
    frames = make_frames(packets, flows)
    frames.ts[:] = np.arange(packets, dtype=np.int64) * GAP_NS
    parse_batch(frames)
    return split(frames, batch)


def class_config(mode: str = "srtcm") -> dict[str, Any]:
    """8 classes (tcp/udp by destination port) and a default, each at a fraction of the load."""
    ebs = 0 if mode == "police" else 20_000
    classes = [
        {
            "name": f"c{i}",
            "match": {"proto": "tcp" if i % 2 == 0 else "udp", "dport": DPORTS[i]},
            "cir": "300M",
            "cbs": 10_000,
            "ebs": ebs,
        }
        for i in range(8)
    ]
    cfg: dict[str, Any] = {"mode": mode, "classes": classes}
    cfg["default"] = {"cir": "800M", "cbs": 10_000, "ebs": ebs}
    if mode == "srtcm":
        cfg["remark"] = {"yellow": "af12"}
    return cfg


def flow_config(flows: int) -> dict[str, Any]:
    return {"cir": "30k", "cbs": 100, "ebs": 100, "max_flows": max(2 * flows, 1024)}


def policer(kind: str, flows: int) -> Policer:
    """An initialized policer of one of the benchmark's kinds."""
    if kind == "per-class":
        cfg = class_config()
    elif kind == "police":
        cfg = class_config("police")
    elif kind == "per-flow":
        cfg = {"per_flow": flow_config(flows)}
    else:
        cfg = {**class_config(), "per_flow": flow_config(flows)}
    el = Policer.configure("pol", cfg)
    assert isinstance(el, Policer)
    el.initialize()
    return el


def build(
    flows: int = 100_000, packets: int = 1 << 20, batch: int = 1024, kind: str = "per-class"
) -> tuple[Policer, list[PacketBatch]]:
    """The setup a chain benchmark can reuse: an initialized policer and parsed batches."""
    return policer(kind, flows), workload(flows, packets, batch)


def clocks(batches: list[PacketBatch], passes: int) -> list[list[NDArray[np.int64]]]:
    """Per pass, per batch position: timestamps that keep advancing over every pass (so the
    buckets see the same offered load on each pass, also when a batch object repeats)."""
    span = sum(len(b) for b in batches) * GAP_NS
    out = []
    for p in range(passes):
        pos, row = 0, []
        for b in batches:
            row.append(np.arange(pos, pos + len(b), dtype=np.int64) * GAP_NS + p * span)
            pos += len(b)
        out.append(row)
    return out


def _best(run: Callable[[int], None], repeat: int) -> float:
    best = float("inf")
    for p in range(repeat + 1):  # the first pass warms up (JIT cache load, page faults)
        t0 = time.process_time()
        run(p)
        best = min(best, time.process_time() - t0)
    return best


def bench_rows(flows: int, batches: list[PacketBatch], repeat: int, label: str) -> list[Row]:
    n = sum(len(b) for b in batches)
    clock = clocks(batches, repeat + 1)
    rows = []
    for kind in ("per-class", "per-flow", "per-flow + per-class", "police"):
        el = policer(kind, flows)

        def run(p: int, el: Policer = el) -> None:
            for b, ts in zip(batches, clock[p], strict=True):
                b.ts = ts
                b.fate[:] = 0
                el.process(b)

        def clear(p: int) -> None:
            for b, ts in zip(batches, clock[p], strict=True):
                b.ts = ts
                b.fate[:] = 0

        secs = max(_best(run, repeat) - _best(clear, repeat), 1e-9)
        rows.append(Row(f"policer {kind}{label}", n, secs, _colours(el)))
    return rows


def _colours(el: Policer) -> str:
    """The colour mix over every pass."""
    total = el.read_colours()["total"]
    n = sum(total.values()) or 1
    return " ".join(f"{c} {100 * v / n:.0f}%" for c, v in total.items())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="policer throughput on one core")
    ap.add_argument("--packets", type=int, default=1 << 20)
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pool", type=int, default=32768, help="packets in the [ring] working set")
    ap.add_argument("--quick", action="store_true", help="a few-second smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.packets, args.flows, args.repeat, args.pool = 16384, 4096, 1, 4096
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = pin_one_cpu()
    ghz = cpu_ghz()
    rows = bench_rows(args.flows, workload(args.flows, args.packets, args.batch), args.repeat, "")
    pool = min(args.pool, args.packets)
    ring = workload(args.flows, pool, args.batch) * max(1, args.packets // pool)
    rows += bench_rows(args.flows, ring, args.repeat, " [ring]")
    print(
        f"policer benchmark: CPU {cpu}, {ghz:.2f} GHz, 64-byte frames, {args.flows} flows, "
        f"batch {args.batch}, {args.packets} packets, best of {args.repeat}"
    )
    print(
        f"rows marked [ring] replay a cache-resident set of {pool} packets; "
        "the others stream every packet once"
    )
    print(f"{'row':40s} {'Mpps':>9s} {'cycles/pkt':>11s}  colours")
    for r in rows:
        print(f"{r.name:40s} {r.mpps():9.3f} {r.cycles(ghz):11.1f}  {r.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
