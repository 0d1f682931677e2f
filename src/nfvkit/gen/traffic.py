"""The synthetic traffic generator: a :class:`TrafficProfile` in, a pcap/pcapng trace out.

How a trace is made (everything vectorized in NumPy or in the kernels of
:mod:`nfvkit.gen.frames`; one seeded ``numpy.random.Generator`` drives every choice, so the
same profile always gives the same bytes):

1. *Flows.* Protocols, IPv6 and VLAN tags are dealt to flows in exact counts and shuffled.
   Each flow gets a unique client (address, port) from the client subnet, a server from the
   server subnet and a well-known server port. MACs are locally administered (``02:...``).
2. *Packets per flow.* Each flow gets its minimum (TCP 9, others 1); the rest is dealt by a
   multinomial draw over Zipf weights ``1 / rank**zipf`` (ranks shuffled over flows).
3. *Flow order.* TCP: SYN, SYN-ACK, ACK, data segments alternating client/server, then FIN,
   ACK, FIN, ACK with consistent sequence and acknowledgment numbers. UDP alternates
   directions; ICMP is echo request/reply pairs.
4. *Interleaving.* Each flow lives in a random window of the trace; its packets are spread
   over the window in order, and a stable sort of all packets gives the trace order. Packet
   ``i`` gets ``start_ns + i / rate_pps``.
5. *Frames* are built chunk by chunk and written through :class:`nfvkit.io.PcapWriter`, so
   memory holds the per-packet plan (about 40 bytes a packet), never the trace.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from nfvkit.gen import frames
from nfvkit.gen.profile import FCS_LEN, MALFORMED_KINDS, TCP_MIN_PACKETS, GenSummary, TrafficProfile
from nfvkit.io.pcap import open_writer
from nfvkit.packet.batch import PacketBatch

CHUNK_PACKETS = 65536
CLIENT_PORTS = (1024, 65536)
SERVER_PORTS = {
    frames.TCP: np.array([80, 443, 8080, 22, 25, 3306], np.int32),
    frames.UDP: np.array([53, 123, 443, 161, 5060, 514], np.int32),
    frames.ICMP: np.array([0], np.int32),
}
_NS = 1_000_000_000


@dataclass
class FlowTable:
    """Per-flow columns; rows past ``flows`` are the malformed packets' carriers."""

    flows: int
    proto: NDArray[np.uint8]
    v6: NDArray[np.bool_]
    vlan: NDArray[np.int32]
    caddr: NDArray[np.int64]
    saddr: NDArray[np.int64]
    cport: NDArray[np.int32]
    sport: NDArray[np.int32]
    c6: NDArray[np.uint8]
    s6: NDArray[np.uint8]

    def header_len(self) -> NDArray[np.int32]:
        """Ethernet + VLAN + IP + transport header bytes of each flow's packets."""
        l4 = np.where(self.proto == frames.TCP, 20, 8)
        ip = np.where(self.v6, 40, 20)
        return (14 + 4 * (self.vlan >= 0) + ip + l4).astype(np.int32)


@dataclass
class Plan:
    """Per-packet columns in trace order."""

    flow: NDArray[np.int64]
    dir: NDArray[np.uint8]
    flags: NDArray[np.uint8]
    payload: NDArray[np.int32]
    frame: NDArray[np.int32]
    seq: NDArray[np.int64]
    ack: NDArray[np.int64]
    bad: NDArray[np.uint8]
    aux: NDArray[np.int32]


def _deal(rng: np.random.Generator, n: int, share: float) -> NDArray[np.bool_]:
    """Exactly ``round(n * share)`` of ``n`` items, picked at random."""
    mask = np.zeros(n, np.bool_)
    mask[rng.permutation(n)[: round(n * share)]] = True
    return mask


def _hosts(prefixlen: int, bits: int) -> int:
    """Usable host numbers of a subnet (capped to 32 bits of host part)."""
    return int(min(2 ** min(bits - prefixlen, 32) - 2, 2**32 - 2))


