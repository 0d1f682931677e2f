"""The reference service chain's benchmark: each element alone, the whole chain, and the
per-packet pure-Python baseline of the same chain, in one run on one pinned core.

Run: ``.venv/bin/python benchmarks/bench_chain.py [--packets N] [--flows 100000] [--batch 1024]
[--repeat 5] [--baseline-packets 20000] [--ghz 2.45] [--quick]``.

The chain is ``examples/service-chain/graph.yaml`` itself (classifier -> ACL of 1,000 rules ->
NAT -> Maglev LB over 16 backends -> flow monitor), built from the file. The workload is 64-byte
Ethernet/IPv4 frames of ``--flows`` client flows (sources in 198.18.0.0/16, random source
ports) to the four VIPs (198.19.0.1-4): 70 % TCP to ports 80/443/8080, 30 % UDP to 53/123,
in random order, timestamps 100 ns apart.

Rows:

* ``parse`` -- the ingress parser alone;
* one row per element: the element alone on exactly the packets that reach it in the chain
  (captured in a first pass), after the first pass has created the flows' state (steady state);
* ``chain`` -- the graph runtime pushing raw batches through parse and every element, steady
  state; ``chain, new flows`` -- the first pass, where every flow creates state;
* ``baseline`` -- dpkt and dicts per packet (:mod:`chain_baseline`) on a sample, and the ratio.

Mpps and cycles per packet (CPU seconds x GHz / packets) are per packet *offered* to the row.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from chain_baseline import BaselineChain, compile_baseline_rules
from nfvkit.bench.cpu import cpu_ghz
from nfvkit.bench.measure import Row, best_cpu_seconds, split
from nfvkit.elements.base import Element
from nfvkit.elements.from_memory import FromMemory
from nfvkit.elements.sink import Sink
from nfvkit.graph.build import Graph, build
from nfvkit.graph.runtime import Runtime
from nfvkit.graph.spec import load
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import parse_batch

GRAPH = Path(__file__).resolve().parent.parent / "examples" / "service-chain" / "graph.yaml"
CHAIN = ("classify", "fw", "nat", "lb", "monitor")
FRAME = 64
CLIENTS = int(ipaddress.ip_address("198.18.0.0"))
VIPS = [int(ipaddress.ip_address(f"198.19.0.{i}")) for i in range(1, 5)]


def make_frames(n: int, flows: int, seed: int = 5) -> PacketBatch:
    """``n`` 64-byte frames over ``flows`` client flows to the VIPs (not parsed)."""
    rng = np.random.default_rng(seed)
    f_src = CLIENTS + rng.integers(1, 1 << 16, flows)
    f_sport = rng.integers(1024, 65536, flows)
    f_vip = rng.choice(VIPS, flows)
    f_udp = rng.random(flows) < 0.3
    f_dport = np.where(f_udp, rng.choice([53, 123], flows), rng.choice([80, 443, 8080], flows))
    pick = rng.integers(0, flows, n)
    room = 64
    view = np.zeros((n, FRAME + room), dtype=np.uint8)
    fr = view[:, room:]
    fr[:, 0:6] = (2, 0, 0, 0, 0, 2)
    fr[:, 6:12] = (2, 0, 0, 0, 0, 1)
    fr[:, 12:16] = (0x08, 0x00, 0x45, 0x00)
    udp = f_udp[pick]
    fr[:, 16:18] = np.where(udp[:, None], [0, 46], [0, 46])  # IP total length 46 (60-byte frame)
    fr[:, 22] = 64
    fr[:, 23] = np.where(udp, 17, 6)
    for col, value in ((26, f_src[pick]), (30, f_vip[pick])):
        for k in range(4):
            fr[:, col + k] = (value >> (24 - 8 * k)) & 0xFF
    for col, value in ((34, f_sport[pick]), (36, f_dport[pick])):
        fr[:, col] = value >> 8
        fr[:, col + 1] = value & 0xFF
    fr[:, 38:40] = np.where(udp[:, None], [0, 26], [0, 0])  # UDP length; TCP seq bytes
    fr[:, 46] = np.where(udp, 0, 0x50)  # TCP data offset 5
    fr[:, 47] = np.where(udp, 0, 0x10)  # TCP ACK
    _ip_checksums(fr)
    flat = view.reshape(-1)
    offset = np.arange(n, dtype=np.int64) * (FRAME + room) + room
    length = np.full(n, FRAME - 4, dtype=np.int32)
    ts = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 100
    return PacketBatch(flat, offset, length, headroom=room, ts=ts)


def _ip_checksums(fr: np.ndarray) -> None:
    words = fr[:, 14:34].astype(np.uint32).reshape(len(fr), 10, 2)
    total = (words[:, :, 0] << 8 | words[:, :, 1]).sum(axis=1)
    while (total >> 16).any():
        total = (total & 0xFFFF) + (total >> 16)
    csum = ~total & 0xFFFF
    fr[:, 24] = csum >> 8
    fr[:, 25] = csum & 0xFF


def split_copies(batch: PacketBatch, size: int) -> list[PacketBatch]:
    """Consecutive batches of ``size`` packets, each with its own copy of the bytes."""
    return [b.copy() for b in split(batch, size)]


# the chain ----------------------------------------------------------------------------------


def build_chain() -> Graph:
    """The example graph, bound to a memory source and a sink, opened."""
    graph = build(
        load(str(GRAPH)),
        {"input": FromMemory.configure("input"), "output": Sink.configure("output")},
    )
    for node in graph.nodes:
        node.element.initialize()
    return graph


def stage_inputs(graph: Graph, raw: list[PacketBatch]) -> dict[str, list[PacketBatch]]:
    """Run copies of ``raw`` through the chain's elements in order (a first pass that creates
    the flows' state); return, per element, copies of the packets that reached it."""
    stages: dict[str, list[PacketBatch]] = {name: [] for name in CHAIN}
    for batch in raw:
        b = batch.copy()
        parse_batch(b)
        b = b.select(np.flatnonzero(b.fate >= 0))
        for name in CHAIN:
            if len(b) == 0:
                break
            stages[name].append(b.copy())
            b.fate[:] = 0
            el = graph.node(name).element
            out = el.process(b)
            assert isinstance(out, PacketBatch)
            b = out.select(np.flatnonzero(out.fate >= 0))
    return stages


