"""What the ``classifier`` and ``acl`` elements share: an installed rule set and its data path.

A :class:`RuleSet` holds the rules as written, their compiled tables, the fate each rule gives
(plus one for "no rule matched") and per-rule hit counters; it is built whole and swapped in
whole, so a runtime rule change never exposes half-compiled tables. :class:`RuleSetElement`
applies it to a batch in one kernel and exposes the installed rules as a handler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

from nfvkit.elements.base import Element, read_handler
from nfvkit.elements.classify.compiler import Compiled, compile_rules
from nfvkit.elements.classify.kernels import apply_fates
from nfvkit.elements.classify.rules import Match
from nfvkit.packet.batch import PacketBatch

R = TypeVar("R", bound=BaseModel)


class RuleSet(Generic[R]):
    """Rules, their compiled tables, per-rule fates (last: no match) and hit counters."""

    def __init__(self, rules: Sequence[R], matches: Sequence[Match], fates: Sequence[int]) -> None:
        if len(fates) != len(rules) + 1:
            raise ValueError("a rule set needs one fate per rule and one for no match")
        self.rules = list(rules)
        self.compiled: Compiled = compile_rules(list(matches))
        self.rule_fate: NDArray[np.int16] = np.asarray(fates, dtype=np.int16)
        self.hits: NDArray[np.int64] = np.zeros(len(rules) + 1, dtype=np.int64)


class RuleSetElement(Element):
    """An element whose data path is "first matching rule decides the fate"."""

    _active: RuleSet[Any]

    def process(self, batch: PacketBatch) -> PacketBatch:
        active = self._active
        apply_fates(active.compiled.tables, batch, active.rule_fate, active.hits)
        return batch

    @read_handler("rules", "the installed rules, in order")
    def read_rules(self) -> list[dict[str, Any]]:
        return [r.model_dump(mode="json", exclude_none=True) for r in self._active.rules]
