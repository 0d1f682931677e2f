"""The reference service chain (examples/service-chain): what it does to a generated trace, and
that its output does not depend on the batch size."""

from __future__ import annotations

import importlib.util
import io
import ipaddress
import json
from pathlib import Path
from typing import Any

import dpkt
import pytest

from tests.test_examples import ROOT, nfv, run_example

GRAPH = ROOT / "examples" / "service-chain" / "graph.yaml"
RULES = ROOT / "examples" / "service-chain" / "acl.rules"
CLIENTS = ipaddress.ip_network("198.18.0.0/16")
POOL = ipaddress.ip_network("198.19.255.0/30")
BACKENDS = {ipaddress.ip_address(f"198.19.128.{i}") for i in range(1, 17)}
VIPS = {ipaddress.ip_address(f"198.19.0.{i}") for i in range(1, 5)}


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6,000 packets over 60 s of trace time: flows end by idle timeout along the way."""
    path = tmp_path_factory.mktemp("chain") / "trace.pcap"
    res = nfv(
        "gen", str(path), "--packets", "6000", "--flows", "400", "--servers", "4",
        "--rate-pps", "100", "--seed", "7",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return path


def run_at(batch: int, trace: Path, folder: Path) -> tuple[dict[str, Any], bytes, list[str]]:
    folder.mkdir()
    report = run_example(GRAPH, trace, folder / "out.pcap", "--batch", str(batch))
    records = sorted((folder / "flows.jsonl").read_text().splitlines())
    return report, (folder / "out.pcap").read_bytes(), records


def counters(report: dict[str, Any]) -> list[Any]:
    return [(e["name"], e["rx_packets"], e["tx_packets"], e["drops"]) for e in report["elements"]]


def test_output_is_identical_for_batches_of_1_32_and_2048(trace: Path, tmp_path: Path) -> None:
    runs = {b: run_at(b, trace, tmp_path / f"b{b}") for b in (1, 32, 2048)}
    ref_report, ref_pcap, ref_records = runs[2048]
    assert len(ref_pcap) > 100_000 and len(ref_records) > 100
    for batch in (1, 32):
        report, pcap, records = runs[batch]
        assert pcap == ref_pcap, f"batch {batch}: output differs"
        assert records == ref_records, f"batch {batch}: flow records differ"
        assert counters(report) == counters(ref_report)


def test_chain_translates_forward_traffic_and_admits_replies(trace: Path, tmp_path: Path) -> None:
    report, pcap, records = run_at(1024, trace, tmp_path / "run")
    els = {e["name"]: e for e in report["elements"]}
    assert els["fw"]["drops"].get("acl_deny", 0) > 0  # blocked clients and closed ports
    forward = replies = 0
    for _, buf in dpkt.pcap.Reader(io.BytesIO(pcap)):
        ip = dpkt.ethernet.Ethernet(buf).data
        if not isinstance(ip, dpkt.ip.IP):
            continue
        src, dst = ipaddress.ip_address(ip.src), ipaddress.ip_address(ip.dst)
        if dst in BACKENDS:  # client -> VIP, after NAT and LB
            assert src in POOL
            forward += 1
        else:  # the trace's replies pass NAT and LB untouched
            assert src in VIPS and dst in CLIENTS
            replies += 1
    assert forward > 0 and replies > 0
    assert els["lb"]["tx_packets"]["out"] == forward + replies
    first = json.loads(records[0])
    assert {"sourceIPv4Address", "octetDeltaCount", "flowEndReason"} <= set(first)
    reasons = {json.loads(r)["flowEndReason"] for r in records}
    assert reasons >= {1, 4}  # idle timeout along the way, forced end at stop


def test_acl_rules_file_is_what_its_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_acl_rules", RULES.with_name("make_acl_rules.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.rules()
    assert RULES.read_text() == text
    assert sum(1 for line in text.splitlines() if line and not line.startswith("#")) == 1000
