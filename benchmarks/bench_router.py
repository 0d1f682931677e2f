"""Router benchmark: IPv4 and IPv6 longest-prefix-match forwarding on one pinned core.

Run: ``.venv/bin/python benchmarks/bench_router.py [--routes 100000] [--routes6 20000]
[--packets N] [--batch 1024] [--flows 100000] [--repeat 5] [--ghz 2.45] [--quick]``.

Tables: ``--routes`` random IPv4 prefixes with the length mix of a BGP table (/24 about
half, /20../23 a third, the rest /8../19 and a few /25../32) plus a default route, over 16
next hops on 4 ports; ``--routes6`` random IPv6 prefixes (/48 half, the rest /20../64) under
2,000 random /32 "allocations" in 2000::/3, plus ``::/0``.

Workload: 64-byte Ethernet/IPv4/UDP (or IPv6/UDP) frames with valid checksums over
``--flows`` destinations (70% inside a random route, 30% anywhere), TTL 255, parsed once and
split into batches before timing. Every timed pass starts from the pristine packet bytes
(restored outside the timed region), so each pass routes the same packets. Rows marked
[ring] replay a cache-resident pool of ``--pool`` packets; the others stream every packet
once. The baseline is a per-packet pure-Python LPM (one dict per prefix length, longest
first) over the same table, on a sample.

Each row is the best of ``--repeat`` runs: Mpps and cycles per packet (CPU seconds x GHz /
packets; GHz from /proc/cpuinfo unless ``--ghz`` or ``NFV_CPU_GHZ`` is given).

:func:`build` is the reusable setup: a configured router and parsed batches.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from nfvkit.bench.cpu import cpu_ghz, cycles_per_packet, mpps
from nfvkit.bench.measure import Row, best_cpu_seconds, pin_one_cpu, split
from nfvkit.elements.router import Router
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.checksum import fix_checksums
from nfvkit.packet.parse import parse_batch

FRAME = 64
ROOM = 64
PORTS = ["p0", "p1", "p2", "p3"]
NEXT_HOPS = 16
V4_LENGTHS = {
    8: 0.2,
    12: 0.3,
    16: 2.0,
    18: 1.5,
    19: 2.5,
    20: 4.0,
    21: 4.0,
    22: 9.0,
    23: 8.0,
    24: 55.0,
    25: 1.0,
    26: 1.0,
    27: 0.8,
    28: 0.8,
    29: 0.8,
    30: 0.8,
    32: 1.0,
}
V6_LENGTHS = {
    20: 1.0,
    24: 1.0,
    28: 2.0,
    29: 3.0,
    32: 10.0,
    36: 3.0,
    40: 6.0,
    44: 8.0,
    48: 50.0,
    56: 8.0,
    64: 8.0,
}


def _lengths(rng: np.random.Generator, mix: dict[int, float], m: int) -> NDArray[np.int64]:
    weights = np.array(list(mix.values()))
    return rng.choice(np.array(list(mix)), size=m, p=weights / weights.sum())


def random_v4_prefixes(n: int, seed: int = 1) -> list[tuple[int, int]]:
    """``n`` distinct random IPv4 ``(network, length)`` pairs with a BGP-like length mix."""
    rng = np.random.default_rng(seed)
    m = int(n * 1.3) + 16
    lens = _lengths(rng, V4_LENGTHS, m)
    addrs = rng.integers(0, 1 << 32, m, dtype=np.int64)
    nets = addrs & ~((np.int64(1) << (32 - lens)) - 1) & 0xFFFFFFFF
    pairs = np.unique(np.stack([nets, lens], axis=1), axis=0)
    pairs = pairs[rng.permutation(pairs.shape[0])[:n]]
    return [(int(a), int(b)) for a, b in pairs]


def random_v6_prefixes(n: int, seed: int = 2) -> list[tuple[int, int]]:
    """``n`` distinct random IPv6 prefixes under 2,000 random /32s of 2000::/3."""
    rng = np.random.default_rng(seed)
    tops = [0x2000 << 16 | int(x) for x in rng.integers(0, 1 << 29, 2000)]
    out: set[tuple[int, int]] = set()
    while len(out) < n:
        plen = int(_lengths(rng, V6_LENGTHS, 1)[0])
        value = (tops[int(rng.integers(0, len(tops)))] << 96) | int(rng.integers(0, 1 << 62)) << 34
        if plen < 32:
            value ^= int(rng.integers(0, 1 << 12)) << 96
        out.add(((value >> (128 - plen)) << (128 - plen), plen))
    return sorted(out)


def router_config(prefixes: Sequence[tuple[int, int]], version: int) -> dict[str, Any]:
    """A router over 4 ports and 16 next hops with ``prefixes`` and a default route."""
    make = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    routes = [{"prefix": "0.0.0.0/0" if version == 4 else "::/0", "via": "nh0"}]
    routes += [
        {"prefix": str(make((a, plen))), "via": f"nh{i % NEXT_HOPS}"}
        for i, (a, plen) in enumerate(prefixes)
        if plen > 0
    ]
    return {
        "ports": [{"name": p, "mac": f"02:00:00:00:0{i}:01"} for i, p in enumerate(PORTS)],
        "neighbours": [
            {"name": f"nh{i}", "mac": f"02:00:00:00:aa:{i:02x}", "port": PORTS[i % 4]}
            for i in range(NEXT_HOPS)
        ],
        "routes": routes,
    }


# workload -------------------------------------------------------------------------------------


def flow_destinations(
    prefixes: Sequence[tuple[int, int]], flows: int, version: int, seed: int = 3
) -> list[int]:
    """``flows`` destination addresses: 70% inside a random prefix, 30% anywhere."""
    rng = np.random.default_rng(seed)
    bits = 32 if version == 4 else 128
    out = []
    for _ in range(flows):
        if rng.random() < 0.7:
            net, plen = prefixes[int(rng.integers(0, len(prefixes)))]
            host = int.from_bytes(rng.bytes(16), "big") >> (128 - bits + plen) if plen < bits else 0
            out.append(net | host)
        else:
            out.append(int.from_bytes(rng.bytes(16), "big") >> (128 - bits))
    return out


def make_frames(dsts: Sequence[int], n: int, version: int, seed: int = 4) -> PacketBatch:
    """``n`` parsed 64-byte UDP frames to random picks of ``dsts``, with valid checksums."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(dsts), n)
    alen = 4 if version == 4 else 16
    table = np.frombuffer(b"".join(d.to_bytes(alen, "big") for d in dsts), np.uint8)
    view = np.zeros((n, FRAME + ROOM), dtype=np.uint8)
    fr = view[:, ROOM:]
    fr[:, 0:12] = (2, 0, 0, 0, 0, 0x98, 2, 0, 0, 0, 0, 0x99)
    if version == 4:
        fr[:, 12:24] = (0x08, 0x00, 0x45, 0, 0, 50, 0, 0, 0, 0, 255, 17)
        fr[:, 26:30] = (198, 18, 0, 1)
        fr[:, 30:34] = table.reshape(-1, 4)[pick]
        l4 = 34
    else:
        fr[:, 12:22] = (0x86, 0xDD, 0x60, 0, 0, 0, 0, 10, 17, 255)
        fr[:, 22:38] = np.frombuffer(ipaddress.IPv6Address("2001:db8::1").packed, np.uint8)
        fr[:, 38:54] = table.reshape(-1, 16)[pick]
        l4 = 54
    sport = rng.integers(1024, 65536, n)
    fr[:, l4], fr[:, l4 + 1] = sport >> 8, sport & 0xFF
    fr[:, l4 + 2 : l4 + 4] = (0, 53)
    fr[:, l4 + 5] = FRAME - l4
    offset = np.arange(n, dtype=np.int64) * (FRAME + ROOM) + ROOM
    batch = PacketBatch(view.reshape(-1), offset, np.full(n, FRAME, np.int32), headroom=ROOM)
    parse_batch(batch)
    fix_checksums(batch)
    return batch


