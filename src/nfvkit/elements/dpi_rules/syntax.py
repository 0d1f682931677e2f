"""Reading Snort/Suricata-style rule text into rule mappings for :mod:`.model`.

The subset understood, one rule per line (``#`` comments, blank lines and ``\\`` line
continuations as in Snort)::

    ACTION PROTO SRC SPORT DIR DST DPORT (OPTION; OPTION:VALUE; ...)

    alert tcp any any -> any 80 (msg:"admin"; content:"GET /admin"; nocase; sid:1001; rev:2;)
    drop udp any any -> any 53 (msg:"bad dns"; content:"|de ad be ef|"; sid:2;)
    alert tcp $HOME_NET any <> [198.19.0.0/16,!198.19.9.0/24] 1024: (content:"a"; \\
        content:"b"; offset:4; depth:20; sid:3;)

* ``ACTION``: ``alert``, ``drop`` or ``pass``; ``PROTO``: ``tcp``, ``udp``, ``icmp`` or ``ip``.
* Addresses: ``any``, an IPv4/IPv6 address or CIDR prefix, ``$VAR``, a list ``[a,b,!c]``, each
  optionally negated with ``!``. Ports: ``any``, ``80``, ``1024:65535``, ``1024:``, ``:1023``,
  lists and negation alike. ``DIR``: ``->`` or ``<>`` (either direction).
* Options: ``msg``, ``content`` (quoted; ``|41 42|`` hex bytes; ``\\"``, ``\\\\``, ``\\;``,
  ``\\:`` and ``\\|`` escapes), the content modifiers ``nocase``, ``offset``, ``depth`` (they
  apply to the content before them), ``sid``, ``rev``. ``classtype``, ``reference``,
  ``metadata``, ``priority``, ``gid``, ``fast_pattern`` and ``rawbytes`` are accepted and
  ignored; any other option is an error (ignoring ``flow`` or ``pcre`` would change what a rule
  matches).

The parser produces plain mappings (the structured form); :mod:`.model` validates them. Every
problem raises ``ValueError`` with a message that names the option and what is wrong.
"""

from __future__ import annotations

from typing import Any

IGNORED_OPTIONS = frozenset(
    {"classtype", "reference", "metadata", "priority", "gid", "fast_pattern", "rawbytes"}
)
CONTENT_MODIFIERS = frozenset({"nocase", "offset", "depth"})
_ESCAPABLE = '"\\;:|'
_HEX = frozenset("0123456789abcdefABCDEF")
SHAPE = "ACTION PROTO SRC SPORT -> DST DPORT (OPTIONS)"


def decode_content(text: str) -> bytes:
    """The bytes of a content string as written between the quotes (``|hex|``, escapes)."""
    out = bytearray()
    i, n, in_hex = 0, len(text), False
    while i < n:
        c = text[i]
        if in_hex:
            if c == "|":
                in_hex = False
                i += 1
            elif c.isspace():
                i += 1
            else:
                pair = text[i : i + 2]
                if len(pair) < 2 or not set(pair) <= _HEX:
                    raise ValueError(f"bad hex byte {pair!r} in |...| at character {i + 1}")
                out.append(int(pair, 16))
                i += 2
        elif c == "\\":
            if i + 1 >= n or text[i + 1] not in _ESCAPABLE:
                bad = text[i : i + 2]
                raise ValueError(f'unknown escape {bad!r} (escape only \\" \\\\ \\; \\: \\|)')
            out += text[i + 1].encode()
            i += 2
        elif c == "|":
            in_hex = True
            i += 1
        elif c == '"':
            raise ValueError("unescaped '\"' inside the content (write \\\")")
        else:
            out += c.encode("utf-8")
            i += 1
    if in_hex:
        raise ValueError("unterminated |hex| section")
    if not out:
        raise ValueError("empty content")
    return bytes(out)


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


