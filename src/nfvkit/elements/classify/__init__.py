"""Compiled packet classification shared by the ``classifier`` and ``acl`` elements.

:mod:`.rules` holds the validated rule model, :mod:`.compiler` turns an ordered rule list into
bit-vector tables, :mod:`.kernels` looks batches up in them, :mod:`.flowtable` is the stateful
ACL's connection table and :mod:`.textform` the one-rule-per-line ACL file format.
"""

from nfvkit.elements.classify.compiler import Compiled, Tables, compile_rules
from nfvkit.elements.classify.kernels import apply_fates, lookup
from nfvkit.elements.classify.rules import AclRule, ClassifierRule, Match

__all__ = [
    "AclRule",
    "ClassifierRule",
    "Compiled",
    "Match",
    "Tables",
    "apply_fates",
    "compile_rules",
    "lookup",
]
