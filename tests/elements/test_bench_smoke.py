"""The core and service-chain benchmarks run in quick mode and print every row (no timing
assertions)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_core_quick_prints_rows() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_core.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    for row in (
        "parse",
        "classifier (16 rules)",
        "acl (100 rules)",
        "acl (1000 rules)",
        "acl (1000 rules, stateful)",
        "baseline: dpkt + Python loop, acl(1000)",
        "ratio acl(1000) / baseline",
    ):
        assert row in out
    assert "cycles/pkt" in out


def test_bench_chain_quick_prints_every_row() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_chain.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    for name in ("classify", "fw", "nat", "lb", "monitor"):
        assert f"{name} (" in out and " alone " in out
    for row in ("parse", "chain (parse + 5 elements)", "baseline: dpkt", "ratio chain / baseline"):
        assert row in out
