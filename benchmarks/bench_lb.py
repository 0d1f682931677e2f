"""Benchmark of the ``lb`` element (Maglev load balancer) on one pinned core, in memory.

Run: ``.venv/bin/python benchmarks/bench_lb.py [--packets N] [--flows 100000] [--batch 1024]
[--backends 16] [--table-size 65537] [--max-flows 131072] [--repeat 5] [--quick]``.

Workload: 64-byte Ethernet/IPv4 frames of ``--flows`` client flows (sources in 198.18.0.0/16,
random source ports, 70 % TCP to port 80, 30 % UDP to port 53) to one VIP (198.19.0.1, any
port), in random order, parsed once outside the timed region; ``--backends`` backends of equal
weight in 198.19.1.0/24. The element rewrites packets in place, so every timed pass starts from
restored bytes and columns (restoring is not timed): each batch just before it is processed,
so that it is in the cache as a batch fresh from an RX ring is, or -- rows marked
``[streamed]`` -- the whole workload before the pass, so packets come from memory.

Rows (best of ``--repeat`` passes, Mpps and cycles per packet = CPU seconds × GHz ÷ packets):

* ``l3`` / ``l3 + snat`` / ``dsr`` -- steady state: every flow is in the connection table (the
  warm-up pass created them);
* ``l3, new flows`` -- a new element each pass: every flow's first packet runs Maglev and
  inserts its flow and reply entries;
* ``l3 replies`` -- the backends' answers to those flows, translated back (source → VIP).

Then the Maglev figures for the same flows: the load balance (max/mean flows per backend), and
the share of flows whose backend changes when one backend leaves (``down``) or joins --
without a connection table (a fresh element: pure Maglev, ideal 1/N on leave) and with it
(flows of other backends keep theirs: only the leaving backend's flows move, none on join).

:func:`build` is the reusable setup (an initialized element and parsed batches);
:class:`Workload` restores rewritten batches.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))


from nfvkit.bench.cpu import cpu_ghz
from nfvkit.bench.measure import Row, pin_one_cpu, split
from nfvkit.elements.lb import Lb
from nfvkit.elements.lblib.maglev import lookup
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.checksum import fix_checksums
from nfvkit.packet.flow import flow_hash
from nfvkit.packet.parse import parse_batch

FRAME = 64
CLIENTS = int(ipaddress.ip_address("198.18.0.0"))
VIP = int(ipaddress.ip_address("198.19.0.1"))
BACKENDS = int(ipaddress.ip_address("198.19.1.0"))
SNAT = "198.19.255.1"
COLUMNS = ("src", "dst", "sport", "dport", "fate")


# workload -----------------------------------------------------------------------------------


def frames(
    src: NDArray[Any],
    dst: NDArray[Any],
    sport: NDArray[Any],
    dport: NDArray[Any],
    udp: NDArray[Any],
) -> PacketBatch:
    """Parsed 64-byte IPv4 frames with these addresses, ports and protocols (valid checksums)."""
    n = src.shape[0]
    room = 64
    view = np.zeros((n, FRAME + room), dtype=np.uint8)
    fr = view[:, room:]
    fr[:, 0:6] = (2, 0, 0, 0, 0, 2)
    fr[:, 6:12] = (2, 0, 0, 0, 0, 1)
    fr[:, 12:18] = (0x08, 0x00, 0x45, 0x00, 0, 46)
    fr[:, 22] = 64
    fr[:, 23] = np.where(udp, 17, 6)
    for col, values in ((26, src), (30, dst)):
        for k in range(4):
            fr[:, col + k] = (values >> (24 - 8 * k)) & 0xFF
    for col, values in ((34, sport), (36, dport)):
        fr[:, col] = values >> 8
        fr[:, col + 1] = values & 0xFF
    fr[:, 38:40] = np.where(udp[:, None], np.array([0, 26]), np.array([0, 0]))  # UDP length
    fr[:, 46] = np.where(udp, 0, 0x50)  # TCP data offset 5
    fr[:, 47] = np.where(udp, 0, 0x10)  # ACK
    offset = np.arange(n, dtype=np.int64) * (FRAME + room) + room
    batch = PacketBatch(view.reshape(-1), offset, np.full(n, FRAME, np.int32), headroom=room)
    parse_batch(batch)
    fix_checksums(batch)
    return batch


@dataclass
class Flows:
    """The client flows: source address and port, UDP or TCP (destination: the VIP)."""

    src: NDArray[np.int64]
    sport: NDArray[np.int64]
    udp: NDArray[np.bool_]

    @classmethod
    def random(cls, flows: int, seed: int = 9) -> Flows:
        rng = np.random.default_rng(seed)
        return cls(
            CLIENTS + rng.integers(1, 1 << 16, flows),
            rng.integers(1024, 65536, flows),
            rng.random(flows) < 0.3,
        )

    def packets(self, pick: NDArray[np.int64]) -> PacketBatch:
        """Parsed frames of the flows ``pick`` (one per entry), to the VIP."""
        udp = self.udp[pick]
        dport = np.where(udp, 53, 80)
        return frames(self.src[pick], np.full(len(pick), VIP), self.sport[pick], dport, udp)


class Workload:
    """Batches that an element rewrites, and their pristine bytes and columns to restore."""

    def __init__(self, whole: PacketBatch, batch: int) -> None:
        self.whole = whole
        self.batches = split(whole, batch)
        self._data = whole.data.copy()
        self._cols = [{c: getattr(b, c).copy() for c in COLUMNS} for b in self.batches]
        self._spans = [
            (int(b.offset[0]) - whole.headroom, int(b.offset[-1] + b.length[-1]))
            for b in self.batches
        ]

    def restore(self) -> None:
        """Every batch as it was built."""
        self.whole.data[:] = self._data
        for k in range(len(self.batches)):
            self._restore_columns(k)

    def restore_batch(self, k: int) -> None:
        """Batch ``k`` as it was built (its bytes end up in the cache, as from an RX ring)."""
        lo, hi = self._spans[k]
        self.whole.data[lo:hi] = self._data[lo:hi]
        self._restore_columns(k)

    def _restore_columns(self, k: int) -> None:
        b = self.batches[k]
        for name, col in self._cols[k].items():
            getattr(b, name)[:] = col

    @property
    def packets(self) -> int:
        return sum(len(b) for b in self.batches)


def lb_config(backends: int = 16, table_size: int = 65537, **extra: Any) -> dict[str, Any]:
    """One VIP (any port), ``backends`` equal backends; ``extra`` on top."""
    cfg: dict[str, Any] = {
        "vip": {"address": str(ipaddress.ip_address(VIP))},
        "backends": [
            {
                "name": f"be{i:02d}",
                "address": str(ipaddress.ip_address(BACKENDS + 1 + i)),
                "mac": f"02:00:00:00:01:{i + 1:02x}",
            }
            for i in range(backends)
        ],
        "table_size": table_size,
        "max_flows": 1 << 17,
    }
    cfg.update(extra)
    return cfg


def make_lb(**config: Any) -> Lb:
    el = Lb.configure("lb", lb_config(**config))
    assert isinstance(el, Lb)
    el.initialize()
    return el


def build(
    flows: int = 100_000, packets: int = 1 << 20, batch: int = 1024, **config: Any
) -> tuple[Lb, list[PacketBatch]]:
    """The setup a chain benchmark can reuse: an initialized ``lb`` (16 backends, M = 65537,
    ``config`` on top) and parsed batches of ``packets`` frames over ``flows`` flows to its VIP.
    The element rewrites the batches in place (use :class:`Workload` to restore them)."""
    fl = Flows.random(flows)
    pick = np.random.default_rng(3).integers(0, flows, packets)
    return make_lb(**config), split(fl.packets(pick), batch)


# measurement --------------------------------------------------------------------------------


def _pass(el: Lb, work: Workload, streamed: bool) -> float:
    """CPU seconds of one pass of ``work`` through ``el``.

    ``streamed``: the whole workload is restored first, so packets come from memory; else each
    batch is restored just before it is processed (untimed), so it is in the cache as a batch
    fresh from an RX ring is.
    """
    if streamed:
        work.restore()
        t0 = time.process_time()
        for b in work.batches:
            el.process(b)
        return time.process_time() - t0
    spent = 0.0
    for k, b in enumerate(work.batches):
        work.restore_batch(k)
        t0 = time.process_time()
        el.process(b)
        spent += time.process_time() - t0
    return spent


def bench(
    name: str, make: Callable[[], Lb], work: Workload, args: argparse.Namespace, **how: bool
) -> Row:
    """Best CPU time of a pass of ``work``; ``how``: ``streamed`` (see :func:`_pass`),
    ``new`` (a new element for every pass, so every flow is new; its tables pre-faulted)."""
    el = make()
    best = float("inf")
    for _ in range(args.repeat + 1):  # the first pass warms up (and creates the flows)
        if how.get("new"):
            el = make()
            for t in (el.tables["flows"], el._replies):
                if t is not None:
                    t.rows.view(np.uint8).fill(0)  # page faults outside the timed pass
        best = min(best, _pass(el, work, how.get("streamed", False)))
    stats = el.read_stats()
    note = f"new flows {stats['new_flows']}, replies {stats['reply_packets']}"
    return Row(name, work.packets, best, note)


def replies_of(el: Lb, work: Workload) -> Workload:
    """The backends' answers to the packets of ``work`` after ``el`` forwarded them."""
    work.restore()
    for b in work.batches:
        el.process(b)
    out = PacketBatch.concat(work.batches)
    udp = out.proto == 17
    ip4 = (out.src[:, 3].astype(np.int64), out.dst[:, 3].astype(np.int64))
    back = frames(ip4[1], ip4[0], out.dport.astype(np.int64), out.sport.astype(np.int64), udp)
    return Workload(back, len(work.batches[0]))


