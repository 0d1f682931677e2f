"""``dpi``: multi-pattern payload inspection (IDS/IPS) with Snort/Suricata-style rules.

Every rule's content patterns are compiled into one Aho–Corasick automaton (a dense DFA over
byte classes, :mod:`nfvkit.elements.dpi_rules.automaton`); a Numba kernel walks each packet's
L4 payload once -- from ``l7_off`` to the end of the IP packet, so Ethernet padding is never
scanned -- and resolves the patterns found to rules: all contents of a rule must be present
(within their ``offset``/``depth`` windows) and its protocol, addresses and ports must hold.

By default each packet is scanned on its own: a pattern split across two segments is not seen.
With ``stream: true`` the automaton state of each TCP flow direction is kept in a per-flow state
table and resumed by the next in-order segment (:mod:`nfvkit.elements.dpi_rules.stream`), so
split patterns are found; other protocols stay per packet.

Of the rules a packet matches, the highest action wins: ``pass`` (forward, no alerts) over
``drop`` (dropped as ``dpi_drop``, its drop rules logged) over ``alert`` (forwarded, its alert
rules logged). Logged alerts are counted per sid and, with ``alerts_file``, written as JSON
lines (:mod:`nfvkit.elements.dpi_rules.alerts`) in bulk: when the element stops, or every
8,192 alerts. A packet records at most ``max_alerts_per_packet`` rules (more are counted as
``alerts_lost``).

Example::

    type: dpi
    config:
      vars: {HOME_NET: "198.18.0.0/15"}
      rules:
        - 'alert tcp any any -> $HOME_NET 80 (msg:"admin"; content:"GET /admin"; nocase; sid:1001;)'
        - 'drop udp any any -> any 53 (msg:"bad dns"; content:"|de ad be ef|"; sid:2;)'
        - {action: pass, proto: tcp, sport: 443, content: ["TLS"], sid: 3}
      rules_file: local.rules      # text (one rule a line) or .yaml/.yml/.json list
      alerts_file: alerts.json     # JSON lines; alerts_append: true to keep old ones
      max_alerts_per_packet: 8
      stream: true                 # per-flow matching across in-order TCP segments
      max_flows: 65536             # stream table capacity; on_full: evict | refuse
      flow_timeout: 120            # idle seconds before a flow's state expires

Rule syntax and the structured form: :mod:`nfvkit.elements.dpi_rules.syntax` and
:mod:`nfvkit.elements.dpi_rules.model`. Bad rules are reported all at once, each with its
location (``rules[3]: ...``, ``local.rules:12: ...``) and what is wrong.

Handlers: ``rules`` (read: the installed rules with hit counts), ``alerts`` (read: alert counts
per sid), ``stats`` (read: automaton states, byte classes, table bytes, scan and stream
counters), ``state`` (read: the stream table), ``set_rules`` (write: rule text or a list of
rules; compiled first, then swapped in; saved stream states of the old rules restart).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, PrivateAttr, model_validator

from nfvkit.elements.base import ElementConfig, read_handler, write_handler
from nfvkit.elements.classify.textform import RuleSyntaxError
from nfvkit.elements.dpi_rules import kernels as K
from nfvkit.elements.dpi_rules.alerts import AlertLog
from nfvkit.elements.dpi_rules.compiler import CompiledRules, compile_dpi
from nfvkit.elements.dpi_rules.model import DpiRule, load_rules
from nfvkit.elements.dpi_rules.stream import (
    HISTORY,
    N_SCTL,
    STREAM_COUNTERS,
    STREAM_SCHEMA,
    ruleset_id,
    scan_stream,
)
from nfvkit.elements.stateful import StatefulElement
from nfvkit.errors import HandlerError
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import drop_reason
from nfvkit.vnf.state import FLOW_KEY_WORDS, StateSchema, StateTable

DPI_DROP = drop_reason("dpi_drop", "matched a dpi drop rule")


class DpiConfig(ElementConfig):
    """Rules, variables and alert output of a ``dpi`` element."""

    rules: list[str | dict[str, Any]] = Field(
        default_factory=list, description="rule text lines and/or structured rule mappings"
    )
    rules_file: str | None = Field(None, description="more rules: text, or a YAML/JSON list")
    vars: dict[str, str] = Field(default_factory=dict, description="$NAME -> address/port set")
    alerts_file: str | None = Field(None, description="JSON lines, one per alert")
    alerts_append: bool = Field(False, description="append to alerts_file instead of replacing")
    max_alerts_per_packet: int = Field(8, ge=1, le=1024)
    stream: bool = Field(False, description="continue matching across in-order TCP segments")
    max_flows: int = Field(65536, ge=1, le=1 << 24, description="stream mode: flows tracked")
    flow_timeout: float = Field(120.0, gt=0, description="stream mode: idle seconds per flow")
    on_full: Literal["evict", "refuse"] = "evict"
    _parsed: list[DpiRule] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _load(self) -> Self:
        self._parsed = load_rules(self.rules, self.rules_file, self.vars)
        return self

    def all_rules(self) -> list[DpiRule]:
        """The inline rules followed by those of ``rules_file``, validated."""
        return list(self._parsed)


class _Installed:
    """A compiled rule set with the kernel's argument tuples and per-packet scratch."""

    def __init__(self, compiled: CompiledRules, per_packet: int) -> None:
        c = compiled
        self.c = c
        self.rules = c.rules
        ac = c.ac
        self.tabs = (c.pat, c.pat_bytes, c.pat_cstart, c.pat_conts, c.cont, c.rule, c.addr, c.port)
        self.ac = (
            ac.classes, ac.delta.view(np.uint32), ac.first_out, ac.nclasses, ac.out_start,
            ac.out_keys,
        )  # fmt: skip
        self.works = (self._work(c, per_packet), self._work(c, per_packet))
        self.ruleset = ruleset_id(c.rules)

    @staticmethod
    def _work(c: CompiledRules, per_packet: int) -> K.Work:
        return (
            np.zeros(max(c.cont.shape[0], 1), dtype=np.int64),
            np.zeros(max(c.rule.shape[0], 1), dtype=np.int64),
            np.zeros(max(c.rule.shape[0], 1), dtype=np.int32),
            np.zeros(per_packet, dtype=np.int32),
            np.zeros(HISTORY, dtype=np.uint8),
        )


