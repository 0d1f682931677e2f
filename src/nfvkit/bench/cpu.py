"""The CPU clock, for turning CPU seconds into cycles per packet.

cycles/packet = CPU seconds x GHz / packets, the figure published NFV benchmarks use (VPP's
"clocks per packet"), so ours can be held against theirs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

FALLBACK_GHZ = 2.45


def cpu_ghz(cpuinfo: Path = Path("/proc/cpuinfo")) -> float:
    """The CPU clock in GHz (``NFV_CPU_GHZ`` overrides; first ``cpu MHz`` line; else 2.45)."""
    env = os.environ.get("NFV_CPU_GHZ")
    if env:
        return float(env)
    try:
        m = re.search(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo.read_text(), re.MULTILINE)
    except OSError:
        m = None
    return float(m.group(1)) / 1000 if m else FALLBACK_GHZ


def mpps(packets: int, seconds: float) -> float:
    """Millions of packets per second (0 when no time elapsed)."""
    return packets / seconds / 1e6 if seconds > 0 else 0.0


def cycles_per_packet(packets: int, cpu_seconds: float, ghz: float) -> float:
    """CPU cycles spent per packet."""
    return cpu_seconds * ghz * 1e9 / packets if packets else 0.0
