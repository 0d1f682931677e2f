"""The ``Element`` base class: declared ports, a frozen config model, counters, runtime
handlers and an explicit life cycle.

An element subclass declares, as class-level data:

* ``type_name`` -- the name graphs use for it (``acl``, ``vlan_push``...);
* ``Config`` -- a frozen pydantic model; unknown keys are rejected;
* ``input_ports`` and ``output_ports`` (or :meth:`Element.outputs_for` when the ports depend on
  the configuration);
* ``drop_reasons`` -- every reason it may drop a packet for;
* runtime handlers, with the :func:`read_handler` / :func:`write_handler` decorators.

The contract of the data path is :meth:`Element.process`: it receives a batch whose ``fate``
column is all zeros (output port 0), writes a port index or a drop fate for the packets that go
elsewhere, and returns what to forward: usually the same batch, a list of batches (a tee's
copies, a queue's bursts), or ``None`` when it holds the packets (a queue). Each returned batch
carries its own fates. :meth:`Element.flush` hands over what is held at the end of a stream.

Life cycle: ``configure`` (construction from a validated config) -> ``initialize`` (allocate
tables) -> ``start`` -> ``stop`` -> ``cleanup``; the runtime undoes only the stages that were
reached, in reverse, when one fails.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
from numba import njit
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationInfo

from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import MAX_REASONS, DropReason, reason_by_code


def input_path(value: str | None, info: ValidationInfo) -> str | None:
    """A file an element reads, resolved against the graph file's folder when relative.

    Use as ``field_validator("rules_file")(input_path)``-style helper inside a config model;
    without a ``base_dir`` in the validation context (an element built in Python) the path is
    left relative to the working directory.
    """
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if value is None or base is None or Path(value).is_absolute():
        return value
    return str(Path(base) / value)


class ElementConfig(BaseModel):
    """Base of every element's configuration: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Stage(enum.IntEnum):
    """How far an element has come in its life cycle."""

    CONFIGURED = 1
    INITIALIZED = 2
    STARTED = 3
    STOPPED = 4
    CLEANED = 5


@dataclass(frozen=True)
class Handler:
    """A runtime knob of an element: read returns a JSON-able value; write takes one."""

    name: str
    kind: Literal["read", "write"]
    doc: str
    method: str


F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E", bound="Element")

Emit = PacketBatch | list[PacketBatch] | None
"""What ``process`` and ``flush`` return: a batch, several batches, or nothing."""


def read_handler(name: str, doc: str) -> Callable[[F], F]:
    """Mark a method ``(self) -> JSON-able`` as a read handler called ``name``."""

    def mark(fn: F) -> F:
        fn._nfv_handler = Handler(name, "read", doc, fn.__name__)  # type: ignore[attr-defined]
        return fn

    return mark


def write_handler(name: str, doc: str) -> Callable[[F], F]:
    """Mark a method ``(self, value) -> JSON-able | None`` as a write handler called ``name``."""

    def mark(fn: F) -> F:
        fn._nfv_handler = Handler(name, "write", doc, fn.__name__)  # type: ignore[attr-defined]
        return fn

    return mark


@njit(cache=True, nogil=True)
def _tally(
    fate: NDArray[np.int16],
    length: NDArray[np.int32],
    tx_packets: NDArray[np.int64],
    tx_bytes: NDArray[np.int64],
    drops: NDArray[np.int64],
) -> int:
    """Count packets per output port and per drop reason; return how many left on port 0."""
    nports = tx_packets.shape[0]
    on_zero = 0
    for i in range(fate.shape[0]):
        f = fate[i]
        if f == 0:
            on_zero += 1
            tx_bytes[0] += length[i]
        elif f > 0 and f < nports:
            tx_packets[f] += 1
            tx_bytes[f] += length[i]
        else:
            drops[-f if f < 0 else 0] += 1
    tx_packets[0] += on_zero
    return on_zero


