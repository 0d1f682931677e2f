"""``flow_monitor``: per-flow packet/byte/TCP-flag accounting with IPFIX-like flow export.

Every packet passes unchanged; the element only observes. Each IP packet is counted into its
flow's entry of a fixed-capacity state table (table ``flows``, keyed by the 5-tuple; see
:mod:`nfvkit.elements.meter.flowmon`): packets, IP octets, first and last seen (packet
timestamps, ns), OR of the TCP flags. With ``biflow: true`` both directions share one entry
(the canonical 5-tuple), counted apart, and records name the initiator as the source
(RFC 5103).

A flow ends, and its record is exported, when it has been idle for ``idle_timeout``
(flowEndReason 1), when it has lasted ``active_timeout`` (2; a long flow is reported every
active timeout and its counters restart, as IPFIX metering processes do), on a TCP FIN or RST
with ``end_on_fin`` (3; a biflow ends on RST or on FINs from both sides), when the element
stops (4, "forced end", every flow still live) or when it was evicted to make room for a new
flow (5, ``on_full: evict``). With ``on_full: refuse`` a new flow that finds the table full is
not tracked: its packets still pass and are counted as ``untracked``. Expired flows are found
by a table sweep every ``scan_interval`` seconds of packet time and whenever a probe meets them.

Records go to ``export_file`` as JSON lines or CSV with IPFIX information element names (see
:mod:`nfvkit.elements.meter.ipfix`), formatted a batch of records at a time.

Example::

    type: flow_monitor
    config:
      max_flows: 200000
      idle_timeout: 15        # seconds
      active_timeout: 1800
      on_full: refuse         # or evict (exported with flowEndReason 5)
      biflow: false
      end_on_fin: false
      export_file: flows.jsonl
      format: jsonl           # or csv
      time_unit: nanoseconds  # or milliseconds (flowStartMilliseconds...)
      top_n: 10

Handlers: ``top`` (read: the ``top_n`` flows with the most bytes), ``flows`` (read: live,
created, untracked, non-IP and ended-by-FIN counts), ``export`` (read: records written by end
reason), ``state`` (read); state export/import from
:class:`~nfvkit.elements.stateful.StatefulElement`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import Field

from nfvkit.elements.base import ElementConfig, read_handler
from nfvkit.elements.meter import flowmon as M
from nfvkit.elements.meter.ipfix import FORCED_END, FlowExporter, end_reasons, endpoints
from nfvkit.elements.stateful import StatefulElement
from nfvkit.packet.batch import PacketBatch
from nfvkit.vnf.state import FLOW_KEY_WORDS, StateSchema, StateTable
from nfvkit.vnf.state import kernels as K
from nfvkit.vnf.state.keys import address_text

NS = 1_000_000_000


class FlowMonitorConfig(ElementConfig):
    """Flow table size and timeouts, export file and format, top-N size."""

    max_flows: int = Field(65536, ge=1, le=1 << 24, description="tracked flows at most")
    idle_timeout: float = Field(15.0, gt=0, description="seconds without a packet ending a flow")
    active_timeout: float = Field(1800.0, gt=0, description="seconds after which a flow reports")
    on_full: Literal["refuse", "evict"] = "refuse"
    biflow: bool = Field(False, description="one entry per bidirectional flow (RFC 5103)")
    end_on_fin: bool = Field(False, description="end a TCP flow on FIN/RST (flowEndReason 3)")
    export_file: str | None = Field(None, description="where records go; none: counted only")
    format: Literal["jsonl", "csv"] = "jsonl"
    time_unit: Literal["nanoseconds", "milliseconds"] = "nanoseconds"
    scan_interval: float = Field(1.0, gt=0, description="seconds between sweeps for expiry")
    top_n: int = Field(10, ge=1, le=100_000, description="flows the top handler lists")


class FlowMonitor(StatefulElement):
    """Account packets to flows and export flow records (see the module docstring)."""

    type_name = "flow_monitor"
    Config: ClassVar[type[ElementConfig]] = FlowMonitorConfig
    state_schemas: ClassVar[dict[str, StateSchema]] = {"flows": M.FLOW_SCHEMA}

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        assert isinstance(config, FlowMonitorConfig)
        self.cfg = config
        self.params = np.array(
            [
                round(config.idle_timeout * NS),
                round(config.active_timeout * NS),
                int(config.biflow),
                int(config.end_on_fin),
            ],
            dtype=np.int64,
        )
        self.counters = np.zeros(M.N_COUNTERS, dtype=np.int64)
        self._key = np.empty(FLOW_KEY_WORDS, dtype=np.uint32)
        self._hashes = np.empty(0, dtype=np.int64)
        self._sides = np.empty(0, dtype=np.int64)
        millis = config.time_unit == "milliseconds"
        self.exporter = FlowExporter(config.export_file, config.format, config.biflow, millis)
        self._next_scan: int | None = None

    # life cycle -------------------------------------------------------------------------------

    def make_tables(self) -> dict[str, StateTable]:
        cfg = self.cfg
        idle = int(self.params[M.P_IDLE])
        table = StateTable(
            M.FLOW_SCHEMA, cfg.max_flows, idle, on_full=cfg.on_full, log_retired=True
        )
        return {"flows": table}

    def start(self) -> None:
        if self.cfg.export_file is not None:
            self.exporter.open()

    def stop(self) -> None:
        """Export what has expired, then every live flow as a forced end."""
        table = self.ensure_tables()["flows"]
        now = self.clock() if self.clock is not None else table.now
        table.sweep(now)
        self._export_retired(table)
        live = table.live(now)
        self.exporter.write(live, np.full(live.shape[0], FORCED_END, dtype=np.uint8))
        table.clear()
        self.exporter.close()

    def cleanup(self) -> None:
        self.exporter.close()
        super().cleanup()

    # data path --------------------------------------------------------------------------------

    def process(self, batch: PacketBatch) -> PacketBatch:
        if len(batch) == 0:
            return batch
        table = self.ensure_tables()["flows"]
        if self._hashes.shape[0] < len(batch):
            self._hashes = np.empty(len(batch), dtype=np.int64)
            self._sides = np.empty(len(batch), dtype=np.int64)
        b = batch
        M.observe_kernel(
            table.tbl, self._key, table.seed, self.params, self.counters, self._hashes,
            self._sides, self.times(b), b.data, b.offset, b.length, b.l4_off, b.flags, b.proto,
            b.ip_len, b.src, b.dst, b.sport, b.dport,
        )  # fmt: skip
        now = table.now
        if self._next_scan is None:
            self._next_scan = now + round(self.cfg.scan_interval * NS)
        elif now >= self._next_scan:
            table.sweep(now)
            self._next_scan = now + round(self.cfg.scan_interval * NS)
        table.maintain()
        self._export_retired(table)
        return batch

    def _export_retired(self, table: StateTable) -> None:
        if int(table.ctl[K.C_LOGGED]) == 0:
            return
        retired = table.drain_log()
        self.exporter.write(retired, end_reasons(retired))

    # handlers ---------------------------------------------------------------------------------

    @read_handler("top", "the top_n flows with the most bytes (both directions in biflow mode)")
    def read_top(self) -> list[dict[str, Any]]:
        live = self.ensure_tables()["flows"].live()
        if live.shape[0] == 0:
            return []
        total: NDArray[np.int64] = live["bytes"] + live["rbytes"]
        k = min(self.cfg.top_n, live.shape[0])
        pick = np.argpartition(-total, k - 1)[:k]
        pick = pick[np.argsort(-total[pick], kind="stable")]
        top = live[pick]
        ends = endpoints(top, self.cfg.biflow)
        out = []
        for r in range(k):
            item: dict[str, Any] = {
                "src": address_text(ends["src"][r]),
                "dst": address_text(ends["dst"][r]),
                "sport": int(ends["sport"][r]),
                "dport": int(ends["dport"][r]),
                "proto": int(ends["proto"][r]),
                "packets": int(top["packets"][r] + top["rpackets"][r]),
                "bytes": int(total[pick[r]]),
                "first": int(top["first"][r]),
                "last": int(top["last"][r]),
            }
            out.append(item)
        return out

    @read_handler("flows", "live flows, flows created, untracked and non-IP packets")
    def read_flows(self) -> dict[str, Any]:
        table = self.ensure_tables()["flows"]
        stats = table.stats()
        return {
            "live": int(table.live().shape[0]),
            "max_flows": self.cfg.max_flows,
            "created": stats["created"],
            "untracked": int(self.counters[M.C_UNTRACKED]),
            "non_ip": int(self.counters[M.C_NON_IP]),
            "ended_by_fin": int(self.counters[M.C_ENDED]),
            "evicted": stats["evicted"],
            "lost_records": stats["unlogged"],
        }

    @read_handler("export", "flow records exported, in all and by flowEndReason")
    def read_export(self) -> dict[str, Any]:
        return self.exporter.stats()
