"""``vlan_push``: add an 802.1Q or 802.1ad tag in front of any existing tags.

The frame grows into its headroom (4 bytes); the parsed columns are updated in place (header
offsets move by 4, the new tag becomes the outer one), so no re-parse is needed. A frame that
already carries two tags is dropped (``vlan_too_many_tags``): nfvkit parses at most two.
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

TOO_MANY_TAGS = drop_reason("vlan_too_many_tags", "vlan_push onto a frame with two tags")

TPIDS = {"802.1q": 0x8100, "802.1ad": 0x88A8}


class VlanPushConfig(ElementConfig):
    """The tag to push."""

    vid: int = Field(ge=0, le=4095, description="VLAN identifier")
    pcp: int = Field(0, ge=0, le=7, description="priority code point")
    dei: bool = Field(False, description="drop eligible indicator")
    tpid: Literal["802.1q", "802.1ad"] = Field("802.1q", description="tag protocol")

    @property
    def tci(self) -> int:
        return (self.pcp << 13) | (int(self.dei) << 12) | self.vid


@njit(cache=True, nogil=True)
def _push(
    data: NDArray[np.uint8],
    offset: NDArray[np.int64],
    length: NDArray[np.int32],
    l3: NDArray[np.int16],
    l4: NDArray[np.int16],
    l7: NDArray[np.int16],
    flags: NDArray[np.uint16],
    vlan: NDArray[np.uint16],
    fate: NDArray[np.int16],
    tpid: int,
    tci: int,
    too_many_fate: int,
) -> None:
    for i in range(offset.shape[0]):
        fl = flags[i]
        if fl & F.QINQ or length[i] < 14:
            fate[i] = too_many_fate
            continue
        old = offset[i]
        new = old - 4
        for j in range(12):
            data[new + j] = data[old + j]
        data[new + 12] = tpid >> 8
        data[new + 13] = tpid & 0xFF
        data[new + 14] = tci >> 8
        data[new + 15] = tci & 0xFF
        offset[i] = new
        length[i] += 4
        shift_header_offsets(l3, l4, l7, i, 4)
        if fl & F.VLAN:
            vlan[i, 1] = vlan[i, 0]
            fl |= F.QINQ
        vlan[i, 0] = tci
        flags[i] = fl | F.VLAN


class VlanPush(Element):
    """Push a VLAN tag (802.1Q or 802.1ad) as the new outer tag."""

    type_name = "vlan_push"
    Config: ClassVar[type[ElementConfig]] = VlanPushConfig
    drop_reasons = (TOO_MANY_TAGS,)

    def process(self, batch: PacketBatch) -> PacketBatch:
        cfg = self.config
        assert isinstance(cfg, VlanPushConfig)
        batch.ensure_headroom(4)
        _push(
            batch.data, batch.offset, batch.length, batch.l3_off, batch.l4_off, batch.l7_off,
            batch.flags, batch.vlan, batch.fate, TPIDS[cfg.tpid], cfg.tci, TOO_MANY_TAGS.fate,
        )  # fmt: skip
        batch.headroom -= 4
        return batch
