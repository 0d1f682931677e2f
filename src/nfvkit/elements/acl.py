"""``acl``: an ordered allow/deny access list, compiled, optionally stateful.

Rules (see :mod:`nfvkit.elements.classify.rules` for the fields) are tried in order and the
first match decides; a packet no rule matches gets ``default``. Denied packets are dropped as
``acl_deny`` (a deny rule) or ``acl_default_deny`` (no rule, default deny).

With ``stateful: true`` the reverse direction of a flow that the rules allowed is admitted even
where the rules deny it (allow client → server TCP 80 and the server's replies pass). Flows
live in a fixed-capacity per-flow state table (:mod:`nfvkit.elements.classify.flowtable`, table
``connections``) with idle expiry by packet timestamps, a short ``closing_timeout`` after TCP
FIN/RST, and counted refusals (or evictions, ``on_full: evict``) when ``max_flows`` are live.
The connections can be exported and imported (:class:`~nfvkit.elements.stateful.StatefulElement`).

Example::

    type: acl
    config:
      default: deny
      stateful: true
      max_flows: 100000
      rules:
        - {action: allow, proto: tcp, src: 198.18.0.0/16, dst: 198.19.0.0/16, dport: 80}
        - {action: allow, proto: icmp, icmp_type: 8}
        - {action: deny, src: 198.18.66.0/24}
      rules_file: acl.rules      # appended after ``rules``; YAML list or text form,
                                 # relative to the graph file's folder

Handlers: ``rules`` / ``hits`` / ``flows`` / ``state`` / ``compile`` (read), ``set_rules``
(write: a list of rule mappings or text-form lines; recompiled, then swapped in atomically).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import Field, PrivateAttr, field_validator, model_validator

from nfvkit.elements.base import ElementConfig, input_path, read_handler, write_handler
from nfvkit.elements.classify.flowtable import CONN_SCHEMA, ConnTracker
from nfvkit.elements.classify.rules import AclRule
from nfvkit.elements.classify.ruleset import RuleSet, RuleSetElement
from nfvkit.elements.classify.textform import (
    RuleSyntaxError,
    load_rules_file,
    parse_text,
    parse_yaml_rules,
)
from nfvkit.elements.stateful import StatefulElement
from nfvkit.errors import HandlerError
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import drop_reason
from nfvkit.vnf.state import StateSchema, StateTable

ACL_DENY = drop_reason("acl_deny", "denied by an acl deny rule")
ACL_DEFAULT_DENY = drop_reason("acl_default_deny", "matched no acl rule and the default denies")
NS = 1_000_000_000


class AclConfig(ElementConfig):
    """Rules, default action and connection tracking of an ``acl``."""

    rules: list[AclRule] = Field(default_factory=list, description="ordered; first match wins")
    rules_file: str | None = Field(None, description="more rules (YAML list or text form)")
    default: Literal["allow", "deny"] = "deny"
    stateful: bool = False
    max_flows: int = Field(65536, ge=1, le=1 << 24, description="tracked flows at most")
    idle_timeout: float = Field(300.0, gt=0, description="seconds a flow lives after a packet")
    closing_timeout: float = Field(10.0, gt=0, description="seconds after a TCP FIN or RST")
    on_full: Literal["refuse", "evict"] = "refuse"
    _file_rules: list[AclRule] = PrivateAttr(default_factory=list)

    _rules_path = field_validator("rules_file")(input_path)

    @model_validator(mode="after")
    def _load_file(self) -> Self:
        if self.rules_file is not None:
            self._file_rules = load_rules_file(self.rules_file)
        return self

    def all_rules(self) -> list[AclRule]:
        """The inline rules followed by the rules of ``rules_file``."""
        return [*self.rules, *self._file_rules]


def _install(rules: list[AclRule], default: str) -> RuleSet[AclRule]:
    """Compile ``rules`` with the fates their actions (and the default) give."""
    fates = [0 if r.action == "allow" else ACL_DENY.fate for r in rules]
    fates.append(0 if default == "allow" else ACL_DEFAULT_DENY.fate)
    return RuleSet(rules, rules, fates)


class Acl(RuleSetElement, StatefulElement):
    """Allow or deny packets by ordered rules (see the module docstring)."""

    _active: RuleSet[AclRule]

    type_name = "acl"
    Config: ClassVar[type[ElementConfig]] = AclConfig
    drop_reasons = (ACL_DENY, ACL_DEFAULT_DENY)
    state_schemas: ClassVar[dict[str, StateSchema]] = {"connections": CONN_SCHEMA}

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        self.cfg: AclConfig = self._typed(config)
        self._active = _install(self.cfg.all_rules(), self.cfg.default)
        self.tracker: ConnTracker | None = None

    @staticmethod
    def _typed(config: ElementConfig) -> AclConfig:
        assert isinstance(config, AclConfig)
        return config

    # life cycle -------------------------------------------------------------------------------

    def make_tables(self) -> dict[str, StateTable]:
        cfg = self.cfg
        if not cfg.stateful:
            return {}
        self.tracker = ConnTracker(
            cfg.max_flows,
            int(cfg.idle_timeout * NS),
            int(cfg.closing_timeout * NS),
            on_full=cfg.on_full,
        )
        return {"connections": self.tracker.table}

    def cleanup(self) -> None:
        super().cleanup()
        self.tracker = None

    # data path --------------------------------------------------------------------------------

    def process(self, batch: PacketBatch) -> PacketBatch:
        super().process(batch)
        if self.cfg.stateful:
            self.ensure_tables()
            assert self.tracker is not None
            self.tracker.track(batch, self.times(batch))
        return batch

    # handlers ---------------------------------------------------------------------------------

    @read_handler("hits", "packets each rule matched (index order) and packets no rule matched")
    def read_hits(self) -> dict[str, Any]:
        active = self._active
        return {
            "rules": [
                {"index": i, "rule": r.describe(), "hits": int(active.hits[i])}
                for i, r in enumerate(active.rules)
            ],
            "default": int(active.hits[-1]),
        }

    @read_handler("flows", "connection table occupancy and events (stateful mode)")
    def read_flows(self) -> dict[str, Any]:
        if not self.cfg.stateful:
            return {"stateful": False}
        self.ensure_tables()
        assert self.tracker is not None
        return {"stateful": True, **self.tracker.stats()}

    @read_handler("compile", "size and build time of the compiled rule tables")
    def read_compile(self) -> dict[str, Any]:
        c = self._active.compiled
        return {
            "rules": c.nrules,
            "bytes": c.nbytes,
            "classes": c.classes,
            "seconds": round(c.compile_seconds, 6),
        }

    @write_handler("set_rules", "replace the rules: a list of rule mappings or text-form lines")
    def write_rules(self, value: Any) -> None:
        try:
            if isinstance(value, str):
                rules = parse_text(value, "set_rules")
            else:
                rules = parse_yaml_rules(value, "set_rules")
        except RuleSyntaxError as exc:
            raise HandlerError(str(exc), where=f"{self.name}.set_rules") from None
        active = _install(rules, self.cfg.default)  # compile fully before swapping in
        cfg = self.cfg.model_copy(update={"rules": rules, "rules_file": None})
        cfg._file_rules = []
        self._active = active
        self.config = self.cfg = cfg
