"""Golden packet tests for elements: input packets in, output packets per port and counter
deltas out.

Meant for nfvkit's own tests and for VNF developers testing their own elements::

    result = run_element(Acl.configure("fw", {...}), [pkt1, pkt2])
    assert result.outputs["out"] == [pkt1]
    assert result.drops == {"acl_deny": 1}

The element goes through its whole life cycle (initialize, start, process, flush, stop,
cleanup); the packets are parsed first, as a graph's source would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nfvkit.elements.base import Element, Stage
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.parse import parse_batch


@dataclass
class GoldenResult:
    """What an element did with the packets it was given."""

    outputs: dict[str, list[bytes]] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    parse_drops: int = 0
    batches: list[tuple[str, PacketBatch]] = field(default_factory=list)

    def count(self, port: str) -> int:
        return len(self.outputs.get(port, []))


def _collect(el: Element, out: object, result: GoldenResult) -> None:
    if out is None:
        return
    batches = out if isinstance(out, list) else [out]
    for batch in batches:
        assert isinstance(batch, PacketBatch)
        el.stats.tally(batch)
        for port_index, port in enumerate(el.outputs):
            idx = np.flatnonzero(batch.fate == port_index)
            if idx.shape[0]:
                part = batch.select(idx)
                result.outputs.setdefault(port, []).extend(part.packets())
                result.batches.append((port, part))


def run_element(
    el: Element,
    packets: Sequence[bytes] | Sequence[Sequence[bytes]],
    ts: Sequence[int] | None = None,
) -> GoldenResult:
    """Push ``packets`` (one batch, or a list of batches) through ``el``; return the outcome.

    ``ts`` gives per-packet timestamps (ns) when ``packets`` is one batch.
    """
    groups: list[Sequence[bytes]]
    if packets and not isinstance(packets[0], bytes | bytearray):
        groups = list(packets)  # type: ignore[arg-type]
    else:
        groups = [packets]  # type: ignore[list-item]
    result = GoldenResult()
    el.initialize()
    el.stage = Stage.INITIALIZED
    try:
        el.start()
        for group in groups:
            batch = PacketBatch.from_packets([bytes(p) for p in group], ts=ts)
            parse_batch(batch)
            bad = batch.fate != 0
            result.parse_drops += int(bad.sum())
            batch = batch.select(np.flatnonzero(~bad))
            batch.fate.fill(0)
            el.stats.receive(batch)
            _collect(el, el.process(batch), result)
        _collect(el, el.flush(), result)
        el.stop()
    finally:
        el.cleanup()
        el.stage = Stage.CLEANED
    result.drops = el.stats.drops_by_reason()
    return result
