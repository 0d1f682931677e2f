"""Shared pytest configuration: a deterministic Hypothesis profile (CI must not flake), and
scapy kept off the network.

Scapy fills in an ``Ether()`` destination MAC by resolving the IP destination: an ARP request
to the gateway for IPv4, a neighbour solicitation for IPv6 -- real packets on the host's
network, from a test that only builds bytes. Dropping those resolvers makes the default the
broadcast address, with no traffic; tests that care set their MACs explicitly.
"""

import scapy.layers.inet
import scapy.layers.inet6
import scapy.layers.l2
from hypothesis import HealthCheck, settings
from scapy.config import conf

settings.register_profile(
    "nfvkit",
    derandomize=True,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("nfvkit")

for _l2 in (scapy.layers.l2.Ether, scapy.layers.l2.Dot3):
    for _l3 in (scapy.layers.inet.IP, scapy.layers.inet6.IPv6):
        conf.neighbor.resolvers.pop((_l2, _l3), None)
