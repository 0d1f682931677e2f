"""DPI benchmark: the ``dpi`` element with 1,000 content rules on one pinned core, in memory.

Run: ``.venv/bin/python benchmarks/bench_dpi.py [--rules 1000] [--packets 16384] [--batch 1024]
[--repeat 5] [--flows 100000] [--ghz 2.45] [--quick]``.

Workload: ``--rules`` single-content rules -- random 6–16 byte strings (mostly lower-case
text, some with binary bytes, a fifth ``nocase``) plus realistic web-attack strings
("/etc/passwd", "union select", "<script>"...) -- over TCP/UDP, ports any or 80, actions
alert (90%) and drop. Packets: Ethernet/IPv4/TCP to port 80 over ``--flows`` flows with a
512–1400 byte payload of HTTP-like text (request lines, headers, English words, numbers), a
couple of percent of them carrying a realistic attack string; and the 64-byte frames of
``bench_core.py`` (a 6-byte payload each). Packets are built and parsed before timing.

The stream row runs the same payload packets with ``stream: true`` (a flow-table lookup and
update per segment; the synthetic segments are not in sequence, so each one resyncs).

Each row reports the best of ``--repeat`` runs: Mpps, payload Gbit/s, cycles per packet and
cycles per payload byte (CPU seconds × GHz ÷ packets or bytes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nfvkit.bench.cpu import cpu_ghz
from nfvkit.bench.measure import best_cpu_seconds, pin_one_cpu, split
from nfvkit.elements.dpi import Dpi
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import parse_batch

REALISTIC = [
    "/etc/passwd",
    "/bin/sh",
    "cmd.exe",
    "union select",
    "<script>",
    "javascript:",
    "../../..",
    "User-Agent: sqlmap",
    "wget http://",
    "powershell -enc",
    "/wp-admin/",
    "eval(base64_decode",
    "GET /admin",
    "xp_cmdshell",
    "nc -e /bin",
    "Nikto",
    "|90 90 90 90 90 90|",
    "|4d 5a 90 00|",
    "() { :; };",
    "/cgi-bin/php",
]
_WORD_TEXT = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there one all we can their has been if more when will "
    "would who so no time people year way day man thing woman life child world school state "
    "family student group country problem hand part place case week company system program "
    "question work government number night point home water room mother area money story fact "
    "month lot right study book eye job word business issue side kind head house service friend "
    "GET POST HTTP/1.1 Host: Accept: text/html application/json Content-Length: Cookie: session "
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Accept-Encoding: gzip, deflate Connection: "
    'keep-alive /index.html /api/v1/items?id= &page= {"id": "name": "value": true, false}'
)
WORDS = _WORD_TEXT.split()
ATTACKS = [s for s in REALISTIC if "|" not in s]


@dataclass
class Row:
    """One benchmark result."""

    name: str
    packets: int
    payload_bytes: int
    cpu_seconds: float
    note: str = ""

    def mpps(self) -> float:
        return self.packets / self.cpu_seconds / 1e6

    def gbps(self) -> float:
        return self.payload_bytes * 8 / self.cpu_seconds / 1e9

    def cycles(self, ghz: float) -> float:
        return self.cpu_seconds * ghz * 1e9 / self.packets

    def cycles_per_byte(self, ghz: float) -> float:
        return self.cpu_seconds * ghz * 1e9 / max(self.payload_bytes, 1)


# workload -----------------------------------------------------------------------------------


def _random_pattern(rng: np.random.Generator) -> str:
    n = int(rng.integers(6, 17))
    if rng.random() < 0.1:
        return "|" + " ".join(f"{b:02x}" for b in rng.integers(0, 256, n)) + "|"
    letters = "abcdefghijklmnopqrstuvwxyz0123456789 ./-_=?&"
    return "".join(letters[k] for k in rng.integers(0, len(letters), n))


def dpi_rules(n: int, seed: int = 5) -> list[dict[str, Any]]:
    """``n`` structured single-content rules: realistic strings first, then random ones."""
    rng = np.random.default_rng(seed)
    rules: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i in range(n):
        pattern = REALISTIC[i] if i < len(REALISTIC) else _random_pattern(rng)
        if pattern in seen:
            pattern = f"{pattern}{i}"
        seen.add(pattern)
        rule: dict[str, Any] = {
            "action": "drop" if rng.random() < 0.1 else "alert",
            "sid": 100000 + i,
            "msg": f"rule {i}",
            "content": [pattern],
            "nocase": bool(rng.random() < 0.2),
            "proto": str(rng.choice(["tcp", "tcp", "udp", "ip"])),
        }
        if rule["proto"] != "ip" and rng.random() < 0.5:
            rule["dport"] = 80
        rules.append(rule)
    return rules


def _text(rng: np.random.Generator, size: int, attack_rate: float) -> bytes:
    words = [WORDS[k] for k in rng.integers(0, len(WORDS), size // 4)]
    seps = rng.choice([" ", " ", " ", "\r\n", "=", "/"], len(words))
    text = "".join(w + s for w, s in zip(words, seps, strict=True))
    if rng.random() < attack_rate:
        at = int(rng.integers(0, size // 2))
        text = text[:at] + str(rng.choice(ATTACKS)) + text[at:]
    return text.encode()[:size]


def payload_frames(
    n: int,
    flows: int,
    sizes: tuple[int, int] = (512, 1400),
    attack_rate: float = 0.02,
    seed: int = 3,
) -> PacketBatch:
    """``n`` Ethernet/IPv4/TCP frames to port 80 with HTTP-like text payloads (parsed)."""
    rng = np.random.default_rng(seed)
    room = 64
    plen = rng.integers(sizes[0], sizes[1] + 1, n)
    flow = rng.integers(0, max(flows, 1), n)
    frames = []
    for i in range(n):
        hdr = np.zeros(54, dtype=np.uint8)
        hdr[0:14] = (2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00)
        tot = 40 + int(plen[i])
        hdr[14:24] = (0x45, 0, tot >> 8, tot & 0xFF, 0, 0, 0, 0, 64, 6)
        f = int(flow[i])
        hdr[26:34] = (198, 18, (f >> 8) & 0xFF, f & 0xFF, 198, 19, (f >> 16) & 0xFF, 1)
        sport = 1024 + f % 60000
        hdr[34:38] = (sport >> 8, sport & 0xFF, 0, 80)
        hdr[46:48] = (0x50, 0x18)
        body = _text(rng, int(plen[i]), attack_rate).ljust(int(plen[i]), b" ")
        frames.append(bytes(hdr) + body)
    batch = PacketBatch.from_packets(frames, headroom=room)
    parse_batch(batch)
    return batch


def small_frames(n: int, flows: int) -> PacketBatch:
    """bench_core.py's 64-byte frames (parsed), or a local equivalent."""
    from bench_core import make_frames

    batch: PacketBatch = make_frames(n, flows)
    parse_batch(batch)
    return batch


