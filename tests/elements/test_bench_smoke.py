"""The core benchmark runs in quick mode and prints every row (no timing assertions)."""

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
