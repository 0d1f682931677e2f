"""The ``Source`` base class: elements that produce batches instead of receiving them.

A source has no input port; the runtime calls :meth:`Source.pull` until it returns ``None``.
The runtime parses every batch a source produces before the first element sees it, and counts
malformed packets under the source's drop reasons.
"""

from __future__ import annotations

from typing import ClassVar

from nfvkit.elements.base import Element
from nfvkit.packet.batch import PacketBatch


class Source(Element):
    """An element that produces packets (a file, a ring, an interface)."""

    input_ports: ClassVar[int] = 0

    def pull(self) -> PacketBatch | None:
        """The next batch, or ``None`` when the source is exhausted."""
        raise NotImplementedError
