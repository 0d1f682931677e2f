"""The per-flow state API: schemas, fixed-capacity tables usable from Numba kernels, and
snapshots to export and import state (see :mod:`nfvkit.vnf.state.table`)."""

from nfvkit.vnf.state.keys import FLOW_KEY, FLOW_KEY_WORDS, flow_key, reverse_flow_key
from nfvkit.vnf.state.snapshot import StateSnapshot
from nfvkit.vnf.state.table import ImportResult, StateSchema, StateTable, TableSnapshot

__all__ = [
    "FLOW_KEY",
    "FLOW_KEY_WORDS",
    "ImportResult",
    "StateSchema",
    "StateSnapshot",
    "StateTable",
    "TableSnapshot",
    "flow_key",
    "reverse_flow_key",
]