class ElementStats:
    """Packet and byte counters of one element: received, sent per port, dropped per reason."""

    def __init__(self, nports: int) -> None:
        self.rx_packets = 0
        self.rx_bytes = 0
        self.tx_packets = np.zeros(max(nports, 1), dtype=np.int64)
        self.tx_bytes = np.zeros(max(nports, 1), dtype=np.int64)
        self.drops = np.zeros(MAX_REASONS, dtype=np.int64)

    def receive(self, batch: PacketBatch) -> None:
        self.rx_packets += len(batch)
        self.rx_bytes += batch.nbytes

    def tally(self, batch: PacketBatch) -> int:
        """Count the fates of ``batch``; return how many packets go to port 0."""
        return int(_tally(batch.fate, batch.length, self.tx_packets, self.tx_bytes, self.drops))

    def drop(self, reason: DropReason, count: int = 1) -> None:
        """Count packets an element dropped without passing them through a fate column."""
        self.drops[reason.code] += count

    @property
    def dropped(self) -> int:
        return int(self.drops.sum())

    def drops_by_reason(self) -> dict[str, int]:
        codes = np.flatnonzero(self.drops)
        return {
            ("invalid_fate" if c == 0 else reason_by_code(int(c)).name): int(self.drops[c])
            for c in codes
        }

    def reset(self) -> None:
        self.rx_packets = 0
        self.rx_bytes = 0
        self.tx_packets[:] = 0
        self.tx_bytes[:] = 0
        self.drops[:] = 0


class Element:
    """Base class of every element (see the module docstring for the contract)."""

    type_name: ClassVar[str] = ""
    Config: ClassVar[type[ElementConfig]] = ElementConfig
    input_ports: ClassVar[int] = 1
    output_ports: ClassVar[tuple[str, ...]] = ("out",)
    drop_reasons: ClassVar[tuple[DropReason, ...]] = ()
    handlers: ClassVar[dict[str, Handler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[str, Handler] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                h = getattr(attr, "_nfv_handler", None)
                if isinstance(h, Handler):
                    table[h.name] = h
        cls.handlers = table

    def __init__(self, name: str, config: ElementConfig) -> None:
        if not isinstance(config, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}")
        self.name = name
        self.config = config
        self.outputs = self.outputs_for(config)
        self.stats = ElementStats(len(self.outputs))
        self.stage = Stage.CONFIGURED

    @classmethod
    def outputs_for(cls, config: ElementConfig) -> tuple[str, ...]:
        """The output port names for ``config`` (the class's ``output_ports`` by default)."""
        return cls.output_ports

    @classmethod
    def configure(
        cls: type[E], name: str, raw: dict[str, Any] | None = None, base_dir: Path | None = None
    ) -> E:
        """Validate ``raw`` into this element's config model and build the element.

        ``base_dir`` is where relative input files of the config are found (a graph file's
        folder); see :func:`input_path`.
        """
        context = {"base_dir": base_dir} if base_dir is not None else None
        return cls(name, cls.Config.model_validate(raw or {}, context=context))

    # life cycle -------------------------------------------------------------------------------

    def initialize(self) -> None:
        """Allocate tables and other resources; may raise."""

    def start(self) -> None:
        """Called once before the first batch."""

    def stop(self) -> None:
        """Called once after the last batch (after :meth:`flush`)."""

    def cleanup(self) -> None:
        """Release what :meth:`initialize` allocated."""

    # data path --------------------------------------------------------------------------------

    def process(self, batch: PacketBatch) -> Emit:
        """Set fates for ``batch`` (all 0 on entry) and return what to forward."""
        return batch

    def flush(self) -> Emit:
        """Hand over packets still held at the end of a stream (with fates set)."""
        return None

    # handlers ---------------------------------------------------------------------------------

    def call_handler(self, name: str, value: Any = None) -> Any:
        """Read (``value`` is None) or write a handler by name."""
        h = self.handlers.get(name)
        if h is None:
            raise KeyError(f"element {self.name!r} ({self.type_name}) has no handler {name!r}")
        method = getattr(self, h.method)
        return method() if h.kind == "read" else method(value)

    @read_handler("config", "the element's configuration")
    def read_config(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    @read_handler("counters", "packets/bytes received, sent per output port, dropped by reason")
    def read_counters(self) -> dict[str, Any]:
        s = self.stats
        return {
            "rx_packets": s.rx_packets,
            "rx_bytes": s.rx_bytes,
            "tx_packets": {p: int(s.tx_packets[i]) for i, p in enumerate(self.outputs)},
            "tx_bytes": {p: int(s.tx_bytes[i]) for i, p in enumerate(self.outputs)},
            "drops": s.drops_by_reason(),
        }

    @write_handler("reset_counters", "set every counter of the element to zero")
    def reset_counters(self, value: Any = None) -> None:
        self.stats.reset()
