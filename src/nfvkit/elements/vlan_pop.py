"""``vlan_pop``: remove the outer VLAN tag.

The frame shrinks in place (the MAC addresses move 4 bytes forward) and the parsed columns are
updated (the inner tag, if any, becomes the outer one). Untagged frames pass unchanged, or are
dropped as ``vlan_untagged`` when ``untagged: drop``; with ``vid`` set, only tags with that VID
are removed and other tagged frames pass unchanged.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from numba import njit
from numpy.typing import NDArray
from pydantic import Field

from nfvkit.elements.base import Element, ElementConfig
from nfvkit.packet import flags as F
from nfvkit.packet.batch import PacketBatch, shift_header_offsets
from nfvkit.packet.fate import drop_reason

UNTAGGED = drop_reason("vlan_untagged", "vlan_pop with untagged: drop saw an untagged frame")


class VlanPopConfig(ElementConfig):
    """What to pop and what to do with untagged frames."""

    vid: int | None = Field(None, ge=0, le=4095, description="pop only tags with this VID")
    untagged: Literal["pass", "drop"] = Field("pass", description="fate of untagged frames")


@njit(cache=True, nogil=True)
def _pop(
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    l3: NDArray[np.int16],
    l4: NDArray[np.int16],
    l7: NDArray[np.int16],
    flags: NDArray[np.uint16],
    vlan: NDArray[np.uint16],
    fate: NDArray[np.int16],
    only_vid: int,
    untagged_fate: int,
) -> None:
    for i in range(offset.shape[0]):
        fl = flags[i]
        if not fl & F.VLAN:
            fate[i] = untagged_fate
            continue
        if only_vid >= 0 and (vlan[i, 0] & 0x0FFF) != only_vid:
            continue
        old = offset[i]
        for j in range(11, -1, -1):
            data[old + 4 + j] = data[old + j]
        offset[i] = old + 4
        length[i] -= 4
        shift_header_offsets(l3, l4, l7, i, -4)
        vlan[i, 0] = vlan[i, 1]
        vlan[i, 1] = 0
        flags[i] = (fl & ~F.QINQ) if fl & F.QINQ else (fl & ~F.VLAN)


class VlanPop(Element):
    """Pop the outer VLAN tag."""

    type_name = "vlan_pop"
    Config: ClassVar[type[ElementConfig]] = VlanPopConfig
    drop_reasons = (UNTAGGED,)

    def process(self, batch: PacketBatch) -> PacketBatch:
        cfg = self.config
        assert isinstance(cfg, VlanPopConfig)
        untagged_fate = UNTAGGED.fate if cfg.untagged == "drop" else 0
        only_vid = -1 if cfg.vid is None else cfg.vid
        _pop(
            batch.data, batch.offset, batch.length, batch.l3_off, batch.l4_off, batch.l7_off,
            batch.flags, batch.vlan, batch.fate, only_vid, untagged_fate,
        )  # fmt: skip
        return batch
