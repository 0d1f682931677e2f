"""Benchmark of the ``flow_monitor`` element: per-flow accounting over 100k flows, one core.

Run: ``.venv/bin/python benchmarks/bench_flow_monitor.py [--packets N] [--flows 100000]
[--batch 1024] [--repeat 5] [--quick]``.

Workload: ``bench_core``'s 64-byte IPv4 TCP/UDP frames over ``--flows`` random 5-tuples,
parsed once outside the timed region, timestamps 100 ns apart (10 Mpps of packet time).
Rows:

* ``update`` -- steady state: every flow already has its entry (the warm-up pass made them);
* ``biflow`` -- the same with ``biflow: true`` (canonical key, both directions in one entry);
* ``insert`` -- a fresh table for every timed pass, so each flow's first packet inserts;
* ``[ring]`` -- the same rows over a cache-resident ``--pool`` of packets, replayed (as
  packets fresh from an RX ring, already parsed, would be);
* ``export`` -- formatting records as IPFIX JSON lines and CSV (records per second).

Each row is the best of ``--repeat`` passes: Mpps and cycles per packet (CPU seconds × GHz ÷
packets). :func:`build` is the reusable setup (an initialized element and parsed batches).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import make_frames
from nfvkit.bench.cpu import cpu_ghz
from nfvkit.bench.measure import Row, best_cpu_seconds, pin_one_cpu, split
from nfvkit.elements.flow_monitor import FlowMonitor
from nfvkit.elements.meter.ipfix import end_reasons, format_records
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import parse_batch

GAP_NS = 100  # packet time between consecutive packets


def workload(flows: int, packets: int, batch: int = 1024) -> list[PacketBatch]:
    """Parsed batches of 64-byte frames over ``flows`` 5-tuples, timestamps ``GAP_NS`` apart."""
    frames = make_frames(packets, flows)
    frames.ts[:] = np.arange(packets, dtype=np.int64) * GAP_NS
    parse_batch(frames)
    return split(frames, batch)


def monitor(flows: int, **config: Any) -> FlowMonitor:
    """An initialized flow monitor with room for ``flows`` flows (and ``config`` on top)."""
    el = FlowMonitor.configure("fm", {"max_flows": max(2 * flows, 1024), **config})
    assert isinstance(el, FlowMonitor)
    el.initialize()
    return el


def build(
    flows: int = 100_000, packets: int = 1 << 20, batch: int = 1024, **config: Any
) -> tuple[FlowMonitor, list[PacketBatch]]:
    """The setup a chain benchmark can reuse: an initialized monitor and parsed batches."""
    return monitor(flows, **config), workload(flows, packets, batch)


def bench_rows(flows: int, batches: list[PacketBatch], repeat: int, label: str) -> list[Row]:
    n = sum(len(b) for b in batches)
    rows = []
    for name, cfg in (("update", {}), ("biflow", {"biflow": True})):
        el = monitor(flows, **cfg)

        def run(el: FlowMonitor = el) -> None:
            for b in batches:
                el.process(b)

        rows.append(Row(f"flow_monitor {name}{label}", n, best_cpu_seconds(run, repeat), _note(el)))
    fresh: list[FlowMonitor] = []

    def setup() -> None:
        fresh[:] = [monitor(flows)]

    def run_fresh() -> None:
        for b in batches:
            fresh[0].process(b)

    secs = best_cpu_seconds(run_fresh, repeat, setup)
    rows.append(Row(f"flow_monitor insert{label}", n, secs, _note(fresh[0])))
    return rows


def bench_export(flows: int, batches: list[PacketBatch], repeat: int) -> list[Row]:
    el = monitor(flows)
    for b in batches:
        el.process(b)
    records = el.tables["flows"].live()
    reasons = end_reasons(records)
    out = []
    for fmt in ("jsonl", "csv"):

        def run(fmt: Any = fmt) -> None:
            format_records(records, reasons, fmt, False, False)

        secs = best_cpu_seconds(run, max(1, repeat // 2))
        out.append(Row(f"export {fmt} (records)", len(records), secs))
    return out


def _note(el: FlowMonitor) -> str:
    f = el.read_flows()
    return f"live {f['live']}, untracked {f['untracked']}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="flow_monitor throughput on one core")
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
    batches = workload(args.flows, args.packets, args.batch)
    rows = bench_rows(args.flows, batches, args.repeat, "")
    pool = min(args.pool, args.packets)
    ring = workload(args.flows, pool, args.batch) * max(1, args.packets // pool)
    rows += bench_rows(args.flows, ring, args.repeat, " [ring]")
    rows += bench_export(args.flows, batches, args.repeat)
    print(
        f"flow_monitor benchmark: CPU {cpu}, {ghz:.2f} GHz, 64-byte frames, {args.flows} flows, "
        f"batch {args.batch}, {args.packets} packets, best of {args.repeat}"
    )
    print(
        f"rows marked [ring] replay a cache-resident set of {pool} packets; "
        "the others stream every packet once"
    )
    print(f"{'row':34s} {'Mpps':>9s} {'cycles/pkt':>11s}  notes")
    for r in rows:
        unit = "Mrec/s, cycles/record" if r.name.startswith("export") else ""
        print(f"{r.name:34s} {r.mpps():9.3f} {r.cycles(ghz):11.1f}  {r.note or unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
