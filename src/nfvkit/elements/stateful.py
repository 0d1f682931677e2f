"""``StatefulElement``: the base of elements that keep per-flow state.

Such an element declares its tables' schemas in ``state_schemas`` and builds its
:class:`~nfvkit.vnf.state.StateTable` objects in :meth:`StatefulElement.make_tables` (called by
``initialize``). In return it gets, uniformly:

* :meth:`~StatefulElement.export_state` / :meth:`~StatefulElement.import_state` -- all entries
  or those a selector picks, as a :class:`~nfvkit.vnf.state.StateSnapshot` that serialises to
  bytes; an import checks the element type and every table's schema first;
* :meth:`~StatefulElement.times` -- the per-packet clock its kernels use: packet timestamps, or
  an injected ``clock`` (ns) for live traffic and tests;
* the ``state`` read handler (occupancy and events per table).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.base import Element, ElementConfig, read_handler
from nfvkit.packet.batch import PacketBatch
from nfvkit.vnf.state import ImportResult, StateSchema, StateSnapshot, StateTable
from nfvkit.vnf.state.snapshot import SnapshotError

TableSelector = Callable[[str, NDArray[Any]], NDArray[np.bool_]]
"""Picks entries to export: ``(table name, live records) -> boolean mask``."""


class StatefulElement(Element):
    """An element with per-flow state tables (see the module docstring)."""

    state_schemas: ClassVar[dict[str, StateSchema]] = {}

    def __init__(self, name: str, config: ElementConfig) -> None:
        super().__init__(name, config)
        self.tables: dict[str, StateTable] = {}
        self.clock: Callable[[], int] | None = None

    def make_tables(self) -> dict[str, StateTable]:
        """Build the tables of ``state_schemas`` the configuration asks for (maybe none)."""
        raise NotImplementedError

    def initialize(self) -> None:
        if not self.tables:
            tables = self.make_tables()
            if not set(tables) <= set(self.state_schemas):
                raise ValueError(f"{self.type_name}: make_tables built undeclared tables")
            self.tables = tables

    def cleanup(self) -> None:
        self.tables = {}

    def ensure_tables(self) -> dict[str, StateTable]:
        """The tables, built on first use (an element driven without the life cycle)."""
        if not self.tables:
            self.initialize()
        return self.tables

    def times(self, batch: PacketBatch) -> NDArray[np.int64]:
        """Each packet's time for state timeouts: ``batch.ts``, or the injected clock's now."""
        if self.clock is None:
            return batch.ts
        return np.full(len(batch), self.clock(), dtype=np.int64)

    # export / import ---------------------------------------------------------------------------

    def export_state(self, select: TableSelector | None = None) -> StateSnapshot:
        """The live entries of every table (those ``select`` picks, if given)."""
        snap = StateSnapshot(self.type_name, self.name)
        for name, table in self.ensure_tables().items():
            pick = None if select is None else _bind(select, name)
            snap.tables[name] = table.export(pick)
        return snap

    def import_state(self, snap: StateSnapshot, rebase: bool = False) -> ImportResult:
        """Insert a snapshot's entries (replacing live ones with the same key)."""
        if snap.element_type != self.type_name:
            raise SnapshotError(
                f"cannot import {snap.element_type!r} state into {self.type_name} {self.name!r}"
            )
        tables = self.ensure_tables()
        unknown = set(snap.tables) - set(tables)
        if unknown:
            raise SnapshotError(f"{self.name}: no state table named {sorted(unknown)}")
        for name, part in snap.tables.items():
            if part.schema != tables[name].schema:
                raise SnapshotError(f"{self.name}: table {name!r} has a different schema")
        total = ImportResult()
        for name, part in snap.tables.items():
            total = total + tables[name].import_(part, rebase=rebase)
        return total

    @read_handler("state", "per-flow state tables: capacity, live entries and events")
    def read_state(self) -> dict[str, Any]:
        return {name: t.stats() for name, t in self.ensure_tables().items()}


def _bind(select: TableSelector, name: str) -> Callable[[NDArray[Any]], NDArray[np.bool_]]:
    return lambda records: select(name, records)
