"""In-place rewriting of an IPv4 packet's address and port with incremental checksums.

:func:`rewrite` changes the source or the destination address and the matching port (the
identifier for ICMP echo) and updates, by RFC 1624 eqn. 3 (``HC' = ~(~HC + ~m + m')``), the
IPv4 header checksum and the L4 checksum: TCP and UDP include the address through their
pseudo-header, ICMP does not. A zero UDP checksum (none, over IPv4) stays zero, and a UDP
checksum that comes out zero is sent as ``0xFFFF`` (RFC 768).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from nfvkit.packet.checksum import csum_fold
from nfvkit.packet.jit import inlined
from nfvkit.packet.parse import i64, kernel


@kernel
def load16(data: NDArray[np.uint8], p: int) -> int:
    """The big-endian 16-bit word at ``data[p]``."""
    return (i64(data[p]) << 8) | i64(data[p + 1])


@kernel
def store16(data: NDArray[np.uint8], p: int, v: int) -> None:
    """Store ``v`` as a big-endian 16-bit word at ``data[p]``."""
    data[p] = (v >> 8) & 0xFF
    data[p + 1] = v & 0xFF


@kernel
def d32(old: int, new: int) -> int:
    """The eqn. 3 terms ``~m + m'`` of a 32-bit field."""
    return (~(old >> 16) & 0xFFFF) + (~old & 0xFFFF) + ((new >> 16) & 0xFFFF) + (new & 0xFFFF)


@kernel
def adjust(hc: int, delta: int) -> int:
    """Eqn. 3: ``~(~HC + delta)``."""
    return ~csum_fold((~hc & 0xFFFF) + delta) & 0xFFFF


@inlined
def rewrite(
    data: NDArray[np.uint8], ip: int, l4: int, pr: int, dst_side: bool,
    old_a: int, new_a: int, old_p: int, new_p: int,
) -> None:  # fmt: skip
    """Set the source (``dst_side`` False) or destination address to ``new_a`` and the
    matching port -- the identifier for ICMP (``pr`` 1) -- to ``new_p`` in the IPv4 packet
    whose header is at ``data[ip]`` and transport header at ``data[l4]``."""
    at = ip + (16 if dst_side else 12)
    for k in range(4):
        data[at + k] = (new_a >> (24 - 8 * k)) & 0xFF
    store16(data, ip + 10, adjust(load16(data, ip + 10), d32(old_a, new_a)))
    if pr == 1:
        if old_p != new_p:
            store16(data, l4 + 4, new_p)
            store16(data, l4 + 2, adjust(load16(data, l4 + 2), (~old_p & 0xFFFF) + new_p))
        return
    store16(data, l4 + (2 if dst_side else 0), new_p)
    c_at = l4 + (16 if pr == 6 else 6)
    hc = load16(data, c_at)
    if pr == 17 and hc == 0:
        return
    hc = adjust(hc, d32(old_a, new_a) + (~old_p & 0xFFFF) + new_p)
    store16(data, c_at, 0xFFFF if pr == 17 and hc == 0 else hc)
