"""Synthetic traffic: profiles of flows, sizes and protocols, written as pcap/pcapng traces."""

from nfvkit.gen.profile import MALFORMED_KINDS, GenSummary, TrafficProfile
from nfvkit.gen.traffic import generate

__all__ = ["MALFORMED_KINDS", "GenSummary", "TrafficProfile", "generate"]
