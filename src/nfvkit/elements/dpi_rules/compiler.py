"""Compiling ``dpi`` rules into the flat tables the scan kernel reads.

Patterns are the distinct ``(bytes, nocase)`` pairs of all contents. The automaton is built
over their lower-cased forms with case folding, so one walk finds every candidate; a match of a
case-sensitive pattern that contains letters is then verified against the exact bytes.

Tables (all NumPy, rows indexed by id):

=============== ======================================================================
``pat``         int32 [P, 3]: length, 1 if the match must be verified exactly, start of
                the exact bytes in ``pat_bytes``
``pat_conts``   CSR (``pat_cstart`` [P+1], ``pat_conts``): the contents each pattern serves
``cont``        int32 [C, 3]: rule, least start offset, greatest end offset (exclusive)
``rule``        int32 [R, 12]: action code, protocol code, number of contents, bidirectional,
                then ``[a, b)`` item ranges of src, dst (in ``addr``), sport, dport (in
                ``port``)
``addr``        int64 [A, 5]: low address (hi64, lo64), high address (hi64, lo64) -- each
                64-bit half stored minus 2**63 so signed order is unsigned order -- and flags
                (1: exclude, 2: IPv6)
``port``        int32 [Q, 3]: low, high, 1 if exclude
=============== ======================================================================
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.classify.fields import Prefix, Range
from nfvkit.elements.dpi_rules.automaton import Automaton, build_automaton
from nfvkit.elements.dpi_rules.model import DpiRule, ValueSet

ALERT, DROP, PASS = 1, 2, 3
ACTION_CODE = {"alert": ALERT, "drop": DROP, "pass": PASS}
ACTION_NAME = {v: k for k, v in ACTION_CODE.items()}
PROTO_CODE = {"ip": 0, "tcp": 6, "udp": 17, "icmp": 1}
NO_LIMIT = 1 << 30
_HALF = 1 << 63
_V4_MAPPED = 0xFFFF << 32


def _halves(value: int) -> tuple[int, int]:
    """A 128-bit address as two sign-shifted 64-bit halves."""
    return (value >> 64) - _HALF, (value & (_HALF * 2 - 1)) - _HALF


def _addr_rows(vs: ValueSet) -> list[list[int]]:
    rows = []
    for items, excl in ((vs.include, 0), (vs.exclude, 1)):
        for p in items:
            assert isinstance(p, Prefix)
            lo, hi = (p.lo | _V4_MAPPED, p.hi | _V4_MAPPED) if p.version == 4 else (p.lo, p.hi)
            rows.append([*_halves(lo), *_halves(hi), excl | (2 if p.version == 6 else 0)])
    return rows


def _port_rows(vs: ValueSet) -> list[list[int]]:
    rows = []
    for items, excl in ((vs.include, 0), (vs.exclude, 1)):
        for r in items:
            assert isinstance(r, Range)
            rows.append([r.lo, r.hi, excl])
    return rows


@dataclass
class CompiledRules:
    """The rules as written and everything the kernel needs to apply them."""

    rules: list[DpiRule]
    ac: Automaton
    pat: NDArray[np.int32]
    pat_bytes: NDArray[np.uint8]
    pat_cstart: NDArray[np.int32]
    pat_conts: NDArray[np.int32]
    cont: NDArray[np.int32]
    rule: NDArray[np.int32]
    addr: NDArray[np.int64]
    port: NDArray[np.int32]
    npatterns: int = 0
    compile_seconds: float = 0.0
    hits: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def nbytes(self) -> int:
        arrays = (self.pat, self.pat_bytes, self.pat_cstart, self.pat_conts, self.cont)
        return self.ac.nbytes + sum(a.nbytes for a in (*arrays, self.rule, self.addr, self.port))

    def tables(self) -> tuple[NDArray[np.int32], ...]:
        """The pattern, content and rule tables in the kernel's argument order."""
        return (self.pat, self.pat_cstart, self.pat_conts, self.cont, self.rule, self.port)


def _patterns(
    rules: Sequence[DpiRule],
) -> tuple[list[tuple[bytes, bool]], list[list[int]], list[list[int]]]:
    """Distinct patterns, the contents of each, and the content rows ``[rule, lo, hi]``."""
    ids: dict[tuple[bytes, bool], int] = {}
    conts_of: list[list[int]] = []
    cont_rows: list[list[int]] = []
    for r, rule in enumerate(rules):
        for c in rule.contents:
            data = c.data
            key = (data.lower() if c.nocase else data, c.nocase)
            pid = ids.setdefault(key, len(ids))
            if pid == len(conts_of):
                conts_of.append([])
            conts_of[pid].append(len(cont_rows))
            hi = NO_LIMIT if c.depth is None else c.offset + c.depth
            cont_rows.append([r, c.offset, hi])
    return list(ids), conts_of, cont_rows


def _rule_rows(
    rules: Sequence[DpiRule],
) -> tuple[NDArray[np.int32], NDArray[np.int64], NDArray[np.int32]]:
    rows: list[list[int]] = []
    addr: list[list[int]] = []
    port: list[list[int]] = []
    for rule in rules:
        row = [ACTION_CODE[rule.action], PROTO_CODE[rule.proto], len(rule.contents)]
        row.append(int(rule.bidirectional))
        for vs in (rule.src, rule.dst):
            row += [len(addr), len(addr) + len(new := _addr_rows(vs))]
            addr += new
        for vs in (rule.sport, rule.dport):
            row += [len(port), len(port) + len(newp := _port_rows(vs))]
            port += newp
        rows.append(row)
    return (
        np.asarray(rows, dtype=np.int32).reshape(-1, 12),
        np.asarray(addr, dtype=np.int64).reshape(-1, 5),
        np.asarray(port, dtype=np.int32).reshape(-1, 3),
    )


def compile_dpi(rules: Sequence[DpiRule]) -> CompiledRules:
    """Build the automaton and tables for ``rules`` (see the module docstring)."""
    t0 = time.perf_counter()
    patterns, conts_of, cont_rows = _patterns(rules)
    ac = build_automaton([p.lower() for p, _ in patterns] or [b"\x00"], fold=True)
    pat = np.zeros((max(len(patterns), 1), 3), dtype=np.int32)
    exact = bytearray()
    for pid, (data, nocase) in enumerate(patterns):
        verify = not nocase and data.lower() != data.upper()
        pat[pid] = (len(data), int(verify), len(exact))
        exact += data if verify else b""
    sizes = [len(c) for c in conts_of]
    cstart = np.zeros(len(pat) + 1, dtype=np.int32)
    np.cumsum(sizes, out=cstart[1 : len(sizes) + 1])
    cstart[len(sizes) + 1 :] = cstart[len(sizes)]
    rule, addr, port = _rule_rows(rules)
    return CompiledRules(
        rules=list(rules),
        ac=ac,
        pat=pat,
        pat_bytes=np.frombuffer(bytes(exact) or b"\x00", dtype=np.uint8).copy(),
        pat_cstart=cstart,
        pat_conts=np.asarray([c for cs in conts_of for c in cs], dtype=np.int32),
        cont=np.asarray(cont_rows, dtype=np.int32).reshape(-1, 3),
        rule=rule,
        addr=addr,
        port=port,
        npatterns=len(patterns),
        compile_seconds=time.perf_counter() - t0,
        hits=np.zeros(len(rules), dtype=np.int64),
    )
