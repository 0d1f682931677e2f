"""A stateful element's exported state: its tables' snapshots, serialisable to bytes and JSON.

The byte form is a NumPy ``.npz`` archive (no pickles): one record array per table plus a JSON
header with the element type, the format version, each table's schema and snapshot time. It
round-trips exactly, so a snapshot can move between processes or hosts and be imported into
another instance of the same element type.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nfvkit.vnf.state.table import StateSchema, TableSnapshot

FORMAT_VERSION = 1


class SnapshotError(ValueError):
    """A snapshot that cannot be read or does not fit the element importing it."""


@dataclass
class StateSnapshot:
    """The per-flow state of one element instance (all of it or a selected part)."""

    element_type: str
    element: str
    tables: dict[str, TableSnapshot] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(t) for t in self.tables.values())

    def to_bytes(self) -> bytes:
        """The ``.npz`` byte form."""
        header = {
            "version": FORMAT_VERSION,
            "element_type": self.element_type,
            "element": self.element,
            "tables": {
                name: {"schema": t.schema.describe(), "taken_at": t.taken_at}
                for name, t in self.tables.items()
            },
        }
        arrays = {f"t_{name}": t.records for name, t in self.tables.items()}
        buf = io.BytesIO()
        np.savez(buf, header=np.array(json.dumps(header)), **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> StateSnapshot:
        """Read the byte form back; :class:`SnapshotError` if it is not one."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                header = json.loads(str(npz["header"]))
                if header.get("version") != FORMAT_VERSION:
                    raise SnapshotError(f"unsupported snapshot version {header.get('version')!r}")
                tables = {
                    name: TableSnapshot(
                        _schema(meta["schema"]), int(meta["taken_at"]), npz[f"t_{name}"]
                    )
                    for name, meta in header["tables"].items()
                }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, SnapshotError):
                raise
            raise SnapshotError(f"not a state snapshot: {exc}") from None
        return cls(header["element_type"], header["element"], tables)

    def to_json(self) -> dict[str, Any]:
        """A readable form (decoded keys), for inspection and handlers; not re-importable."""
        return {
            "element_type": self.element_type,
            "element": self.element,
            "tables": {
                name: {"taken_at": t.taken_at, "entries": t.entries()}
                for name, t in self.tables.items()
            },
        }


def _schema(raw: dict[str, Any]) -> StateSchema:
    key = tuple((str(n), int(w)) for n, w in raw["key"])
    values = tuple((str(n), str(t)) for n, t in raw["values"])
    return StateSchema(key, values)
