"""The backend pool of an ``lb``: stable slots, health, and the dispatch arrays kernels read.

Every backend holds a *slot* (a small integer) for as long as it is a member; flows store their
backend's slot (and its portable id, see :func:`~.config.backend_id`). A change -- health, or a
new backend list -- is first computed in full as a :class:`Plan` (new members, new Maglev table
and arrays, and the slots whose flows must go), and only then applied, so the data path sees
either the old :class:`Dispatch` or the new one, never a half-built one.

Health: ``up`` backends are in the Maglev table; ``drain`` backends are not (no new flows) but
keep their flows; ``down`` backends are not, and their flows are removed (the *doomed* slots)
so their next packets are dispatched again. A backend whose address or port changes has its
flows removed too (they were translated for the old one); a removed backend's slot may be
given to a new backend only after its flows are gone, which the plan guarantees.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.lblib.config import Backend, Health, backend_id, check_backends
from nfvkit.elements.lblib.maglev import build_table
from nfvkit.vnf.state.keys import address_words


@dataclass(frozen=True)
class Dispatch:
    """What the kernels read about backends, swapped in as one object. Arrays per slot."""

    table: NDArray[np.int32]  # Maglev table: slot of each of the M entries, -1 when none
    addr: NDArray[np.uint32]  # (S, 4) address words
    port: NDArray[np.int32]  # (S,) port, -1: keep the VIP's
    mac: NDArray[np.uint8]  # (S, 6)
    bid: NDArray[np.uint32]  # (S,) portable ids
    build_seconds: float

    @property
    def slots(self) -> int:
        return int(self.addr.shape[0])


@dataclass(frozen=True)
class Member:
    """A backend of the pool: its slot, configuration and health."""

    slot: int
    cfg: Backend
    health: Health


@dataclass(frozen=True)
class Plan:
    """A computed change of the pool, not yet applied."""

    members: dict[str, Member]
    dispatch: Dispatch
    doomed: NDArray[np.bool_]  # per slot (old and new): remove the flows of these slots

    def doomed_names(self, old: Mapping[str, Member]) -> list[str]:
        return sorted(n for n, m in old.items() if self.doomed[m.slot])


def _dispatch(members: Mapping[str, Member], size: int) -> Dispatch:
    t0 = time.perf_counter()
    nslots = max([m.slot + 1 for m in members.values()], default=1)
    addr = np.zeros((nslots, 4), dtype=np.uint32)
    port = np.full(nslots, -1, dtype=np.int32)
    mac = np.zeros((nslots, 6), dtype=np.uint8)
    bid = np.zeros(nslots, dtype=np.uint32)
    for name, m in members.items():
        addr[m.slot] = address_words(str(m.cfg.address))
        port[m.slot] = -1 if m.cfg.port is None else m.cfg.port
        mac[m.slot] = np.frombuffer(m.cfg.mac_bytes(), dtype=np.uint8)
        bid[m.slot] = backend_id(name)
    up = [m for m in members.values() if m.health == "up"]
    local, _ = build_table([m.cfg.name for m in up], [m.cfg.weight for m in up], size)
    slots = np.array([m.slot for m in up] or [0], dtype=np.int32)
    table = np.where(local >= 0, slots[np.maximum(local, 0)], -1).astype(np.int32)
    return Dispatch(table, addr, port, mac, bid, time.perf_counter() - t0)


def _moved(old: Backend, new: Backend) -> bool:
    """Whether flows translated for ``old`` are wrong for ``new`` (address or port changed)."""
    return old.address != new.address or old.port != new.port


class BackendPool:
    """Members, their slots and health, and the current :class:`Dispatch`."""

    def __init__(self, backends: Sequence[Backend], size: int) -> None:
        self.size = size
        self.members = {
            b.name: Member(i, b.model_copy(update={"state": b.state or "up"}), b.state or "up")
            for i, b in enumerate(backends)
        }
        self.dispatch = _dispatch(self.members, size)

    def _plan(self, members: dict[str, Member], doomed_slots: set[int]) -> Plan:
        dispatch = _dispatch(members, self.size)
        n = max(dispatch.slots, self.dispatch.slots)
        doomed = np.zeros(n, dtype=np.bool_)
        doomed[sorted(doomed_slots)] = True
        return Plan(members, dispatch, doomed)

    def plan_health(self, changes: Mapping[str, Health]) -> Plan:
        """The pool after setting the health of some members (``KeyError`` if unknown)."""
        unknown = sorted(set(changes) - set(self.members))
        if unknown:
            raise KeyError(f"no backend named {', '.join(unknown)}")
        members = dict(self.members)
        doomed: set[int] = set()
        for name, health in changes.items():
            m = members[name]
            if health == "down" and m.health != "down":
                doomed.add(m.slot)
            members[name] = Member(m.slot, m.cfg.model_copy(update={"state": health}), health)
        return self._plan(members, doomed)

    def plan_backends(self, backends: Sequence[Backend]) -> Plan:
        """The pool after replacing the member list (members keep slot and, unless the new
        entry gives a ``state``, health)."""
        check_backends(backends)
        if len(backends) >= self.size:
            raise ValueError("table_size must exceed the number of backends")
        keep = {b.name for b in backends} & set(self.members)
        used = {self.members[n].slot for n in keep}
        free = (s for s in range(len(self.members) + len(backends)) if s not in used)
        members: dict[str, Member] = {}
        doomed = {m.slot for n, m in self.members.items() if n not in keep}
        for b in backends:
            old = self.members.get(b.name)
            if old is None:
                health: Health = b.state or "up"
                members[b.name] = Member(next(free), b.model_copy(update={"state": health}), health)
                continue
            health = b.state or old.health
            if _moved(old.cfg, b) or (health == "down" and old.health != "down"):
                doomed.add(old.slot)
            members[b.name] = Member(old.slot, b.model_copy(update={"state": health}), health)
        return self._plan(members, doomed)

    def apply(self, plan: Plan) -> None:
        """Make ``plan`` current (its doomed flows must already be gone)."""
        self.members = plan.members
        self.dispatch = plan.dispatch

    def configs(self) -> list[Backend]:
        """The members' configurations (with their current health), in slot order."""
        return [m.cfg for m in sorted(self.members.values(), key=lambda m: m.slot)]

    def table_share(self) -> NDArray[np.float64]:
        """Per slot: the fraction of the Maglev table it holds."""
        t = self.dispatch.table
        counts = np.bincount(t[t >= 0], minlength=self.dispatch.slots)
        share: NDArray[np.float64] = counts / t.shape[0]
        return share