def baseline_lb_tables(lb: Element) -> tuple[list[int], list[int]]:
    """The LB's backend addresses (IPv4 ints by slot) and its Maglev table, for the baseline."""
    dispatch = lb.pool.dispatch  # type: ignore[attr-defined]
    backends = [int(row[3]) for row in dispatch.addr]
    return backends, [int(s) for s in dispatch.table]


# measurement --------------------------------------------------------------------------------


def bench_alone(name: str, el: Element, batches: list[PacketBatch], repeat: int) -> Row:
    """``el.process`` over fresh copies of the packets that reach it in the chain."""
    work: list[PacketBatch] = []

    def prepare() -> None:
        work[:] = [b.copy() for b in batches]
        for b in work:
            parse_batch(b)

    def run() -> None:
        for b in work:
            el.process(b)

    packets = sum(len(b) for b in batches)
    return Row(f"{name} ({el.type_name}) alone", packets, best_cpu_seconds(run, repeat, prepare))


def bench_parse(raw: list[PacketBatch], repeat: int) -> Row:
    work: list[PacketBatch] = []

    def prepare() -> None:
        work[:] = [b.copy() for b in raw]

    def run() -> None:
        for b in work:
            parse_batch(b)

    return Row("parse", sum(len(b) for b in raw), best_cpu_seconds(run, repeat, prepare))


