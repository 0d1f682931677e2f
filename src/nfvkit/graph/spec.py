"""The graph spec: what a graph file says, before anything is built.

A graph file is YAML::

    name: edge
    elements:
      fw: {type: acl, config: {default: deny, rules: [...]}}
    graph: |
      input -> check_length -> fw -> output
      cls[web] -> fw

``graph`` holds links in the compact text form (one chain per line or per ``;``):

* ``a -> b -> c`` links output port 0 of ``a`` to ``b``, and ``b`` to ``c``;
* ``a[name] -> b`` picks ``a``'s output port by name or index;
* ``x :: type`` declares an element with the default configuration inline;
* a name that is not declared but is an element type (``discard``, ``counter``) creates a new
  anonymous element of that type at each use;
* ``input`` and ``output`` are the graph's ends, bound when it runs (a capture file, a sink).

``links`` may instead list ``{from: a, port: name, to: b}`` mappings. A whole graph can also be
given as text alone (``nfv run 'input -> counter -> output'``).

Every problem is reported with its location, and the line of the file when there is one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nfvkit.errors import ConfigError, InputFileError

MAX_GRAPH_BYTES = 4 << 20


class ElementSpec(BaseModel):
    """One declared element: its type and its configuration."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


class LinkSpec(BaseModel):
    """A link from an element's output port to another element's input."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    src: str = Field(alias="from")
    port: str | int = 0
    to: str


class GraphSpec(BaseModel):
    """A whole graph file."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = "graph"
    description: str = ""
    elements: dict[str, ElementSpec] = Field(default_factory=dict)
    graph: str | list[str] = ""
    links: list[LinkSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Ref:
    """One element reference in a text-form chain."""

    name: str
    type: str | None  # from ``name :: type``
    in_port: str | None
    out_port: str | None


@dataclass(frozen=True)
class Link:
    """A resolved-by-name link with the place it was written."""

    src: str
    port: str | int
    dst: str
    where: str


_REF = re.compile(
    r"^(?:\[(?P<inp>\w+)\]\s*)?(?P<name>[A-Za-z_][\w.-]*)"
    r"(?:\s*::\s*(?P<type>[A-Za-z_]\w*))?(?:\s*\[(?P<out>\w+)\])?$"
)


def parse_chain(text: str, where: str) -> list[Ref]:
    """Parse one ``a -> b[p] -> c`` chain; raise ConfigError naming the bad part."""
    parts = [p.strip() for p in text.split("->")]
    refs: list[Ref] = []
    for i, part in enumerate(parts):
        m = _REF.match(part)
        if not part or m is None:
            shown = part or "(nothing)"
            raise ConfigError([(where, f"cannot read element reference {shown!r} (#{i + 1})")])
        refs.append(Ref(m["name"], m["type"], m["inp"], m["out"]))
    if refs[0].in_port is not None:
        raise ConfigError([(where, f"{refs[0].name!r} starts the chain: no input port to pick")])
    if refs[-1].out_port is not None:
        raise ConfigError([(where, f"{refs[-1].name!r} ends the chain: nothing after its port")])
    return refs


def statements(text: str, first_line: int | None, where: str) -> list[tuple[str, str]]:
    """Split text-form links into ``(chain, location)`` pairs, dropping comments."""
    out: list[tuple[str, str]] = []
    for n, raw in enumerate(text.splitlines()):
        line = raw.split("#", 1)[0]
        loc = f"{where} line {n + 1}" if first_line is None else f"line {first_line + n}"
        out.extend((stmt.strip(), loc) for stmt in line.split(";") if stmt.strip())
    return out


Locator = Callable[[tuple[str | int, ...]], int | None]


def _node_locator(root: yaml.Node | None) -> Locator:
    """Map a path of keys/indices to the 1-based line of that node in the YAML source."""

    def locate(path: tuple[str | int, ...]) -> int | None:
        node = root
        line = None if node is None else node.start_mark.line + 1
        for key in path:
            if isinstance(node, yaml.MappingNode):
                hit = [v for k, v in node.value if getattr(k, "value", None) == str(key)]
                node = hit[0] if hit else None
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                node = node.value[key] if key < len(node.value) else None
            else:
                node = None
            if node is None:
                return line
            line = node.start_mark.line + 1
        return line

    return locate


def location(path: tuple[str | int, ...], locate: Locator | None) -> str:
    """A readable location: ``line 12: elements.fw.config.rules[3].src``."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    line = locate(path) if locate else None
    text = text or "(top level)"
    return f"line {line}: {text}" if line else text


def validation_errors(
    err: ValidationError, prefix: tuple[str | int, ...], locate: Locator | None
) -> list[tuple[str, str]]:
    """Turn a pydantic error into ``(location, message)`` pairs."""
    out = []
    for e in err.errors():
        path = prefix + tuple(e["loc"])
        out.append((location(path, locate), e["msg"]))
    return out


@dataclass(frozen=True)
class LoadedGraph:
    """A graph spec with the links of both forms, each knowing where it was written."""

    spec: GraphSpec
    chains: list[tuple[str, str]]  # (text chain, location)
    links: list[Link]
    locate: Locator | None
    source: str


def _safe_load(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "yaml"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([(where, f"not valid YAML: {problem}")], where=source) from None
    except RecursionError:
        raise ConfigError([("yaml", "nesting too deep")], where=source) from None
    return data, node


def load_text(text: str, source: str = "<graph>") -> LoadedGraph:
    """Load a graph from YAML text, or from a bare text-form chain such as ``a -> b``."""
    if len(text) > MAX_GRAPH_BYTES:
        raise ConfigError([("file", f"larger than {MAX_GRAPH_BYTES} bytes")], where=source)
    if "->" in text and ":" not in text.replace("::", ""):
        spec = GraphSpec(name="inline", graph=text)
        return LoadedGraph(spec, statements(text, None, "graph"), [], None, source)
    data, node = _safe_load(text, source)
    locate = _node_locator(node)
    if not isinstance(data, dict):
        raise ConfigError([("(top level)", "a graph file is a YAML mapping")], where=source)
    try:
        spec = GraphSpec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(validation_errors(err, (), locate), where=source) from None
    return LoadedGraph(spec, _chains(spec, node, locate), _links(spec, locate), locate, source)


def _chains(spec: GraphSpec, node: yaml.Node | None, locate: Locator) -> list[tuple[str, str]]:
    if isinstance(spec.graph, str):
        start = locate(("graph",))
        graph_node = _child(node, "graph")
        block = isinstance(graph_node, yaml.ScalarNode) and graph_node.style in ("|", ">")
        first = None if start is None else start + (1 if block else 0)
        return statements(spec.graph, first, "graph")
    out: list[tuple[str, str]] = []
    for i, item in enumerate(spec.graph):
        out.extend(statements(item, locate(("graph", i)), f"graph[{i}]"))
    return out


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == key:
                return v  # type: ignore[no-any-return]
    return None


def _links(spec: GraphSpec, locate: Locator) -> list[Link]:
    return [
        Link(link.src, link.port, link.to, location(("links", i), locate))
        for i, link in enumerate(spec.links)
    ]


def load_file(path: Path) -> LoadedGraph:
    """Load a graph file; InputFileError if it cannot be read."""
    try:
        if path.stat().st_size > MAX_GRAPH_BYTES:
            raise ConfigError([("file", f"larger than {MAX_GRAPH_BYTES} bytes")], where=str(path))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError("no such graph file", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read graph file: {exc}", where=str(path)) from None
    return load_text(text, str(path))


def load(graph: str) -> LoadedGraph:
    """Load ``graph``: a file path, or a text-form chain given inline."""
    path = Path(graph)
    if "->" in graph and not path.exists():
        return load_text(graph, "<command line>")
    return load_file(path)