def workload(flows: int, routes: int, version: int) -> tuple[Router, list[int]]:
    """A router with ``routes`` random prefixes (plus a default) and ``flows`` destinations."""
    prefixes = random_v4_prefixes(routes) if version == 4 else random_v6_prefixes(routes)
    el = Router.configure(f"router{version}", router_config(prefixes, version))
    return el, flow_destinations(prefixes, flows, version)


def build(
    flows: int = 100_000,
    routes: int = 100_000,
    version: int = 4,
    packets: int = 1 << 20,
    batch: int = 1024,
) -> tuple[Router, list[PacketBatch]]:
    """A router with ``routes`` random prefixes (plus a default) and parsed batches of
    ``packets`` 64-byte frames over ``flows`` destinations (TTL 255: the router rewrites
    TTL, checksum and MACs in place, so a batch survives 254 passes)."""
    el, dsts = workload(flows, routes, version)
    return el, split(make_frames(dsts, packets, version), batch)


# measurement ----------------------------------------------------------------------------------


def bench_router(name: str, el: Router, batches: list[PacketBatch], repeat: int) -> Row:
    """CPU time of ``el.process`` over ``batches``, each pass on the pristine packets."""
    buffers = {id(b.data): b.data for b in batches}
    pristine = {k: v.copy() for k, v in buffers.items()}

    def restore() -> None:
        for k, buf in buffers.items():
            buf[:] = pristine[k]
        for b in batches:
            b.fate[:] = 0

    def run() -> None:
        for b in batches:
            el.process(b)

    seconds = best_cpu_seconds(run, repeat, restore)
    stats = el.call_handler("stats")
    table = stats["ipv4"] if stats["ipv4"]["routes"] else stats["ipv6"]
    note = (
        f"{stats['routes']} routes, {table['nodes']} nodes, "
        f"{table['bytes'] / 2**20:.0f} MiB, built in {stats['build_seconds']:.2f} s"
    )
    return Row(name, sum(len(b) for b in batches), seconds, note)


