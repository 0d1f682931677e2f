"""The ``dpi`` rule model: header constraints, content patterns, action, sid.

A rule can be written as Snort-style text (see :mod:`.syntax`) or as a mapping, the
*structured form*::

    - {action: drop, proto: tcp, dport: 80, sid: 7, msg: "admin probe",
       content: ["GET /admin", "|0d 0a|Host:"], nocase: true}
    - action: alert
      sid: 8
      dst: 198.19.0.0/16
      contents:                      # per-content modifiers
        - {pattern: "User-Agent: sqlmap", nocase: true}
        - {pattern: "|27 20|OR", offset: 20, depth: 400}

``content`` (a string or a list) is shorthand for ``contents`` whose rule-level ``nocase``,
``offset`` and ``depth`` apply to every string in it. Content patterns use the content syntax
of the text form in both forms (``|hex|`` bytes, ``\\|`` for a literal bar). Every content of a
rule must be found in the payload (AND); ``offset``/``depth`` restrict where: the match must lie
within ``[offset, offset + depth)`` of the L4 payload. Addresses and ports accept ``any``, a
value, a prefix or ``lo:hi`` range, ``$VAR`` (from the element's ``vars``), lists and ``!``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nfvkit.elements.classify.fields import Range, parse_prefix, parse_range
from nfvkit.elements.classify.textform import YAML_SUFFIXES, RuleSyntaxError
from nfvkit.elements.dpi_rules.syntax import decode_content, logical_lines, parse_rule_text

Vars = Mapping[str, str]


@dataclass(frozen=True)
class ValueSet:
    """An address or port set: inside some ``include`` item (or any, if none) and inside no
    ``exclude`` item. Items are :class:`Prefix` or :class:`Range`."""

    include: tuple[Any, ...]
    exclude: tuple[Any, ...]
    text: str

    def __str__(self) -> str:
        return self.text

    @property
    def is_any(self) -> bool:
        return not self.include and not self.exclude


ANY = ValueSet((), (), "any")


def _top_split(text: str) -> list[str]:
    parts, cur, depth = [], "", 0
    for c in text:
        depth += (c == "[") - (c == "]")
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    return [*parts, cur]


def _terms(text: str, vars: Vars, seen: frozenset[str]) -> list[tuple[bool, str]]:
    """The flat ``(negated, atom)`` items of a set expression, variables expanded."""
    t, neg = text.strip(), False
    while t.startswith("!"):
        neg, t = not neg, t[1:].strip()
    if t.startswith("$"):
        name = t[1:]
        if name not in vars:
            raise ValueError(f"unknown variable ${name} (define it under the element's vars)")
        if name in seen:
            raise ValueError(f"variable ${name} refers to itself")
        inner = _terms(vars[name], vars, seen | {name})
    elif t.startswith("[") and t.endswith("]"):
        inner = [x for part in _top_split(t[1:-1]) for x in _terms(part, vars, seen)]
    elif not t or any(c in t for c in "[],!$ "):
        raise ValueError(f"cannot read {text.strip()!r}")
    else:
        inner = [(False, t)]
    if neg:
        if any(n for n, _ in inner):
            raise ValueError(f"a negated list may not contain negations: {text.strip()!r}")
        inner = [(True, a) for _, a in inner]
    return inner


def _value_set(raw: Any, info: ValidationInfo, what: str) -> ValueSet:
    if isinstance(raw, ValueSet):
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(f"{what} must be a string or number, not {raw!r}")
    text = str(raw).strip()
    vars: Vars = (info.context or {}).get("vars", {})
    include: list[Any] = []
    exclude: list[Any] = []
    any_include = False
    for neg, atom in _terms(text, vars, frozenset()):
        if atom.lower() == "any":
            if neg:
                raise ValueError(f"{what} '!any' matches nothing")
            any_include = True
            continue
        item = parse_prefix(atom) if what == "address" else _port_range(atom)
        (exclude if neg else include).append(item)
    return ValueSet(() if any_include else tuple(include), tuple(exclude), text)


def _port_range(atom: str) -> Range:
    if ":" in atom:
        lo, _, hi = atom.partition(":")
        atom = f"{lo.strip() or '0'}-{hi.strip() or '65535'}"
    return parse_range(atom, 65535, "port")


def _addr(raw: Any, info: ValidationInfo) -> ValueSet:
    return _value_set(raw, info, "address")


def _port(raw: Any, info: ValidationInfo) -> ValueSet:
    return _value_set(raw, info, "port")


AddrT = Annotated[ValueSet, PlainValidator(_addr), PlainSerializer(str)]
PortT = Annotated[ValueSet, PlainValidator(_port), PlainSerializer(str)]


class Content(BaseModel):
    """One content pattern of a rule and where in the payload it may match."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pattern: str = Field(description="content syntax: text, |hex| bytes, \\-escapes")
    nocase: bool = False
    offset: int = Field(0, ge=0, le=65535, description="match starts at this byte or later")
    depth: int | None = Field(None, ge=1, le=65535, description="match ends within this")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        return {"pattern": data} if isinstance(data, str) else data

    @field_validator("pattern")
    @classmethod
    def _decodes(cls, value: str) -> str:
        decode_content(value)
        return value

    @model_validator(mode="after")
    def _fits(self) -> Self:
        if self.depth is not None and self.depth < len(self.data):
            raise ValueError(
                f"depth {self.depth} is shorter than the {len(self.data)}-byte content"
            )
        return self

    @property
    def data(self) -> bytes:
        """The pattern's bytes."""
        return decode_content(self.pattern)

    def text(self) -> str:
        """The content and its modifiers in rule text."""
        out = f'content:"{self.pattern}";'
        if self.nocase:
            out += " nocase;"
        if self.offset:
            out += f" offset:{self.offset};"
        if self.depth is not None:
            out += f" depth:{self.depth};"
        return out