def dpi_element(rules: int = 1000, stream: bool = False) -> Dpi:
    """A ``dpi`` element with ``rules`` benchmark rules, initialized and started."""
    config = {"rules": dpi_rules(rules), "stream": stream, "max_flows": 200_000}
    el = Dpi.configure("dpi", config)
    assert isinstance(el, Dpi)
    el.initialize()
    el.start()
    return el


def build(
    flows: int = 100_000, packets: int = 16384, rules: int = 1000, batch: int = 1024
) -> tuple[Dpi, list[PacketBatch]]:
    """The benchmark's element and its payload-carrying batches (parsed), for reuse in chain
    benchmarks."""
    return dpi_element(rules), split(payload_frames(packets, flows), batch)


# measurement --------------------------------------------------------------------------------


def bench(name: str, el: Dpi, batches: list[PacketBatch], repeat: int) -> Row:
    """CPU time of ``el.process`` over ``batches`` (fates reset outside the timed region)."""
    before = el.call_handler("stats")["scanned_bytes"]

    def run() -> None:
        for b in batches:
            el.process(b)

    def clear() -> None:
        for b in batches:
            b.fate[:] = 0

    clear()
    seconds = best_cpu_seconds(run, repeat)
    payload = (el.call_handler("stats")["scanned_bytes"] - before) // (repeat + 1)
    st = el.call_handler("stats")
    note = f"{st['states']} states, {st['classes']} classes, {st['table_bytes'] / 1e6:.1f} MB"
    return Row(name, sum(len(b) for b in batches), payload, seconds, note)


def run_all(args: argparse.Namespace) -> list[Row]:
    el = dpi_element(args.rules)
    big = split(payload_frames(args.packets, args.flows), args.batch)
    small = split(small_frames(args.packets, args.flows), args.batch)
    rows = [
        bench(f"dpi ({args.rules} rules), 512-1400 B payload", el, big, args.repeat),
        bench(f"dpi ({args.rules} rules), 64 B frames", el, small, args.repeat),
    ]
    alerts = el.call_handler("alerts")
    rows[0].note += f", {alerts['total']} alerts over all runs"
    stream = dpi_element(args.rules, stream=True)
    rows.append(bench(f"dpi ({args.rules} rules, stream), 512-1400 B", stream, big, args.repeat))
    rows[-1].note = f"{stream.call_handler('state')['streams']['live']} flows tracked"
    return rows


def print_table(rows: list[Row], ghz: float, args: argparse.Namespace, cpu: int) -> None:
    print(
        f"nfvkit dpi benchmark: CPU {cpu}, {ghz:.2f} GHz, {args.flows} flows, batch {args.batch}, "
        f"{args.packets} packets per row, best of {args.repeat}"
    )
    print(f"{'row':44s} {'Mpps':>8s} {'Gbit/s':>8s} {'cycles/pkt':>11s} {'cycles/B':>9s}  notes")
    for r in rows:
        print(
            f"{r.name:44s} {r.mpps():8.3f} {r.gbps():8.2f} {r.cycles(ghz):11.1f} "
            f"{r.cycles_per_byte(ghz):9.2f}  {r.note}"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="dpi throughput with 1,000 content rules")
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--packets", type=int, default=16384)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--ghz", type=float, default=None, help="CPU clock (default: /proc/cpuinfo)")
    ap.add_argument("--quick", action="store_true", help="a few-second smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.packets, args.repeat, args.flows = 2048, 1, min(args.flows, 4096)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cpu = pin_one_cpu()
    ghz = args.ghz or cpu_ghz()
    print_table(run_all(args), ghz, args, cpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
