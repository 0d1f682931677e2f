"""``check_length``: drop packets shorter or longer than configured bounds.

Like Click's CheckLength, but both bounds, each drop counted under its own reason.
"""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator

from nfvkit.elements.base import Element, ElementConfig
from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import drop_reason

TOO_SHORT = drop_reason("too_short", "shorter than check_length's min")
TOO_LONG = drop_reason("too_long", "longer than check_length's max")


class CheckLengthConfig(ElementConfig):
    """Inclusive bounds on the frame length in bytes."""

    min: int = Field(0, ge=0, le=65535, description="shortest frame let through (bytes)")
    max: int = Field(1518, ge=1, le=65535, description="longest frame let through (bytes)")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class CheckLength(Element):
    """Pass frames whose length is within [min, max]; drop the rest by reason."""

    type_name = "check_length"
    Config: ClassVar[type[ElementConfig]] = CheckLengthConfig
    drop_reasons = (TOO_SHORT, TOO_LONG)

    def process(self, batch: PacketBatch) -> PacketBatch:
        cfg = self.config
        assert isinstance(cfg, CheckLengthConfig)
        length = batch.length
        batch.fate[length < cfg.min] = TOO_SHORT.fate
        batch.fate[length > cfg.max] = TOO_LONG.fate
        return batch