def bench_runtime(graph: Graph, raw: list[PacketBatch], repeat: int, name: str) -> Row:
    """The graph runtime over fresh copies of the raw batches (parse included); ``repeat`` 0
    times a single pass with no warm-up (the first pass, where every flow is new)."""
    rt = Runtime(graph, profile=False)
    work: list[PacketBatch] = []

    def prepare() -> None:
        work[:] = [b.copy() for b in raw]

    def run() -> None:
        for b in work:
            rt.push(b)

    packets = sum(len(b) for b in raw)
    if repeat == 0:
        prepare()
        t0 = time.process_time()
        run()
        return Row(name, packets, time.process_time() - t0)
    return Row(name, packets, best_cpu_seconds(run, repeat, prepare))


def bench_baseline(graph: Graph, frames: list[bytes], ts: np.ndarray, repeat: int) -> Row:
    """The dpkt chain over ``frames``, fresh state each repeat."""
    fw = graph.node("fw").element
    lb = graph.node("lb").element
    rules = compile_baseline_rules(fw.cfg.all_rules())  # type: ignore[attr-defined]
    backends, table = baseline_lb_tables(lb)
    chain: list[BaselineChain] = []

    def prepare() -> None:
        chain[:] = [
            BaselineChain(
                rules,
                inside=(CLIENTS, 0xFFFF0000),
                external=int(ipaddress.ip_address("198.19.255.1")),
                vips=set(VIPS),
                backends=backends,
                maglev=table,
            )
        ]

    def run() -> None:
        c = chain[0]
        for frame, t in zip(frames, ts, strict=True):
            c.process(frame, int(t))

    return Row(
        "baseline: dpkt + dicts, same chain", len(frames), best_cpu_seconds(run, repeat, prepare)
    )


# driver -------------------------------------------------------------------------------------


def run_all(args: argparse.Namespace) -> tuple[list[Row], float]:
    """Every row, and the ratio of the chain (steady state) to the baseline."""
    work = make_frames(args.packets, args.flows)
    raw = split_copies(work, args.batch)
    warm = Runtime(build_chain(), profile=False)
    for b in raw[:4]:  # load every kernel from Numba's cache before anything is timed
        warm.push(b.copy())
    graph = build_chain()
    first = bench_runtime(graph, raw, 0, "chain, new flows (first pass)")
    stages = stage_inputs(build_chain(), raw)
    rows = [bench_parse(raw, args.repeat)]
    for name in CHAIN:
        rows.append(bench_alone(name, graph.node(name).element, stages[name], args.repeat))
    chain = bench_runtime(graph, raw, args.repeat, "chain (parse + 5 elements), steady state")
    rows += [chain, first]
    n = min(args.baseline_packets, len(work))
    base = bench_baseline(graph, [work.packet(i) for i in range(n)], work.ts[:n], 1)
    rows.append(base)
    return rows, chain.mpps() / base.mpps()


def print_table(rows: list[Row], ratio: float, ghz: float, args: argparse.Namespace) -> None:
    print(
        f"nfvkit service-chain benchmark: CPU {max(os.sched_getaffinity(0))}, {ghz:.2f} GHz, "
        f"{FRAME}-byte frames, {args.flows} flows, batch {args.batch}, {args.packets} packets, "
        f"best of {args.repeat}"
    )
    print(f"{'row':46s} {'packets':>9s} {'Mpps':>8s} {'cycles/pkt':>11s}")
    for r in rows:
        print(f"{r.name:46s} {r.packets:9d} {r.mpps():8.3f} {r.cycles(ghz):11.1f}")
    print(f"{'ratio chain / baseline':46s} {'':9s} {ratio:8.1f}x")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="the reference service chain on one core")
    ap.add_argument("--packets", type=int, default=1 << 20)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--baseline-packets", type=int, default=20_000)
    ap.add_argument("--ghz", type=float, default=None, help="CPU clock (default: /proc/cpuinfo)")
    ap.add_argument("--quick", action="store_true", help="a few-second smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.packets, args.flows, args.repeat, args.baseline_packets = 8192, 2000, 1, 500
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    ghz = args.ghz or cpu_ghz()
    rows, ratio = run_all(args)
    print_table(rows, ratio, ghz, args)


if __name__ == "__main__":
    main()