def rows_throughput(args: argparse.Namespace, fl: Flows) -> list[Row]:
    pick = np.random.default_rng(3).integers(0, args.flows, args.packets)
    work = Workload(fl.packets(pick), args.batch)
    base = {"backends": args.backends, "table_size": args.table_size, "max_flows": args.max_flows}
    rows = []
    for name, extra in (("l3", {}), ("l3 + snat", {"snat": SNAT}), ("dsr", {"mode": "dsr"})):

        def make(extra: dict[str, Any] = extra) -> Lb:
            return make_lb(**base, **extra)

        rows.append(bench(f"lb {name}", make, work, args))
        rows.append(bench(f"lb {name} [streamed]", make, work, args, streamed=True))
    rows.append(bench("lb l3, new flows", lambda: make_lb(**base), work, args, new=True))
    el = make_lb(**base)
    back = replies_of(el, work)
    rows.append(bench("lb l3 replies", lambda: el, back, args))
    return rows


# Maglev figures -----------------------------------------------------------------------------


def backend_of(el: Lb, work: Workload) -> NDArray[np.int64]:
    """The backend (slot) each packet of ``work`` went to."""
    work.restore()
    for b in work.batches:
        el.process(b)
    dst = np.concatenate([b.dst[:, 3] for b in work.batches]).astype(np.int64)
    return dst - (BACKENDS + 1)


