"""The run-to-completion runtime: one thread pushes each batch through the whole graph.

For every batch the source produces, the runtime parses it (malformed packets are dropped with
their reason and counted on the source), then visits the nodes in topological order; each node
processes the batches waiting for it, and the fates it writes decide where each packet goes next.
A batch whose packets all leave on one port moves on as it is; otherwise it is split (the packet
bytes are shared, only metadata is gathered). Dropped packets are counted and left behind.

Life cycle: :meth:`Runtime.open` initializes then starts every element, undoing exactly the
stages reached (in reverse) if one fails; :meth:`Runtime.close` flushes, stops and cleans up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nfvkit.elements.base import Element, Emit, Stage
from nfvkit.graph.build import Graph
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import parse_batch


@dataclass
class RunStats:
    """What a run did: packets and bytes in, wall and CPU time, per-node CPU time."""

    packets: int = 0
    bytes: int = 0
    batches: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0


class Runtime:
    """Runs a built graph to completion over its source."""

    def __init__(self, graph: Graph, profile: bool = True) -> None:
        self.graph = graph
        self.profile = profile
        self.pending: list[list[PacketBatch]] = [[] for _ in graph.nodes]
        self.node_ns = np.zeros(len(graph.nodes), dtype=np.int64)
        self.stats = RunStats()
        self._opened: list[Element] = []

    # life cycle -------------------------------------------------------------------------------

    def open(self) -> None:
        """Initialize and start every element; on failure undo what was done and re-raise."""
        try:
            for node in self.graph.nodes:
                node.element.initialize()
                node.element.stage = Stage.INITIALIZED
                self._opened.append(node.element)
            for el in self._opened:
                el.start()
                el.stage = Stage.STARTED
        except BaseException:
            self._undo()
            raise

    def _undo(self) -> None:
        for el in reversed(self._opened):
            if el.stage >= Stage.STARTED:
                el.stop()
                el.stage = Stage.STOPPED
        for el in reversed(self._opened):
            el.cleanup()
            el.stage = Stage.CLEANED
        self._opened = []

    def close(self) -> None:
        """Flush what elements still hold, then stop and clean up every element."""
        try:
            if self._opened:
                self.flush()
        finally:
            self._undo()

    def __enter__(self) -> Runtime:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._undo()

    # data path --------------------------------------------------------------------------------

    def run(
        self, max_batches: int | None = None, on_batch: Callable[[], None] | None = None
    ) -> RunStats:
        """Pull from the source until it is exhausted (or ``max_batches``); return the stats."""
        source = self.graph.source
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while max_batches is None or self.stats.batches < max_batches:
            t0 = time.perf_counter_ns() if self.profile else 0
            batch = source.pull()
            if self.profile:
                self.node_ns[0] += time.perf_counter_ns() - t0
            if batch is None:
                break
            self.push(batch)
            if on_batch is not None:
                on_batch()
        self.stats.wall_s += time.perf_counter() - wall0
        self.stats.cpu_s += time.process_time() - cpu0
        return self.stats

    def push(self, batch: PacketBatch) -> None:
        """Parse one batch from the source and run it through the graph."""
        head = self.graph.nodes[0]
        self.stats.packets += len(batch)
        self.stats.bytes += batch.nbytes
        self.stats.batches += 1
        t0 = time.perf_counter_ns() if self.profile else 0
        head.element.stats.receive(batch)
        batch.fate.fill(0)
        parse_batch(batch)
        self._forward(0, batch)
        if self.profile:
            self.node_ns[0] += time.perf_counter_ns() - t0
        self._drain(1)

    def flush(self) -> None:
        """End of stream: flush every element in order so held packets reach the end."""
        for i, node in enumerate(self.graph.nodes):
            self._drain(i)
            self._emit(i, node.element.flush())
        self._drain(0)

    def _drain(self, start: int) -> None:
        nodes = self.graph.nodes
        for i in range(start, len(nodes)):
            waiting = self.pending[i]
            if not waiting:
                continue
            self.pending[i] = []
            el = nodes[i].element
            for batch in waiting:
                t0 = time.perf_counter_ns() if self.profile else 0
                el.stats.receive(batch)
                batch.fate.fill(0)
                self._emit(i, el.process(batch))
                if self.profile:
                    self.node_ns[i] += time.perf_counter_ns() - t0

    def _emit(self, i: int, out: Emit) -> None:
        if out is None:
            return
        for batch in out if isinstance(out, list) else (out,):
            self._forward(i, batch)

    def _forward(self, i: int, batch: PacketBatch) -> None:
        """Count ``batch``'s fates on node ``i`` and queue each packet for its next node."""
        node = self.graph.nodes[i]
        n = len(batch)
        if n == 0:
            return
        on_zero = node.element.stats.tally(batch)
        targets = node.targets
        if on_zero == n:
            if targets and targets[0] >= 0:
                self.pending[targets[0]].append(batch)
            return
        fate = batch.fate
        for port, dst in enumerate(targets):
            if dst < 0:
                continue
            idx = np.flatnonzero(fate == port)
            if idx.shape[0]:
                self.pending[dst].append(batch.select(idx))
