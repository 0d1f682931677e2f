"""Bit flags of the ``flags`` column that the parser fills: what a packet was found to contain.

These are plain integers so Numba kernels can use them as constants.
"""

VLAN = 0x0001  # at least one 802.1Q/802.1ad tag
QINQ = 0x0002  # two tags (802.1ad outer + 802.1Q inner, or 802.1Q in 802.1Q)
ARP = 0x0004
IPV4 = 0x0008
IPV6 = 0x0010
IP_OPTIONS = 0x0020  # IPv4 header longer than 20 bytes
FRAGMENT = 0x0040  # any fragment (IPv4 MF or offset > 0, IPv6 fragment header)
FIRST_FRAGMENT = 0x0080  # fragment with offset 0: carries the L4 header
IPV6_EXT = 0x0100  # IPv6 extension headers present
TCP = 0x0200
UDP = 0x0400
ICMP = 0x0800  # ICMP for IPv4, ICMPv6 for IPv6
L4 = 0x1000  # a transport header was parsed: sport/dport/l7_off are valid
ECHO = 0x2000  # ICMP/ICMPv6 echo request or reply: sport = dport = identifier
MALFORMED = 0x8000  # the parser dropped the packet; the fate column names why

NAMES: dict[str, int] = {
    "vlan": VLAN,
    "qinq": QINQ,
    "arp": ARP,
    "ipv4": IPV4,
    "ipv6": IPV6,
    "ip_options": IP_OPTIONS,
    "fragment": FRAGMENT,
    "first_fragment": FIRST_FRAGMENT,
    "ipv6_ext": IPV6_EXT,
    "tcp": TCP,
    "udp": UDP,
    "icmp": ICMP,
    "l4": L4,
    "echo": ECHO,
    "malformed": MALFORMED,
}


def describe(value: int) -> list[str]:
    """Names of the flags set in ``value``."""
    return [name for name, bit in NAMES.items() if value & bit]
