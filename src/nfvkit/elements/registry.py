"""Finding element classes by type name.

Built-in elements are listed here by module path and imported only when a graph uses them, so
the command line starts fast. User elements (a VNF package's own Python module) register with
:func:`register`.
"""

from __future__ import annotations

import difflib
import importlib

from nfvkit.elements.base import Element

BUILTIN: dict[str, str] = {
    "acl": "nfvkit.elements.acl:Acl",
    "check_length": "nfvkit.elements.check_length:CheckLength",
    "classifier": "nfvkit.elements.classifier:Classifier",
    "counter": "nfvkit.elements.counter:Counter",
    "discard": "nfvkit.elements.discard:Discard",
    "dpi": "nfvkit.elements.dpi:Dpi",
    "flow_monitor": "nfvkit.elements.flow_monitor:FlowMonitor",
    "from_pcap": "nfvkit.elements.from_pcap:FromPcap",
    "from_memory": "nfvkit.elements.from_memory:FromMemory",
    "lb": "nfvkit.elements.lb:Lb",
    "nat": "nfvkit.elements.nat:Nat",
    "policer": "nfvkit.elements.policer:Policer",
    "queue": "nfvkit.elements.queue:Queue",
    "router": "nfvkit.elements.router:Router",
    "sink": "nfvkit.elements.sink:Sink",
    "tee": "nfvkit.elements.tee:Tee",
    "to_pcap": "nfvkit.elements.to_pcap:ToPcap",
    "vlan_pop": "nfvkit.elements.vlan_pop:VlanPop",
    "vlan_push": "nfvkit.elements.vlan_push:VlanPush",
}

_REGISTERED: dict[str, type[Element]] = {}


def register(cls: type[Element]) -> type[Element]:
    """Register a user element class under its ``type_name`` (usable as a decorator)."""
    if not cls.type_name:
        raise ValueError(f"{cls.__name__} has no type_name")
    if cls.type_name in BUILTIN:
        raise ValueError(f"element type {cls.type_name!r} is a built-in")
    _REGISTERED[cls.type_name] = cls
    return cls


def known_types() -> list[str]:
    """Every element type name, built-in and registered, sorted."""
    return sorted({*BUILTIN, *_REGISTERED})


def suggest(name: str) -> str:
    """A ' (did you mean ...?)' hint for a mistyped element type, or ''."""
    close = difflib.get_close_matches(name, known_types(), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def element_class(type_name: str) -> type[Element]:
    """The element class for ``type_name``; ``KeyError`` with a hint if unknown."""
    if type_name in _REGISTERED:
        return _REGISTERED[type_name]
    path = BUILTIN.get(type_name)
    if path is None:
        raise KeyError(f"unknown element type {type_name!r}{suggest(type_name)}")
    module_name, _, class_name = path.partition(":")
    cls: type[Element] = getattr(importlib.import_module(module_name), class_name)
    return cls