def maglev_figures(args: argparse.Namespace, fl: Flows) -> dict[str, float]:
    """Load balance and disruption figures over every flow once."""
    base = {"backends": args.backends, "table_size": args.table_size, "max_flows": args.max_flows}
    work = Workload(fl.packets(np.arange(args.flows)), args.batch)
    joined = [*lb_config(**base)["backends"], _extra_backend(args)]
    tracked = make_lb(**base)
    before = backend_of(tracked, work)
    counts = np.bincount(before, minlength=args.backends)
    pure = make_lb(**base)
    pure.write_health({"be00": "down"})
    pure_leave = backend_of(pure, work)
    tracked.write_health({"be00": "down"})
    kept_leave = backend_of(tracked, work)
    tracked = make_lb(**base)
    backend_of(tracked, work)
    tracked.write_backends(joined)
    kept_join = backend_of(tracked, work)
    pure = make_lb(**base)
    pure.write_backends(joined)
    pure_join = backend_of(pure, work)
    return {
        "load balance max/mean (flows)": float(counts.max() / counts.mean()),
        "lookup table max/mean (entries)": float(make_lb(**base).read_table()["max_over_mean"]),
        "flows on the leaving backend": float(np.mean(before == 0)),
        "leave, no connection table": float(np.mean(pure_leave != before)),
        "leave, connection table": float(np.mean(kept_leave != before)),
        "join, no connection table": float(np.mean(pure_join != before)),
        "join, connection table": float(np.mean(kept_join != before)),
        "element vs table[hash mod M] mismatch": float(np.mean(_pure(pure, work) != pure_join)),
    }


def _extra_backend(args: argparse.Namespace) -> dict[str, Any]:
    i = args.backends
    return {
        "name": f"be{i:02d}",
        "address": str(ipaddress.ip_address(BACKENDS + 1 + i)),
        "mac": f"02:00:00:00:01:{i + 1:02x}",
    }


def _pure(el: Lb, work: Workload) -> NDArray[np.int64]:
    """Maglev alone (no element): table[hash mod M] for each packet of ``work``."""
    work.restore()
    hashes = np.concatenate([flow_hash(b, seed=el.cfg.seed).copy() for b in work.batches])
    return lookup(el.pool.dispatch.table, hashes).astype(np.int64)


# driver -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="lb (Maglev) throughput and balance on one core")
    ap.add_argument("--packets", type=int, default=1 << 20)
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--backends", type=int, default=16)
    ap.add_argument("--table-size", type=int, default=65537)
    ap.add_argument("--max-flows", type=int, default=1 << 17)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="a few-second smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.packets, args.flows, args.repeat, args.max_flows = 16384, 4096, 1, 8192
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = pin_one_cpu()
    ghz = cpu_ghz()
    fl = Flows.random(args.flows)
    rows = rows_throughput(args, fl)
    print(
        f"nfvkit lb benchmark: CPU {cpu}, {ghz:.2f} GHz, {FRAME}-byte frames, {args.flows} flows, "
        f"{args.backends} backends, M = {args.table_size}, batch {args.batch}, "
        f"{args.packets} packets, best of {args.repeat}"
    )
    print(f"{'row':28s} {'Mpps':>9s} {'cycles/pkt':>11s}  notes")
    for r in rows:
        print(f"{r.name:28s} {r.mpps():9.3f} {r.cycles(ghz):11.1f}  {r.note}")
    figures = maglev_figures(args, fl)
    print(f"Maglev over {args.flows} flows (shares of flows whose backend changed):")
    for name, value in figures.items():
        print(f"  {name:34s} {value:8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
