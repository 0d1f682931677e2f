"""``nfv gen``: write a synthetic traffic trace (pcap/pcapng) from a few knobs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from nfvkit.errors import ConfigError
from nfvkit.gen import GenSummary, TrafficProfile, generate


def profile_from_options(**options: Any) -> TrafficProfile:
    """Validate the options into a profile; every problem becomes one ConfigError entry."""
    try:
        return TrafficProfile.model_validate(options)
    except ValidationError as exc:
        errors = [
            (".".join(str(p) for p in err["loc"]) or "profile", err["msg"]) for err in exc.errors()
        ]
        raise ConfigError(errors, where="traffic profile") from exc


def _size(size: str) -> str | list[tuple[int, float]]:
    """``64``/``imix``/``1500``, or an explicit mix such as ``64:7,570:4,1518:1``."""
    if ":" not in size:
        return size
    try:
        return [(int(s), float(w)) for s, w in (part.split(":") for part in size.split(","))]
    except ValueError as exc:
        raise ConfigError(
            [("size", f"cannot read size mix {size!r}: use SIZE:WEIGHT,...")]
        ) from exc


def gen(
    out: Annotated[Path, typer.Argument(help="Output file, .pcap or .pcapng.")],
    packets: Annotated[int, typer.Option(help="Total packets.")] = 100_000,
    flows: Annotated[int, typer.Option(help="Number of bidirectional flows.")] = 1_000,
    servers: Annotated[
        int, typer.Option(help="Server addresses (198.19.0.1 up) the flows go to.")
    ] = 1024,
    size: Annotated[
        str, typer.Option(help="Frame sizes with FCS: 64, imix, 1500 or SIZE:WEIGHT,...")
    ] = "imix",
    zipf: Annotated[float, typer.Option(help="Flow popularity exponent (0 = uniform).")] = 1.0,
    ipv6: Annotated[float, typer.Option(help="Share of IPv6 flows.")] = 0.0,
    tcp: Annotated[float, typer.Option(help="Share of TCP flows.")] = 0.6,
    udp: Annotated[float, typer.Option(help="Share of UDP flows.")] = 0.3,
    icmp: Annotated[float, typer.Option(help="Share of ICMP echo flows.")] = 0.1,
    vlan: Annotated[float, typer.Option(help="Share of VLAN-tagged flows.")] = 0.0,
    malformed: Annotated[float, typer.Option(help="Share of malformed packets.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 1,
    rate_pps: Annotated[float, typer.Option(help="Packet rate for timestamps.")] = 1_000_000.0,
) -> None:
    """Generate a synthetic trace and print what it holds."""
    profile = profile_from_options(
        packets=packets, flows=flows, servers=servers, size=_size(size), zipf=zipf, ipv6=ipv6,
        tcp=tcp, udp=udp, icmp=icmp, vlan=vlan, malformed=malformed, seed=seed,
        rate_pps=rate_pps,
    )  # fmt: skip
    started = time.perf_counter()
    summary = generate(profile, out)
    Console().print(summary_table(summary, time.perf_counter() - started))


def summary_table(summary: GenSummary, elapsed: float) -> Table:
    """A rich table of the packet counts by kind, the file size and the time taken."""
    table = Table(title=f"{summary.path}: {summary.packets:,} packets, {summary.flows:,} flows")
    table.add_column("kind")
    table.add_column("count", justify="right")
    for kind, count in summary.by_kind.items():
        table.add_row(kind, f"{count:,}")
    table.add_row("frame bytes", f"{summary.bytes:,}")
    table.add_row("file bytes", f"{summary.file_bytes:,}")
    table.add_row("trace duration", f"{summary.duration_ns / 1e9:.6f} s")
    table.add_row("elapsed", f"{elapsed:.2f} s")
    return table
