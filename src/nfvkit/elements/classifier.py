"""``classifier``: send each packet to the output port of the first rule it matches.

The output ports are named by the configuration; rules use the fields of
:mod:`nfvkit.elements.classify.rules` and are compiled into bit-vector tables
(:mod:`nfvkit.elements.classify.compiler`). A packet no rule matches goes to ``default``: an
output name, or ``drop`` (counted as ``classifier_no_match``).

Example::

    type: classifier
    config:
      outputs: [web, dns, other]
      default: other
      rules:
        - {match: {proto: tcp, dport: 80}, port: web}
        - {match: {proto: tcp, dport: 443}, port: web}
        - {match: {proto: udp, dport: 53}, port: dns}
        - {match: {ip_version: 6, dst: "2001:db8::/32"}, port: web}

Handlers: ``rules`` / ``hits`` / ``compile`` (read), ``set_rules`` (write: a new rule list,
over the same outputs; recompiled, then swapped in atomically).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from nfvkit.elements.base import ElementConfig, read_handler, write_handler
from nfvkit.elements.classify.rules import ClassifierRule
from nfvkit.elements.classify.ruleset import RuleSet, RuleSetElement
from nfvkit.errors import HandlerError
from nfvkit.packet.fate import drop_reason

NO_MATCH = drop_reason("classifier_no_match", "matched no classifier rule and the default drops")
DROP = "drop"
_RULES = TypeAdapter(list[ClassifierRule])


def _check_ports(rules: list[ClassifierRule], outputs: list[str]) -> None:
    for i, rule in enumerate(rules):
        if rule.port not in outputs:
            raise ValueError(
                f"rules[{i}].port: {rule.port!r} is not an output (outputs: {', '.join(outputs)})"
            )


class ClassifierConfig(ElementConfig):
    """Output port names, ordered rules and the default port."""

    outputs: list[str] = Field(min_length=1, description="output port names, in port order")
    rules: list[ClassifierRule] = Field(default_factory=list, description="first match wins")
    default: str = Field(DROP, description="output for unmatched packets, or 'drop'")

    @model_validator(mode="after")
    def _ports_exist(self) -> Self:
        if len(set(self.outputs)) != len(self.outputs):
            raise ValueError(f"outputs: duplicate port names in {self.outputs}")
        if DROP in self.outputs:
            raise ValueError(f"outputs: {DROP!r} is reserved for the default")
        _check_ports(self.rules, self.outputs)
        if self.default != DROP and self.default not in self.outputs:
            raise ValueError(f"default: {self.default!r} is neither an output nor {DROP!r}")
        return self


def _install(rules: list[ClassifierRule], cfg: ClassifierConfig) -> RuleSet[ClassifierRule]:
    """Compile ``rules`` with the fates their ports (and the default) give."""
    port = {name: i for i, name in enumerate(cfg.outputs)}
    fates = [port[r.port] for r in rules]
    fates.append(NO_MATCH.fate if cfg.default == DROP else port[cfg.default])
    return RuleSet(rules, [r.match for r in rules], fates)


class Classifier(RuleSetElement):
    """Classify packets onto configured output ports (see the module docstring)."""

    _active: RuleSet[ClassifierRule]

    type_name = "classifier"
    Config: ClassVar[type[ElementConfig]] = ClassifierConfig
    drop_reasons = (NO_MATCH,)

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        assert isinstance(config, ClassifierConfig)
        self.cfg = config
        self._active = _install(config.rules, config)

    @classmethod
    def outputs_for(cls, config: ElementConfig) -> tuple[str, ...]:
        assert isinstance(config, ClassifierConfig)
        return tuple(config.outputs)

    @read_handler("hits", "packets each rule matched (index order) and packets no rule matched")
    def read_hits(self) -> dict[str, Any]:
        active = self._active
        return {
            "rules": [
                {"index": i, "match": r.match.describe(), "port": r.port, "hits": int(n)}
                for i, (r, n) in enumerate(zip(active.rules, active.hits, strict=False))
            ],
            "default": int(active.hits[-1]),
        }

    @read_handler("compile", "size and build time of the compiled rule tables")
    def read_compile(self) -> dict[str, Any]:
        c = self._active.compiled
        return {
            "rules": c.nrules,
            "bytes": c.nbytes,
            "classes": c.classes,
            "seconds": round(c.compile_seconds, 6),
        }

    @write_handler("set_rules", "replace the rules (same outputs); list of {match, port}")
    def write_rules(self, value: Any) -> None:
        where = f"{self.name}.set_rules"
        try:
            rules = _RULES.validate_python(value)
            _check_ports(rules, self.cfg.outputs)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise HandlerError(f"{loc}: {first['msg']}", where=where) from None
        except ValueError as exc:
            raise HandlerError(str(exc), where=where) from None
        active = _install(rules, self.cfg)  # compile fully before swapping in
        self._active = active
        self.config = self.cfg = self.cfg.model_copy(update={"rules": rules})