class DpiRule(BaseModel):
    """A ``dpi`` rule (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["alert", "drop", "pass"]
    proto: Literal["ip", "tcp", "udp", "icmp"] = "ip"
    src: AddrT = ANY
    sport: PortT = ANY
    dst: AddrT = ANY
    dport: PortT = ANY
    bidirectional: bool = False
    msg: str = ""
    sid: int = Field(ge=1, le=0xFFFFFFFF)
    rev: int = Field(1, ge=0)
    contents: tuple[Content, ...] = Field((), validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "content" not in data:
            return data
        if "contents" in data:
            raise ValueError("give either content (shorthand) or contents, not both")
        out = dict(data)
        items = out.pop("content")
        shared = {k: out.pop(k) for k in ("nocase", "offset", "depth") if k in out}
        if isinstance(items, str | dict):
            items = [items]
        if not isinstance(items, list):
            raise ValueError(f"content must be a string or a list, not {items!r}")
        out["contents"] = [{"pattern": c, **shared} if isinstance(c, str) else c for c in items]
        return out

    @field_validator("contents")
    @classmethod
    def _some_content(cls, value: tuple[Content, ...]) -> tuple[Content, ...]:
        if not value:
            raise ValueError("a dpi rule needs at least one content (header-only rules: use acl)")
        return value

    @model_validator(mode="after")
    def _ports_need_l4(self) -> Self:
        if self.proto not in ("tcp", "udp") and not (self.sport.is_any and self.dport.is_any):
            raise ValueError(f"ports need proto tcp or udp, not {self.proto}")
        return self

    def text(self) -> str:
        """The rule in Snort-style text form."""
        arrow = "<>" if self.bidirectional else "->"
        opts = [f'msg:"{_escape(self.msg)}";'] if self.msg else []
        opts += [c.text() for c in self.contents]
        opts += [f"sid:{self.sid};", f"rev:{self.rev};"]
        head = f"{self.action} {self.proto} {self.src} {self.sport} {arrow} {self.dst} {self.dport}"
        return f"{head} ({' '.join(opts)})"


def _escape(text: str) -> str:
    return "".join("\\" + c if c in '"\\;' else c for c in text)


# loading --------------------------------------------------------------------------------------

RuleEntry = str | Mapping[str, Any]


def _loc(at: str, err: Any) -> str:
    path = ".".join(str(p) for p in err["loc"])
    return f"{at}: {path}" if path else at


class _Collector:
    """Validates rules one by one and keeps every problem with its location."""

    def __init__(self, vars: Vars) -> None:
        self.vars = vars
        self.rules: list[DpiRule] = []
        self.errors: list[tuple[str, str]] = []
        self._sids: dict[int, str] = {}

    def add(self, entry: Any, at: str) -> None:
        try:
            data = parse_rule_text(entry) if isinstance(entry, str) else entry
            rule = DpiRule.model_validate(data, context={"vars": self.vars})
        except ValidationError as exc:
            self.errors.extend((_loc(at, e), e["msg"]) for e in exc.errors())
            return
        except ValueError as exc:
            self.errors.append((at, str(exc)))
            return
        first = self._sids.setdefault(rule.sid, at)
        if first != at:
            self.errors.append((at, f"sid {rule.sid} is already used by the rule at {first}"))
            return
        self.rules.append(rule)

    def add_text(self, text: str, where: str, single: bool = False) -> None:
        lines = logical_lines(text)
        for lineno, line in lines:
            self.add(line, where if single and len(lines) == 1 else f"{where}:{lineno}")

    def add_entries(self, entries: Sequence[Any], where: str) -> None:
        for i, entry in enumerate(entries):
            if isinstance(entry, str):
                self.add_text(entry, f"{where}[{i}]", single=True)
            else:
                self.add(entry, f"{where}[{i}]")

    def add_file(self, path: str | Path) -> None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            self.errors.append((str(p), f"cannot read: {exc.strerror or exc}"))
            return
        if p.suffix.lower() not in YAML_SUFFIXES:
            self.add_text(text, str(p))
            return
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            self.errors.append((str(p), f"not valid YAML: {exc}"))
            return
        if not isinstance(data, list):
            self.errors.append((str(p), "expected a YAML list of rules"))
            return
        self.add_entries(data, str(p))

    def result(self) -> list[DpiRule]:
        if self.errors:
            raise RuleSyntaxError(self.errors)
        return self.rules


def load_rules(
    entries: Sequence[Any] | str = (),
    rules_file: str | Path | None = None,
    vars: Vars | None = None,
    where: str = "rules",
) -> list[DpiRule]:
    """Validate inline rules (text lines or mappings; or one multi-line text) and then the
    rules of ``rules_file`` (text, or YAML by suffix); :class:`RuleSyntaxError` lists every
    problem with its location (``rules[2]: ...``, ``file.rules:7: ...``)."""
    col = _Collector(vars or {})
    if isinstance(entries, str):
        col.add_text(entries, where)
    else:
        col.add_entries(entries, where)
    if rules_file is not None:
        col.add_file(rules_file)
    return col.result()
