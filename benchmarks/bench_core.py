"""Core data-plane benchmark: parse, classifier and compiled ACL on one pinned core, in memory.

Run: ``.venv/bin/python benchmarks/bench_core.py [--packets N] [--batch 1024] [--repeat 5]
[--flows 100000] [--ghz 2.45] [--quick]``.

Workload: 64-byte Ethernet/IPv4 TCP and UDP frames over ``--flows`` random 5-tuples (sources in
198.18.0.0/16, destinations in 198.19.0.0/16), split into batches beforehand and parsed once
before the element rows (each element row is "after parse"). The ``parse`` row uses
``benchmarks/bench_parse.py``'s workload builder when it is there. Rules are random 5-tuple
rules (prefixes /16../32 or any, exact or ranged ports, tcp/udp/any, allow/deny) over the same
ranges, so that packets hit rules at every depth. The baseline parses each frame with dpkt and
runs a first-match loop over the same 1,000 rules in pure Python, on a smaller sample.

Each row reports the best of ``--repeat`` runs: Mpps and cycles per packet (CPU seconds × GHz ÷
packets, the GHz read from /proc/cpuinfo unless ``--ghz`` is given).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nfvkit.bench.cpu import cpu_ghz
from nfvkit.bench.measure import Row, best_cpu_seconds, pin_one_cpu, split
from nfvkit.elements.acl import Acl
from nfvkit.elements.base import Element
from nfvkit.elements.classifier import Classifier
from nfvkit.elements.classify import compile_rules
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import parse_batch

FRAME = 64
SRC_NET = int(ipaddress.ip_address("198.18.0.0"))
DST_NET = int(ipaddress.ip_address("198.19.0.0"))
DPORTS = (22, 53, 80, 123, 443, 8080, 3306, 5432)


def make_frames(n: int, flows: int, seed: int = 7) -> PacketBatch:
    """``n`` 64-byte IPv4 TCP/UDP frames over ``flows`` random 5-tuples (not yet parsed)."""
    rng = np.random.default_rng(seed)
    f_src = SRC_NET + rng.integers(0, 1 << 16, flows)
    f_dst = DST_NET + rng.integers(0, 1 << 16, flows)
    f_sport = rng.integers(1024, 65536, flows)
    f_dport = np.where(
        rng.random(flows) < 0.7, rng.choice(DPORTS, flows), rng.integers(1, 65536, flows)
    )
    f_udp = rng.random(flows) < 0.3
    pick = rng.integers(0, flows, n)
    room = 64
    view = np.zeros((n, FRAME + room), dtype=np.uint8)
    fr = view[:, room:]
    fr[:, 0:6] = (2, 0, 0, 0, 0, 2)
    fr[:, 6:12] = (2, 0, 0, 0, 0, 1)
    fr[:, 12:16] = (0x08, 0x00, 0x45, 0x00)
    fr[:, 16:18] = (0, 46)
    fr[:, 22] = 64
    udp = f_udp[pick]
    fr[:, 23] = np.where(udp, 17, 6)
    for col, values in ((26, f_src[pick]), (30, f_dst[pick])):
        for k in range(4):
            fr[:, col + k] = (values >> (24 - 8 * k)) & 0xFF
    for col, values in ((34, f_sport[pick]), (36, f_dport[pick])):
        fr[:, col] = values >> 8
        fr[:, col + 1] = values & 0xFF
    fr[:, 38:40] = np.where(udp[:, None], np.array([0, 26]), np.array([0, 0]))  # UDP length
    fr[:, 46] = np.where(udp, 0, 0x50)  # TCP data offset 5
    fr[:, 47] = np.where(udp, 0, 0x10)  # ACK
    offset = np.arange(n, dtype=np.int64) * (FRAME + room) + room
    return PacketBatch(view.reshape(-1), offset, np.full(n, FRAME, np.int32), headroom=room)


def _prefix(rng: np.random.Generator, base: int) -> str | None:
    if rng.random() < 0.4:
        return None
    plen = int(rng.integers(16, 33))
    addr = base + int(rng.integers(0, 1 << 16))
    return str(ipaddress.ip_network((addr, plen), strict=False))


def _port(rng: np.random.Generator) -> int | str | None:
    u = rng.random()
    if u < 0.3:
        return None
    if u < 0.7:
        return int(rng.choice(DPORTS)) if rng.random() < 0.6 else int(rng.integers(1, 65536))
    lo = int(rng.integers(1, 60000))
    return f"{lo}-{lo + int(rng.integers(1, 5000))}"


def random_acl_rules(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """``n`` random 5-tuple ACL rules over the workload's address ranges."""
    rng = np.random.default_rng(seed)
    rules = []
    for _ in range(n):
        rule: dict[str, Any] = {"action": "allow" if rng.random() < 0.5 else "deny"}
        fields = {
            "src": _prefix(rng, SRC_NET),
            "dst": _prefix(rng, DST_NET),
            "proto": str(rng.choice(["tcp", "udp", "tcp", "udp", "any"])),
            "dport": _port(rng),
            "sport": "1024-65535" if rng.random() < 0.2 else None,
        }
        rule.update({k: v for k, v in fields.items() if v not in (None, "any")})
        rules.append(rule)
    return rules


