"""Alert records of the ``dpi`` element: counts per sid and JSON lines, written in bulk.

The scan kernel hands back ``(packet, rule)`` pairs; :meth:`AlertLog.record` turns one batch's
pairs into counts and, when an alerts file is configured, into JSON lines held in memory until
:meth:`AlertLog.write` (at the element's stop, or when :data:`FLUSH_LINES` are pending). One
line per alert, in the spirit of Suricata's EVE ``alert`` records::

    {"timestamp": "2024-05-01T12:00:00.000001+00:00", "ts_ns": 1714564800000001000,
     "element": "ids", "sid": 1001, "rev": 1, "msg": "admin", "action": "alert",
     "proto": "tcp", "src_ip": "198.18.0.1", "src_port": 40000, "dest_ip": "198.19.0.1",
     "dest_port": 80, "flow_hash": 2934201551}

``flow_hash`` is the symmetric 5-tuple hash of :mod:`nfvkit.packet.flow` (both directions of
a connection share it).
"""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.dpi_rules.model import DpiRule
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.flow import flow_hash

FLUSH_LINES = 8192
_PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}


def address_text(words: NDArray[np.uint32]) -> str:
    """An address column row (four words) as text; IPv4-mapped addresses as dotted quads."""
    w = [int(x) for x in words]
    if w[0] == 0 and w[1] == 0 and w[2] == 0xFFFF:
        return str(ipaddress.IPv4Address(w[3]))
    return str(ipaddress.IPv6Address((w[0] << 96) | (w[1] << 64) | (w[2] << 32) | w[3]))


def _timestamp(ts_ns: int) -> str:
    return (
        datetime.fromtimestamp(ts_ns // 1_000_000_000, UTC)
        .replace(microsecond=(ts_ns % 1_000_000_000) // 1000)
        .isoformat()
    )


class AlertLog:
    """Alert counts per sid and the pending JSON lines of one ``dpi`` element."""

    def __init__(self, element: str, path: str | None, append: bool = False) -> None:
        self.element = element
        self.path = path
        self.append = append
        self.by_sid: dict[int, dict[str, Any]] = {}
        self.pending: list[str] = []
        self.written = 0
        self._file: IO[str] | None = None

    def record(
        self,
        batch: PacketBatch,
        pkt: NDArray[np.int32],
        rule: NDArray[np.int32],
        rules: list[DpiRule],
    ) -> None:
        """Count one batch's alerts (``pkt[k]`` matched ``rules[rule[k]]``); format lines."""
        order = np.argsort(pkt, kind="stable")
        pkt, rule = pkt[order], rule[order]
        idx, counts = np.unique(rule, return_counts=True)
        for r, n in zip(idx.tolist(), counts.tolist(), strict=True):
            rl = rules[r]
            entry = self.by_sid.setdefault(rl.sid, {"msg": rl.msg, "action": rl.action, "count": 0})
            entry.update(msg=rl.msg, action=rl.action, count=entry["count"] + n)
        if self.path is not None:
            self._format(batch, pkt, rule, rules)
            if len(self.pending) >= FLUSH_LINES:
                self.write()

    def _format(
        self,
        batch: PacketBatch,
        pkt: NDArray[np.int32],
        rule: NDArray[np.int32],
        rules: list[DpiRule],
    ) -> None:
        hashes = flow_hash(batch.select(pkt), symmetric=True)
        for k, (i, r) in enumerate(zip(pkt.tolist(), rule.tolist(), strict=True)):
            rl = rules[r]
            ts = int(batch.ts[i])
            proto = int(batch.proto[i])
            rec = {
                "timestamp": _timestamp(ts),
                "ts_ns": ts,
                "element": self.element,
                "sid": rl.sid,
                "rev": rl.rev,
                "msg": rl.msg,
                "action": rl.action,
                "proto": _PROTO_NAMES.get(proto, proto),
                "src_ip": address_text(batch.src[i]),
                "src_port": int(batch.sport[i]),
                "dest_ip": address_text(batch.dst[i]),
                "dest_port": int(batch.dport[i]),
                "flow_hash": int(hashes[k]),
            }
            self.pending.append(json.dumps(rec))

    def open(self) -> None:
        """Open (truncate, or append to) the alerts file, if one is configured."""
        if self.path is not None and self._file is None:
            mode = "a" if self.append else "w"
            self._file = Path(self.path).open(mode, encoding="utf-8")  # noqa: SIM115 (kept open)
            self.append = True  # a restart of the same element appends

    def write(self) -> None:
        """Write the pending lines to the alerts file (opening it if needed)."""
        if not self.pending or self.path is None:
            return
        self.open()
        assert self._file is not None
        self._file.write("\n".join(self.pending) + "\n")
        self._file.flush()
        self.written += len(self.pending)
        self.pending.clear()

    def close(self) -> None:
        """Write what is pending and close the file."""
        self.write()
        if self._file is not None:
            self._file.close()
            self._file = None

    def counts(self) -> dict[str, Any]:
        """Alert totals per sid (JSON-able: sid keys as strings)."""
        return {
            "total": sum(e["count"] for e in self.by_sid.values()),
            "written": self.written,
            "pending": len(self.pending),
            "by_sid": {str(sid): dict(e) for sid, e in sorted(self.by_sid.items())},
        }

    def reset(self) -> None:
        self.by_sid.clear()
