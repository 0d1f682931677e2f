"""Packet fates: every packet leaves an element on a named output port or is dropped for a
named reason.

A batch's ``fate`` column holds, per packet, either an output-port index (``>= 0``) or the
negated code of a :class:`DropReason` (``< 0``). Reasons are declared once, by the module that
drops for them, and looked up by name everywhere else (counters, CLI, API).

Codes are assigned in declaration order, so they may differ between processes: Numba kernels
must receive drop codes as arguments, never read them as compile-time globals (a cached kernel
would keep a stale code).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_REASONS = 1024


@dataclass(frozen=True)
class DropReason:
    """A named reason for dropping a packet."""

    code: int
    name: str
    doc: str

    @property
    def fate(self) -> int:
        """The value written into a batch's fate column for a packet dropped for this reason."""
        return -self.code


_BY_NAME: dict[str, DropReason] = {}
_BY_CODE: list[DropReason | None] = [None]


def drop_reason(name: str, doc: str) -> DropReason:
    """Declare (or look up, if already declared with the same doc) a drop reason."""
    existing = _BY_NAME.get(name)
    if existing is not None:
        if existing.doc != doc:
            raise ValueError(f"drop reason {name!r} declared twice with different meanings")
        return existing
    if len(_BY_CODE) >= MAX_REASONS:
        raise RuntimeError(f"more than {MAX_REASONS - 1} drop reasons declared")
    reason = DropReason(code=len(_BY_CODE), name=name, doc=doc)
    _BY_CODE.append(reason)
    _BY_NAME[name] = reason
    return reason


def reason_by_name(name: str) -> DropReason:
    """Return the drop reason called ``name``; ``KeyError`` if none is declared."""
    return _BY_NAME[name]


def reason_by_code(code: int) -> DropReason:
    """Return the drop reason with ``code`` (positive), or the negated fate value."""
    code = abs(code)
    reason = _BY_CODE[code] if 0 < code < len(_BY_CODE) else None
    if reason is None:
        raise KeyError(f"no drop reason with code {code}")
    return reason


def all_reasons() -> list[DropReason]:
    """Every declared drop reason, in code order."""
    return [r for r in _BY_CODE if r is not None]


UNCONNECTED = drop_reason("unconnected_port", "sent to an output port that nothing is linked to")
