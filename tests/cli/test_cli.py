"""The ``nfv`` command, run as a real process: gen, run, check, elements, and its errors."""

import json
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest


def nfv(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nfvkit.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "trace.pcap"
    res = nfv("gen", str(path), "--packets", "3000", "--flows", "100", "--malformed", "0.01")
    assert res.returncode == 0, res.stderr
    return path


def test_run_writes_output_and_counters_add_up(trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.pcap"
    res = nfv(
        "run", "input -> cl :: check_length -> c :: counter -> output",
        "--in", str(trace), "--out", str(out), "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    els = {e["name"]: e for e in report["elements"]}
    src = els["input"]
    assert src["rx_packets"] == report["packets"] == 3000
    assert src["tx_packets"]["out"] + sum(src["drops"].values()) == src["rx_packets"]
    assert sum(src["drops"].values()) > 0  # the malformed frames, each under its reason
    assert all(name.startswith(("ipv4_", "udp_")) for name in src["drops"])
    written = list(dpkt.pcap.Reader(out.open("rb")))
    assert len(written) == els["output"]["rx_packets"] == els["c"]["rx_packets"]


def test_run_prints_a_table_and_throughput(trace: Path) -> None:
    res = nfv("run", "input -> counter -> output", "--in", str(trace))
    assert res.returncode == 0, res.stderr
    assert "counter@1" in res.stdout and "Mpps" in res.stdout and "cycles/packet" in res.stdout


def test_missing_input_file_is_one_line_and_exit_3(tmp_path: Path) -> None:
    res = nfv("run", "input -> output", "--in", str(tmp_path / "nope.pcap"))
    assert res.returncode == 3
    assert res.stderr.strip().splitlines() == [
        f"nfv: error: {tmp_path / 'nope.pcap'}: no such input file"
    ]


def test_garbage_capture_file_exit_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture file at all")
    res = nfv("run", "input -> output", "--in", str(bad))
    assert res.returncode == 3
    assert "bad.pcap" in res.stderr and "Traceback" not in res.stderr


def test_bad_graph_lists_every_error_with_lines_exit_2(trace: Path, tmp_path: Path) -> None:
    g = tmp_path / "g.yaml"
    g.write_text("elements:\n  a: {type: countr}\ngraph: |\n  input -> a -> wan_opt -> output\n")
    res = nfv("run", str(g), "--in", str(trace))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert f"nfv: error: {g}: line 2: elements.a.type: unknown element type 'countr'" in lines[0]
    assert any("line 4: unknown element type 'wan_opt'" in line for line in lines)
    assert "Traceback" not in res.stderr


def test_missing_graph_file_exit_3(trace: Path, tmp_path: Path) -> None:
    res = nfv("check", str(tmp_path / "none.yaml"))
    assert res.returncode == 3 and "no such graph file" in res.stderr


def test_check_ok() -> None:
    res = nfv("check", "input -> counter -> output")
    assert res.returncode == 0 and "ok" in res.stdout


def test_gen_bad_profile_exit_2(tmp_path: Path) -> None:
    res = nfv("gen", str(tmp_path / "x.pcap"), "--packets", "0")
    assert res.returncode == 2 and "packets" in res.stderr and "Traceback" not in res.stderr


def test_elements_lists_the_library_and_shows_one() -> None:
    res = nfv("elements")
    assert res.returncode == 0
    for name in ("acl", "classifier", "counter", "tee", "queue", "vlan_push", "check_length"):
        assert name in res.stdout
    one = nfv("elements", "check_length")
    assert one.returncode == 0 and "too_long" in one.stdout and "max" in one.stdout
    bad = nfv("elements", "nope")
    assert bad.returncode == 2 and "unknown element type" in bad.stderr


def test_element_docs_keep_their_square_brackets() -> None:
    res = nfv("elements", "router")
    assert res.returncode == 0
    assert "PREFIX [via NEXTHOP]" in res.stdout  # not eaten as rich markup
