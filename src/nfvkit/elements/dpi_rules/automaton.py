"""An Aho–Corasick automaton compiled to a dense DFA over byte classes.

:func:`build_automaton` takes keywords (byte strings, already case-folded by the caller where
that is wanted) and returns an :class:`Automaton` whose kernel walk is one table load per
payload byte::

    s = 0
    for byte in payload:
        s = delta[s + classes[byte]]
        if s >= first_out:          # some keyword ends here
            ...outputs of state (s - first_out) // nclasses...

Construction, all at configuration time:

1. **Byte classes.** Bytes that no keyword contains share class 0; every other byte gets a class
   of its own, and ``fold`` maps ASCII upper-case letters onto their lower-case class (so a
   table built from lower-cased keywords matches case-insensitively). Classes whose columns
   end up identical in the finished table are merged, so the alphabet is as small as the
   keywords allow (a thousand text keywords need a few dozen classes, not 256).
2. **Trie (goto)** of the keywords, then **failure links** in breadth-first order, and the
   **full transition table**: row ``s`` starts as a copy of the row of ``fail(s)`` (already
   complete, being shallower) with the trie edges of ``s`` written over it. No failure link is
   followed at scan time.
3. **Outputs**: each state's keyword list includes those of its failure chain (a keyword that
   is a suffix of another is reported too). States with outputs are renumbered to the end, so
   the scan tests one comparison per byte; entries are pre-multiplied by the class count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MAX_TABLE_BYTES = 1 << 28
"""Largest transition table :func:`build_automaton` agrees to build (256 MiB)."""

_UPPER = np.arange(ord("A"), ord("Z") + 1)


@dataclass(frozen=True)
class Automaton:
    """A compiled Aho–Corasick DFA (see the module docstring for the layout)."""

    classes: NDArray[np.uint8]  # byte -> class id (256 entries)
    delta: NDArray[np.int32]  # (state * nclasses + class) -> next state * nclasses
    nclasses: int
    nstates: int
    first_out: int  # pre-multiplied id of the first state with outputs
    out_start: NDArray[np.int32]  # per output state (s - first_out) // nclasses: CSR start
    out_keys: NDArray[np.int32]  # keyword ids, grouped by output state

    @property
    def nbytes(self) -> int:
        return int(
            self.classes.nbytes + self.delta.nbytes + self.out_start.nbytes + self.out_keys.nbytes
        )


def _byte_classes(keywords: Sequence[bytes], fold: bool) -> tuple[NDArray[np.int64], int]:
    """Initial classes: 0 for unused bytes, one per used byte (upper-case folded if asked)."""
    used = np.zeros(256, dtype=bool)
    for k in keywords:
        used[np.frombuffer(k, dtype=np.uint8)] = True
    cls = np.zeros(256, dtype=np.int64)
    ids = np.flatnonzero(used)
    cls[ids] = np.arange(1, ids.shape[0] + 1)
    if fold:
        cls[_UPPER] = cls[_UPPER + 32]
    return cls, int(ids.shape[0]) + 1


def _trie(
    keywords: Sequence[bytes], cls: NDArray[np.int64]
) -> tuple[list[dict[int, int]], list[list[int]]]:
    """Goto edges (class -> child) and the keywords ending at each node."""
    goto: list[dict[int, int]] = [{}]
    ends: list[list[int]] = [[]]
    for kid, word in enumerate(keywords):
        node = 0
        for c in cls[np.frombuffer(word, dtype=np.uint8)].tolist():
            nxt = goto[node].get(c)
            if nxt is None:
                nxt = len(goto)
                goto[node][c] = nxt
                goto.append({})
                ends.append([])
            node = nxt
        ends[node].append(kid)
    return goto, ends


def _dfa(
    goto: list[dict[int, int]], ends: list[list[int]], nclasses: int
) -> tuple[NDArray[np.int32], list[list[int]]]:
    """The full transition table (state ids) and the complete output list of every state."""
    nstates = len(goto)
    if nstates * nclasses * 4 > MAX_TABLE_BYTES:
        raise ValueError(
            f"the pattern automaton would need {nstates} states x {nclasses} byte classes "
            f"({nstates * nclasses * 4 >> 20} MiB); use fewer or shorter patterns"
        )
    table = np.zeros((nstates, nclasses), dtype=np.int32)
    outs: list[list[int]] = [[] for _ in range(nstates)]
    fail = [0] * nstates
    order = list(goto[0].values())
    for c, child in goto[0].items():
        table[0, c] = child
    head = 0
    while head < len(order):
        s = order[head]
        head += 1
        table[s] = table[fail[s]]
        outs[s] = ends[s] + outs[fail[s]]
        for c, child in goto[s].items():
            fail[child] = int(table[fail[s], c]) if s else 0
            order.append(child)
        for c, child in goto[s].items():
            table[s, c] = child
    return table, outs


def _merge_classes(
    table: NDArray[np.int32], cls: NDArray[np.int64]
) -> tuple[NDArray[np.int32], NDArray[np.int64]]:
    """Final classes: the distinct columns of the table indexed by byte value."""
    by_byte = table[:, cls]
    _, first, inverse = np.unique(by_byte.T, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    # Number the classes in order of their lowest byte, so the layout is easy to read.
    rank = np.empty(first.shape[0], dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.shape[0])
    return np.ascontiguousarray(by_byte[:, np.sort(first)]), rank[inverse]


def build_automaton(keywords: Sequence[bytes], fold: bool = True) -> Automaton:
    """Compile ``keywords`` (non-empty byte strings) into an :class:`Automaton`.

    With ``fold`` ASCII upper-case input bytes are read as lower case: pass lower-cased
    keywords and verify case-sensitive ones after a match.
    """
    if any(not k for k in keywords):
        raise ValueError("an automaton keyword must not be empty")
    cls0, n0 = _byte_classes(keywords, fold)
    goto, ends = _trie(keywords, cls0)
    table, outs = _dfa(goto, ends, n0)
    table, cls = _merge_classes(table, cls0)
    nstates, nclasses = table.shape
    has_out = np.array([bool(o) for o in outs], dtype=bool)
    order = np.concatenate([np.flatnonzero(~has_out), np.flatnonzero(has_out)])
    new_id = np.empty(nstates, dtype=np.int64)
    new_id[order] = np.arange(nstates)
    delta = (new_id[table[order]] * nclasses).astype(np.int32).reshape(-1)
    out_lists = [outs[s] for s in np.flatnonzero(has_out).tolist()]
    sizes = np.array([len(o) for o in out_lists], dtype=np.int64)
    out_start = np.zeros(len(out_lists) + 1, dtype=np.int32)
    np.cumsum(sizes, out=out_start[1:])
    flat = [k for o in out_lists for k in o]
    return Automaton(
        classes=cls.astype(np.uint8),
        delta=delta,
        nclasses=int(nclasses),
        nstates=int(nstates),
        first_out=int(nstates - len(out_lists)) * int(nclasses),
        out_start=out_start,
        out_keys=np.asarray(flat, dtype=np.int32),
    )
