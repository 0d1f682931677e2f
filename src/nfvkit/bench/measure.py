"""What every throughput benchmark shares: a result row, best-of-N CPU timing, batch splitting
and pinning to one CPU.

Benchmarks time CPU seconds (``time.process_time``) of the best of ``repeat`` passes after one
warm-up pass (Numba cache load, page faults), and report Mpps and cycles per packet
(:mod:`nfvkit.bench.cpu`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nfvkit.packet.batch import PacketBatch


@dataclass
class Row:
    """One benchmark result: packets offered and the CPU seconds they took."""

    name: str
    packets: int
    cpu_seconds: float
    note: str = ""

    def mpps(self) -> float:
        return self.packets / self.cpu_seconds / 1e6

    def cycles(self, ghz: float) -> float:
        return self.cpu_seconds * ghz * 1e9 / self.packets


def best_cpu_seconds(
    run: Callable[[], None], repeat: int, prepare: Callable[[], None] | None = None
) -> float:
    """The least CPU time of ``repeat`` calls of ``run`` after one warm-up call; ``prepare``
    (untimed) runs before each call, e.g. to restore packets a pass rewrote."""
    best = float("inf")
    for attempt in range(repeat + 1):
        if prepare is not None:
            prepare()
        t0 = time.process_time()
        run()
        if attempt:
            best = min(best, time.process_time() - t0)
    return best


def split(batch: PacketBatch, size: int) -> list[PacketBatch]:
    """Consecutive batches of ``size`` packets (views sharing ``batch``'s data buffer)."""
    return [
        batch.select(np.arange(i, min(i + size, len(batch)))) for i in range(0, len(batch), size)
    ]


def pin_one_cpu() -> int:
    """Pin this process to one CPU (the last one it may run on); return its number."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu
