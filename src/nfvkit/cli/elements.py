"""``nfv elements``: list the element library, or show one element in full."""

from __future__ import annotations

import inspect
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nfvkit.elements.base import Element
from nfvkit.elements.registry import element_class, known_types
from nfvkit.errors import ConfigError


def _summary(cls: type[Element]) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.splitlines()[0] if doc else ""


def _fields(cls: type[Element]) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, f in cls.Config.model_fields.items():
        key = f.alias or name
        default = "required" if f.is_required() else repr(f.get_default(call_default_factory=True))
        rows.append((key, str(f.annotation).replace("typing.", ""), default, f.description or ""))
    return rows


def _show(cls: type[Element], console: Console) -> None:
    console.print(f"[bold]{cls.type_name}[/bold]: {escape(_summary(cls))}")
    module_doc = inspect.getdoc(inspect.getmodule(cls)) or ""
    if module_doc:
        console.print(module_doc, markup=False, highlight=False)
    ports = ", ".join(cls.output_ports) if cls.output_ports else "none (sink)"
    console.print(f"inputs: {cls.input_ports}   outputs: {ports} (some depend on the config)")
    table = Table("config key", "type", "default", "meaning", title="configuration")
    for row in _fields(cls):
        table.add_row(*row)
    console.print(table)
    if cls.drop_reasons:
        console.print("drop reasons: " + ", ".join(r.name for r in cls.drop_reasons))
    handlers = Table("handler", "kind", "meaning", title="handlers")
    for h in cls.handlers.values():
        handlers.add_row(h.name, h.kind, h.doc)
    console.print(handlers)


def elements(
    name: Annotated[str | None, typer.Argument(help="show this element in full")] = None,
) -> None:
    """List the element library with each element's documentation and config fields."""
    console = Console()
    if name is not None:
        try:
            cls = element_class(name)
        except KeyError as exc:
            raise ConfigError([("element", str(exc.args[0]))]) from None
        _show(cls, console)
        return
    table = Table("element", "what it does", "config keys", title="nfvkit elements")
    for type_name in known_types():
        cls = element_class(type_name)
        keys = ", ".join(row[0] for row in _fields(cls)) or "-"
        table.add_row(type_name, _summary(cls), keys)
    console.print(table)
