"""ACL rule files: a YAML list of rules, or one rule per line in a compact text form.

Text form, one rule per line (``#`` starts a comment, blank lines are ignored)::

    ACTION PROTO SRC [SPORT] -> DST [DPORT] [FIELD=VALUE ...]

    allow tcp 198.18.0.0/16 any -> 198.19.0.0/16 80
    allow udp any -> 198.19.0.53 53
    allow icmp any -> any icmp_type=8
    deny  tcp any -> any 22 tcp_flags=syn,!ack
    allow any 2001:db8::/32 -> 2001:db8:1::/48 dscp=ef vlan=100
    deny  any any -> any

``ACTION`` is ``allow`` or ``deny``; ``PROTO`` a name (tcp, udp, icmp, icmpv6, sctp...), a
number, or ``any``/``ip`` for every protocol; ``SRC``/``DST`` an address, a CIDR prefix or
``any``; ports a number, ``lo-hi`` or ``any`` (optional). Every other rule field can follow as
``field=value`` with the YAML field names and values (``vlan=10``, ``length=64-128``,
``fragment=true``, ``ip_version=6``...).

Files whose name ends in ``.yaml``, ``.yml`` or ``.json`` are read as a YAML list of rule
mappings (``- {action: allow, proto: tcp, dst: 198.19.0.0/16, dport: 80}``); any other name is
read as text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from nfvkit.elements.classify.rules import AclRule

YAML_SUFFIXES = (".yaml", ".yml", ".json")
_RULES = TypeAdapter(list[AclRule])
_RULE = TypeAdapter(AclRule)


class RuleSyntaxError(ValueError):
    """A rule file or text could not be read; ``errors`` lists ``(location, message)``."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{loc}: {msg}" for loc, msg in errors))


def _endpoint(tokens: list[str], side: str) -> dict[str, Any]:
    if not 1 <= len(tokens) <= 2:
        raise ValueError(f"{side} must be 'ADDRESS [PORT]', got {' '.join(tokens) or 'nothing'}")
    out: dict[str, Any] = {side: tokens[0]}
    if len(tokens) == 2:
        out["sport" if side == "src" else "dport"] = tokens[1]
    return out


def parse_line(line: str) -> dict[str, Any]:
    """The rule mapping of one text rule (not yet validated); ``ValueError`` on bad syntax."""
    words = line.split()
    if len(words) < 4 or "->" not in words:
        raise ValueError("expected 'ACTION PROTO SRC [SPORT] -> DST [DPORT] [field=value ...]'")
    arrow = words.index("->")
    action, proto = words[0].lower(), words[1]
    right = words[arrow + 1 :]
    options = [w for w in right if "=" in w]
    dest = [w for w in right if "=" not in w]
    if any("=" in w for w in right[: len(dest)]) or right[len(dest) :] != options:
        raise ValueError("field=value options must come after the destination")
    rule: dict[str, Any] = {"action": action}
    if proto.lower() not in ("any", "ip"):
        rule["proto"] = proto
    rule.update(_endpoint(words[2:arrow], "src"))
    rule.update(_endpoint(dest, "dst"))
    for opt in options:
        key, _, value = opt.partition("=")
        if key in rule:
            raise ValueError(f"field {key!r} given twice")
        rule[key] = value
    return rule


def _path(err: Any) -> str:
    return ".".join(str(p) for p in err["loc"]) or "rule"


def _loc(where: str, err: Any) -> str:
    return where + "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in err["loc"])


def parse_text(text: str, where: str = "rules") -> list[AclRule]:
    """Validate every line of ``text``; raise :class:`RuleSyntaxError` listing each problem."""
    rules: list[AclRule] = []
    errors: list[tuple[str, str]] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        at = f"{where}:{lineno}"
        try:
            rules.append(_RULE.validate_python(parse_line(line)))
        except ValidationError as exc:
            errors.extend((f"{at}: {_path(e)}", e["msg"]) for e in exc.errors())
        except ValueError as exc:
            errors.append((at, str(exc)))
    if errors:
        raise RuleSyntaxError(errors)
    return rules


def parse_yaml_rules(data: Any, where: str = "rules") -> list[AclRule]:
    """Validate a list of rule mappings; raise :class:`RuleSyntaxError` naming index and field."""
    try:
        return _RULES.validate_python(data)
    except ValidationError as exc:
        raise RuleSyntaxError([(_loc(where, e), e["msg"]) for e in exc.errors()]) from None


def load_rules_file(path: str | Path) -> list[AclRule]:
    """Read and validate an ACL rule file (YAML or text form, chosen by the file name)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleSyntaxError([(str(p), f"cannot read: {exc.strerror or exc}")]) from None
    if p.suffix.lower() in YAML_SUFFIXES:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RuleSyntaxError([(str(p), f"not valid YAML: {exc}")]) from None
        if not isinstance(data, list):
            raise RuleSyntaxError([(str(p), "expected a YAML list of rules")])
        return parse_yaml_rules(data, str(p))
    return parse_text(text, str(p))