def bench_baseline(el: Router, batches: list[PacketBatch], limit: int, repeat: int) -> Row:
    """Per-packet pure Python LPM: one dict per prefix length, longest length first."""
    by_len: dict[int, dict[int, int]] = {}
    for i, r in enumerate(el.cfg.routes):
        net = r.prefix
        by_len.setdefault(net.prefixlen, {})[int(net.network_address) >> (32 - net.prefixlen)] = i
    order = sorted(by_len, reverse=True)
    dsts = [int(x) for b in batches for x in b.dst[:, 3]][:limit]

    def run() -> None:
        for a in dsts:
            for plen in order:
                if (a >> (32 - plen)) in by_len[plen]:
                    break

    return Row(
        "baseline: Python dict-per-length LPM, ipv4",
        len(dsts),
        best_cpu_seconds(run, max(1, repeat // 2)),
    )


def run_all(args: argparse.Namespace) -> list[Row]:
    """The streamed and [ring] rows of each family, and the baseline after IPv4."""
    rows = []
    pool = min(args.pool, args.packets)
    rounds = max(1, min(args.packets // pool, 200))
    for version, nroutes in ((4, args.routes), (6, args.routes6)):
        label = f"router ipv{version} ({nroutes} routes)"
        el, dsts = workload(args.flows, nroutes, version)
        streamed = split(make_frames(dsts, args.packets, version), args.batch)
        rows.append(bench_router(label, el, streamed, args.repeat))
        ring = split(make_frames(dsts, pool, version, seed=5), args.batch)
        rows.append(bench_router(f"{label} [ring]", el, ring * rounds, args.repeat))
        if version == 4:
            rows.append(bench_baseline(el, streamed, args.baseline_packets, args.repeat))
        del el, streamed, ring
    return rows


def print_table(rows: list[Row], ghz: float, args: argparse.Namespace, cpu: int) -> None:
    print(
        f"nfvkit router benchmark: CPU {cpu}, {ghz:.2f} GHz, {FRAME}-byte frames, "
        f"{args.flows} flows, batch {args.batch}, {args.packets} packets, best of {args.repeat}"
    )
    print(f"{'row':44s} {'Mpps':>9s} {'cycles/pkt':>11s}  notes")
    for r in rows:
        print(
            f"{r.name:44s} {mpps(r.packets, r.cpu_seconds):9.3f} "
            f"{cycles_per_packet(r.packets, r.cpu_seconds, ghz):11.1f}  {r.note}"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="router (LPM) throughput on one core")
    ap.add_argument("--routes", type=int, default=100_000, help="IPv4 prefixes")
    ap.add_argument("--routes6", type=int, default=20_000, help="IPv6 prefixes")
    ap.add_argument("--packets", type=int, default=1 << 20)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--pool", type=int, default=32768, help="packets in the [ring] working set")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--baseline-packets", type=int, default=50_000)
    ap.add_argument("--ghz", type=float, default=None, help="CPU clock (default: /proc/cpuinfo)")
    ap.add_argument("--quick", action="store_true", help="a few-second smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.packets, args.repeat, args.pool, args.baseline_packets = 8192, 1, 4096, 2000
        args.routes, args.routes6, args.flows = 2000, 1000, min(args.flows, 4096)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = pin_one_cpu()
    ghz = args.ghz or cpu_ghz()
    print_table(run_all(args), ghz, args, cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