def make_flows(profile: TrafficProfile, rng: np.random.Generator) -> FlowTable:
    """Draw the flow table (see the module docstring, step 1)."""
    n_flows, n_bad = profile.flows, profile.malformed_count()
    tcp, udp, icmp = profile.flows_by_proto()
    proto = np.repeat(np.array([frames.TCP, frames.UDP, frames.ICMP], np.uint8), [tcp, udp, icmp])
    proto = np.concatenate([rng.permutation(proto), np.full(n_bad, frames.UDP, np.uint8)])
    v6 = np.concatenate([_deal(rng, n_flows, profile.ipv6), np.zeros(n_bad, np.bool_)])
    vlan = np.where(_deal(rng, n_flows, profile.vlan), rng.integers(1, 4095, n_flows), -1)
    vlan = np.concatenate([vlan, np.full(n_bad, -1)]).astype(np.int32)
    hosts = min(
        _hosts(profile.client_net4.prefixlen, 32), _hosts(profile.client_net6.prefixlen, 128)
    )
    ports = CLIENT_PORTS[1] - CLIENT_PORTS[0]
    keys = rng.choice(hosts * ports, n_flows, replace=False)
    keys = np.concatenate([keys, rng.integers(0, hosts * ports, n_bad)])
    chost = keys // ports + 1
    servers = min(profile.servers, _hosts(profile.server_net4.prefixlen, 32))
    servers = min(servers, _hosts(profile.server_net6.prefixlen, 128))
    shost = rng.integers(1, servers + 1, n_flows + n_bad)
    base4c, base4s = (
        int(profile.client_net4.network_address),
        int(profile.server_net4.network_address),
    )
    sport = np.zeros(n_flows + n_bad, np.int32)
    for p, choices in SERVER_PORTS.items():
        sel = proto == p
        sport[sel] = rng.choice(choices, int(sel.sum()))
    return FlowTable(
        flows=n_flows,
        proto=proto,
        v6=v6,
        vlan=vlan,
        caddr=np.where(v6, chost, chost + base4c).astype(np.int64),
        saddr=np.where(v6, shost, shost + base4s).astype(np.int64),
        cport=(keys % ports + CLIENT_PORTS[0]).astype(np.int32),
        sport=sport,
        c6=np.frombuffer(profile.client_net6.network_address.packed, np.uint8).copy(),
        s6=np.frombuffer(profile.server_net6.network_address.packed, np.uint8).copy(),
    )


def packet_counts(
    profile: TrafficProfile, table: FlowTable, rng: np.random.Generator
) -> NDArray[np.int64]:
    """Packets per flow (step 2); malformed carriers get one each."""
    n = table.flows
    proto = table.proto[:n]
    minimum = np.where(proto == frames.TCP, TCP_MIN_PACKETS, 1).astype(np.int64)
    extra = profile.packets - profile.malformed_count() - int(minimum.sum())
    ranks = rng.permutation(n) + 1.0
    weights = ranks**-profile.zipf
    counts = minimum + rng.multinomial(extra, weights / weights.sum())
    return np.concatenate([counts, np.ones(len(table.proto) - n, np.int64)])


def _sample_sizes(profile: TrafficProfile, rng: np.random.Generator, n: int) -> NDArray[np.int32]:
    mix = profile.size_mix()
    sizes = np.array([s for s, _ in mix], np.int32) - FCS_LEN
    weights = np.array([w for _, w in mix], np.float64)
    return rng.choice(sizes, n, p=weights / weights.sum()).astype(np.int32)


def _malformations(
    profile: TrafficProfile, rng: np.random.Generator, n_bad: int
) -> tuple[NDArray[np.uint8], NDArray[np.int32]]:
    """Kind code and parameter of each malformed carrier (kinds dealt round-robin)."""
    kinds = np.array([MALFORMED_KINDS.index(k) + 1 for k in profile.malformed_kinds], np.uint8)
    bad = rng.permutation(np.resize(kinds, n_bad)).astype(np.uint8)
    aux = rng.integers(1, 1001, n_bad).astype(np.int32)  # length excess
    aux[bad == frames.BAD_TRUNCATED] = rng.integers(15, 42, int((bad == 1).sum()))  # cut in L3/L4
    aux[bad == frames.BAD_IHL] = rng.integers(0, 5, int((bad == frames.BAD_IHL).sum()))
    csum = bad == frames.BAD_IP_CSUM
    aux[csum] = rng.integers(1, 0xFFFF, int(csum.sum()))
    return bad, aux


def make_plan(profile: TrafficProfile, table: FlowTable, rng: np.random.Generator) -> Plan:
    """Per-packet columns in trace order (steps 2-4)."""
    counts = packet_counts(profile, table, rng)
    total = int(counts.sum())
    sizes = _sample_sizes(profile, rng, total)
    isn = rng.integers(0, 2**32, (2, len(counts)), dtype=np.int64)
    cols = Plan(
        flow=np.repeat(np.arange(len(counts), dtype=np.int64), counts),
        dir=np.empty(total, np.uint8),
        flags=np.empty(total, np.uint8),
        payload=np.empty(total, np.int32),
        frame=np.empty(total, np.int32),
        seq=np.empty(total, np.int64),
        ack=np.empty(total, np.int64),
        bad=np.zeros(total, np.uint8),
        aux=np.zeros(total, np.int32),
    )
    frames.plan_packets(
        counts, table.proto, table.header_len(), isn[0], isn[1], sizes, cols.dir, cols.flags,
        cols.payload, cols.frame, cols.seq, cols.ack,
    )  # fmt: skip
    n_bad = len(counts) - table.flows
    if n_bad:
        cols.bad[total - n_bad :], cols.aux[total - n_bad :] = _malformations(profile, rng, n_bad)
    order = np.argsort(_order_keys(counts, rng), kind="stable")
    return Plan(**{name: getattr(cols, name)[order] for name in Plan.__dataclass_fields__})


