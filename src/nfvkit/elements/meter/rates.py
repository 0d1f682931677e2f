"""The policer's configuration models: rates and burst sizes, traffic classes, per-flow meters.

A rate or size is a number or a string with a decimal suffix (``k`` = 10^3, ``M``, ``G``,
``T``): ``cir: 10M`` is ten million bits per second (``unit: bits``) or packets per second
(``unit: packets``). Burst sizes ``cbs`` and ``ebs`` are bytes (``unit: bits``, as RFC 2697
counts them) or packets. RFC 2697 asks that at least one of CBS and EBS be above zero, and that
a non-zero one be at least the largest IP packet; the first is enforced, the second is the
operator's business (a packet larger than both buckets is always red).

Buckets are kept as integers in units of 10^-9 token (bits or packets), so that refilling
``cir`` tokens per second over ``dt`` ns adds exactly ``cir * dt`` -- no float drift.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator

from nfvkit.elements.classify.fields import DSCP_NAMES, parse_range
from nfvkit.elements.classify.rules import Match

SCALE = 1_000_000_000  # bucket units per token
MAX_BURST = 100_000_000  # bytes or packets: keeps scaled buckets far below 2**63
MAX_RATE = 10**13  # tokens per second
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([kmgt]?)\s*$", re.IGNORECASE)


def parse_quantity(raw: Any) -> int:
    """A non-negative integer from ``1500``, ``1.5e3`` or ``"10M"`` (decimal suffixes)."""
    if isinstance(raw, bool):
        raise ValueError(f"expected a number, not {raw!r}")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str) and (m := _QUANTITY.match(raw)):
        value = float(m.group(1)) * _SUFFIX[m.group(2).lower()]
    else:
        raise ValueError(f"expected a number such as 1500 or '10M', not {raw!r}")
    if value < 0:
        raise ValueError(f"must not be negative, got {raw!r}")
    if value != round(value):
        raise ValueError(f"must be a whole number, got {raw!r}")
    return round(value)


def parse_dscp(raw: Any) -> int:
    """A DSCP value 0..63 or name (``ef``, ``af11``.., ``cs0``..)."""
    r = parse_range(raw, 63, "dscp", DSCP_NAMES)
    if r.lo != r.hi:
        raise ValueError(f"dscp must be one value, not the range {raw!r}")
    return r.lo


Quantity = Annotated[int, PlainValidator(parse_quantity)]
Dscp = Annotated[int, PlainValidator(parse_dscp)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rate(_Frozen):
    """A meter's parameters: committed rate, committed and excess burst sizes, their unit."""

    cir: Quantity = Field(description="committed information rate, bits/s or packets/s")
    cbs: Quantity = Field(description="committed burst size, bytes or packets")
    ebs: Quantity = Field(0, description="excess burst size (srtcm), bytes or packets")
    unit: Literal["bits", "packets"] = "bits"

    @model_validator(mode="after")
    def _sane(self) -> Self:
        if self.cbs == 0 and self.ebs == 0:
            raise ValueError("cbs and ebs are both 0: at least one must be above 0 (RFC 2697)")
        if max(self.cbs, self.ebs) > MAX_BURST:
            raise ValueError(f"cbs and ebs must be at most {MAX_BURST}")
        if self.cir > MAX_RATE:
            raise ValueError(f"cir must be at most {MAX_RATE}")
        return self

    def scaled(self) -> tuple[int, int, int, int, int]:
        """``(cir, cbs, ebs, cost per byte, cost per packet)`` in bucket units."""
        if self.unit == "bits":
            return self.cir, self.cbs * 8 * SCALE, self.ebs * 8 * SCALE, 8 * SCALE, 0
        return self.cir, self.cbs * SCALE, self.ebs * SCALE, 0, SCALE


class PolicerClass(Rate):
    """A traffic class: its name, the packets it takes (classifier rule fields), its meter."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    match: Match = Match()


class PerFlow(Rate):
    """One meter per flow (5-tuple), in a bounded state table."""

    max_flows: int = Field(65536, ge=1, le=1 << 24, description="metered flows at most")
    idle_timeout: float = Field(60.0, gt=0, description="seconds a flow's bucket is kept")
    on_full: Literal["pass", "drop", "evict"] = Field(
        "pass", description="a new flow when the table is full: unmetered, dropped, or evicting"
    )

    @model_validator(mode="after")
    def _refills(self) -> Self:
        if self.cir == 0:
            raise ValueError("per_flow.cir must be above 0")
        return self


class ColourAware(_Frozen):
    """Incoming colour by DSCP (colour-aware srTCM); any other DSCP is green."""

    yellow: list[Dscp] = Field(default_factory=list)
    red: list[Dscp] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        both = set(self.yellow) & set(self.red)
        if both:
            raise ValueError(f"dscp {sorted(both)} listed as both yellow and red")
        return self


class Remark(_Frozen):
    """DSCP to write into packets of each colour (left alone where not given)."""

    green: Dscp | None = None
    yellow: Dscp | None = None
    red: Dscp | None = None
