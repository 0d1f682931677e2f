"""``nfv run`` and ``nfv check``: run an element graph over a capture file, or just check it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from nfvkit.bench.cpu import cpu_ghz, cycles_per_packet, mpps
from nfvkit.elements.base import Element
from nfvkit.elements.from_memory import FromMemory, FromMemoryConfig
from nfvkit.elements.from_pcap import FromPcap, FromPcapConfig
from nfvkit.elements.sink import Sink
from nfvkit.elements.to_pcap import ToPcap, ToPcapConfig
from nfvkit.errors import InputFileError
from nfvkit.graph.build import Graph, build
from nfvkit.graph.runtime import Runtime
from nfvkit.graph.spec import load

GraphArg = Annotated[
    str, typer.Argument(help="graph file (YAML), or an inline chain like 'input -> acl -> output'")
]


def _bindings(inp: Path | None, out: Path | None, batch: int) -> dict[str, Element]:
    if inp is None:
        source: Element = FromMemory("input", FromMemoryConfig())
    else:
        source = FromPcap("input", FromPcapConfig(path=inp, batch=batch))
    sink: Element
    if out is None:
        sink = Sink("output", Sink.Config())
    else:
        sink = ToPcap("output", ToPcapConfig(path=out))
    return {"input": source, "output": sink}


def wide_console() -> Console:
    """A console at least 120 columns wide, even when the output is piped."""
    c = Console()
    return c if c.is_terminal else Console(width=max(c.width, 120))


def check(graph: GraphArg) -> None:
    """Check a graph without running it: every error is reported with its location."""
    g = build(load(graph), _bindings(None, None, 256))
    Console().print(
        f"[green]ok[/green]: graph {g.name!r}, {len(g.nodes)} elements: "
        + " ".join(n.name for n in g.nodes)
    )


def run(
    graph: GraphArg,
    inp: Annotated[Path, typer.Option("--in", "-i", help="input pcap/pcapng file")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write what reaches 'output' here")
    ] = None,
    batch: Annotated[int, typer.Option(help="packets per batch", min=1, max=65536)] = 256,
    as_json: Annotated[bool, typer.Option("--json", help="print counters as JSON")] = False,
) -> None:
    """Run GRAPH over a capture file; print per-element counters and the throughput."""
    if not inp.is_file():
        raise InputFileError("no such input file", where=str(inp))
    g = build(load(graph), _bindings(inp, out, batch))
    rt = Runtime(g)
    with rt:
        rt.run()
    report = summary(g, rt)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(g, rt, report)


def summary(g: Graph, rt: Runtime) -> dict[str, Any]:
    """Counters of every element and the run's throughput, as JSON-able data."""
    s = rt.stats
    ghz = cpu_ghz()
    nodes = []
    for i, node in enumerate(g.nodes):
        counters = node.element.read_counters()
        rx = counters["rx_packets"]
        counters["name"] = node.name
        counters["type"] = node.element.type_name
        counters["ns_per_packet"] = (rt.node_ns[i] / rx) if rx else None
        nodes.append(counters)
    return {
        "graph": g.name,
        "packets": s.packets,
        "bytes": s.bytes,
        "batches": s.batches,
        "wall_s": s.wall_s,
        "cpu_s": s.cpu_s,
        "mpps": mpps(s.packets, s.wall_s),
        "cycles_per_packet": cycles_per_packet(s.packets, s.cpu_s, ghz),
        "ghz": ghz,
        "elements": nodes,
    }


def _ports(d: dict[str, int]) -> str:
    if len(d) == 1:
        return str(next(iter(d.values())))
    return " ".join(f"{k}:{v}" for k, v in d.items())


def _print_report(g: Graph, rt: Runtime, report: dict[str, Any]) -> None:
    table = Table(title=f"graph {g.name!r}", title_justify="left")
    for col in ("element", "type", "rx", "tx", "dropped (reason)", "ns/pkt"):
        table.add_column(col, justify="left" if col in ("element", "type") else "right")
    for row in report["elements"]:
        drops = "\n".join(f"{v} {k}" for k, v in row["drops"].items()) or "0"
        ns = row["ns_per_packet"]
        table.add_row(
            row["name"],
            row["type"],
            str(row["rx_packets"]),
            _ports(row["tx_packets"]) if row["tx_packets"] and row["type"] != "sink" else "-",
            drops,
            f"{ns:.0f}" if ns is not None else "-",
        )
    console = wide_console()
    console.print(table)
    console.print(
        f"{report['packets']} packets in {report['batches']} batches, "
        f"{report['wall_s']:.3f} s: [bold]{report['mpps']:.2f} Mpps[/bold], "
        f"{report['cycles_per_packet']:.0f} cycles/packet at {report['ghz']:.2f} GHz "
        "(file I/O and parsing included)"
    )
