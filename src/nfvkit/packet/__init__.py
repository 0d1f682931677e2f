"""The data unit: packet batches, header parsing, checksums, flow keys and hashes."""

from nfvkit.packet.batch import PacketBatch
from nfvkit.packet.fate import DropReason, drop_reason, reason_by_code, reason_by_name

__all__ = ["DropReason", "PacketBatch", "drop_reason", "reason_by_code", "reason_by_name"]
