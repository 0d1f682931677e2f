"""Flow records with IPFIX information element names, written as JSON lines or CSV.

Names follow the IANA IPFIX registry (RFC 7012, RFC 7011; reverse elements RFC 5103):
``sourceIPv4Address`` / ``sourceIPv6Address``, ``destinationIPv4Address`` /
``destinationIPv6Address``, ``sourceTransportPort``, ``destinationTransportPort``,
``protocolIdentifier``, ``packetDeltaCount``, ``octetDeltaCount`` (IP header and payload
octets), ``flowStartNanoseconds`` / ``flowEndNanoseconds`` (or ``...Milliseconds``; here
integers since the Unix epoch), ``tcpControlBits`` (RFC 7125), biflow
``reversePacketDeltaCount`` / ``reverseOctetDeltaCount`` / ``reverseTcpControlBits``, and
``flowEndReason`` with the IANA codes: 1 idle timeout, 2 active timeout, 3 end of flow
detected, 4 forced end, 5 lack of resources.

A JSON line names only the address elements of its family; a CSV file has all four address
columns, the other family's left empty. Records are formatted a whole batch at a time with
NumPy string operations; only IPv6 addresses are rendered one by one (by :mod:`ipaddress`).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
from numpy.typing import NDArray

from nfvkit.elements.meter.flowmon import ACTIVE_DEADLINE, INITIATOR_UPPER
from nfvkit.vnf.state import kernels as K

IDLE_TIMEOUT, ACTIVE_TIMEOUT, END_OF_FLOW, FORCED_END, LACK_OF_RESOURCES = 1, 2, 3, 4, 5
END_REASONS = {
    IDLE_TIMEOUT: "idle_timeout",
    ACTIVE_TIMEOUT: "active_timeout",
    END_OF_FLOW: "end_of_flow",
    FORCED_END: "forced_end",
    LACK_OF_RESOURCES: "lack_of_resources",
}
TEXT = np.dtypes.StringDType()
Strs = NDArray[Any]  # arrays of TEXT (variable-width strings)
Format = Literal["jsonl", "csv"]


def end_reasons(retired: NDArray[Any]) -> NDArray[np.uint8]:
    """``flowEndReason`` of records drained from the flow table's log (``state`` = why)."""
    state = retired["state"]
    active = (retired["flags"] & ACTIVE_DEADLINE) != 0
    out = np.full(state.shape[0], FORCED_END, dtype=np.uint8)
    out[state == K.R_EXPIRED] = np.where(active, ACTIVE_TIMEOUT, IDLE_TIMEOUT)[state == K.R_EXPIRED]
    out[state == K.R_EVICTED] = LACK_OF_RESOURCES
    out[state == K.R_REMOVED] = END_OF_FLOW
    return out


def endpoints(records: NDArray[Any], biflow: bool) -> dict[str, NDArray[Any]]:
    """Source/destination addresses (``(n, 4)`` words) and ports, protocol, of ``records``;
    in biflow mode the source is the flow's initiator."""
    key = records["key"]
    src, dst = key[:, 0:4].copy(), key[:, 4:8].copy()
    sport = (key[:, 8] >> 16).astype(np.int64)
    dport = (key[:, 8] & 0xFFFF).astype(np.int64)
    if biflow:
        up = (records["flags"] & INITIATOR_UPPER) != 0
        src[up], dst[up] = key[up, 4:8], key[up, 0:4]
        sport[up], dport[up] = dport[up].copy(), sport[up].copy()
    return {"src": src, "dst": dst, "sport": sport, "dport": dport, "proto": key[:, 9]}


def is_v4(words: NDArray[np.uint32]) -> NDArray[np.bool_]:
    """Rows that hold an IPv4-mapped address."""
    mapped: NDArray[np.bool_] = (words[:, 0] == 0) & (words[:, 1] == 0) & (words[:, 2] == 0xFFFF)
    return mapped


def _concat(*parts: Strs | str) -> Strs:
    out = np.asarray(parts[0], dtype=TEXT)
    for p in parts[1:]:
        out = np.strings.add(out, p)
    return out


def _ints(values: NDArray[Any]) -> Strs:
    return values.astype(np.int64).astype(TEXT)


def address_text(words: NDArray[np.uint32]) -> Strs:
    """Text of every address row: dotted quads for IPv4-mapped rows, RFC 5952 for IPv6."""
    a = words[:, 3].astype(np.int64)
    octets = [_ints((a >> s) & 0xFF) for s in (24, 16, 8, 0)]
    out = _concat(octets[0], ".", octets[1], ".", octets[2], ".", octets[3])
    for r in np.flatnonzero(~is_v4(words)):
        w = [int(x) for x in words[r]]
        out[r] = str(ipaddress.IPv6Address((w[0] << 96) | (w[1] << 64) | (w[2] << 32) | w[3]))
    return out


