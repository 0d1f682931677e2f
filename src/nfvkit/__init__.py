"""nfvkit: an NFV platform that covers the life cycle of a network function.

The data plane lives in :mod:`nfvkit.packet`, :mod:`nfvkit.io`, :mod:`nfvkit.elements` and
:mod:`nfvkit.graph`; the command line in :mod:`nfvkit.cli`.
"""

__version__ = "0.1.0"