def _read_value(body: str, i: int, name: str) -> tuple[str, int]:
    """The raw value of option ``name`` starting at ``i`` (quotes and escapes kept)."""
    start, quoted = i, False
    while i < len(body):
        c = body[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == ";" and not quoted:
            return body[start:i].strip(), i + 1
        i += 1
    if quoted:
        raise ValueError(f"option {name!r}: unterminated quoted string")
    return body[start:].strip(), len(body)


def split_options(body: str) -> list[tuple[str, str | None]]:
    """The ``name[:value];`` options inside the parentheses, in order."""
    opts: list[tuple[str, str | None]] = []
    i, n = 0, len(body)
    while i < n:
        while i < n and body[i].isspace():
            i += 1
        if i >= n:
            break
        j = i
        while j < n and body[j] not in ":;":
            j += 1
        name = body[i:j].strip().lower()
        if not name or not all(ch.isalnum() or ch in "_-." for ch in name):
            raise ValueError(f"bad option name {body[i:j].strip()!r} at character {i + 1}")
        if j >= n or body[j] == ";":
            opts.append((name, None))
            i = j + 1
            continue
        value, i = _read_value(body, j + 1, name)
        opts.append((name, value))
    return opts


def quoted(value: str | None, name: str) -> str:
    """The text between the double quotes of an option value (escapes kept)."""
    v = (value or "").strip()
    if len(v) < 2 or v[0] != '"' or v[-1] != '"':
        raise ValueError(f"option {name!r} needs a double-quoted value, got {value!r}")
    return v[1:-1]


def _number(value: str | None, name: str) -> int:
    try:
        return int((value or "").strip())
    except ValueError:
        raise ValueError(f"option {name!r} needs a number, got {value!r}") from None


def split_header(head: str) -> list[str]:
    """Whitespace-separated header fields; ``[...]`` lists may contain spaces."""
    fields: list[str] = []
    cur, depth = "", 0
    for c in head:
        depth += (c == "[") - (c == "]")
        if c.isspace() and depth == 0:
            if cur:
                fields.append(cur)
            cur = ""
        elif not c.isspace():
            cur += c
    if depth != 0:
        raise ValueError("unbalanced [ ] in the rule header")
    if cur:
        fields.append(cur)
    return fields


def _content_option(rule: dict[str, Any], name: str, value: str | None) -> None:
    if name == "content":
        if value is not None and value.lstrip().startswith("!"):
            raise ValueError("negated content (content:!...) is not supported")
        text = quoted(value, name)
        decode_content(text)
        rule["contents"].append({"pattern": text})
        return
    if not rule["contents"]:
        raise ValueError(f"option {name!r} must follow a content option")
    last = rule["contents"][-1]
    if name in last:
        raise ValueError(f"option {name!r} given twice for the same content")
    if name == "nocase":
        if value is not None:
            raise ValueError("option 'nocase' takes no value")
        last["nocase"] = True
    else:
        last[name] = _number(value, name)


def _apply_option(rule: dict[str, Any], name: str, value: str | None) -> None:
    if name == "content" or name in CONTENT_MODIFIERS:
        _content_option(rule, name, value)
    elif name in ("msg", "sid", "rev"):
        if name in rule:
            raise ValueError(f"option {name!r} given twice")
        rule[name] = _unescape(quoted(value, name)) if name == "msg" else _number(value, name)
    elif name not in IGNORED_OPTIONS:
        raise ValueError(
            f"option {name!r} is not supported (supported: msg, content, nocase, offset, depth, "
            f"sid, rev; ignored: {', '.join(sorted(IGNORED_OPTIONS))})"
        )


def parse_rule_text(text: str) -> dict[str, Any]:
    """The rule mapping of one text rule (not yet validated); ``ValueError`` on bad syntax."""
    text = text.strip()
    open_at, close_at = text.find("("), text.rfind(")")
    if open_at < 0 or close_at < open_at or text[close_at + 1 :].strip():
        raise ValueError(f"expected '{SHAPE}': no option list in parentheses at the end")
    head = split_header(text[:open_at])
    if len(head) != 7:
        raise ValueError(f"the header needs 7 fields '{SHAPE[:-10]}', found {len(head)}")
    action, proto, src, sport, arrow, dst, dport = head
    if arrow not in ("->", "<>"):
        raise ValueError(f"direction must be '->' or '<>', not {arrow!r}")
    rule: dict[str, Any] = {
        "action": action.lower(),
        "proto": proto.lower(),
        "src": src,
        "sport": sport,
        "dst": dst,
        "dport": dport,
        "contents": [],
    }
    if arrow == "<>":
        rule["bidirectional"] = True
    for name, value in split_options(text[open_at + 1 : close_at]):
        try:
            _apply_option(rule, name, value)
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(msg if "option" in msg else f"option {name!r}: {msg}") from None
    return rule


def logical_lines(text: str) -> list[tuple[int, str]]:
    """``(first line number, rule text)`` of a rule file: comments and blanks dropped,
    ``\\``-continued lines joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = lineno
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending.strip():
        out.append((start, pending))
    return out