class Dpi(StatefulElement):
    """Match payloads against content rules; drop, alert or pass (see the module docstring)."""

    type_name = "dpi"
    Config: ClassVar[type[ElementConfig]] = DpiConfig
    drop_reasons = (DPI_DROP,)
    state_schemas: ClassVar[dict[str, StateSchema]] = {"streams": STREAM_SCHEMA}

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        assert isinstance(config, DpiConfig)
        self.cfg: DpiConfig = config
        self._active = _Installed(compile_dpi(config.all_rules()), config.max_alerts_per_packet)
        self.ctl = np.zeros(K.N_CTL, dtype=np.int64)
        self.alerts = AlertLog(name, config.alerts_file, config.alerts_append)
        self._hit_pkt: NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self._hit_rule: NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self.sctl = np.zeros(N_SCTL, dtype=np.int64)
        self._key = np.zeros(FLOW_KEY_WORDS, dtype=np.uint32)

    # life cycle -------------------------------------------------------------------------------

    def make_tables(self) -> dict[str, StateTable]:
        cfg = self.cfg
        if not cfg.stream:
            return {}
        idle = round(cfg.flow_timeout * 1e9)
        return {"streams": StateTable(STREAM_SCHEMA, cfg.max_flows, idle, on_full=cfg.on_full)}

    def start(self) -> None:
        self.alerts.open()

    def stop(self) -> None:
        self.alerts.close()

    def cleanup(self) -> None:
        self.alerts.close()
        super().cleanup()

    # data path --------------------------------------------------------------------------------

    def _hit_buffers(self, n: int) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
        need = n * self.cfg.max_alerts_per_packet
        if self._hit_pkt.shape[0] < need:
            self._hit_pkt = np.zeros(need, dtype=np.int32)
            self._hit_rule = np.zeros(need, dtype=np.int32)
        return self._hit_pkt, self._hit_rule

    def process(self, batch: PacketBatch) -> PacketBatch:
        act = self._active
        if not act.rules:
            return batch
        hits = self._hit_buffers(len(batch))
        b = batch
        cols = (b.src, b.dst, b.sport, b.dport)
        out = (b.fate, self.ctl, act.c.hits, *hits)
        if self.cfg.stream:
            table = self.ensure_tables()["streams"]
            stream = (table.tbl, self._key, act.ruleset, self.sctl)
            nh = scan_stream(
                b.data, b.offset, b.length, (b.l3_off, b.l4_off, b.l7_off), b.ip_len, b.flags,
                self.times(b), cols, act.ac, act.tabs, act.works[0], out, DPI_DROP.fate, stream,
            )  # fmt: skip
            table.maintain()
        else:
            nh = K.scan_batch(
                b.data, b.offset, b.length, b.l3_off, b.l7_off, b.ip_len, b.flags, cols, act.ac,
                act.tabs, act.works, out, DPI_DROP.fate,
            )  # fmt: skip
        if nh:
            self.alerts.record(batch, hits[0][:nh], hits[1][:nh], act.rules)
        return batch

    # handlers ---------------------------------------------------------------------------------

    @read_handler("rules", "the installed rules (text form) with packets each decided")
    def read_rules(self) -> list[dict[str, Any]]:
        act = self._active
        return [
            {
                "index": i,
                "sid": r.sid,
                "rev": r.rev,
                "action": r.action,
                "msg": r.msg,
                "rule": r.text(),
                "hits": int(act.c.hits[i]),
            }
            for i, r in enumerate(act.rules)
        ]

    @read_handler("alerts", "alerts logged per sid, written and pending JSON lines")
    def read_alerts(self) -> dict[str, Any]:
        return {**self.alerts.counts(), "lost": int(self.ctl[K.K_LOST])}

    @read_handler("stats", "automaton size (states, byte classes, bytes) and scan counters")
    def read_stats(self) -> dict[str, Any]:
        c = self._active.c
        return {
            "rules": len(c.rules),
            "patterns": c.npatterns,
            "contents": int(c.cont.shape[0]),
            "states": c.ac.nstates,
            "classes": c.ac.nclasses,
            "table_bytes": int(c.ac.delta.nbytes),
            "bytes": c.nbytes,
            "compile_seconds": round(c.compile_seconds, 6),
            **{name: int(self.ctl[k]) for name, k in K.COUNTER_NAMES.items()},
            **(
                {name: int(self.sctl[k]) for name, k in STREAM_COUNTERS.items()}
                if self.cfg.stream
                else {}
            ),
        }

    @write_handler("set_rules", "replace the rules: rule text (lines) or a list of rules")
    def write_rules(self, value: Any) -> None:
        if not isinstance(value, str | list):
            raise HandlerError(
                "expected rule text or a list of rules", where=f"{self.name}.set_rules"
            )
        try:
            rules = load_rules(value, None, self.cfg.vars, where="set_rules")
        except RuleSyntaxError as exc:
            raise HandlerError(str(exc), where=f"{self.name}.set_rules") from None
        active = _Installed(compile_dpi(rules), self.cfg.max_alerts_per_packet)
        entries = value if isinstance(value, list) else [value]
        cfg = self.cfg.model_copy(update={"rules": entries, "rules_file": None})
        cfg._parsed = rules
        self._active = active  # swapped in whole, after a full compile
        self.config = self.cfg = cfg

    @write_handler("reset_counters", "set every counter, hit count and alert count to zero")
    def reset_counters(self, value: Any = None) -> None:
        super().reset_counters(value)
        self.ctl[1:] = 0
        self.sctl[:] = 0
        self._active.c.hits[:] = 0
        self.alerts.reset()