def value_names(biflow: bool, millis: bool) -> list[str]:
    """The numeric elements after the addresses, in output order."""
    unit = "Milliseconds" if millis else "Nanoseconds"
    names = [
        "sourceTransportPort",
        "destinationTransportPort",
        "protocolIdentifier",
        "packetDeltaCount",
        "octetDeltaCount",
        f"flowStart{unit}",
        f"flowEnd{unit}",
        "tcpControlBits",
    ]
    if biflow:
        names += ["reversePacketDeltaCount", "reverseOctetDeltaCount", "reverseTcpControlBits"]
    return [*names, "flowEndReason"]


def _value_columns(
    records: NDArray[Any], reasons: NDArray[np.uint8], ends: dict[str, NDArray[Any]],
    biflow: bool, millis: bool,
) -> list[tuple[str, Strs]]:  # fmt: skip
    """The :func:`value_names` elements of ``records`` as text columns."""
    div = 1_000_000 if millis else 1
    cols = [
        ends["sport"], ends["dport"], ends["proto"], records["packets"], records["bytes"],
        records["first"] // div, records["last"] // div, records["tcp"],
    ]  # fmt: skip
    if biflow:
        cols += [records["rpackets"], records["rbytes"], records["rtcp"]]
    cols.append(reasons)
    return [(n, _ints(v)) for n, v in zip(value_names(biflow, millis), cols, strict=True)]


def csv_header(biflow: bool, millis: bool) -> str:
    """The CSV header line (with its newline)."""
    addr = [f"{side}IPv{v}Address" for side in ("source", "destination") for v in (4, 6)]
    return ",".join(addr + value_names(biflow, millis)) + "\n"


def format_records(
    records: NDArray[Any], reasons: NDArray[np.uint8], fmt: Format, biflow: bool, millis: bool
) -> str:
    """The records as JSON lines or CSV rows (no header), each line ending in a newline."""
    if records.shape[0] == 0:
        return ""
    ends = endpoints(records, biflow)
    v4 = is_v4(ends["src"])
    src, dst = address_text(ends["src"]), address_text(ends["dst"])
    values = _value_columns(records, reasons, ends, biflow, millis)
    if fmt == "csv":
        parts: list[Strs | str] = []
        for text in (src, dst):
            parts += [np.where(v4, text, ""), ",", np.where(v4, "", text), ","]
        for k, (_, col) in enumerate(values):
            parts += [col, "," if k + 1 < len(values) else "\n"]
        return "".join(_concat(*parts).tolist())
    fam = np.where(v4, "IPv4", "IPv6")
    parts = ['{"source', fam, 'Address":"', src, '","destination', fam, 'Address":"', dst, '"']
    for name, col in values:
        parts += [f',"{name}":', col]
    parts.append("}\n")
    return "".join(_concat(*parts).tolist())


class FlowExporter:
    """Writes flow records to a file (opened on first use) and counts them by end reason."""

    def __init__(self, path: str | None, fmt: Format, biflow: bool, millis: bool) -> None:
        self.path = path
        self.fmt: Format = fmt
        self.biflow = biflow
        self.millis = millis
        self.by_reason = np.zeros(len(END_REASONS) + 1, dtype=np.int64)
        self._file: IO[str] | None = None

    def write(self, records: NDArray[Any], reasons: NDArray[np.uint8]) -> None:
        """Export ``records`` ending for ``reasons`` (one flowEndReason per record)."""
        if records.shape[0] == 0:
            return
        self.by_reason += np.bincount(reasons, minlength=self.by_reason.shape[0])
        if self.path is None:
            return
        out = self.open()
        out.write(format_records(records, reasons, self.fmt, self.biflow, self.millis))
        out.flush()

    def open(self) -> IO[str]:
        """The export file, created (with the CSV header) on the first call."""
        if self._file is None:
            assert self.path is not None
            # held open across batches until close(): not a with-block
            self._file = Path(self.path).open("w", encoding="ascii", newline="")  # noqa: SIM115
            if self.fmt == "csv":
                self._file.write(csv_header(self.biflow, self.millis))
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def stats(self) -> dict[str, Any]:
        """Records written, in all and by end reason; the file and its format."""
        return {
            "records": int(self.by_reason.sum()),
            "by_reason": {name: int(self.by_reason[c]) for c, name in END_REASONS.items()},
            "file": self.path,
            "format": self.fmt,
        }
