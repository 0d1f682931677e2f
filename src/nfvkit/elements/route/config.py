"""The ``router`` configuration: output ports, neighbours (next hops) and routes.

A route sends a prefix to an output ``port`` through a neighbour (``via``: the neighbour's
name or address), or, with no ``via``, delivers directly: the packet's own destination is the
neighbour, looked up by address in the neighbour table. Every route is resolved when the
configuration is validated, so a bad prefix, an unknown next hop or an unknown port is an
error that names the route.

Route files (``routes_file``) hold more routes: a YAML/JSON list of route mappings when the
name ends in ``.yaml``, ``.yml`` or ``.json``, otherwise one route per line::

    # PREFIX [via NEXTHOP] [port PORT]
    0.0.0.0/0        via isp
    198.18.0.0/15    via 198.18.255.1 port lan
    198.19.1.0/24    port lan            # connected: neighbour = the packet's destination
    2001:db8::/32    via 2001:db8::1
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from nfvkit.elements.base import ElementConfig, input_path

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
YAML_SUFFIXES = (".yaml", ".yml", ".json")


def parse_mac(raw: Any) -> str:
    """A MAC address as ``aa:bb:cc:dd:ee:ff`` (``-`` separators accepted); ``ValueError``."""
    text = str(raw).strip().lower().replace("-", ":") if isinstance(raw, str) else ""
    parts = text.split(":")
    hexdigits = set("0123456789abcdef")
    if len(parts) != 6 or not all(len(p) == 2 and set(p) <= hexdigits for p in parts):
        raise ValueError(f"{raw!r} is not a MAC address (expected aa:bb:cc:dd:ee:ff)")
    return text


def mac_bytes(mac: str) -> bytes:
    """The six bytes of a MAC address in ``aa:bb:cc:dd:ee:ff`` form."""
    return bytes.fromhex(mac.replace(":", ""))


def parse_prefix(raw: Any) -> IPNetwork:
    """An IPv4 or IPv6 prefix (a bare address is a host route); ``ValueError`` naming why."""
    if not isinstance(raw, str):
        raise ValueError(f"prefix must be a string like '198.18.0.0/15', not {raw!r}")
    text = raw.strip()
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not an IPv4 or IPv6 prefix ({exc})") from None
        raise ValueError(f"{text!r} has host bits set (did you mean {loose}?)") from None


def parse_address(raw: Any) -> IPAddress:
    """An IPv4 or IPv6 address; ``ValueError`` if ``raw`` is none."""
    try:
        return ipaddress.ip_address(str(raw).strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not an IPv4 or IPv6 address") from None


MacT = Annotated[str, PlainValidator(parse_mac)]
PrefixT = Annotated[IPNetwork, PlainValidator(parse_prefix), PlainSerializer(str)]
AddressT = Annotated[IPAddress, PlainValidator(parse_address), PlainSerializer(str)]
PortRef = str | int


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PortSpec(_Model):
    """An output port: its name and the MAC written as the source of frames sent on it."""

    name: str = Field(min_length=1)
    mac: MacT | None = Field(None, description="source MAC (default 02:00:00:00:PP:PP)")

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        return {"name": data} if isinstance(data, str) else data


class Neighbour(_Model):
    """A next hop: a name and/or an address, its MAC, and the port it is reached on."""

    name: str | None = Field(None, min_length=1)
    address: AddressT | None = None
    mac: MacT
    port: PortRef | None = Field(None, description="default output port of routes via it")

    @model_validator(mode="after")
    def _named(self) -> Self:
        if self.name is None and self.address is None:
            raise ValueError("a neighbour needs a name or an address")
        return self

    def label(self) -> str:
        return self.name or str(self.address)


class Route(_Model):
    """A route: prefix, next hop (``via``; none = directly connected) and output port."""

    prefix: PrefixT
    via: str | None = Field(None, description="neighbour name or address")
    port: PortRef | None = Field(None, description="output port name or index")

    def describe(self) -> str:
        via = f" via {self.via}" if self.via is not None else ""
        port = f" port {self.port}" if self.port is not None else ""
        return f"{self.prefix}{via}{port}"


@dataclass(frozen=True)
class Resolved:
    """A route resolved against ports and neighbours: output port index and next-hop index
    (``-1``: connected, the neighbour is the packet's destination)."""

    route: Route
    port: int
    nexthop: int


_ROUTES = TypeAdapter(list[Route])


class RouteFileError(ValueError):
    """A routes file could not be read or holds invalid routes."""


def _text_route(line: str) -> dict[str, Any]:
    words = line.split()
    out: dict[str, Any] = {"prefix": words[0]}
    rest = words[1:]
    if len(rest) % 2:
        raise ValueError("expected 'PREFIX [via NEXTHOP] [port PORT]'")
    for key, value in zip(rest[::2], rest[1::2], strict=True):
        if key not in ("via", "port") or key in out:
            raise ValueError(f"unexpected {key!r} (expected 'PREFIX [via NEXTHOP] [port PORT]')")
        out[key] = int(value) if key == "port" and value.isdigit() else value
    return out


def _errors(exc: ValidationError, at: str) -> list[str]:
    out = []
    for e in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        out.append(f"{at}{loc}: {msg}")
    return out


def parse_route_lines(text: str, where: str) -> list[tuple[str, Route]]:
    """Routes of the text form, each with its ``file:line`` label; every error reported."""
    routes: list[tuple[str, Route]] = []
    errors: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        at = f"{where}:{lineno}"
        try:
            routes.append((at, Route.model_validate(_text_route(line))))
        except ValidationError as exc:
            errors.extend(_errors(exc, at))
        except ValueError as exc:
            errors.append(f"{at}: {exc}")
    if errors:
        raise RouteFileError("; ".join(errors))
    return routes


def load_routes_file(path: str | Path) -> list[tuple[str, Route]]:
    """Read and validate a routes file (YAML list or text form, chosen by the name)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RouteFileError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if p.suffix.lower() not in YAML_SUFFIXES:
        return parse_route_lines(text, str(p))
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RouteFileError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, list):
        raise RouteFileError(f"{p}: expected a YAML list of routes")
    try:
        routes = _ROUTES.validate_python(data)
    except ValidationError as exc:
        raise RouteFileError("; ".join(_errors(exc, str(p)))) from None
    return [(f"{p}[{i}]", r) for i, r in enumerate(routes)]


def default_port_mac(index: int) -> str:
    """The source MAC of port ``index`` when none is configured: ``02:00:00:00:PP:PP``
    (locally administered), with PP:PP = index + 1."""
    n = index + 1
    return f"02:00:00:00:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"


class RouterConfig(ElementConfig):
    """Ports, neighbours and routes of a ``router`` (see the module docstring)."""

    ports: list[PortSpec] = Field(
        default_factory=lambda: [PortSpec(name="out")],
        min_length=1,
        description="output ports in order: names or {name, mac}",
    )
    neighbours: list[Neighbour] = Field(default_factory=list, description="next hops")
    routes: list[Route] = Field(default_factory=list, description="longest prefix wins")
    routes_file: str | None = Field(
        None, description="more routes (YAML list or text form), relative to the graph's folder"
    )
    arp_port: str | None = Field(None, description="port for ARP frames (default: drop)")
    _file_routes: list[tuple[str, Route]] = PrivateAttr(default_factory=list)
    _resolved: list[Resolved] = PrivateAttr(default_factory=list)

    _routes_path = field_validator("routes_file")(input_path)

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        if self.routes_file is not None:
            self._file_routes = load_routes_file(self.routes_file)
        errors = _check_ports(self) + _check_neighbours(self)
        if not errors:
            resolved, errors = resolve_routes(self, self.labelled_routes())
            self._resolved = resolved
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def port_names(self) -> list[str]:
        return [p.name for p in self.ports]

    def port_macs(self) -> list[str]:
        return [p.mac or default_port_mac(i) for i, p in enumerate(self.ports)]

    def labelled_routes(self) -> list[tuple[str, Route]]:
        """Inline routes (``routes[i]``) then those of ``routes_file``, with their labels."""
        return [(f"routes[{i}]", r) for i, r in enumerate(self.routes)] + self._file_routes

    def resolved(self) -> list[Resolved]:
        """Every route with its output port index and next-hop index."""
        return list(self._resolved)


def port_index(ref: str | int, names: list[str]) -> int:
    """The index of port ``ref`` (a name or an index); ``ValueError`` if there is none."""
    if isinstance(ref, int) and not isinstance(ref, bool):
        if 0 <= ref < len(names):
            return ref
        raise ValueError(f"port index {ref} is out of range (ports: 0..{len(names) - 1})")
    if ref in names:
        return names.index(str(ref))
    raise ValueError(f"{ref!r} is not a port (ports: {', '.join(names)})")


def _check_ports(cfg: RouterConfig) -> list[str]:
    names = cfg.port_names()
    errors = [
        f"ports[{i}].name: duplicate port name {n!r}" for i, n in enumerate(names) if n in names[:i]
    ]
    if cfg.arp_port is not None and cfg.arp_port not in names:
        errors.append(f"arp_port: {cfg.arp_port!r} is not a port (ports: {', '.join(names)})")
    return errors


def _check_neighbours(cfg: RouterConfig) -> list[str]:
    errors: list[str] = []
    names = cfg.port_names()
    seen_name: set[str] = set()
    seen_addr: set[IPAddress] = set()
    for i, nb in enumerate(cfg.neighbours):
        at = f"neighbours[{i}]"
        if nb.name is not None:
            if nb.name in seen_name:
                errors.append(f"{at}.name: duplicate neighbour name {nb.name!r}")
            seen_name.add(nb.name)
        if nb.address is not None:
            if nb.address in seen_addr:
                errors.append(f"{at}.address: duplicate neighbour address {nb.address}")
            seen_addr.add(nb.address)
        if nb.port is not None:
            try:
                port_index(nb.port, names)
            except ValueError as exc:
                errors.append(f"{at}.port: {exc}")
    return errors


def _find_neighbour(via: str, neighbours: list[Neighbour]) -> int:
    for i, nb in enumerate(neighbours):
        if nb.name == via:
            return i
    try:
        addr = ipaddress.ip_address(via.strip())
    except ValueError:
        return -1
    return next((i for i, nb in enumerate(neighbours) if nb.address == addr), -1)


def _resolve_one(route: Route, cfg: RouterConfig) -> Resolved:
    """Resolve one route; ``ValueError`` with a ``.field: message`` text if it cannot be."""
    names = cfg.port_names()
    nexthop, port_ref = -1, route.port
    if route.via is not None:
        nexthop = _find_neighbour(route.via, cfg.neighbours)
        if nexthop < 0:
            known = ", ".join(nb.label() for nb in cfg.neighbours) or "none declared"
            raise ValueError(f".via: {route.via!r} is not a declared neighbour ({known})")
        if port_ref is None:
            port_ref = cfg.neighbours[nexthop].port
    if port_ref is None:
        why = "its neighbour has no port" if route.via is not None else "it is connected"
        raise ValueError(f".port: missing ({why}; give the output port)")
    try:
        port = port_index(port_ref, names)
    except ValueError as exc:
        raise ValueError(f".port: {exc}") from None
    return Resolved(route, port, nexthop)


def resolve_routes(
    cfg: RouterConfig, routes: list[tuple[str, Route]]
) -> tuple[list[Resolved], list[str]]:
    """Resolve ``(label, route)`` pairs against ``cfg``'s ports and neighbours; return the
    resolved routes and every error (duplicate prefixes included)."""
    out: list[Resolved] = []
    errors: list[str] = []
    first: dict[IPNetwork, str] = {}
    for label, route in routes:
        if route.prefix in first:
            errors.append(f"{label}.prefix: {route.prefix} duplicates {first[route.prefix]}")
            continue
        first[route.prefix] = label
        try:
            out.append(_resolve_one(route, cfg))
        except ValueError as exc:
            errors.append(f"{label}{exc}")
    return out, errors
