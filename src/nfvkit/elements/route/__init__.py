"""The ``router`` element's parts: route configuration, compiled longest-prefix-match tables
and the forwarding kernel.

* :mod:`.config` -- ports, neighbours and routes as validated models, route files, and the
  resolution of every route to an output port and a next hop;
* :mod:`.lpm` -- multibit tries built with NumPy and Numba: DIR-24-8 for IPv4, a 16-8-8-...
  stride trie for IPv6, both with leaf pushing so a lookup is one to a few array reads;
* :mod:`.table` -- :class:`~.table.RouteTable`, everything the data path needs, built whole
  and swapped in whole;
* :mod:`.kernels` -- the per-batch forwarding kernel.
"""

from nfvkit.elements.route.config import Neighbour, PortSpec, Route, RouterConfig
from nfvkit.elements.route.table import RouteTable

__all__ = ["Neighbour", "PortSpec", "Route", "RouteTable", "RouterConfig"]