def classifier_config(n: int = 16) -> dict[str, Any]:
    """A classifier of ``n`` rules (protocol and destination port) over four outputs."""
    outputs = ["a", "b", "c", "d"]
    rules = []
    for i in range(n):
        proto = "tcp" if i % 2 == 0 else "udp"
        rules.append(
            {
                "match": {"proto": proto, "dport": DPORTS[i % len(DPORTS)] + i // 8},
                "port": outputs[i % 4],
            }
        )
    return {"outputs": outputs, "rules": rules, "default": "drop"}


# measurement --------------------------------------------------------------------------------


def bench_parse(batches: list[PacketBatch], repeat: int) -> Row:
    def run() -> None:
        for b in batches:
            parse_batch(b)

    return Row("parse", sum(len(b) for b in batches), best_cpu_seconds(run, repeat))


def bench_element(
    name: str, el: Element, batches: list[PacketBatch], repeat: int, note: str
) -> Row:
    """CPU time of ``el.process`` over pre-parsed ``batches`` (fates reset before each pass)."""

    def run() -> None:
        for b in batches:
            b.fate[:] = 0
        for b in batches:
            el.process(b)

    def clear() -> None:
        for b in batches:
            b.fate[:] = 0

    reset = best_cpu_seconds(clear, repeat)
    return Row(
        name, sum(len(b) for b in batches), max(best_cpu_seconds(run, repeat) - reset, 1e-9), note
    )


def _baseline_rules(rules: Sequence[dict[str, Any]]) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for r in rules:

        def span(p: str | None, top: int) -> tuple[int, int]:
            if p is None:
                return 0, top
            net = ipaddress.ip_network(p)
            return int(net.network_address), int(net.broadcast_address)

        def ports(v: Any) -> tuple[int, int]:
            if v is None:
                return 0, 65535
            lo, _, hi = str(v).partition("-")
            return int(lo), int(hi or lo)

        proto = {"tcp": 6, "udp": 17}.get(r.get("proto", ""), -1)
        src, dst = span(r.get("src"), 2**32 - 1), span(r.get("dst"), 2**32 - 1)
        sport, dport = ports(r.get("sport")), ports(r.get("dport"))
        out.append((*src, *dst, proto, *sport, *dport, int(r["action"] == "allow")))
    return out


def bench_baseline(frames: list[bytes], rules: Sequence[dict[str, Any]], repeat: int) -> Row:
    """Per-packet pure Python: dpkt parse + first-match loop over ``rules``."""
    import dpkt

    table = _baseline_rules(rules)

    def decide(buf: bytes) -> bool:
        ip = dpkt.ethernet.Ethernet(buf).data
        if not isinstance(ip, dpkt.ip.IP):
            return False
        src, dst, l4 = int.from_bytes(ip.src, "big"), int.from_bytes(ip.dst, "big"), ip.data
        ported = isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP)
        sport, dport = (l4.sport, l4.dport) if ported else (0, 0)
        for s0, s1, d0, d1, pr, sp0, sp1, dp0, dp1, allow in table:
            if (
                s0 <= src <= s1
                and d0 <= dst <= d1
                and (pr < 0 or pr == ip.p)
                and sp0 <= sport <= sp1
                and dp0 <= dport <= dp1
            ):
                return bool(allow)
        return False

    def run() -> None:
        for buf in frames:
            decide(buf)

    return Row(
        "baseline: dpkt + Python loop, acl(1000)",
        len(frames),
        best_cpu_seconds(run, max(1, repeat // 2)),
    )


# driver -------------------------------------------------------------------------------------


def parse_workload(n: int, flows: int) -> PacketBatch:
    """bench_parse.py's workload builder if present, else :func:`make_frames`."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        from bench_parse import make_parse_workload
    except ImportError:
        return make_frames(n, flows)
    batch: PacketBatch = make_parse_workload(n, flows)
    return batch


def acl_element(rules: list[dict[str, Any]], stateful: bool = False) -> Acl:
    el = Acl.configure(
        "acl", {"rules": rules, "default": "deny", "stateful": stateful, "max_flows": 200_000}
    )
    assert isinstance(el, Acl)
    el.initialize()
    return el


def element_rows(batches: list[PacketBatch], repeat: int, label: str) -> list[Row]:
    """Classifier and ACL rows over pre-parsed ``batches``; ``label`` tags each row name."""
    rows = []
    cls = Classifier.configure("cls", classifier_config(16))
    rows.append(bench_element(f"classifier (16 rules){label}", cls, batches, repeat, _figures(cls)))
    for n in (100, 1000):
        el = acl_element(random_acl_rules(n))
        rows.append(bench_element(f"acl ({n} rules){label}", el, batches, repeat, _figures(el)))
    stateful = acl_element(random_acl_rules(1000), stateful=True)
    rows.append(
        bench_element(
            f"acl (1000 rules, stateful){label}", stateful, batches, repeat, _figures(stateful)
        )
    )
    return rows


def run_all(args: argparse.Namespace) -> tuple[list[Row], float]:
    """Every row of the benchmark, and the ratio of ACL(1000) to the baseline.

    Each row runs twice: *streamed*, over ``--packets`` distinct packets (the working set is far
    larger than the caches, so it is memory-bound), and *ring*, over a ``--pool``-packet set
    replayed until as many packets went through (cache-resident, as packets fresh from an RX
    ring are).
    """
    compile_rules([])  # load the compiler's kernels so that compile times are the compiler's
    streamed = split(parse_workload(args.packets, args.flows), args.batch)
    pool = min(args.pool, args.packets)
    rounds = max(1, args.packets // pool)
    ring = split(parse_workload(pool, args.flows), args.batch) * rounds
    ring_parse = bench_parse(ring, args.repeat)
    rows = [bench_parse(streamed, args.repeat), Row("parse [ring]", *astuple_row(ring_parse))]
    work = make_frames(args.packets, args.flows)
    batches = split(work, args.batch)
    ring_el = split(make_frames(pool, args.flows), args.batch)
    for b in batches + ring_el:
        parse_batch(b)
    rows += element_rows(batches, args.repeat, "")
    rows += element_rows(ring_el * rounds, args.repeat, " [ring]")
    sample = [work.packet(i) for i in range(min(args.baseline_packets, len(work)))]
    base = bench_baseline(sample, random_acl_rules(1000), args.repeat)
    rows.append(base)
    acl1000 = next(r for r in rows if r.name == "acl (1000 rules)")
    return rows, acl1000.mpps() / base.mpps()


def astuple_row(row: Row) -> tuple[int, float]:
    """The packets and CPU seconds of ``row``."""
    return row.packets, row.cpu_seconds


def _figures(el: Element) -> str:
    c = el.call_handler("compile")
    return f"compile {c['seconds'] * 1e3:.0f} ms, tables {c['bytes'] / 1e6:.2f} MB"


def print_table(
    rows: list[Row], ratio: float, ghz: float, args: argparse.Namespace, cpu: int
) -> None:
    print(
        f"nfvkit core benchmark: CPU {cpu}, {ghz:.2f} GHz, {FRAME}-byte frames, "
        f"{args.flows} flows, batch {args.batch}, {args.packets} packets, best of {args.repeat}"
    )
    print(
        "rows marked [ring] replay a cache-resident set of "
        f"{min(args.pool, args.packets)} packets; the others stream every packet once"
    )
    print(f"{'row':42s} {'Mpps':>9s} {'cycles/pkt':>11s}  notes")
    for r in rows:
        print(f"{r.name:42s} {r.mpps():9.3f} {r.cycles(ghz):11.1f}  {r.note}")
    print(f"{'ratio acl(1000) / baseline':42s} {ratio:9.1f}x")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="parse, classifier and ACL throughput on one core")
    ap.add_argument("--packets", type=int, default=1 << 20)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--pool", type=int, default=32768, help="packets in the [ring] working set")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--baseline-packets", type=int, default=20_000)
    ap.add_argument("--ghz", type=float, default=None, help="CPU clock (default: /proc/cpuinfo)")
    ap.add_argument("--quick", action="store_true", help="a few-second smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.packets, args.repeat, args.baseline_packets, args.pool = 8192, 1, 500, 4096
        args.flows = min(args.flows, 4096)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = pin_one_cpu()
    ghz = args.ghz or cpu_ghz()
    rows, ratio = run_all(args)
    print_table(rows, ratio, ghz, args, cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
