"""``policer``: token-bucket policing per traffic class and per flow; RFC 2697 srTCM colouring.

Traffic classes are matched with the classifier's rule fields, compiled by
:mod:`nfvkit.elements.classify` (first matching class wins); a packet that matches none goes to
the ``default`` meter if one is given, else passes unpoliced. With ``per_flow`` every flow
(5-tuple) also has its own meter, kept in a bounded state table (table ``flows``); the flow's
meter runs first and the class meter is then colour-aware on its result (a packet red for its
flow takes no tokens from its class).

Modes:

* ``police`` -- a single-rate token bucket (CIR, CBS; no EBS): conforming packets pass,
  the others are dropped as ``rate_exceeded``;
* ``srtcm`` -- the single-rate three-colour marker of RFC 2697 (CIR, CBS, EBS), colour-blind,
  or colour-aware with ``colour_aware`` (incoming colour from the DSCP). Per colour: an output
  port (``colour_ports: true`` gives ports green, yellow, red), a DSCP to write (``remark``,
  IPv4 header checksum updated), and red packets dropped as ``policer_red`` (``drop_red``,
  the default).

Buckets start full and refill from packet timestamps (ns) in integer arithmetic (see
:mod:`nfvkit.elements.meter.buckets`). ``size: ip`` (default) charges the IP length, as RFC 2697
does; ``frame`` the frame length. Example::

    type: policer
    config:
      mode: srtcm
      colour_ports: true
      drop_red: false
      remark: {yellow: af12, red: af13}
      classes:
        - {name: voice, match: {proto: udp, dport: "16384-32767"}, cir: 2M, cbs: 6000, ebs: 12000}
        - {name: web, match: {proto: tcp, dport: 443}, cir: 50M, cbs: 64k, ebs: 128k}
      default: {cir: 10M, cbs: 32k, ebs: 64k}
      per_flow: {cir: 5M, cbs: 16k, ebs: 16k, max_flows: 100000, on_full: pass}

Handlers: ``buckets`` (read: tokens per class), ``colours`` (read: packets per class per colour,
unpoliced and per-flow counts), ``set_rate`` (write: ``{class, cir, cbs, ebs, unit}``), ``state``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

import numpy as np
from numpy.typing import NDArray
from pydantic import Field, ValidationError, model_validator

from nfvkit.elements.base import ElementConfig, read_handler, write_handler
from nfvkit.elements.classify import compile_rules, lookup
from nfvkit.elements.meter import buckets as B
from nfvkit.elements.meter.prefetch import hash_pass
from nfvkit.elements.meter.rates import ColourAware, PerFlow, PolicerClass, Rate, Remark
from nfvkit.elements.stateful import StatefulElement
from nfvkit.errors import HandlerError
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import drop_reason
from nfvkit.vnf.state import FLOW_KEY_WORDS, StateSchema, StateTable

RATE_EXCEEDED = drop_reason("rate_exceeded", "above the policer's rate (police mode)")
POLICER_RED = drop_reason("policer_red", "marked red by the policer's srTCM, and drop_red is on")
NO_FLOW_STATE = drop_reason(
    "policer_no_flow_state", "the policer's per-flow table was full (per_flow.on_full: drop)"
)
NS = 1_000_000_000
DEFAULT = "default"


class PolicerConfig(ElementConfig):
    """Mode, traffic classes, per-flow meter and the actions taken per colour."""

    mode: Literal["police", "srtcm"] = "srtcm"
    classes: list[PolicerClass] = Field(default_factory=list, description="first match wins")
    default: Rate | None = Field(None, description="meter of packets no class matches")
    per_flow: PerFlow | None = Field(None, description="one meter per 5-tuple as well")
    colour_aware: ColourAware | None = Field(None, description="incoming colour by DSCP")
    colour_ports: bool = Field(False, description="output ports green, yellow, red")
    drop_red: bool = Field(True, description="srtcm: drop red packets (policer_red)")
    remark: Remark = Remark()
    size: Literal["ip", "frame"] = "ip"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.classes and self.default is None and self.per_flow is None:
            raise ValueError("nothing to police: give classes, a default or per_flow")
        names = [c.name for c in self.classes]
        dup = {n for n in names if names.count(n) > 1}
        if dup or DEFAULT in names:
            raise ValueError(f"class names must be unique and not {DEFAULT!r}: {sorted(dup)}")
        if self.mode == "police":
            self._check_police()
        return self

    def _check_police(self) -> None:
        for where, m in self.meters():
            if m.ebs:
                raise ValueError(f"{where}: ebs is for srtcm; police mode has one bucket")
            if m.cbs == 0:
                raise ValueError(f"{where}: cbs must be above 0 in police mode")
        if self.per_flow is not None and self.per_flow.ebs:
            raise ValueError("per_flow: ebs is for srtcm; police mode has one bucket")
        if self.colour_ports or self.colour_aware is not None:
            raise ValueError("colour_ports and colour_aware need mode srtcm")
        if self.remark.yellow is not None or self.remark.red is not None:
            raise ValueError("police mode only remarks green (conforming) packets")

    def meters(self) -> list[tuple[str, Rate]]:
        """The class meters in row order: the classes, then the default."""
        out: list[tuple[str, Rate]] = [(c.name, c) for c in self.classes]
        if self.default is not None:
            out.append((DEFAULT, self.default))
        return out


def _lifetime(flow: PerFlow) -> int:
    """ns a flow's buckets are kept: the idle timeout, at least the time to refill them."""
    cir, cbs, ebs, _, _ = flow.scaled()
    return max(round(flow.idle_timeout * NS), -(-(cbs + ebs) // cir))


class Policer(StatefulElement):
    """Police or colour packets per class and per flow (see the module docstring)."""

    type_name = "policer"
    Config: ClassVar[type[ElementConfig]] = PolicerConfig
    drop_reasons = (RATE_EXCEEDED, POLICER_RED, NO_FLOW_STATE)
    state_schemas: ClassVar[dict[str, StateSchema]] = {"flows": B.FLOW_BUCKETS}

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        assert isinstance(config, PolicerConfig)
        self.cfg = config
        self.meter_names = [n for n, _ in config.meters()]
        self.cparams = np.array([m.scaled() for _, m in config.meters()], dtype=np.int64).reshape(
            -1, B.N_METER
        )
        self.cstate = B.new_class_state(self.cparams)
        self.fparams = np.zeros(B.N_METER, dtype=np.int64)
        if config.per_flow is not None:
            self.fparams[:] = config.per_flow.scaled()
        self.settings = self._settings(config)
        self.precolour = np.zeros(64, dtype=np.int64)
        if config.colour_aware is not None:
            self.precolour[config.colour_aware.yellow] = B.YELLOW
            self.precolour[config.colour_aware.red] = B.RED
        self.colours = np.zeros((len(self.meter_names) + 2, 3), dtype=np.int64)
        self.counters = np.zeros(B.N_COUNTERS, dtype=np.int64)
        self.compiled = compile_rules([c.match for c in config.classes]) if config.classes else None
        self._key = np.empty(FLOW_KEY_WORDS, dtype=np.uint32)
        self._hashes = np.zeros(0, dtype=np.int64)
        self._sides = np.zeros(0, dtype=np.int64)
        self._no_class = np.zeros(0, dtype=np.int32)
        self._no_table = StateTable(B.FLOW_BUCKETS, 1, 1)  # stands in when per_flow is off

    @classmethod
    def outputs_for(cls, config: ElementConfig) -> tuple[str, ...]:
        assert isinstance(config, PolicerConfig)
        return B.COLOURS if config.colour_ports else ("out",)

    def _settings(self, cfg: PolicerConfig) -> NDArray[np.int64]:
        s = np.full(B.N_SETTINGS, -1, dtype=np.int64)
        if cfg.mode == "police":
            red = RATE_EXCEEDED.fate
        else:
            red = POLICER_RED.fate if cfg.drop_red else (2 if cfg.colour_ports else 0)
        s[B.A_FATE : B.A_FATE + 3] = (0, 1 if cfg.colour_ports else 0, red)
        for k, colour in enumerate(B.COLOURS):
            dscp = getattr(cfg.remark, colour)
            s[B.A_REMARK + k] = -1 if dscp is None else dscp
        s[B.A_AWARE] = int(cfg.colour_aware is not None)
        s[B.A_SIZE_IP] = int(cfg.size == "ip")
        s[B.A_DEFAULT] = len(cfg.classes) if cfg.default is not None else -1
        flow = cfg.per_flow
        s[B.A_FLOW] = int(flow is not None)
        s[B.A_ON_FULL] = 0 if flow is None else ("pass", "drop", "evict").index(flow.on_full)
        s[B.A_LIFETIME] = 1 if flow is None else _lifetime(flow)
        s[B.A_NO_STATE_FATE] = NO_FLOW_STATE.fate
        return s

    # life cycle -------------------------------------------------------------------------------

    def make_tables(self) -> dict[str, StateTable]:
        flow = self.cfg.per_flow
        if flow is None:
            return {}
        on_full: Literal["refuse", "evict"] = "evict" if flow.on_full == "evict" else "refuse"
        lifetime = int(self.settings[B.A_LIFETIME])
        return {"flows": StateTable(B.FLOW_BUCKETS, flow.max_flows, lifetime, on_full=on_full)}

    # data path --------------------------------------------------------------------------------

    def process(self, batch: PacketBatch) -> PacketBatch:
        n = len(batch)
        if n == 0:
            return batch
        if self.compiled is not None:
            classes = lookup(self.compiled.tables, batch)
        else:
            if self._no_class.shape[0] < n:
                self._no_class = np.full(n, -1, dtype=np.int32)
            classes = self._no_class[:n]
        b = batch
        table = self._no_table
        if self.cfg.per_flow is not None:
            table = self.ensure_tables()["flows"]
            if self._hashes.shape[0] < n:
                self._hashes = np.empty(n, dtype=np.int64)
                self._sides = np.empty(n, dtype=np.int64)
            hash_pass(
                table.tbl, self._key, table.seed, 0, b.src, b.dst, b.sport, b.dport, b.proto,
                self._hashes, self._sides,
            )  # fmt: skip
        B.police_kernel(
            table.tbl, self._key, self._hashes, self.cparams, self.cstate, self.fparams,
            self.settings, self.precolour, self.colours, self.counters, classes, self.times(b),
            b.data, b.offset, b.length, b.l3_off, b.flags, b.ip_len, b.src, b.dst, b.sport,
            b.dport, b.proto, b.fate,
        )  # fmt: skip
        if self.cfg.per_flow is not None:
            table.maintain()
        return batch

    # handlers ---------------------------------------------------------------------------------

    @read_handler("buckets", "tokens in each class's buckets (bytes or packets) and when updated")
    def read_buckets(self) -> list[dict[str, Any]]:
        out = []
        for c, (name, m) in enumerate(self.cfg.meters()):
            per_byte = int(self.cparams[c, B.M_PER_BYTE])
            last = int(self.cstate[c, B.S_LAST])
            out.append(
                {
                    "class": name,
                    "unit": m.unit,
                    "cir": m.cir,
                    "cbs": m.cbs,
                    "ebs": m.ebs,
                    "tc": B.tokens(self.cstate[c, B.S_TC], per_byte),
                    "te": B.tokens(self.cstate[c, B.S_TE], per_byte),
                    "updated_at": None if last == B.NEVER else last,
                }
            )
        return out

    @read_handler("colours", "packets per class per colour; per-flow, total and unpoliced counts")
    def read_colours(self) -> dict[str, Any]:
        rows = [*self.meter_names, "per_flow", "total"]
        out: dict[str, Any] = {
            name: {colour: int(self.colours[r, k]) for k, colour in enumerate(B.COLOURS)}
            for r, name in enumerate(rows)
        }
        out["unpoliced"] = int(self.counters[B.K_UNPOLICED])
        out["flow_unmetered"] = int(self.counters[B.K_FLOW_UNMETERED])
        out["flow_refused"] = int(self.counters[B.K_FLOW_REFUSED])
        out["remarked"] = int(self.counters[B.K_REMARKED])
        return out

    @write_handler("set_rate", "change a class's meter: {class, cir, cbs, ebs, unit}")
    def write_rate(self, value: Any) -> None:
        where = f"{self.name}.set_rate"
        if not isinstance(value, dict) or value.get("class") not in self.meter_names:
            raise HandlerError(
                f"give {{class: one of {self.meter_names}, cir/cbs/ebs/unit}}", where
            )
        name = value["class"]
        c = self.meter_names.index(name)
        old = dict(self.cfg.meters())[name]
        changes = {k: v for k, v in value.items() if k != "class"}
        if not changes or set(changes) - {"cir", "cbs", "ebs", "unit"}:
            raise HandlerError(f"set cir, cbs, ebs or unit, not {sorted(changes)}", where)
        try:
            new = type(old).model_validate({**old.model_dump(), **changes})
            cfg = self._replaced(name, new)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise HandlerError(
                f"{'.'.join(map(str, first['loc']))}: {first['msg']}", where
            ) from None
        self.cparams[c] = new.scaled()
        self.cstate[c, B.S_TC] = min(self.cstate[c, B.S_TC], self.cparams[c, B.M_CBS])
        self.cstate[c, B.S_TE] = min(self.cstate[c, B.S_TE], self.cparams[c, B.M_EBS])
        self.config = self.cfg = cfg

    def _replaced(self, name: str, meter: Rate) -> PolicerConfig:
        """The configuration with ``name``'s meter replaced (validated whole)."""
        raw = self.cfg.model_dump()
        if name == DEFAULT:
            raw["default"] = meter.model_dump()
        else:
            raw["classes"] = [
                meter.model_dump() if c["name"] == name else c for c in raw["classes"]
            ]
        return PolicerConfig.model_validate(raw)