def _order_keys(counts: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.float64]:
    """A sort key per packet: each flow's packets spread in order over a random window."""
    n = len(counts)
    width = rng.uniform(0.1, 1.0, n)
    start = rng.uniform(0.0, 1.0, n) * (1.0 - width)
    first = np.cumsum(counts) - counts
    flow = np.repeat(np.arange(n), counts)
    j = np.arange(int(counts.sum())) - first[flow]
    jitter = rng.uniform(0.0, 1.0, len(j))
    return start[flow] + width[flow] * (j + jitter) / counts[flow]


def _chunk_batch(
    plan: Plan, table: FlowTable, lo: int, hi: int, ts: NDArray[np.int64]
) -> PacketBatch:
    frame = plan.frame[lo:hi]
    offset = np.cumsum(frame, dtype=np.int64) - frame
    out = np.empty(int(frame.sum()), np.uint8)
    length = np.empty(hi - lo, np.int32)
    frames.build_frames(
        out, offset, length, plan.flow[lo:hi], plan.dir[lo:hi], plan.flags[lo:hi],
        plan.payload[lo:hi], frame, plan.seq[lo:hi], plan.ack[lo:hi], plan.bad[lo:hi],
        plan.aux[lo:hi], lo, table.proto, table.v6, table.vlan, table.caddr, table.saddr,
        table.cport, table.sport, table.c6, table.s6,
    )  # fmt: skip
    return PacketBatch(out, offset, length, headroom=0, ts=ts)


def generate(profile: TrafficProfile, path: str | os.PathLike[str]) -> GenSummary:
    """Write the trace ``profile`` describes to ``path`` (.pcap or .pcapng); summarize it."""
    rng = np.random.default_rng(profile.seed)
    table = make_flows(profile, rng)
    plan = make_plan(profile, table, rng)
    total = len(plan.flow)
    step = _NS / profile.rate_pps
    lengths = np.empty(total, np.int32)
    with open_writer(path) as writer:
        for lo in range(0, total, CHUNK_PACKETS):
            hi = min(total, lo + CHUNK_PACKETS)
            ts = profile.start_ns + np.round(np.arange(lo, hi) * step).astype(np.int64)
            batch = _chunk_batch(plan, table, lo, hi, ts)
            lengths[lo:hi] = batch.length
            writer.write(batch)
    return _summary(profile, path, table, plan, lengths, round((total - 1) * step))


def _summary(
    profile: TrafficProfile,
    path: str | os.PathLike[str],
    table: FlowTable,
    plan: Plan,
    lengths: NDArray[np.int32],
    duration_ns: int,
) -> GenSummary:
    proto = table.proto[plan.flow]
    good = plan.bad == 0
    by_kind = {
        "tcp": int((good & (proto == frames.TCP)).sum()),
        "udp": int((good & (proto == frames.UDP)).sum()),
        "icmp": int((good & (proto == frames.ICMP)).sum()),
        "ipv4": int((good & ~table.v6[plan.flow]).sum()),
        "ipv6": int(table.v6[plan.flow].sum()),
        "vlan": int((table.vlan[plan.flow] >= 0).sum()),
        "tcp_flows": int((table.proto[: table.flows] == frames.TCP).sum()),
        "udp_flows": int((table.proto[: table.flows] == frames.UDP).sum()),
        "icmp_flows": int((table.proto[: table.flows] == frames.ICMP).sum()),
        "malformed": int((~good).sum()),
    }
    for code, kind in enumerate(MALFORMED_KINDS, start=1):
        if kind in profile.malformed_kinds:
            by_kind[f"malformed.{kind}"] = int((plan.bad == code).sum())
    sizes, counts = np.unique(lengths, return_counts=True)
    return GenSummary(
        path=str(path),
        packets=len(lengths),
        bytes=int(lengths.sum(dtype=np.int64)),
        file_bytes=Path(path).stat().st_size,
        flows=table.flows,
        duration_ns=duration_ns,
        by_kind=by_kind,
        by_size={int(s): int(c) for s, c in zip(sizes, counts, strict=True)},
    )
