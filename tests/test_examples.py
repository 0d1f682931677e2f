"""Every example graph is executed on a generated trace, and its counters must add up."""

import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import dpkt
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*/graph.yaml"))
DELIVER = ("sink", "to_pcap")  # packets that reach these are delivered, not sent or dropped


def nfv(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI (in ``cwd``: examples may write files such as flow records there)."""
    return subprocess.run(
        [sys.executable, "-m", "nfvkit.cli.main", *args],
        capture_output=True, text=True, timeout=600, check=False, cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("examples") / "trace.pcap"
    res = nfv(
        "gen", str(path), "--packets", "20000", "--flows", "800", "--ipv6", "0.2",
        "--vlan", "0.1", "--malformed", "0.005",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return path


def run_example(graph: Path, trace: Path, out: Path, *extra: str) -> dict[str, Any]:
    """Run ``graph`` over ``trace`` in the folder of ``out``; return the JSON report."""
    res = nfv(
        "run", str(graph), "--in", str(trace), "--out", str(out), "--json", *extra, cwd=out.parent
    )
    assert res.returncode == 0, res.stderr
    report: dict[str, Any] = json.loads(res.stdout)
    return report


def test_there_are_examples() -> None:
    assert EXAMPLES


@pytest.mark.parametrize("graph", EXAMPLES, ids=lambda p: p.parent.name)
def test_example_runs_and_conserves_packets(graph: Path, trace: Path, tmp_path: Path) -> None:
    report = run_example(graph, trace, tmp_path / "out.pcap")
    for el in report["elements"]:
        if el["type"] in DELIVER:
            continue
        sent = 0 if el["type"] == "discard" else sum(el["tx_packets"].values())
        assert el["rx_packets"] == sent + sum(el["drops"].values()), el["name"]
    assert report["elements"][0]["rx_packets"] == report["packets"]


def test_edge_firewall_behaviour(trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "fw.pcap"
    report = run_example(ROOT / "examples/edge-firewall/graph.yaml", trace, out)
    els = {e["name"]: e for e in report["elements"]}
    assert els["other"]["rx_packets"] == els["discard@1"]["drops"]["discarded"]
    assert els["fw"]["tx_packets"]["out"] == els["output"]["rx_packets"] > 0
    quarantined = ipaddress.ip_network("198.18.255.0/24")
    replies = 0
    for _, buf in dpkt.pcap.Reader(out.open("rb")):
        eth = dpkt.ethernet.Ethernet(buf)
        assert not isinstance(eth.data, dpkt.ethernet.Ethernet)  # tags were popped
        assert eth.type in (dpkt.ethernet.ETH_TYPE_IP, dpkt.ethernet.ETH_TYPE_IP6)
        ip = eth.data
        if isinstance(ip, dpkt.ip.IP):
            assert ipaddress.ip_address(ip.src) not in quarantined
        l4 = ip.data
        if isinstance(l4, dpkt.tcp.TCP):
            assert 80 <= l4.dport <= 443 or 80 <= l4.sport <= 443
            replies += 80 <= l4.sport <= 443  # server replies: admitted by the stateful ACL
    assert replies > 0
