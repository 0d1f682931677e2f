"""Building a graph: resolve every element and link, check the whole graph, report every error.

Checks, all made before any element is initialized: element types exist; configs validate;
links name known elements and ports; each output port is linked exactly once; sources are never
link targets and sinks never link sources; every element is reachable from ``input``; the graph
has no cycle. Errors are collected and raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from nfvkit.elements.base import Element
from nfvkit.elements.registry import element_class
from nfvkit.elements.source import Source
from nfvkit.errors import ConfigError
from nfvkit.graph.spec import Link, LoadedGraph, Ref, location, parse_chain, validation_errors

INPUT = "input"
OUTPUT = "output"
RESERVED = (INPUT, OUTPUT)


@dataclass
class Node:
    """An element in a built graph, with the node each of its output ports leads to."""

    name: str
    element: Element
    targets: list[int] = field(default_factory=list)  # per output port; -1 = unlinked


@dataclass
class Graph:
    """A validated graph: nodes in topological order, node 0 the ``input`` source."""

    name: str
    nodes: list[Node]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no element {name!r} in graph {self.name!r}")

    @property
    def source(self) -> Source:
        src = self.nodes[0].element
        assert isinstance(src, Source)
        return src


class _Builder:
    """Collects elements and links from a loaded spec, and every error on the way."""

    def __init__(self, loaded: LoadedGraph, bindings: dict[str, Element]) -> None:
        self.loaded = loaded
        self.errors: list[tuple[str, str]] = []
        self.elements: dict[str, Element] = dict(bindings)
        self.links: list[Link] = list(loaded.links)
        self.broken_ports: set[tuple[str, int]] = set()  # linked to an element that failed
        self._anon = itertools.count(1)
        source = Path(loaded.source)
        self.base_dir = source.parent if source.is_file() else None

    def error(self, where: str, message: str) -> None:
        self.errors.append((where, message))

    def declare(self) -> None:
        locate = self.loaded.locate
        for name, spec in self.loaded.spec.elements.items():
            where = location(("elements", name), locate)
            if name in RESERVED:
                self.error(where, f"{name!r} is reserved for the graph's end")
                continue
            self._make(name, spec.type, spec.config, ("elements", name), where)

    def _make(
        self,
        name: str,
        type_name: str,
        raw: dict[str, object],
        path: tuple[str | int, ...],
        where: str,
    ) -> None:
        try:
            cls = element_class(type_name)
        except KeyError as exc:
            self.error(location((*path, "type"), self.loaded.locate), str(exc.args[0]))
            return
        try:
            self.elements[name] = cls.configure(name, dict(raw), self.base_dir)
        except ValidationError as err:
            self.errors.extend(validation_errors(err, (*path, "config"), self.loaded.locate))
        except ValueError as exc:
            self.error(where, str(exc))

    def chains(self) -> None:
        for text, where in self.loaded.chains:
            try:
                refs = parse_chain(text, where)
            except ConfigError as err:
                self.errors.extend(err.errors)
                continue
            names = [self._resolve(ref, where) for ref in refs]
            for a, b, ref_a, ref_b in zip(names, names[1:], refs, refs[1:], strict=False):
                if ref_b.in_port not in (None, "0", "in"):
                    self.error(where, f"{ref_b.name!r} has one input; [{ref_b.in_port}] is none")
                if a is not None and b is not None:
                    self.links.append(Link(a, _port(ref_a.out_port), b, where))
                elif a is not None:
                    idx = _port_index(self.elements[a], _port(ref_a.out_port))
                    self.broken_ports.add((a, 0 if idx is None else idx))

    def _resolve(self, ref: Ref, where: str) -> str | None:
        """The element name a reference stands for, declaring inline elements."""
        if ref.type is not None:
            if ref.name in self.elements:
                self.error(where, f"{ref.name!r} is declared more than once")
                return ref.name
            self._make(ref.name, ref.type, {}, ("graph",), where)
            return ref.name if ref.name in self.elements else None
        if ref.name in self.elements:
            return ref.name
        if ref.name in self.loaded.spec.elements:
            return None  # declared, but its config failed: already reported
        try:
            cls = element_class(ref.name)
        except KeyError as exc:
            self.error(where, f"{exc.args[0]} (and no element of that name is declared)")
            return None
        anon = f"{ref.name}@{next(self._anon)}"
        try:
            self.elements[anon] = cls.configure(anon, {})
        except ValidationError as err:
            needs = ", ".join(str(e["loc"][0]) for e in err.errors() if e["loc"])
            self.error(where, f"element type {ref.name!r} needs a config ({needs}): declare it")
            return None
        return anon


def _port(text: str | None) -> str | int:
    if text is None:
        return 0
    return int(text) if text.isdigit() else text


def _port_index(el: Element, port: str | int) -> int | None:
    if isinstance(port, int):
        return port if 0 <= port < len(el.outputs) else None
    return el.outputs.index(port) if port in el.outputs else None


def _wire(b: _Builder) -> dict[str, list[str | None]]:
    """Resolve links into per-port targets; report bad ports and double links."""
    targets = {name: [None] * len(el.outputs) for name, el in b.elements.items()}
    out: dict[str, list[str | None]] = {k: list(v) for k, v in targets.items()}
    for link in b.links:
        src, dst = b.elements.get(link.src), b.elements.get(link.dst)
        if src is None:
            if link.src not in b.loaded.spec.elements:
                b.error(link.where, f"no element {link.src!r}")
            continue
        idx = _port_index(src, link.port)
        if dst is None:
            if link.dst not in b.loaded.spec.elements:
                b.error(link.where, f"no element {link.dst!r}")
            if idx is not None:
                b.broken_ports.add((link.src, idx))
            continue
        if idx is None:
            ports = ", ".join(src.outputs) or "none: it is a sink"
            b.error(link.where, f"{link.src!r} has no output port {link.port!r} (ports: {ports})")
            continue
        if dst.input_ports == 0:
            b.error(link.where, f"{link.dst!r} is a source: nothing can link into it")
            continue
        if out[link.src][idx] is not None:
            b.error(link.where, f"{link.src}[{src.outputs[idx]}] is linked twice: use a tee")
            continue
        out[link.src][idx] = link.dst
    return out


def _check_ports(b: _Builder, wiring: dict[str, list[str | None]]) -> None:
    for name, ports in wiring.items():
        el = b.elements[name]
        for idx, dst in enumerate(ports):
            if dst is None and (name, idx) not in b.broken_ports:
                b.error(f"element {name!r}", f"output port {el.outputs[idx]!r} is not linked")


def _order(b: _Builder, wiring: dict[str, list[str | None]], quiet: bool) -> list[str]:
    """Topological order from ``input``; reports unreachable elements and cycles.

    With ``quiet`` (earlier errors broke some links) unreachable elements are not reported:
    they follow from the errors already reported.
    """
    reach: set[str] = set()
    todo = deque([INPUT])
    while todo:
        n = todo.popleft()
        if n in reach:
            continue
        reach.add(n)
        todo.extend(d for d in wiring.get(n, []) if d is not None)
    for name in wiring:
        if name not in reach and not quiet:
            b.error(f"element {name!r}", "is not reachable from input")
    indeg = dict.fromkeys(reach, 0)
    for n in reach:
        for d in wiring[n]:
            if d is not None:
                indeg[d] += 1
    ready = deque([INPUT] if INPUT in reach else [])
    order: list[str] = []
    while ready:
        n = ready.popleft()
        order.append(n)
        for d in wiring[n]:
            if d is not None:
                indeg[d] -= 1
                if indeg[d] == 0:
                    ready.append(d)
    stuck = {n for n in reach if n not in order}
    while True:  # keep only elements on (or between) cycles, not those merely after one
        tails = {n for n in stuck if not any(d in stuck for d in wiring[n])}
        if not tails:
            break
        stuck -= tails
    if stuck:
        b.error("graph", f"has a cycle through {', '.join(sorted(stuck))}")
    return order


def _some_failed(b: _Builder) -> bool:
    """Whether a declared element failed to build (so its links are missing)."""
    return any(name not in b.elements for name in b.loaded.spec.elements)


def build(loaded: LoadedGraph, bindings: dict[str, Element]) -> Graph:
    """Build and check the graph, with ``input`` (a Source) and ``output`` bound."""
    if not isinstance(bindings.get(INPUT), Source):
        raise TypeError("the input binding must be a Source element")
    b = _Builder(loaded, bindings)
    b.declare()
    b.chains()
    wiring = _wire(b)
    used = {link.src for link in b.links} | {link.dst for link in b.links}
    if OUTPUT not in used:  # an unused output binding is fine: the graph ends elsewhere
        wiring.pop(OUTPUT, None)
        b.elements.pop(OUTPUT, None)
    _check_ports(b, wiring)
    order = _order(b, wiring, quiet=bool(b.broken_ports) or _some_failed(b))
    if b.errors:
        raise ConfigError(b.errors, where=loaded.source)
    index = {name: i for i, name in enumerate(order)}
    nodes = [
        Node(name, b.elements[name], [index[d] if d else -1 for d in wiring[name]])
        for name in order
    ]
    return Graph(loaded.spec.name, nodes)
