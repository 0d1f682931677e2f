"""Write ``acl.rules``, the 1,000-rule access list of the service-chain example.

Deterministic (seeded), so the committed file can be checked against it:
``python examples/service-chain/make_acl_rules.py`` rewrites it; the test suite regenerates it
in memory and compares. The list is what an edge firewall accumulates: a block list of client
prefixes (a few /24s and many small blocks), service ports closed to everyone, then the
services the VIPs offer, and an explicit final deny.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

TOTAL = 1000
CLOSED = [("tcp", 22), ("tcp", 23), ("tcp", 25), ("tcp", 3306), ("tcp", 3389), ("udp", 161),
          ("udp", 514), ("udp", 5060), ("tcp", 445), ("udp", 1900)]  # fmt: skip
SERVICES = [
    "allow tcp 198.18.0.0/16 any -> 198.19.0.0/24 80",
    "allow tcp 198.18.0.0/16 any -> 198.19.0.0/24 443",
    "allow tcp 198.18.0.0/16 any -> 198.19.0.0/24 8080",
    "allow udp 198.18.0.0/16 any -> 198.19.0.0/24 53",
    "allow udp 198.18.0.0/16 any -> 198.19.0.0/24 123",
    "allow udp 198.18.0.0/16 any -> 198.19.0.0/24 443",
    "allow icmp 198.18.0.0/16 -> 198.19.0.0/24 icmp_type=8",
]


def block_list(rng: random.Random, count: int) -> list[str]:
    """``count`` deny rules for client prefixes in 198.18.0.0/16: 12 /24s, the rest /26../32."""
    rules = []
    for i in range(count):
        length = 24 if i < 12 else rng.choice([26, 27, 28, 28, 29, 29, 30, 31, 32, 32])
        host = rng.randrange(0, 1 << 16) & ~((1 << (32 - length)) - 1) & 0xFFFF
        prefix = f"198.18.{host >> 8}.{host & 0xFF}/{length}"
        if rng.random() < 0.7:
            rules.append(f"deny any {prefix} -> any")
        else:
            proto, port = rng.choice([("tcp", 80), ("tcp", 443), ("udp", 53), ("tcp", 8080)])
            rules.append(f"deny {proto} {prefix} any -> any {port}")
    return rules


def rules() -> str:
    """The rule file's text."""
    rng = random.Random(2026)
    closed = [f"deny {proto} any any -> any {port}" for proto, port in CLOSED]
    blocks = block_list(rng, TOTAL - len(closed) - len(SERVICES) - 1)
    lines = [
        "# service-chain example: 1,000 rules, first match wins (written by make_acl_rules.py)",
        *closed,
        *blocks,
        *SERVICES,
        "deny any any -> any",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("acl.rules")
    out.write_text(rules())
